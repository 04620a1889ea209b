package notify

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go/jetstream"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/bus"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
)

// fakeStore is the part of the database the notifier uses, in memory.
type fakeStore struct {
	mu   sync.Mutex
	rfqs map[string]rydes.RFQ // with NotifyURL and NotifySecret
	log  []rydes.Notification
}

func newFakeStore() *fakeStore { return &fakeStore{rfqs: make(map[string]rydes.RFQ)} }

func (f *fakeStore) put(r rydes.RFQ) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rfqs[r.ID] = r
}

func (f *fakeStore) NotifyTarget(_ context.Context, rfqID string) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rfqs[rfqID]
	if !ok {
		return "", "", rydes.Errorf(rydes.ENOTFOUND, "no rfq %s", rfqID)
	}
	return r.NotifyURL, r.NotifySecret, nil
}

func (f *fakeStore) GetRFQ(_ context.Context, p store.GetRFQParams) (rydes.RFQ, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rfqs[p.ID]
	if !ok {
		return rydes.RFQ{}, rydes.Errorf(rydes.ENOTFOUND, "no rfq %s", p.ID)
	}
	r.NotifySecret = ""
	return r, nil
}

func (f *fakeStore) RecordNotification(_ context.Context, n rydes.Notification) (rydes.Notification, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n.Attempt = 1
	for _, o := range f.log {
		if o.RFQID == n.RFQID && o.Event == n.Event {
			n.Attempt++
		}
	}
	f.log = append(f.log, n)
	return n, nil
}

func (f *fakeStore) NotificationDelivered(_ context.Context, rfqID string, event rydes.EventType) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range f.log {
		if o.RFQID == rfqID && o.Event == event && o.Delivered {
			return true, nil
		}
	}
	return false, nil
}

// notifications returns the log of rfqID.
func (f *fakeStore) notifications(rfqID string) []rydes.Notification {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ns []rydes.Notification
	for _, n := range f.log {
		if n.RFQID == rfqID {
			ns = append(ns, n)
		}
	}
	return ns
}

// delivered counts the accepted notifications in the log.
func (f *fakeStore) delivered() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := 0
	for _, n := range f.log {
		if n.Delivered {
			c++
		}
	}
	return c
}

// receiver is a customer's endpoint on loopback. status decides the
// answer to the n-th request (from 1).
type receiver struct {
	srv    *httptest.Server
	status func(n int) int

	mu   sync.Mutex
	reqs []received
}

type received struct {
	header http.Header
	body   []byte
	status int
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	t.Helper()
	r := &receiver{status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		code := r.status(len(r.reqs) + 1)
		r.reqs = append(r.reqs, received{header: req.Header.Clone(), body: body, status: code})
		r.mu.Unlock()
		if code == http.StatusFound {
			w.Header().Set("Location", r.srv.URL+"/elsewhere")
		}
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "0")
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func always(code int) func(int) int { return func(int) int { return code } }

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.reqs...)
}

// accepted returns the bodies of the requests answered 2xx, by RFQ id.
func (r *receiver) accepted(t *testing.T) map[string]int {
	t.Helper()
	got := make(map[string]int)
	for _, q := range r.requests() {
		if q.status/100 == 2 {
			var rfq rydes.RFQ
			require.NoError(t, json.Unmarshal(q.body, &rfq))
			got[rfq.ID]++
		}
	}
	return got
}

// logRecorder is a slog handler that keeps every record's message and
// attributes, and passes it on to the test's log.
type logRecorder struct {
	next  slog.Handler
	attrs []slog.Attr
	mu    *sync.Mutex
	recs  *[]map[string]string
}

func newLogRecorder(t *testing.T) *logRecorder {
	return &logRecorder{next: rydestest.Logger(t).Handler(), mu: new(sync.Mutex), recs: new([]map[string]string)}
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(ctx context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message}
	for _, a := range h.attrs {
		m[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	*h.recs = append(*h.recs, m)
	h.mu.Unlock()
	return h.next.Handle(ctx, r)
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	c.next = h.next.WithAttrs(as)
	return &c
}

func (h *logRecorder) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}

// find returns the records with message msg about rfqID.
func (h *logRecorder) find(msg, rfqID string) []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]string
	for _, m := range *h.recs {
		if m["msg"] == msg && m["rfq"] == rfqID {
			out = append(out, m)
		}
	}
	return out
}

// bundle is what the tests need: a NATS server, a bus to publish events, a
// fake store and a fake clock.
type bundle struct {
	emb   *bus.Embedded
	bus   *bus.Bus
	store *fakeStore
	clock *clockwork.FakeClock
	logs  *logRecorder
}

func setup(t *testing.T) *bundle {
	t.Helper()
	ctx := rydestest.Context(t)
	emb, err := bus.StartEmbedded(ctx, bus.EmbeddedConfig{StoreDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(emb.Shutdown)
	nc, err := emb.Connect()
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	b, err := bus.New(ctx, nc, bus.Config{Logger: rydestest.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(b.Close)
	return &bundle{emb: emb, bus: b, store: newFakeStore(), clock: clockwork.NewFakeClockAt(time.Now()), logs: newLogRecorder(t)}
}

// config returns a notifier's configuration on a connection of its own,
// with tiny backoffs.
func (bb *bundle) config(t *testing.T) Config {
	t.Helper()
	nc, err := bb.emb.Connect()
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return Config{
		JS: js, Store: bb.store, Clock: bb.clock, Logger: slog.New(bb.logs),
		AllowPrivateNetworks: true,
		Backoff:              []time.Duration{time.Millisecond, 2 * time.Millisecond},
		MaxAttempts:          5,
		AttemptTimeout:       5 * time.Second,
	}
}

// run starts a notifier until the test ends, and checks that it stops
// cleanly.
func (bb *bundle) run(t *testing.T, cfg Config) {
	t.Helper()
	n, err := New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(rydestest.WaitTimeout):
			t.Error("Run did not return after its context was cancelled")
		}
	})
}

// finalRFQ stores a final RFQ with notifyURL (and a new secret) and
// publishes its final event; it returns the RFQ and its secret.
func (bb *bundle) finalRFQ(t *testing.T, notifyURL string, typ rydes.EventType) (rydes.RFQ, string) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	status := map[rydes.EventType]rydes.Status{
		rydes.EventComplete: rydes.StatusComplete, rydes.EventExpired: rydes.StatusExpired, rydes.EventCancelled: rydes.StatusCancelled,
	}[typ]
	rfq := rydes.RFQ{
		ID: rydes.NewID(), Status: status, Customer: "alice", From: "Castle", To: "Rainbow",
		CreatedAt: now, Deadline: now.Add(time.Minute), ClosedAt: now, Seq: 2, NotifyURL: notifyURL,
		Providers: []rydes.RosterEntry{{Provider: "p1", State: rydes.ProviderQuoted, ChangedAt: now}},
		Quotes:    []rydes.Quote{},
	}
	secret := ""
	if notifyURL != "" {
		secret = newSecret(t)
	}
	stored := rfq
	stored.NotifySecret = secret
	bb.store.put(stored)
	bb.publish(t, rydes.Event{RFQID: rfq.ID, Seq: 2, Type: typ, At: now, Customer: "alice", Status: status})
	return rfq, secret
}

func (bb *bundle) publish(t *testing.T, evs ...rydes.Event) {
	t.Helper()
	msgs := make([]store.OutboxMessage, len(evs))
	for i := range evs {
		msgs[i] = store.OutboxMessage{ID: int64(i + 1), Kind: store.OutboxEvent, Events: evs[i : i+1]}
	}
	_, err := bb.bus.Publish(rydestest.Context(t), msgs)
	require.NoError(t, err)
}

// publishGroup publishes evs, one RFQ's consecutive events, as one
// message, as the store's outbox holds the events of one write.
func (bb *bundle) publishGroup(t *testing.T, evs ...rydes.Event) {
	t.Helper()
	_, err := bb.bus.Publish(rydestest.Context(t), []store.OutboxMessage{{ID: 1, Kind: store.OutboxEvent, Events: evs}})
	require.NoError(t, err)
}

// waitIdle waits until the notifier consumer has handled every final
// event stored so far: it acked (or termed) the last one, and none is
// waiting or unacked (a nak'd one is unacked until retried).
func (bb *bundle) waitIdle(t *testing.T) {
	t.Helper()
	ctx := rydestest.Context(t)
	s, err := bb.bus.JetStream().Stream(ctx, bus.EventsStream)
	require.NoError(t, err)
	var last uint64
	for _, subject := range FilterSubjects() {
		m, err := s.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		require.NoError(t, err)
		last = max(last, m.Sequence)
	}
	rydestest.WaitFor(t, "the notifier to handle every final event", func() bool {
		c, err := bb.bus.JetStream().Consumer(ctx, bus.EventsStream, ConsumerName)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		require.NoError(t, err)
		return info.AckFloor.Stream >= last && info.NumPending == 0 && info.NumAckPending == 0
	})
}

func newSecret(t *testing.T) string {
	t.Helper()
	key := make([]byte, 24)
	_, err := rand.Read(key)
	require.NoError(t, err)
	return "whsec_" + base64.StdEncoding.EncodeToString(key)
}

func TestDeliversSignedFinalRFQ(t *testing.T) {
	bb := setup(t)
	rcv := newReceiver(t, always(http.StatusNoContent))
	bb.run(t, bb.config(t))
	rfq, secret := bb.finalRFQ(t, rcv.srv.URL+"/hooks/rydes", rydes.EventExpired)

	rydestest.WaitFor(t, "the notification", func() bool { return bb.store.delivered() == 1 })
	reqs := rcv.requests()
	require.Len(t, reqs, 1)
	q := reqs[0]
	require.Equal(t, "application/json", q.header.Get("Content-Type"))
	require.Equal(t, UserAgent, q.header.Get("User-Agent"))
	require.Equal(t, "notify_"+rfq.ID+"_expired", q.header.Get("webhook-id"))
	require.Equal(t, strconv.FormatInt(bb.clock.Now().Unix(), 10), q.header.Get("webhook-timestamp"))
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	require.NoError(t, wh.Verify(q.body, q.header), "the signature verifies with the RFQ's secret")
	other, err := standardwebhooks.NewWebhook(newSecret(t))
	require.NoError(t, err)
	require.Error(t, other.Verify(q.body, q.header))

	var got rydes.RFQ
	require.NoError(t, json.Unmarshal(q.body, &got))
	require.Equal(t, rfq, got, "the final RFQ, without its secret")
	require.NotContains(t, string(q.body), secret)

	ns := bb.store.notifications(rfq.ID)
	require.Equal(t, []rydes.Notification{{RFQID: rfq.ID, Event: rydes.EventExpired, Attempt: 1, At: bb.clock.Now().UTC().Truncate(time.Microsecond), Status: 204, Delivered: true}}, ns)
	bb.waitIdle(t)
}

// A final event that came with the answer before it, in one message, is
// notified once.
func TestDeliversFinalEventLastOfItsMessage(t *testing.T) {
	bb := setup(t)
	rcv := newReceiver(t, always(http.StatusNoContent))
	bb.run(t, bb.config(t))
	now := time.Now().UTC().Truncate(time.Microsecond)
	rfq := rydes.RFQ{
		ID: rydes.NewID(), Status: rydes.StatusComplete, Customer: "alice", From: "Castle", To: "Rainbow",
		CreatedAt: now, Deadline: now.Add(time.Minute), ClosedAt: now, Seq: 3, NotifyURL: rcv.srv.URL + "/hooks/rydes",
		Providers: []rydes.RosterEntry{{Provider: "p1", State: rydes.ProviderDeclined, ChangedAt: now}},
		Quotes:    []rydes.Quote{},
	}
	stored := rfq
	stored.NotifySecret = newSecret(t)
	bb.store.put(stored)
	bb.publishGroup(t,
		rydes.Event{RFQID: rfq.ID, Seq: 2, Type: rydes.EventDecline, At: now, Customer: "alice", Provider: "p1", Status: rydes.StatusOpen},
		rydes.Event{RFQID: rfq.ID, Seq: 3, Type: rydes.EventComplete, At: now, Customer: "alice", Status: rydes.StatusComplete})

	rydestest.WaitFor(t, "the notification", func() bool { return bb.store.delivered() == 1 })
	reqs := rcv.requests()
	require.Len(t, reqs, 1)
	require.Equal(t, "notify_"+rfq.ID+"_complete", reqs[0].header.Get("webhook-id"))
	bb.waitIdle(t)
	require.Len(t, rcv.requests(), 1, "one notification")
}

func TestRetriesUntilAccepted(t *testing.T) {
	bb := setup(t)
	rcv := newReceiver(t, func(n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	bb.run(t, bb.config(t))
	rfq, _ := bb.finalRFQ(t, rcv.srv.URL, rydes.EventComplete)

	rydestest.WaitFor(t, "the notification", func() bool { return bb.store.delivered() == 1 })
	bb.waitIdle(t)
	require.Equal(t, map[string]int{rfq.ID: 1}, rcv.accepted(t), "exactly one accepted delivery")
	reqs := rcv.requests()
	require.Len(t, reqs, 2)
	require.Equal(t, reqs[0].header.Get("webhook-id"), reqs[1].header.Get("webhook-id"), "the id is stable across retries")

	ns := bb.store.notifications(rfq.ID)
	require.Len(t, ns, 2)
	require.Equal(t, 1, ns[0].Attempt)
	require.False(t, ns[0].Delivered)
	require.Equal(t, 503, ns[0].Status)
	require.Equal(t, "HTTP 503", ns[0].Error)
	require.Equal(t, 2, ns[1].Attempt)
	require.True(t, ns[1].Delivered)
	require.Empty(t, ns[1].Error)

	failed := bb.logs.find("notify: notification attempt failed; will retry", rfq.ID)
	require.Len(t, failed, 1)
	require.Equal(t, "1", failed[0]["attempt"])
	ok := bb.logs.find("notify: notification delivered", rfq.ID)
	require.Len(t, ok, 1)
	require.Equal(t, "2", ok[0]["attempt"])
}

func TestRetryAfterAndTimeoutsRetry(t *testing.T) {
	bb := setup(t)
	block := make(chan struct{})
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		switch n {
		case 1: // no answer within the attempt's timeout
			select {
			case <-block:
			case <-r.Context().Done():
			}
		case 2:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(block) }) // before srv.Close
	cfg := bb.config(t)
	cfg.AttemptTimeout = 200 * time.Millisecond // a bound, not an assertion
	bb.run(t, cfg)
	rfq, _ := bb.finalRFQ(t, srv.URL, rydes.EventCancelled)

	rydestest.WaitFor(t, "the notification", func() bool { return bb.store.delivered() == 1 })
	ns := bb.store.notifications(rfq.ID)
	require.Len(t, ns, 3)
	require.Contains(t, ns[0].Error, "timeout")
	require.Equal(t, 429, ns[1].Status)
	require.True(t, ns[2].Delivered)
}

func TestNoNotifyURLSendsNothing(t *testing.T) {
	bb := setup(t)
	rcv := newReceiver(t, always(http.StatusOK))
	bb.run(t, bb.config(t))
	rfq, _ := bb.finalRFQ(t, "", rydes.EventComplete)
	// An event of an RFQ the store does not have is dropped too.
	bb.publish(t, rydes.Event{RFQID: rydes.NewID(), Seq: 3, Type: rydes.EventExpired, Status: rydes.StatusExpired})
	// Non-final events are not even delivered to the notifier.
	bb.publish(t, rydes.Event{RFQID: rfq.ID, Seq: 1, Type: rydes.EventCreated, Status: rydes.StatusOpen})

	bb.waitIdle(t)
	require.Empty(t, rcv.requests())
	require.Empty(t, bb.store.notifications(rfq.ID))
}

func TestOneDeliveryPerTransitionAcrossInstances(t *testing.T) {
	bb := setup(t)
	rcv := newReceiver(t, func(n int) int {
		if n%3 == 0 {
			return http.StatusBadGateway // some retries, taken by either instance
		}
		return http.StatusOK
	})
	bb.run(t, bb.config(t))
	bb.run(t, bb.config(t))

	const n = 30
	want := make(map[string]int)
	for i := range n {
		typ := []rydes.EventType{rydes.EventComplete, rydes.EventExpired, rydes.EventCancelled}[i%3]
		rfq, _ := bb.finalRFQ(t, rcv.srv.URL, typ)
		want[rfq.ID] = 1
	}
	rydestest.WaitFor(t, "every notification", func() bool { return bb.store.delivered() == n })
	bb.waitIdle(t)
	require.Equal(t, want, rcv.accepted(t))
	require.Equal(t, n, bb.store.delivered())

	s, err := bb.bus.JetStream().Stream(rydestest.Context(t), bus.EventsStream)
	require.NoError(t, err)
	names := s.ListConsumers(rydestest.Context(t))
	var got []string
	for c := range names.Info() {
		got = append(got, c.Name)
	}
	require.NoError(t, names.Err())
	require.Equal(t, []string{ConsumerName}, got, "both instances share one consumer")
}

func TestRedeliveryAfterSuccessIsNotSentAgain(t *testing.T) {
	bb := setup(t)
	rcv := newReceiver(t, always(http.StatusOK))
	// The notification was accepted, and the process died before the ack:
	// the log says delivered, and JetStream delivers the event again.
	rfq := rydes.RFQ{ID: rydes.NewID(), Status: rydes.StatusComplete, NotifyURL: rcv.srv.URL, NotifySecret: newSecret(t)}
	bb.store.put(rfq)
	_, err := bb.store.RecordNotification(context.Background(), rydes.Notification{RFQID: rfq.ID, Event: rydes.EventComplete, Status: 200, Delivered: true})
	require.NoError(t, err)
	bb.publish(t, rydes.Event{RFQID: rfq.ID, Seq: 2, Type: rydes.EventComplete, Status: rydes.StatusComplete})
	bb.run(t, bb.config(t))

	bb.waitIdle(t)
	require.Empty(t, rcv.requests())
	require.Len(t, bb.store.notifications(rfq.ID), 1)
	require.Len(t, bb.logs.find("notify: already delivered; not sent again", rfq.ID), 1)
}

func TestPermanentFailuresAreNotRetried(t *testing.T) {
	for _, code := range []int{http.StatusBadRequest, http.StatusNotFound, http.StatusGone, http.StatusFound} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			bb := setup(t)
			rcv := newReceiver(t, always(code))
			bb.run(t, bb.config(t))
			rfq, _ := bb.finalRFQ(t, rcv.srv.URL, rydes.EventComplete)

			rydestest.WaitFor(t, "the attempt to be recorded", func() bool { return len(bb.store.notifications(rfq.ID)) == 1 })
			bb.waitIdle(t)
			require.Len(t, rcv.requests(), 1, "one attempt only")
			ns := bb.store.notifications(rfq.ID)
			require.Len(t, ns, 1)
			require.Equal(t, code, ns[0].Status)
			require.False(t, ns[0].Delivered)
			require.Contains(t, ns[0].Error, "HTTP "+strconv.Itoa(code))
			require.Len(t, bb.logs.find("notify: notification failed for good", rfq.ID), 1)
		})
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	bb := setup(t)
	rcv := newReceiver(t, always(http.StatusInternalServerError))
	cfg := bb.config(t)
	cfg.MaxAttempts = 3
	bb.run(t, cfg)
	rfq, _ := bb.finalRFQ(t, rcv.srv.URL, rydes.EventComplete)

	rydestest.WaitFor(t, "three attempts to be recorded", func() bool { return len(bb.store.notifications(rfq.ID)) == 3 })
	bb.waitIdle(t)
	require.Len(t, rcv.requests(), 3)
	ns := bb.store.notifications(rfq.ID)
	require.Equal(t, "HTTP 500", ns[1].Error)
	require.Equal(t, "HTTP 500 (gave up after 3 attempts)", ns[2].Error)
	require.Len(t, bb.logs.find("notify: notification failed for good", rfq.ID), 1)
}

func TestPrivateAddressRefused(t *testing.T) {
	bb := setup(t)
	rcv := newReceiver(t, always(http.StatusOK))
	cfg := bb.config(t)
	cfg.AllowPrivateNetworks = false
	bb.run(t, cfg)
	rfq, _ := bb.finalRFQ(t, rcv.srv.URL, rydes.EventComplete)

	rydestest.WaitFor(t, "the attempt to be recorded", func() bool { return len(bb.store.notifications(rfq.ID)) == 1 })
	bb.waitIdle(t)
	require.Empty(t, rcv.requests(), "loopback is not dialled")
	ns := bb.store.notifications(rfq.ID)
	require.Contains(t, ns[0].Error, "not allowed")
	require.Zero(t, ns[0].Status)
}

func TestForgedFinalEventOfOpenRFQIsDropped(t *testing.T) {
	bb := setup(t)
	rcv := newReceiver(t, always(http.StatusOK))
	rfq := rydes.RFQ{ID: rydes.NewID(), Status: rydes.StatusOpen, NotifyURL: rcv.srv.URL, NotifySecret: newSecret(t)}
	bb.store.put(rfq)
	bb.run(t, bb.config(t))
	// A well-formed final event the store does not agree with.
	bb.publish(t, rydes.Event{RFQID: rfq.ID, Seq: 5, Type: rydes.EventComplete, Status: rydes.StatusComplete})
	// And junk on a final subject, without a message id.
	_, err := bb.bus.JetStream().Publish(rydestest.Context(t), bus.EventSubject(rfq.ID, rydes.EventCancelled, 6), []byte(`{"rfq_id":"`+rfq.ID+`","seq":6,"type":"cancelled"}`))
	require.NoError(t, err)

	bb.waitIdle(t)
	require.Empty(t, rcv.requests())
	require.Empty(t, bb.store.notifications(rfq.ID))
}

func TestConfigDefaultsAndChecks(t *testing.T) {
	_, err := New(Config{})
	require.Error(t, err)
	js := jetstream.JetStream(nil)
	cfg, err := Config{JS: struct{ jetstream.JetStream }{js}, Store: newFakeStore()}.withDefaults()
	require.NoError(t, err)
	require.Equal(t, DefaultBackoff, cfg.Backoff)
	require.Equal(t, 20, cfg.MaxAttempts)
	require.Equal(t, 10*time.Second, cfg.AttemptTimeout)
	require.Greater(t, cfg.AckWait, cfg.AttemptTimeout)

	n := &Notifier{cfg: cfg}
	var got []time.Duration
	for d := 1; d <= 10; d++ {
		got = append(got, n.backoff(d))
	}
	require.Equal(t, append(append([]time.Duration(nil), DefaultBackoff...), 10*time.Minute, 10*time.Minute), got)

	for _, bad := range []Config{
		{Backoff: []time.Duration{}},
		{Backoff: []time.Duration{0}},
		{MaxAttempts: -1},
		{AttemptTimeout: time.Minute, AckWait: time.Second},
	} {
		bad.JS, bad.Store = cfg.JS, cfg.Store
		_, err := bad.withDefaults()
		require.Error(t, err, fmt.Sprintf("%+v", bad))
	}
}
