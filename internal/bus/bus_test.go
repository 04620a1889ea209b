package bus

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
	"github.com/wildrydes/rydes/internal/wire"
)

// bundle is what most tests need: a server, a connection and a bus.
type bundle struct {
	emb *Embedded
	nc  *nats.Conn
	bus *Bus
	js  jetstream.JetStream
}

func setup(t testing.TB, sync bool) *bundle {
	t.Helper()
	return setupWith(t, EmbeddedConfig{SyncAlways: sync}, Config{})
}

// setupWith is setup with the given server and bus configuration; both
// log to the test (benchmarks: nowhere).
func setupWith(t testing.TB, ecfg EmbeddedConfig, cfg Config) *bundle {
	t.Helper()
	emb, nc := startEmbedded(t, ecfg)
	logger := testLogger(t)
	cfg.Logger = logger
	b, err := New(rydestest.Context(t), nc, cfg)
	require.NoError(t, err)
	t.Cleanup(b.Close)
	return &bundle{emb: emb, nc: nc, bus: b, js: b.JetStream()}
}

// startEmbedded starts an embedded server with cfg in a directory of the
// test and connects to it; both end with the test.
func startEmbedded(t testing.TB, cfg EmbeddedConfig) (*Embedded, *nats.Conn) {
	t.Helper()
	cfg.StoreDir = cmp.Or(cfg.StoreDir, t.TempDir())
	cfg.Logger = testLogger(t)
	emb, err := StartEmbedded(rydestest.Context(t), cfg)
	require.NoError(t, err)
	t.Cleanup(emb.Shutdown)
	nc, err := emb.Connect()
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return emb, nc
}

// testLogger logs to the test; benchmarks would print every line, so
// theirs discards.
func testLogger(t testing.TB) *slog.Logger {
	if _, bench := t.(*testing.B); bench {
		return nil
	}
	return rydestest.Logger(t)
}

// serveAnswers runs b.ServeAnswers with h in the background until the
// test ends, and returns a function that stops it and returns its error.
func serveAnswers(t testing.TB, b *Bus, h AnswerHandler, opts ServeOptions) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(rydestest.Context(t))
	done := make(chan error, 1)
	ready := make(chan struct{})
	opts.Ready = func() { close(ready) }
	go func() { done <- b.ServeAnswers(ctx, h, opts) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("ServeAnswers did not start: %v", err)
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(rydestest.WaitTimeout):
				t.Errorf("ServeAnswers did not return after its context was cancelled")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitQueueDepth waits until provider's queue has pending requests waiting
// and ackPending delivered but not acked.
func (bb *bundle) waitQueueDepth(t testing.TB, provider string, pending, ackPending int) {
	t.Helper()
	rydestest.WaitFor(t, "the depth of "+provider+"'s queue", func() bool {
		p, a, err := bb.bus.QueueDepth(rydestest.Context(t), provider)
		require.NoError(t, err)
		return p == pending && a == ackPending
	})
}

func (bb *bundle) streamMsgs(t testing.TB, name string) uint64 {
	t.Helper()
	s, err := bb.js.Stream(rydestest.Context(t), name)
	require.NoError(t, err)
	return s.CachedInfo().State.Msgs
}

const rfq1 = "8b095f9e-cffc-4790-91a6-28353fa30e42"

func dispatchMsg(id int64, rfqID, provider string) store.OutboxMessage {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return store.OutboxMessage{
		ID: id, Kind: store.OutboxDispatch, CreatedAt: now,
		Dispatch: &store.Dispatch{Providers: []string{provider}, Request: rydes.ProviderRequest{
			RFQID: rfqID, From: "Castle", To: "Rainbow", Passengers: 2, CreatedAt: now, Deadline: now.Add(30 * time.Second),
		}},
	}
}

func eventMsg(id int64, rfqID string, seq int64, typ rydes.EventType) store.OutboxMessage {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return store.OutboxMessage{
		ID: id, Kind: store.OutboxEvent, CreatedAt: now,
		Events: []rydes.Event{{RFQID: rfqID, Seq: seq, Type: typ, At: now, Customer: "alice", Status: rydes.StatusOpen}},
	}
}

func quoteBody(t testing.TB, rfqID, amount string) []byte {
	t.Helper()
	body, err := wire.EncodeAnswer(rydes.Answer{RFQID: rfqID, Kind: rydes.AnswerQuote, Price: rydes.Price{Amount: amount, Currency: "EUR"}})
	require.NoError(t, err)
	return body
}

func publishAnswer(t testing.TB, js jetstream.JetStream, provider string, body []byte) {
	t.Helper()
	_, err := js.Publish(rydestest.Context(t), AnswerSubject(provider), body)
	require.NoError(t, err)
}

func TestStreamsConfig(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)

	want := map[string]struct {
		subjects          []string
		retention         jetstream.RetentionPolicy
		discard           jetstream.DiscardPolicy
		maxBytes, maxMsgs int64
	}{
		// The work queues refuse what does not fit rather than drop what
		// nobody took yet; events are a window, the oldest go first.
		DispatchStream: {[]string{"rydes.dispatch.*.*", "rydes.dispatch.*"}, jetstream.WorkQueuePolicy, jetstream.DiscardNew, DefaultDispatchMaxBytes, DefaultDispatchMaxMsgs},
		EventsStream:   {[]string{"rydes.events.>"}, jetstream.LimitsPolicy, jetstream.DiscardOld, DefaultEventsMaxBytes, DefaultEventsMaxMsgs},
	}
	for name, w := range want {
		s, err := bb.js.Stream(ctx, name)
		require.NoError(t, err, name)
		cfg := s.CachedInfo().Config
		require.Equal(t, w.subjects, cfg.Subjects, name)
		require.Equal(t, w.retention, cfg.Retention, name)
		require.Equal(t, jetstream.FileStorage, cfg.Storage, name)
		require.Equal(t, 2*time.Minute, cfg.Duplicates, name)
		require.Equal(t, 24*time.Hour, cfg.MaxAge, name)
		require.Equal(t, 1, cfg.Replicas, name)
		require.Equal(t, w.discard, cfg.Discard, name)
		require.Equal(t, w.maxBytes, cfg.MaxBytes, name)
		require.Equal(t, w.maxMsgs, cfg.MaxMsgs, name)
	}

	// Answers are requests to rydes, not stored by the broker.
	_, err := bb.js.Stream(ctx, AnswersStream)
	require.ErrorIs(t, err, jetstream.ErrStreamNotFound)

	// Creating the bus again updates the streams in place.
	b2, err := New(ctx, bb.nc, Config{})
	require.NoError(t, err)
	b2.Close()

	require.Equal(t, "rydes.dispatch.p1."+rfq1, DispatchSubject("p1", rfq1))
	require.Equal(t, []string{"rydes.dispatch.p1.*", "rydes.dispatch.p1"}, DispatchFilters("p1"))
	require.Equal(t, "rydes.answers.p1", AnswerSubject("p1"))
	require.Equal(t, "rydes.events."+rfq1+".quote.2", EventSubject(rfq1, rydes.EventQuote, 2))
	require.Equal(t, "provider-p1", ProviderQueue("p1"))
}

// setupLimited is setup with the given stream limits.
func setupLimited(t *testing.T, cfg Config) *bundle {
	t.Helper()
	return setupWith(t, EmbeddedConfig{}, cfg)
}

// A full dispatch stream refuses a new request loudly, and keeps every
// request it holds: nothing waiting for a provider is dropped.
func TestFullDispatchStreamRefusesNewRequests(t *testing.T) {
	bb := setupLimited(t, Config{Dispatch: StreamLimits{MaxMsgs: 2}})
	ctx := rydestest.Context(t)
	_, err := bb.bus.Publish(ctx, []store.OutboxMessage{dispatchMsg(1, rfq1, "p1"), dispatchMsg(2, rfq1, "p2")})
	require.NoError(t, err)
	_, err = bb.bus.Publish(ctx, []store.OutboxMessage{dispatchMsg(3, rfq1, "p3")})
	var perr *PublishError
	require.ErrorAs(t, err, &perr, "the outbox keeps the row and retries")
	require.Len(t, perr.Failed, 1)
	require.Equal(t, int64(3), perr.Failed[0].ID)
	require.EqualValues(t, 2, bb.streamMsgs(t, DispatchStream), "the requests already waiting are kept")
	s, err := bb.js.Stream(ctx, DispatchStream)
	require.NoError(t, err)
	m, err := s.GetMsg(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, DispatchSubject("p1", rfq1), m.Subject, "the oldest request is still there")

	// Once a provider took one, there is room again.
	require.NoError(t, bb.bus.EnsureProviderQueue(ctx, "p1"))
	c, err := bb.js.Consumer(ctx, DispatchStream, ProviderQueue("p1"))
	require.NoError(t, err)
	msg, err := c.Next(jetstream.FetchMaxWait(rydestest.WaitTimeout))
	require.NoError(t, err)
	require.NoError(t, msg.DoubleAck(ctx))
	_, err = bb.bus.Publish(ctx, []store.OutboxMessage{dispatchMsg(3, rfq1, "p3")})
	require.NoError(t, err)
	require.EqualValues(t, 2, bb.streamMsgs(t, DispatchStream))
}

// A full answers stream refuses a provider's answer: the provider gets an
// error (and keeps its request unacknowledged), nothing is dropped.
func TestFullEventsStreamDropsTheOldest(t *testing.T) {
	bb := setupLimited(t, Config{Events: StreamLimits{MaxMsgs: 2}})
	ctx := rydestest.Context(t)
	_, err := bb.bus.Publish(ctx, []store.OutboxMessage{
		eventMsg(1, rfq1, 1, rydes.EventCreated), eventMsg(2, rfq1, 2, rydes.EventQuote), eventMsg(3, rfq1, 3, rydes.EventComplete),
	})
	require.NoError(t, err, "publishing events never fails for room")
	require.EqualValues(t, 2, bb.streamMsgs(t, EventsStream))
	s, err := bb.js.Stream(ctx, EventsStream)
	require.NoError(t, err)
	require.EqualValues(t, 2, s.CachedInfo().State.FirstSeq, "the oldest went")
}

func TestNegativeStreamLimitsAreRefused(t *testing.T) {
	bb := setup(t, false)
	_, err := New(rydestest.Context(t), bb.nc, Config{Events: StreamLimits{MaxBytes: -1}})
	require.ErrorContains(t, err, "negative")
}

func TestPublishDeduplicates(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	d := dispatchMsg(1, rfq1, "p1")
	e := eventMsg(2, rfq1, 1, rydes.EventCreated)

	_, err := bb.bus.Publish(ctx, []store.OutboxMessage{d, e})
	require.NoError(t, err)
	// Re-published after a crash between publish and delete, and twice in
	// one batch: stored once all the same.
	_, err = bb.bus.Publish(ctx, []store.OutboxMessage{d, e, d, e})
	require.NoError(t, err)
	_, err = bb.bus.Publish(ctx, nil)
	require.NoError(t, err)

	require.EqualValues(t, 1, bb.streamMsgs(t, DispatchStream))
	require.EqualValues(t, 1, bb.streamMsgs(t, EventsStream))

	s, err := bb.js.Stream(ctx, EventsStream)
	require.NoError(t, err)
	raw, err := s.GetLastMsgForSubject(ctx, EventSubject(rfq1, rydes.EventCreated, 1))
	require.NoError(t, err)
	require.Equal(t, "event."+rfq1+".1", raw.Header.Get(jetstream.MsgIDHeader))
	require.Equal(t, rfq1, raw.Header.Get(HeaderRFQID))
	got, err := store.DecodeEvents(raw.Data)
	require.NoError(t, err)
	require.Equal(t, e.Events, got)
}

// Publish returns the highest sequence each stream acknowledged it with,
// duplicates' acks (the sequence the message was stored at) included, and
// notes the same for TakeAckedSeq.
func TestPublishReturnsAckedSequences(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	d1, d2 := dispatchMsg(1, rfq1, "p1"), dispatchMsg(2, rfq1, "p2")
	e1, e2 := eventMsg(3, rfq1, 1, rydes.EventCreated), eventMsg(4, rfq1, 2, rydes.EventQuote)

	acked, err := bb.bus.Publish(ctx, []store.OutboxMessage{d1, e1, d2})
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{DispatchStream: 2, EventsStream: 1}, acked)

	acked, err = bb.bus.Publish(ctx, []store.OutboxMessage{e2})
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{EventsStream: 2}, acked, "only the streams of this call")

	acked, err = bb.bus.Publish(ctx, []store.OutboxMessage{d1})
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{DispatchStream: 1}, acked, "a duplicate's ack names where it was stored")

	acked, err = bb.bus.Publish(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, acked)

	require.Equal(t, uint64(2), bb.bus.TakeAckedSeq(DispatchStream))
	require.Equal(t, uint64(2), bb.bus.TakeAckedSeq(EventsStream))
}

func TestPublishReportsFailures(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	good := dispatchMsg(1, rfq1, "p1")
	bad := dispatchMsg(2, rfq1, "not.a.provider")
	empty := store.OutboxMessage{ID: 3, Kind: store.OutboxEvent}

	acked, err := bb.bus.Publish(ctx, []store.OutboxMessage{good, bad, empty})
	var perr *PublishError
	require.ErrorAs(t, err, &perr)
	require.Equal(t, 3, perr.Total)
	require.Len(t, perr.Failed, 2)
	require.Equal(t, int64(2), perr.Failed[0].ID)
	require.Equal(t, int64(3), perr.Failed[1].ID)
	require.Nil(t, acked, "nothing to record when the outbox keeps the rows")
	// The good message was stored all the same.
	require.EqualValues(t, 1, bb.streamMsgs(t, DispatchStream))

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = bb.bus.Publish(cctx, []store.OutboxMessage{dispatchMsg(4, rfq1, "p2")})
	require.ErrorIs(t, err, context.Canceled)
}

// A new RFQ's dispatches are one outbox message, published as a message
// per provider on a subject of its own, with no message id: published
// again, none is stored twice.
func TestPublishSendsADispatchToEachProvider(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	d := dispatchMsg(1, rfq1, "p1")
	d.Dispatch.Providers = []string{"p1", "p2", "p3"}

	_, err := bb.bus.Publish(ctx, []store.OutboxMessage{d})
	require.NoError(t, err)
	_, err = bb.bus.Publish(ctx, []store.OutboxMessage{d})
	require.NoError(t, err)
	require.EqualValues(t, 3, bb.streamMsgs(t, DispatchStream))
	s, err := bb.js.Stream(ctx, DispatchStream)
	require.NoError(t, err)
	for _, p := range []string{"p1", "p2", "p3"} {
		raw, err := s.GetLastMsgForSubject(ctx, DispatchSubject(p, rfq1))
		require.NoError(t, err, p)
		require.Empty(t, raw.Header.Get(jetstream.MsgIDHeader), "the broker keeps no id of %s's request", p)
		require.Equal(t, rfq1, raw.Header.Get(HeaderRFQID), p)
		var req rydes.ProviderRequest
		require.NoError(t, json.Unmarshal(raw.Data, &req))
		require.Equal(t, d.Dispatch.Request, req, p)
	}

	// One provider that makes no subject fails the whole message, before
	// anything of it is published.
	bad := dispatchMsg(2, rfq2, "p1")
	bad.Dispatch.Providers = []string{"p1", "not.a.provider"}
	_, err = bb.bus.Publish(ctx, []store.OutboxMessage{bad})
	var perr *PublishError
	require.ErrorAs(t, err, &perr)
	require.Equal(t, int64(2), perr.Failed[0].ID)
	require.EqualValues(t, 3, bb.streamMsgs(t, DispatchStream))
}

func TestDispatchLandsOnItsProvidersQueueOnly(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	require.NoError(t, bb.bus.EnsureProviderQueue(ctx, "p1"))
	require.NoError(t, bb.bus.EnsureProviderQueue(ctx, "p2"))
	require.NoError(t, bb.bus.EnsureProviderQueue(ctx, "p1"), "ensuring twice is fine")

	d := dispatchMsg(1, rfq1, "p1")
	_, err := bb.bus.Publish(ctx, []store.OutboxMessage{d})
	require.NoError(t, err)

	// The consumer counts a stored message a moment after the PubAck.
	bb.waitQueueDepth(t, "p1", 1, 0)
	pending, ackPending, err := bb.bus.QueueDepth(ctx, "p2")
	require.NoError(t, err)
	require.Equal(t, [2]int{0, 0}, [2]int{pending, ackPending})
	_, _, err = bb.bus.QueueDepth(ctx, "p3")
	require.Equal(t, rydes.ENOTFOUND, rydes.ErrorCodeOf(err))

	cons, err := bb.js.Consumer(ctx, DispatchStream, ProviderQueue("p1"))
	require.NoError(t, err)
	info := cons.CachedInfo().Config
	require.Equal(t, DispatchFilters("p1"), info.FilterSubjects)
	require.Empty(t, info.FilterSubject)
	require.Equal(t, jetstream.AckExplicitPolicy, info.AckPolicy)
	require.Equal(t, DefaultAckWait, info.AckWait)
	require.Equal(t, 1000, info.MaxAckPending)
	require.Equal(t, -1, info.MaxDeliver)

	m, err := cons.Next(jetstream.FetchContext(ctx))
	require.NoError(t, err)
	require.Equal(t, DispatchSubject("p1", rfq1), m.Subject())
	require.Equal(t, rfq1, m.Headers().Get(HeaderRFQID))
	var req rydes.ProviderRequest
	require.NoError(t, json.Unmarshal(m.Data(), &req))
	require.Equal(t, d.Dispatch.Request, req)

	bb.waitQueueDepth(t, "p1", 0, 1)
	require.NoError(t, m.DoubleAck(ctx))
	require.EqualValues(t, 0, bb.streamMsgs(t, DispatchStream), "an acked request leaves the work queue")
}

func TestDeleteProviderQueue(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	require.NoError(t, bb.bus.EnsureProviderQueue(ctx, "p1"))
	require.NoError(t, bb.bus.EnsureProviderQueue(ctx, "p2"))
	_, err := bb.bus.Publish(ctx, []store.OutboxMessage{dispatchMsg(1, rfq1, "p1"), dispatchMsg(2, rfq1, "p2")})
	require.NoError(t, err)

	require.NoError(t, bb.bus.DeleteProviderQueue(ctx, "p1"))
	require.NoError(t, bb.bus.DeleteProviderQueue(ctx, "p1"), "deleting twice is fine")
	_, _, err = bb.bus.QueueDepth(ctx, "p1")
	require.Equal(t, rydes.ENOTFOUND, rydes.ErrorCodeOf(err))
	require.EqualValues(t, 1, bb.streamMsgs(t, DispatchStream), "p2's request stays")

	require.NoError(t, bb.bus.EnsureProviderQueue(ctx, "p1"))
	pending, _, err := bb.bus.QueueDepth(ctx, "p1")
	require.NoError(t, err)
	require.Zero(t, pending, "a re-added provider does not get withdrawn requests")

	require.Error(t, bb.bus.EnsureProviderQueue(ctx, "a.b"))
	require.Error(t, bb.bus.DeleteProviderQueue(ctx, "*"))
}

func TestEmbeddedListens(t *testing.T) {
	ctx := rydestest.Context(t)
	emb, err := StartEmbedded(ctx, EmbeddedConfig{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Logger: rydestest.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(emb.Shutdown)
	url := emb.ClientURL()
	require.True(t, strings.HasPrefix(url, "nats://127.0.0.1:"), url)
	require.NotEqual(t, "nats://127.0.0.1:4222", url)

	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	b, err := New(ctx, nc, Config{})
	require.NoError(t, err)
	t.Cleanup(b.Close)
	_, err = b.Publish(ctx, []store.OutboxMessage{eventMsg(1, rfq1, 1, rydes.EventCreated)})
	require.NoError(t, err)

	inproc, err := StartEmbedded(ctx, EmbeddedConfig{StoreDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(inproc.Shutdown)
	require.Empty(t, inproc.ClientURL())

	_, err = StartEmbedded(ctx, EmbeddedConfig{})
	require.Error(t, err)
	_, err = StartEmbedded(ctx, EmbeddedConfig{StoreDir: t.TempDir(), Listen: "nope"})
	require.Error(t, err)
}

func TestEmbeddedDataSurvivesRestart(t *testing.T) {
	for _, syncAlways := range []bool{false, true} {
		t.Run(fmt.Sprintf("sync=%v", syncAlways), func(t *testing.T) {
			ctx := rydestest.Context(t)
			dir := t.TempDir()
			d := dispatchMsg(1, rfq1, "p1")

			emb, err := StartEmbedded(ctx, EmbeddedConfig{StoreDir: dir, SyncAlways: syncAlways, Logger: rydestest.Logger(t)})
			require.NoError(t, err)
			nc, err := emb.Connect()
			require.NoError(t, err)
			b, err := New(ctx, nc, Config{})
			require.NoError(t, err)
			require.NoError(t, b.EnsureProviderQueue(ctx, "p1"))
			_, err = b.Publish(ctx, []store.OutboxMessage{d})
			require.NoError(t, err)
			b.Close()
			nc.Close()
			emb.Shutdown()

			emb, err = StartEmbedded(ctx, EmbeddedConfig{StoreDir: dir, SyncAlways: syncAlways, Logger: rydestest.Logger(t)})
			require.NoError(t, err)
			t.Cleanup(emb.Shutdown)
			nc, err = emb.Connect()
			require.NoError(t, err)
			t.Cleanup(nc.Close)
			b, err = New(ctx, nc, Config{})
			require.NoError(t, err)
			t.Cleanup(b.Close)

			pending, _, err := b.QueueDepth(ctx, "p1")
			require.NoError(t, err)
			require.Equal(t, 1, pending)
			cons, err := b.JetStream().Consumer(ctx, DispatchStream, ProviderQueue("p1"))
			require.NoError(t, err)
			m, err := cons.Next(jetstream.FetchContext(ctx))
			require.NoError(t, err)
			var req rydes.ProviderRequest
			require.NoError(t, json.Unmarshal(m.Data(), &req))
			require.Equal(t, d.Dispatch.Request, req)
			require.NoError(t, m.DoubleAck(ctx))
		})
	}
}

func BenchmarkPublish(b *testing.B) {
	for _, syncAlways := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%v", syncAlways), func(b *testing.B) {
			bb := setup(b, syncAlways)
			ctx := rydestest.Context(b)
			const batch = 100 // a store's default outbox page
			msgs := make([]store.OutboxMessage, 0, batch)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				msgs = msgs[:0]
				for j := i; j < min(i+batch, b.N); j++ {
					msgs = append(msgs, dispatchMsg(int64(j), rydes.NewID(), "p1"))
				}
				if _, err := bb.bus.Publish(ctx, msgs); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// Streams made before they had bounds (an older rydes) get them in place.
func TestUnboundedStreamsOfBeforeAreBounded(t *testing.T) {
	ctx := rydestest.Context(t)
	_, nc := startEmbedded(t, EmbeddedConfig{})
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	for _, sc := range StreamConfigs(Config{}) {
		sc.MaxBytes, sc.MaxMsgs, sc.Discard = 0, 0, jetstream.DiscardOld
		_, err := js.CreateStream(ctx, sc)
		require.NoError(t, err, sc.Name)
	}
	_, err = js.Publish(ctx, DispatchSubject("p1", rfq1), []byte(`{}`))
	require.NoError(t, err)
	b, err := New(ctx, nc, Config{Logger: rydestest.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(b.Close)
	s, err := js.Stream(ctx, DispatchStream)
	require.NoError(t, err)
	info := s.CachedInfo()
	require.Equal(t, jetstream.DiscardNew, info.Config.Discard)
	require.EqualValues(t, DefaultDispatchMaxBytes, info.Config.MaxBytes)
	require.EqualValues(t, 1, info.State.Msgs, "what the stream held stays")
}

// A message with its payload encoded already (as the store keeps it) is
// published with that payload as it is; without one, its content encoded.
func TestPublishSendsThePayloadAsStored(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	d, e := dispatchMsg(1, rfq1, "p1"), eventMsg(2, rfq1, 1, rydes.EventCreated)
	// Valid, and not what encoding the content gives: spaces, reordered.
	d.Payload = []byte(`{"to": "Rainbow", "rfq_id": "` + rfq1 + `"}`)
	e.Payload = []byte(` {"seq": 1, "rfq_id": "` + rfq1 + `", "type": "created"}`)
	_, err := bb.bus.Publish(ctx, []store.OutboxMessage{d, e})
	require.NoError(t, err)

	s, err := bb.js.Stream(ctx, DispatchStream)
	require.NoError(t, err)
	raw, err := s.GetLastMsgForSubject(ctx, DispatchSubject("p1", rfq1))
	require.NoError(t, err)
	require.Equal(t, string(d.Payload), string(raw.Data))
	s, err = bb.js.Stream(ctx, EventsStream)
	require.NoError(t, err)
	raw, err = s.GetLastMsgForSubject(ctx, EventSubject(rfq1, rydes.EventCreated, 1))
	require.NoError(t, err)
	require.Equal(t, string(e.Payload), string(raw.Data))
}

func TestCheckServerVersion(t *testing.T) {
	for v, ok := range map[string]bool{
		"2.10.0": true, "2.10.25": true, "2.11.0-RC.1": true, "2.15.2": true, "3.0.0": true, "v2.12.1": true,
		"2.9.10": false, "2.9.25": false, "1.4.1": false, "2.2.0": false,
		"": false, "2.10": false, "two.ten.zero": false, "2.-1.0": false,
	} {
		err := checkServerVersion(v)
		if ok {
			require.NoError(t, err, v)
		} else {
			require.Error(t, err, v)
		}
	}
	require.ErrorContains(t, checkServerVersion("2.9.10"), "rydes needs 2.10.0 or later")
}

// The broker every machine of this project runs on 127.0.0.1:4222 is
// Debian's nats-server 2.9, which rydes cannot run on: New says so at once,
// before it creates or changes anything there.
func TestNewRefusesABrokerTooOld(t *testing.T) {
	url := cmp.Or(os.Getenv("RYDES_TEST_OLD_NATS_URL"), "nats://127.0.0.1:4222")
	nc, err := nats.Connect(url)
	if err == nil && checkServerVersion(nc.ConnectedServerVersion()) == nil {
		err = fmt.Errorf("the broker at %s runs nats-server %s, not older than %s", url, nc.ConnectedServerVersion(), MinServerVersion)
		nc.Close()
	}
	rydestest.RequireDependency(t, "a nats-server older than "+MinServerVersion+" at "+url+" (RYDES_TEST_OLD_NATS_URL)", err)
	t.Cleanup(nc.Close)
	ctx := rydestest.Context(t)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	before := streamNames(ctx, t, js)

	_, err = New(ctx, nc, Config{})
	require.ErrorContains(t, err, "rydes needs "+MinServerVersion+" or later")
	require.Equal(t, before, streamNames(ctx, t, js), "nothing created there")
}

func streamNames(ctx context.Context, t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	names := []string{}
	l := js.StreamNames(ctx)
	for n := range l.Name() {
		names = append(names, n)
	}
	require.NoError(t, l.Err())
	return names
}

// Limits out of range are refused before anything is created.
func TestNewRefusesLimitsOutOfRange(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	for name, cfg := range map[string]Config{
		"negative messages":            {Dispatch: StreamLimits{MaxMsgs: -1}},
		"negative bytes":               {Events: StreamLimits{MaxBytes: -1}},
		"negative age":                 {Events: StreamLimits{MaxAge: -time.Hour}},
		"shorter than the ids' window": {Events: StreamLimits{MaxAge: time.Minute}},
		"ack wait under a second":      {AckWait: time.Millisecond},
		"negative replicas":            {Replicas: -1},
	} {
		_, err := New(ctx, bb.nc, cfg)
		require.Error(t, err, name)
	}
	cfg, err := Config{Events: StreamLimits{MaxAge: 3 * time.Hour}}.withDefaults()
	require.NoError(t, err)
	require.Equal(t, StreamLimits{MaxBytes: DefaultEventsMaxBytes, MaxMsgs: DefaultEventsMaxMsgs, MaxAge: 3 * time.Hour}, cfg.Events)
	require.Equal(t, MaxAge, cfg.Dispatch.MaxAge)
}
