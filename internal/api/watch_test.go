package api_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/api"
)

// event returns an event of rfq.
func event(rfq string, seq int64, typ rydes.EventType, status rydes.Status) rydes.Event {
	return rydes.Event{RFQID: rfq, Seq: seq, Type: typ, At: testNow.Add(time.Duration(seq) * time.Second), Customer: "cmr", Status: status}
}

func etagOf(rfq rfqJSON) string { return `"` + rfq.ID + "." + strconv.FormatInt(rfq.Seq, 10) + `"` }

// get sends GET path with If-None-Match inm, unless "".
func (h *harness) get(t *testing.T, path, inm string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, h.srv.URL+path, nil)
	require.NoError(t, err)
	if inm != "" {
		req.Header.Set("If-None-Match", inm)
	}
	return h.v.Do(t, h.srv.Client(), req)
}

func TestGetRFQETag(t *testing.T) {
	h := newHarness(t)
	rfq := h.createRFQ(t, validBody)
	path := "/v1/rfqs/" + rfq.ID
	etag := `"` + rfq.ID + `.1"`

	resp, b := h.get(t, path, "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	assert.Equal(t, etag, resp.Header.Get("ETag"))
	assert.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))

	for _, inm := range []string{etag, "W/" + etag, "*", `"other", ` + etag, `"a.1","b.2" , W/` + etag} {
		resp, b := h.get(t, path, inm)
		assert.Equal(t, http.StatusNotModified, resp.StatusCode, "If-None-Match %s", inm)
		assert.Empty(t, b)
		assert.Equal(t, etag, resp.Header.Get("ETag"))
		assert.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
	}
	for _, inm := range []string{`"` + rfq.ID + `.2"`, rfq.ID + ".1", `"other"`} {
		resp, b := h.get(t, path, inm)
		assert.Equal(t, http.StatusOK, resp.StatusCode, "If-None-Match %s: %s", inm, b)
	}

	h.fake.addQuote(rfq.ID, "UnicornManagementResource1", "45.00")
	resp, b = h.get(t, path, etag)
	require.Equal(t, http.StatusOK, resp.StatusCode, "a change makes the old tag stale: %s", b)
	assert.Equal(t, `"`+rfq.ID+`.2"`, resp.Header.Get("ETag"))
	assert.Zero(t, h.watcher.callCount(), "no wait, no watch")
}

// TestGetRFQWaitReturnsOnEvent: a long poll whose version is current is
// answered as soon as the watcher emits, with the fresh RFQ.
func TestGetRFQWaitReturnsOnEvent(t *testing.T) {
	for _, conditional := range []bool{true, false} {
		t.Run("conditional="+strconv.FormatBool(conditional), func(t *testing.T) {
			h := newHarness(t)
			rfq := h.createRFQ(t, validBody)
			go func() {
				w := h.watcher.next()
				if w == nil || w.afterSeq != 1 {
					return // the test fails on its own: its wait ends with 304
				}
				h.fake.addQuote(rfq.ID, "UnicornManagementResource1", "45.00")
				w.send(event(rfq.ID, 2, rydes.EventQuote, rydes.StatusOpen))
			}()
			inm := ""
			if conditional {
				inm = etagOf(rfq)
			}
			resp, b := h.get(t, "/v1/rfqs/"+rfq.ID+"?wait=30s", inm)
			require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
			var got rfqJSON
			require.NoError(t, json.Unmarshal(b, &got))
			assert.EqualValues(t, 2, got.Seq)
			assert.Len(t, got.Quotes, 1)
			assert.Equal(t, `"`+rfq.ID+`.2"`, resp.Header.Get("ETag"))
		})
	}
}

func TestGetRFQWaitEndsWith304(t *testing.T) {
	h := newHarness(t)
	rfq := h.createRFQ(t, validBody)
	resp, b := h.get(t, "/v1/rfqs/"+rfq.ID+"?wait=50ms", etagOf(rfq))
	require.Equal(t, http.StatusNotModified, resp.StatusCode, "body: %s", b)
	assert.Equal(t, etagOf(rfq), resp.Header.Get("ETag"))
	assert.Equal(t, 1, h.watcher.callCount())
	assert.True(t, h.watcher.next().isClosed(), "the long poll closes its watch")

	// Without If-None-Match the client gets the RFQ, unchanged.
	resp, b = h.get(t, "/v1/rfqs/"+rfq.ID+"?wait=50ms", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	assert.Equal(t, etagOf(rfq), resp.Header.Get("ETag"))
}

// TestGetRFQWaitsOnlyWhenItCould: a stale version, a final RFQ: answered at
// once, without watching.
func TestGetRFQWaitsOnlyWhenItCould(t *testing.T) {
	h := newHarness(t)
	rfq := h.createRFQ(t, validBody)
	resp, b := h.get(t, "/v1/rfqs/"+rfq.ID+"?wait=30s", `"`+rfq.ID+`.0"`)
	require.Equal(t, http.StatusOK, resp.StatusCode, "a stale version is answered at once: %s", b)

	h.fake.setStatus(rfq.ID, rydes.StatusExpired)
	resp, b = h.get(t, "/v1/rfqs/"+rfq.ID+"?wait=30s", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	resp, b = h.get(t, "/v1/rfqs/"+rfq.ID+"?wait=30s", resp.Header.Get("ETag"))
	require.Equal(t, http.StatusNotModified, resp.StatusCode, "a final RFQ never waits: %s", b)
	assert.Zero(t, h.watcher.callCount())

	// Without a watcher, ?wait= answers at once.
	h2 := newHarness(t, func(c *api.Config) { c.Watcher = nil })
	rfq2 := h2.createRFQ(t, validBody)
	resp, b = h2.get(t, "/v1/rfqs/"+rfq2.ID+"?wait=30s", etagOf(rfq2))
	require.Equal(t, http.StatusNotModified, resp.StatusCode, "body: %s", b)
}

func TestGetRFQBadWait(t *testing.T) {
	h := newHarness(t, func(c *api.Config) { c.MaxWait = 10 * time.Second })
	rfq := h.createRFQ(t, validBody)
	for _, wait := range []string{"0s", "-1s", "11s", "soon", "", "20"} {
		resp, b := h.get(t, "/v1/rfqs/"+rfq.ID+"?wait="+wait, "")
		requireProblem(t, resp, b, http.StatusBadRequest, "wait")
	}
	resp, b := h.get(t, "/v1/rfqs/"+rfq.ID+"?wait=1s&wait=2s", "")
	requireProblem(t, resp, b, http.StatusBadRequest, "wait")
	resp, b = h.get(t, "/v1/rfqs/"+rfq.ID+"?wait=10s", `"`+rfq.ID+`.0"`)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the maximum is allowed: %s", b)
	assert.Zero(t, h.watcher.callCount())
}

func TestGetRFQWaitWatchFails(t *testing.T) {
	h := newHarness(t)
	rfq := h.createRFQ(t, validBody)
	h.watcher.setErr(errors.New("nats: connection closed"))
	resp, b := h.get(t, "/v1/rfqs/"+rfq.ID+"?wait=1s", etagOf(rfq))
	p := requireProblem(t, resp, b, http.StatusInternalServerError, "")
	assert.Equal(t, "internal error", p.Detail)
}

// sseEvent is one server-sent event as framed on the wire.
type sseEvent struct {
	id, event, data string
}

// parseSSE splits a stream into its events and counts its heartbeat
// comments; it fails the test on a line it does not know.
func parseSSE(t *testing.T, stream []byte) (events []sseEvent, heartbeats int) {
	t.Helper()
	var cur sseEvent
	sc := bufio.NewScanner(bytes.NewReader(stream))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur != (sseEvent{}) {
				events = append(events, cur)
			}
			cur = sseEvent{}
		case line == ": heartbeat":
			heartbeats++
		case strings.HasPrefix(line, "id: "):
			cur.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			cur.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			require.Empty(t, cur.data, "one data line per event")
			cur.data = strings.TrimPrefix(line, "data: ")
		default:
			t.Fatalf("unexpected line %q in stream:\n%s", line, stream)
		}
	}
	require.True(t, bytes.HasSuffix(stream, []byte("\n\n")) || len(stream) == 0, "the stream ends on an event boundary")
	return events, heartbeats
}

// streamEvents gets the event stream at path with Last-Event-ID lastID
// (unless "") and returns its events once it ends.
func (h *harness) streamEvents(t *testing.T, path, lastID string) (*http.Response, []sseEvent) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, h.srv.URL+path, nil)
	require.NoError(t, err)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, b := h.v.Do(t, h.srv.Client(), req)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	assert.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
	assert.Equal(t, "no", resp.Header.Get("X-Accel-Buffering"))
	events, _ := parseSSE(t, b)
	return resp, events
}

func TestRFQEvents(t *testing.T) {
	h := newHarness(t)
	rfq := h.createRFQ(t, validBody)
	quote := event(rfq.ID, 2, rydes.EventQuote, rydes.StatusOpen)
	quote.Provider = "UnicornManagementResource1"
	quote.Quote = &rydes.Quote{Provider: "UnicornManagementResource1", Price: rydes.Price{Amount: "45.00", Currency: "EUR"}, ReceivedAt: testNow}
	script := []rydes.Event{
		event(rfq.ID, 1, rydes.EventCreated, rydes.StatusOpen),
		quote,
		event(rfq.ID, 3, rydes.EventDecline, rydes.StatusOpen),
		event(rfq.ID, 4, rydes.EventComplete, rydes.StatusComplete),
		event(rfq.ID, 5, rydes.EventCancelled, rydes.StatusCancelled), // never sent: the stream ended
	}
	h.watcher.setScript(rfq.ID, script...)

	_, events := h.streamEvents(t, "/v1/rfqs/"+rfq.ID+"/events", "")
	require.Len(t, events, 4, "the stream ends after the final event")
	for i, ev := range events {
		assert.Equal(t, strconv.Itoa(i+1), ev.id)
		assert.Equal(t, string(script[i].Type), ev.event)
		var got rydes.Event
		require.NoError(t, json.Unmarshal([]byte(ev.data), &got))
		assert.Equal(t, script[i].Seq, got.Seq)
		assert.Equal(t, script[i].Type, got.Type)
		assert.Equal(t, rfq.ID, got.RFQID)
	}
	var q rydes.Event
	require.NoError(t, json.Unmarshal([]byte(events[1].data), &q))
	require.NotNil(t, q.Quote)
	assert.Equal(t, "45.00", q.Quote.Price.Amount)
	w := h.watcher.next()
	require.NotNil(t, w)
	assert.Zero(t, w.afterSeq)
	assert.Equal(t, rfq.ID, w.rfqID)
	assert.True(t, w.isClosed(), "the stream closes its watch")
}

func TestRFQEventsResume(t *testing.T) {
	h := newHarness(t)
	rfq := h.createRFQ(t, validBody)
	h.watcher.setScript(rfq.ID,
		event(rfq.ID, 1, rydes.EventCreated, rydes.StatusOpen),
		event(rfq.ID, 2, rydes.EventQuote, rydes.StatusOpen),
		event(rfq.ID, 3, rydes.EventExpired, rydes.StatusExpired))

	_, events := h.streamEvents(t, "/v1/rfqs/"+rfq.ID+"/events", "2")
	require.Len(t, events, 1)
	assert.Equal(t, "3", events[0].id)
	assert.Equal(t, "expired", events[0].event)
	assert.EqualValues(t, 2, h.watcher.next().afterSeq)

	_, events = h.streamEvents(t, "/v1/rfqs/"+rfq.ID+"/events?after=1", "")
	require.Len(t, events, 2)
	assert.EqualValues(t, 1, h.watcher.next().afterSeq)

	// Last-Event-ID wins over ?after=, as a reconnecting EventSource
	// repeats the URL it was given.
	_, events = h.streamEvents(t, "/v1/rfqs/"+rfq.ID+"/events?after=0", "2")
	require.Len(t, events, 1)
	assert.EqualValues(t, 2, h.watcher.next().afterSeq)
}

// TestRFQEventsFinalRFQ: a final RFQ whose last event the client has gets
// an empty stream, without watching (nothing would ever come).
func TestRFQEventsFinalRFQ(t *testing.T) {
	h := newHarness(t)
	rfq := h.createRFQ(t, validBody)
	h.fake.setStatus(rfq.ID, rydes.StatusComplete)
	_, events := h.streamEvents(t, "/v1/rfqs/"+rfq.ID+"/events", "2")
	assert.Empty(t, events)
	assert.Zero(t, h.watcher.callCount())
}

// TestRFQEventsFinalRFQPast: a final RFQ whose events were all published is
// not watched: it gets the events the broker still keeps, and its final
// event, from the RFQ if the broker no longer keeps it.
func TestRFQEventsFinalRFQPast(t *testing.T) {
	h := newHarness(t)
	rfq := h.createRFQ(t, validBody)
	h.fake.setStatus(rfq.ID, rydes.StatusExpired) // seq 2, closed at testNow
	final := event(rfq.ID, 2, rydes.EventExpired, rydes.StatusExpired)
	final.At = testNow
	finalJSON, err := json.Marshal(final)
	require.NoError(t, err)

	// The broker keeps them all.
	h.watcher.setScript(rfq.ID, event(rfq.ID, 1, rydes.EventCreated, rydes.StatusOpen), final)
	_, events := h.streamEvents(t, "/v1/rfqs/"+rfq.ID+"/events", "")
	require.Len(t, events, 2)
	assert.Equal(t, []string{"1", "2"}, []string{events[0].id, events[1].id})
	assert.Equal(t, "expired", events[1].event)
	assert.JSONEq(t, string(finalJSON), events[1].data)

	// It kept only the first: the final event comes from the RFQ.
	h.watcher.setScript(rfq.ID, event(rfq.ID, 1, rydes.EventCreated, rydes.StatusOpen))
	_, events = h.streamEvents(t, "/v1/rfqs/"+rfq.ID+"/events", "")
	require.Len(t, events, 2)
	assert.Equal(t, "created", events[0].event)
	assert.Equal(t, "2", events[1].id)
	assert.Equal(t, "expired", events[1].event)
	assert.JSONEq(t, string(finalJSON), events[1].data)

	// It kept none (the RFQ closed long ago), and the client has some.
	h.watcher.setScript(rfq.ID)
	_, events = h.streamEvents(t, "/v1/rfqs/"+rfq.ID+"/events?after=1", "")
	require.Len(t, events, 1)
	assert.Equal(t, "2", events[0].id)
	assert.JSONEq(t, string(finalJSON), events[0].data)
	assert.Zero(t, h.watcher.callCount(), "no watch")
	assert.Equal(t, 3, h.watcher.pastCalls())

	// Some still on their way: watched, as an open RFQ.
	h.watcher.setUnpublished(rfq.ID)
	h.watcher.setScript(rfq.ID, event(rfq.ID, 1, rydes.EventCreated, rydes.StatusOpen), final)
	_, events = h.streamEvents(t, "/v1/rfqs/"+rfq.ID+"/events", "")
	require.Len(t, events, 2)
	assert.Equal(t, 1, h.watcher.callCount())

	// The broker failing is an error, before the stream begins.
	h.watcher.setErr(errors.New("broker down"))
	resp, _ := h.get(t, "/v1/rfqs/"+rfq.ID+"/events", "")
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
}

// TestRFQEventsEndWithoutFinal: when the watch ends without a final event,
// so does the stream; the client reconnects with Last-Event-ID.
func TestRFQEventsEndWithoutFinal(t *testing.T) {
	h := newHarness(t)
	rfq := h.createRFQ(t, validBody)
	h.watcher.setScript(rfq.ID, event(rfq.ID, 1, rydes.EventCreated, rydes.StatusOpen))
	go func() {
		if w := h.watcher.next(); w != nil {
			w.end()
		}
	}()
	_, events := h.streamEvents(t, "/v1/rfqs/"+rfq.ID+"/events", "")
	require.Len(t, events, 1)
	assert.Equal(t, "created", events[0].event)
}

func TestRFQEventsHeartbeat(t *testing.T) {
	h := newHarness(t, func(c *api.Config) { c.Heartbeat = time.Millisecond })
	rfq := h.createRFQ(t, validBody)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, h.srv.URL+"/v1/rfqs/"+rfq.ID+"/events", nil)
	require.NoError(t, err)
	resp, err := h.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// Read until a heartbeat, then end the stream with a final event.
	var stream bytes.Buffer
	rd := bufio.NewReader(io.TeeReader(resp.Body, &stream))
	for {
		line, err := rd.ReadString('\n')
		require.NoError(t, err, "stream so far: %s", stream.String())
		if line == ": heartbeat\n" {
			break
		}
	}
	w := h.watcher.next()
	require.NotNil(t, w)
	w.send(event(rfq.ID, 2, rydes.EventCancelled, rydes.StatusCancelled))
	_, err = io.Copy(io.Discard, rd)
	require.NoError(t, err)

	h.v.Check(t, req, nil, resp, stream.Bytes())
	events, heartbeats := parseSSE(t, stream.Bytes())
	assert.Positive(t, heartbeats)
	require.Len(t, events, 1)
	assert.Equal(t, "cancelled", events[0].event)
}

func TestRFQEventsBadInput(t *testing.T) {
	h := newHarness(t)
	rfq := h.createRFQ(t, validBody)
	path := "/v1/rfqs/" + rfq.ID + "/events"
	for _, id := range []string{"abc", "-1", "1.5", "99999999999999999999"} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, h.srv.URL+path, nil)
		require.NoError(t, err)
		req.Header.Set("Last-Event-ID", id)
		resp, b := h.v.Do(t, h.srv.Client(), req)
		requireProblem(t, resp, b, http.StatusBadRequest, "Last-Event-ID")
	}
	for _, after := range []string{"x", "-1", ""} {
		resp, b := h.get(t, path+"?after="+after, "")
		requireProblem(t, resp, b, http.StatusBadRequest, "after")
	}
	resp, b := h.get(t, "/v1/rfqs/8b095f9e-cffc-4790-91a6-28353fa30e42/events", "")
	requireProblem(t, resp, b, http.StatusNotFound, "")
	resp, b = h.get(t, "/v1/rfqs/nope/events", "")
	requireProblem(t, resp, b, http.StatusBadRequest, "id")
	assert.Zero(t, h.watcher.callCount())

	h.watcher.setErr(errors.New("nats: connection closed"))
	resp, b = h.get(t, path, "")
	requireProblem(t, resp, b, http.StatusInternalServerError, "")

	h2 := newHarness(t, func(c *api.Config) { c.Watcher = nil })
	rfq2 := h2.createRFQ(t, validBody)
	resp, b = h2.get(t, "/v1/rfqs/"+rfq2.ID+"/events", "")
	requireProblem(t, resp, b, http.StatusServiceUnavailable, "")
}

func TestNotifyURL(t *testing.T) {
	h := newHarness(t)
	h.fake.setNotifySecret("whsec_dGVzdA==")
	resp, b := h.postJSON(t, "/v1/rfqs", `{"customer":"cmr","from":"a","to":"b","notify_url":"https://cmr.example/done"}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"), "the secret is not to be cached")
	var rfq rfqJSON
	require.NoError(t, json.Unmarshal(b, &rfq))
	assert.Equal(t, "https://cmr.example/done", rfq.NotifyURL)
	assert.Equal(t, "whsec_dGVzdA==", rfq.Secret)
	assert.Equal(t, "https://cmr.example/done", h.fake.lastRequest().NotifyURL)

	resp, b = h.get(t, "/v1/rfqs/"+rfq.ID, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotContains(t, string(b), "notify_secret", "shown only at creation")

	for _, u := range []string{"ftp://x.example/", "/relative", "https://user:pw@x.example/", "", "not a url"} {
		body, _ := json.Marshal(map[string]string{"customer": "c", "from": "a", "to": "b", "notify_url": u})
		resp, b := h.postJSON(t, "/v1/rfqs", string(body))
		requireProblem(t, resp, b, http.StatusBadRequest, "notify_url")
	}
	resp, b = h.postJSON(t, "/v1/rfqs", `{"customer":"c","from":"a","to":"b","notify_url":7}`)
	requireProblem(t, resp, b, http.StatusBadRequest, "notify_url")
}

func TestListNotifications(t *testing.T) {
	h := newHarness(t)
	rfq := h.createRFQ(t, validBody)
	path := "/v1/rfqs/" + rfq.ID + "/notifications"

	resp, b := h.get(t, path, "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	assert.JSONEq(t, `{"notifications":[]}`, string(b))

	h.notifications.add(rydes.Notification{RFQID: rfq.ID, Event: rydes.EventComplete, Attempt: 1, At: testNow, Status: 503, Error: "HTTP 503"})
	h.notifications.add(rydes.Notification{RFQID: rfq.ID, Event: rydes.EventComplete, Attempt: 2, At: testNow.Add(time.Second), Status: 204, Delivered: true})
	resp, b = h.get(t, path, "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	var got struct {
		Notifications []rydes.Notification `json:"notifications"`
	}
	require.NoError(t, json.Unmarshal(b, &got))
	require.Len(t, got.Notifications, 2)
	assert.Equal(t, 1, got.Notifications[0].Attempt)
	assert.False(t, got.Notifications[0].Delivered)
	assert.True(t, got.Notifications[1].Delivered)

	calls := h.notifications.callCount()
	resp, b = h.get(t, "/v1/rfqs/8b095f9e-cffc-4790-91a6-28353fa30e42/notifications", "")
	requireProblem(t, resp, b, http.StatusNotFound, "")
	assert.Equal(t, calls, h.notifications.callCount())

	h2 := newHarness(t, func(c *api.Config) { c.Notifications = nil })
	rfq2 := h2.createRFQ(t, validBody)
	resp, b = h2.get(t, "/v1/rfqs/"+rfq2.ID+"/notifications", "")
	requireProblem(t, resp, b, http.StatusServiceUnavailable, "")
}

func TestWebMount(t *testing.T) {
	web := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/assets/") {
			w.Header().Set("Content-Type", "text/javascript")
			io.WriteString(w, "// "+r.URL.Path)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<!doctype html><title>"+r.URL.Path+"</title>")
	})
	h := newHarness(t, func(c *api.Config) { c.Web = web })
	for path, want := range map[string]string{"/": "<title>/</title>", "/providers": "<title>/providers</title>", "/assets/app.js": "// /assets/app.js"} {
		resp, b := h.do(t, http.MethodGet, path, "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", path, b)
		assert.Contains(t, string(b), want)
	}
	resp, b := h.do(t, http.MethodGet, "/elsewhere", "", nil)
	requireProblem(t, resp, b, http.StatusNotFound, "")

	bare := newHarness(t)
	for _, path := range []string{"/", "/providers", "/assets/app.js"} {
		resp, b := bare.do(t, http.MethodGet, path, "", nil)
		requireProblem(t, resp, b, http.StatusNotFound, "")
	}
}

// A final RFQ's body is encoded once and served from memory after: each
// RFQ gets its own, and the same bytes every time.
func TestGetFinalRFQBodies(t *testing.T) {
	h := newHarness(t)
	a := h.createRFQ(t, validBody)
	b := h.createRFQ(t, validBody)
	h.fake.addQuote(a.ID, "UnicornManagementResource1", "45.00")
	h.fake.setStatus(a.ID, rydes.StatusComplete)
	h.fake.setStatus(b.ID, rydes.StatusExpired)

	bodies := map[string][]byte{}
	for _, id := range []string{a.ID, b.ID, a.ID, b.ID} {
		resp, body := h.get(t, "/v1/rfqs/"+id, "")
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		var got rfqJSON
		require.NoError(t, json.Unmarshal(body, &got))
		require.Equal(t, id, got.ID)
		require.Equal(t, etagOf(got), resp.Header.Get("ETag"))
		if prev, ok := bodies[id]; ok {
			require.Equal(t, prev, body, "the same bytes for the same version")
		}
		bodies[id] = body
	}
	var got rfqJSON
	require.NoError(t, json.Unmarshal(bodies[a.ID], &got))
	require.Equal(t, "complete", string(got.Status))
	require.Len(t, got.Quotes, 1)
	require.NoError(t, json.Unmarshal(bodies[b.ID], &got))
	require.Equal(t, "expired", string(got.Status))
}
