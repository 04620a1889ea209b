package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/client"
	"github.com/wildrydes/rydes/internal/bus"
	"github.com/wildrydes/rydes/internal/rydestest"
)

// sseEvent is one frame of an event stream.
type sseEvent struct {
	id    int64
	event string
	data  rydes.Event
}

// readEvents opens the RFQ's event stream with the given key (if any) and
// Last-Event-ID (if > 0), and returns up to max events, or all of them until
// the stream ends when max is 0.
func readEvents(t *testing.T, base, key, id string, lastID int64, max int) []sseEvent {
	t.Helper()
	req, err := http.NewRequestWithContext(rydestest.Context(t), http.MethodGet, base+"/v1/rfqs/"+id+"/events", nil)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if lastID > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(lastID, 10))
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	var (
		evs []sseEvent
		cur sseEvent
	)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.event != "" {
				evs = append(evs, cur)
				if max > 0 && len(evs) == max {
					return evs // dropping the connection mid-stream
				}
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			cur.id, err = strconv.ParseInt(strings.TrimPrefix(line, "id: "), 10, 64)
			require.NoError(t, err)
		case strings.HasPrefix(line, "event: "):
			cur.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.data))
		}
	}
	require.NoError(t, sc.Err())
	return evs
}

func checkSequence(t *testing.T, evs []sseEvent, from int64) {
	t.Helper()
	for i, e := range evs {
		require.Equal(t, from+int64(i), e.id, "in order, no gap, no repeat")
		require.Equal(t, e.id, e.data.Seq)
		require.Equal(t, e.event, string(e.data.Type))
	}
}

// TestEventStreamResumesAndEnds follows a request over SSE: quotes in
// order, a dropped connection resumed with Last-Event-ID without loss or
// repeat, and the stream ending after the final event.
func TestEventStreamResumesAndEnds(t *testing.T) {
	s := fleet(4, 1, false)
	s.MinDelay, s.MaxDelay = 20*time.Millisecond, 200*time.Millisecond
	h := start(t, config(t, t.TempDir(), s))
	rfq := h.create(`{"customer":"cmr","from":"A","to":"B"}`)

	first := readEvents(t, h.app.URL(), "", rfq.ID, 0, 2)
	require.Len(t, first, 2)
	checkSequence(t, first, 1)
	require.Equal(t, "created", first[0].event)

	rest := readEvents(t, h.app.URL(), "", rfq.ID, first[len(first)-1].id, 0)
	checkSequence(t, rest, 3)
	all := append(first, rest...)
	require.Len(t, all, 6, "created, four quotes, complete")
	require.Equal(t, "complete", all[len(all)-1].event)

	// A finished request's stream replays and ends at once.
	again := readEvents(t, h.app.URL(), "", rfq.ID, 0, 0)
	require.Len(t, again, 6)
}

// TestEventStreamOfARequestTheBrokerNoLongerKeeps: the events stream drops
// its oldest events (after a day, or sooner at its size limits) while the
// database keeps requests for --retention: a finished request's stream
// then has the events the broker still keeps and its final event, from
// the database, and ends, rather than wait for events that are gone.
func TestEventStreamOfARequestTheBrokerNoLongerKeeps(t *testing.T) {
	h := start(t, config(t, t.TempDir(), fleet(3, 1, false)))
	ctx := rydestest.Context(t)
	rfq := h.create(`{"customer":"cmr","from":"A","to":"B"}`)
	done := h.waitStatus(rfq.ID, rydes.StatusComplete)
	rydestest.WaitFor(t, "every event of the request to be published", func() bool {
		holds, err := h.app.Store().OutboxHoldsEvents(ctx, rfq.ID)
		require.NoError(t, err)
		return !holds
	})
	all := readEvents(t, h.app.URL(), "", rfq.ID, 0, 0)
	checkSequence(t, all, 1)
	require.Equal(t, "complete", all[len(all)-1].event)
	require.Equal(t, done.Seq, all[len(all)-1].id)

	// The broker drops the request's events, as its retention does.
	s, err := h.app.Bus().JetStream().Stream(ctx, bus.EventsStream)
	require.NoError(t, err)
	require.NoError(t, s.Purge(ctx, jetstream.WithPurgeSubject(bus.EventFilter(rfq.ID))))

	got := readEvents(t, h.app.URL(), "", rfq.ID, 0, 0)
	require.Len(t, got, 1, "the final event alone")
	require.Equal(t, all[len(all)-1], got[0], "as it was published")
	require.Empty(t, readEvents(t, h.app.URL(), "", rfq.ID, done.Seq, 0))
}

// TestShutdownEndsEventStreams: an event stream held open on a request
// that will not change for an hour ends as soon as shutdown begins (the
// bus ends every watch), so draining HTTP does not wait for it.
func TestShutdownEndsEventStreams(t *testing.T) {
	s := fleet(2, 1, false)
	s.MinDelay, s.MaxDelay = time.Hour, time.Hour
	h := start(t, config(t, t.TempDir(), s))
	rfq := h.create(`{"customer":"cmr","from":"A","to":"B"}`)

	req, err := http.NewRequestWithContext(rydestest.Context(t), http.MethodGet, h.app.URL()+"/v1/rfqs/"+rfq.ID+"/events", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	rd := bufio.NewReader(resp.Body)
	for {
		line, err := rd.ReadString('\n')
		require.NoError(t, err)
		if line == "event: created\n" {
			break
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), rydestest.WaitTimeout)
	defer cancel()
	require.NoError(t, h.app.Shutdown(ctx), "the drain did not wait for the stream")
	rest, err := io.ReadAll(rd)
	require.NoError(t, err, "the stream ended cleanly")
	require.NotContains(t, string(rest), "event: ", "no event after created")
}

// TestWatcherOnAnotherInstance runs two rydes instances on one broker and
// one database: a watcher on the second sees the answers the first staged.
func TestWatcherOnAnotherInstance(t *testing.T) {
	dir := t.TempDir()
	s := fleet(3, 1, false)
	s.MinDelay, s.MaxDelay = 50*time.Millisecond, 300*time.Millisecond
	cfgA := config(t, dir, s)
	cfgA.NATSListen = "127.0.0.1:0"
	cfgA.NATSPassword = "instance-password-0123456789"
	cfgA.AdminKey = adminKey
	a := start(t, cfgA)

	cfgB := config(t, dir, fleet(0, 0, false))
	cfgB.Demo = false
	cfgB.NATSURL = a.app.NATSURL()
	cfgB.NATSPassword = cfgA.NATSPassword
	cfgB.AdminKey = adminKey
	b := start(t, cfgB)

	rfq := a.create(`{"customer":"cmr","from":"A","to":"B"}`)
	evs := readEvents(t, b.app.URL(), adminKey, rfq.ID, 0, 0)
	checkSequence(t, evs, 1)
	require.Equal(t, "complete", evs[len(evs)-1].event)
	quotes := 0
	for _, e := range evs {
		if e.event == "quote" {
			quotes++
		}
	}
	require.Equal(t, 3, quotes)
}

// TestETagAndLongPoll checks cheap polling: a 304 while nothing changed,
// and a long poll that returns as soon as something does.
func TestETagAndLongPoll(t *testing.T) {
	s := fleet(2, 1, false)
	s.MinDelay, s.MaxDelay = time.Hour, time.Hour
	h := start(t, config(t, t.TempDir(), s))
	rfq := h.create(`{"customer":"cmr","from":"A","to":"B"}`)

	get := func(path, etag string) *http.Response {
		req, err := http.NewRequestWithContext(rydestest.Context(t), http.MethodGet, h.app.URL()+path, nil)
		require.NoError(t, err)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := get("/v1/rfqs/"+rfq.ID, "")
	etag := resp.Header.Get("ETag")
	require.NotEmpty(t, etag)
	notModified := get("/v1/rfqs/"+rfq.ID, etag)
	require.Equal(t, http.StatusNotModified, notModified.StatusCode)
	require.Equal(t, etag, notModified.Header.Get("ETag"), "a 304 (from the version alone) names the version")
	require.Equal(t, http.StatusOK, get("/v1/rfqs/"+rfq.ID, `"`+rfq.ID+`.0"`).StatusCode, "a stale ETag gets the RFQ")
	other := get("/v1/rfqs/"+rydes.NewID(), etag)
	require.Equal(t, http.StatusNotFound, other.StatusCode, "an unknown RFQ is a 404 whatever the ETag")

	// A long poll held open returns once the request changes.
	done := make(chan *http.Response, 1)
	go func() { done <- get("/v1/rfqs/"+rfq.ID+"?wait=30s", etag) }()
	_, err := h.app.Engine().CancelRFQ(rydestest.Context(t), rfq.ID, "")
	require.NoError(t, err)
	resp = <-done
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotEqual(t, etag, resp.Header.Get("ETag"))
}

// TestCustomersSeeOnlyTheirOwn checks customer keys without --demo.
func TestCustomersSeeOnlyTheirOwn(t *testing.T) {
	h := start(t, partnerConfig(t))
	ctx := rydestest.Context(t)
	admin, err := client.New(h.app.URL(), client.WithAPIKey(adminKey))
	require.NoError(t, err)
	_, _, err = admin.CreateProvider(ctx, client.CreateProviderRequest{ID: "p1", Kind: rydes.ProviderKindNATS})
	require.NoError(t, err)
	_, key1, err := h.app.Customers().Create(ctx, "alice", "Alice")
	require.NoError(t, err)
	_, key2, err := h.app.Customers().Create(ctx, "bob", "Bob")
	require.NoError(t, err)
	alice, err := client.New(h.app.URL(), client.WithAPIKey(key1))
	require.NoError(t, err)
	bob, err := client.New(h.app.URL(), client.WithAPIKey(key2))
	require.NoError(t, err)

	rfq, err := alice.CreateRFQ(ctx, client.CreateRFQRequest{From: "A", To: "B"})
	require.NoError(t, err)
	require.Equal(t, "alice", rfq.Customer, "the customer comes from the key")

	var p *client.Problem
	_, err = bob.GetRFQ(ctx, rfq.ID)
	require.ErrorAs(t, err, &p)
	require.Equal(t, http.StatusNotFound, p.Status)
	_, err = bob.CancelRFQ(ctx, rfq.ID)
	require.ErrorAs(t, err, &p)
	require.Equal(t, http.StatusNotFound, p.Status)
	_, err = bob.CreateRFQ(ctx, client.CreateRFQRequest{Customer: "alice", From: "A", To: "B"})
	require.ErrorAs(t, err, &p)
	require.Equal(t, http.StatusForbidden, p.Status, "bob cannot ask as alice")

	anon, err := client.New(h.app.URL())
	require.NoError(t, err)
	_, err = anon.GetRFQ(ctx, rfq.ID)
	require.ErrorAs(t, err, &p)
	require.Equal(t, http.StatusUnauthorized, p.Status, "without --demo a key is required")

	got, err := alice.GetRFQ(ctx, rfq.ID)
	require.NoError(t, err)
	require.Equal(t, rydes.StatusOpen, got.Status)
}

// TestCompletionWebhookDeliveredOnce checks notify_url: a receiver that
// fails first and then accepts gets exactly one accepted delivery, signed
// with the secret the create answer showed, and the log shows both
// attempts.
func TestCompletionWebhookDeliveredOnce(t *testing.T) {
	h := start(t, config(t, t.TempDir(), fleet(2, 1, false)))
	var (
		mu       sync.Mutex
		secret   string
		accepted []rydes.RFQ
		calls    atomic.Int64
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if calls.Add(1) == 1 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil || wh.Verify(body, r.Header) != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var rfq rydes.RFQ
		if err := json.Unmarshal(body, &rfq); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		accepted = append(accepted, rfq)
	}))
	t.Cleanup(receiver.Close)

	mu.Lock()
	r := h.post("/v1/rfqs", `{"customer":"cmr","from":"A","to":"B","notify_url":"`+receiver.URL+`/done"}`)
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	var created rydes.RFQ
	r.json(t, &created)
	secret = created.NotifySecret
	mu.Unlock()
	require.NotEmpty(t, secret)
	require.Empty(t, h.rfq(created.ID).NotifySecret, "the secret is shown once")

	var log []rydes.Notification
	rydestest.WaitFor(t, "the notification to be delivered", func() bool {
		res := h.get("/v1/rfqs/" + created.ID + "/notifications")
		var body struct {
			Notifications []rydes.Notification `json:"notifications"`
		}
		res.json(t, &body)
		log = body.Notifications
		return len(log) > 0 && log[len(log)-1].Delivered
	})
	require.Len(t, log, 2)
	require.False(t, log[0].Delivered)
	require.Equal(t, http.StatusServiceUnavailable, log[0].Status)
	require.Equal(t, rydes.EventComplete, log[1].Event)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, accepted, 1, "exactly one accepted delivery")
	require.Equal(t, rydes.StatusComplete, accepted[0].Status)
	require.Len(t, accepted[0].Quotes, 2)
}
