package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
)

// rfqEvents returns outbox messages for events from..to of rfqID: created
// first, quotes in between, complete last if to is final.
func rfqEvents(rfqID string, from, to int64, final bool) []store.OutboxMessage {
	var msgs []store.OutboxMessage
	for seq := from; seq <= to; seq++ {
		typ := rydes.EventQuote
		switch {
		case seq == 1:
			typ = rydes.EventCreated
		case seq == to && final:
			typ = rydes.EventComplete
		}
		msgs = append(msgs, eventMsg(seq, rfqID, seq, typ))
	}
	return msgs
}

// testWatch is a Watch with the events Next returned that the test has
// not looked at yet.
type testWatch struct {
	*Watch
	ctx  context.Context
	left []rydes.Event
}

// watch opens a watch of rfqID after afterSeq on b, closed when the test
// ends.
func watch(t *testing.T, ctx context.Context, b *Bus, rfqID string, afterSeq int64) *testWatch {
	t.Helper()
	w, err := b.WatchRFQ(ctx, rfqID, afterSeq)
	require.NoError(t, err)
	t.Cleanup(w.Close)
	return &testWatch{Watch: w, ctx: ctx}
}

// next waits for Ready, then calls Next; it fails the test if Ready does
// not fire within rydestest.WaitTimeout (a bound against hangs).
func (w *testWatch) next(t *testing.T) ([]rydes.Event, error) {
	t.Helper()
	select {
	case <-w.Ready():
	case <-time.After(rydestest.WaitTimeout):
		t.Fatal("timed out waiting for the watch to be ready")
	}
	return w.Next(w.ctx)
}

// recv returns the watch's next event, failing the test if the watch ends
// or nothing comes within rydestest.WaitTimeout.
func recv(t *testing.T, w *testWatch) rydes.Event {
	t.Helper()
	for len(w.left) == 0 {
		events, err := w.next(t)
		require.NoError(t, err, "the watch ended early")
		w.left = events
	}
	ev := w.left[0]
	w.left = w.left[1:]
	return ev
}

// requireClosed fails the test unless the watch ends (Next returns io.EOF)
// with nothing more.
func requireClosed(t *testing.T, w *testWatch) {
	t.Helper()
	require.Empty(t, w.left, "events left before the end")
	for {
		events, err := w.next(t)
		require.Empty(t, events, "unexpected events after the end")
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
	}
	// Over for good, and no longer registered with the hub.
	events, err := w.Next(w.ctx)
	require.Empty(t, events)
	require.ErrorIs(t, err, io.EOF)
	require.False(t, w.b.hub.has(w.hw), "an ended watch is still registered")
}

// recvSeqs receives n events and returns their seqs.
func recvSeqs(t *testing.T, w *testWatch, n int) []int64 {
	t.Helper()
	seqs := make([]int64, n)
	for i := range seqs {
		seqs[i] = recv(t, w).Seq
	}
	return seqs
}

// has reports whether w is registered.
func (h *eventHub) has(w *hubWatcher) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	_, ok := h.watchers[w.rfqID][w]
	return ok
}

// registered returns how many watches are registered.
func (h *eventHub) registered() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := 0
	for _, ws := range h.watchers {
		n += len(ws)
	}
	return n
}

// waitNoConsumers waits until EventsStream has no consumer left.
func (bb *bundle) waitNoConsumers(t *testing.T) {
	t.Helper()
	rydestest.WaitFor(t, "the watchers' consumers to be deleted", func() bool {
		s, err := bb.js.Stream(rydestest.Context(t), EventsStream)
		require.NoError(t, err)
		return s.CachedInfo().State.Consumers == 0
	})
}

func TestWatchRFQInOrderUntilFinal(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	_, err := bb.bus.Publish(ctx, rfqEvents(rfq1, 1, 3, false))
	require.NoError(t, err)
	_, err = bb.bus.Publish(ctx, rfqEvents(rfq2, 1, 2, false))
	require.NoError(t, err)

	ch := watch(t, ctx, bb.bus, rfq1, 0)
	require.Equal(t, []int64{1, 2, 3}, recvSeqs(t, ch, 3), "the events stored before the watch")

	// Live events, with another RFQ's in between; seq 5 is stored before 4
	// (an outbox retry), and is still sent after it.
	more := rfqEvents(rfq1, 4, 6, true)
	_, err = bb.bus.Publish(ctx, []store.OutboxMessage{more[1], eventMsg(3, rfq2, 3, rydes.EventComplete)})
	require.NoError(t, err)
	_, err = bb.bus.Publish(ctx, []store.OutboxMessage{more[0], more[2]})
	require.NoError(t, err)
	ev4 := recv(t, ch)
	require.Equal(t, more[0].Events[0], ev4)
	require.Equal(t, []int64{5, 6}, recvSeqs(t, ch, 2))
	requireClosed(t, ch)
	bb.waitNoConsumers(t)
	require.Zero(t, bb.bus.hub.registered(), "the final event unregisters the watch")
}

func TestWatchRFQResumesAfterSeq(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	_, err := bb.bus.Publish(ctx, rfqEvents(rfq1, 1, 4, false))
	require.NoError(t, err)

	ch := watch(t, ctx, bb.bus, rfq1, 2)
	require.Equal(t, []int64{3, 4}, recvSeqs(t, ch, 2))
	_, err = bb.bus.Publish(ctx, rfqEvents(rfq1, 5, 6, true))
	require.NoError(t, err)
	require.Equal(t, []int64{5, 6}, recvSeqs(t, ch, 2))
	requireClosed(t, ch)

	// Resuming after the final event's predecessor yields only the final
	// event, then the end.
	ch = watch(t, ctx, bb.bus, rfq1, 5)
	require.Equal(t, rydes.EventComplete, recv(t, ch).Type)
	requireClosed(t, ch)
}

func TestWatchRFQFromAnotherInstance(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	nc2, err := bb.emb.Connect()
	require.NoError(t, err)
	t.Cleanup(nc2.Close)
	b2, err := New(ctx, nc2, Config{Logger: rydestest.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(b2.Close)

	ch := watch(t, ctx, b2, rfq1, 0)
	_, err = bb.bus.Publish(ctx, rfqEvents(rfq1, 1, 3, true))
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3}, recvSeqs(t, ch, 3))
	requireClosed(t, ch)
}

func TestWatchRFQSkipsJunk(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	_, err := bb.bus.Publish(ctx, rfqEvents(rfq1, 1, 1, false))
	require.NoError(t, err)

	forged := rydes.Event{RFQID: rfq1, Seq: 2, Type: rydes.EventComplete, Provider: "mallory", Status: rydes.StatusComplete}
	body, err := json.Marshal(forged)
	require.NoError(t, err)
	subject := EventSubject(rfq1, rydes.EventComplete, 2)
	junk := []*nats.Msg{
		{Subject: subject, Data: body}, // no message id
		{Subject: subject, Data: body, Header: nats.Header{jetstream.MsgIDHeader: {"event." + rfq1 + ".7"}}},              // id of another seq
		{Subject: EventSubject(rfq1, rydes.EventQuote, 2), Data: body, Header: nats.Header{jetstream.MsgIDHeader: {"x"}}}, // body for another subject
		{Subject: subject, Data: []byte("not json"), Header: nats.Header{jetstream.MsgIDHeader: {"junk"}}},
	}
	for _, m := range junk {
		_, err := bb.js.PublishMsg(ctx, m)
		require.NoError(t, err)
	}
	// A server response reflected onto an event subject, as any client can
	// have it done through a reply subject.
	require.NoError(t, bb.nc.PublishMsg(&nats.Msg{Subject: "$JS.API.STREAM.INFO." + EventsStream, Reply: subject}))
	rydestest.WaitFor(t, "the junk to be stored", func() bool { return bb.streamMsgs(t, EventsStream) == 1+uint64(len(junk))+1 })

	ch := watch(t, ctx, bb.bus, rfq1, 0)
	require.Equal(t, int64(1), recv(t, ch).Seq)
	// The junk did not end the watch: the real seq 2 comes, then the end.
	real := rfqEvents(rfq1, 2, 3, true)
	_, err = bb.bus.Publish(ctx, real)
	require.NoError(t, err)
	require.Equal(t, real[0].Events[0], recv(t, ch))
	require.Equal(t, real[1].Events[0], recv(t, ch))
	requireClosed(t, ch)
}

// Closing a watch mid-way ends it at once and unregisters it, with
// events still unread.
func TestWatchRFQClose(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	_, err := bb.bus.Publish(ctx, rfqEvents(rfq1, 1, 2, false))
	require.NoError(t, err)

	ch := watch(t, ctx, bb.bus, rfq1, 0)
	events, err := ch.next(t)
	require.NoError(t, err)
	require.EqualValues(t, 1, events[0].Seq)
	require.Equal(t, 1, bb.bus.hub.registered())
	ch.Close()
	require.Zero(t, bb.bus.hub.registered())
	events, err = ch.Next(ctx)
	require.Empty(t, events)
	require.ErrorIs(t, err, io.EOF)
	ch.Close() // again: nothing more
	bb.waitNoConsumers(t)
}

func TestWatchRFQEndsWhenBusCloses(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	_, err := bb.bus.Publish(ctx, rfqEvents(rfq1, 1, 1, false))
	require.NoError(t, err)
	ch := watch(t, ctx, bb.bus, rfq1, 0)
	idle := watch(t, ctx, bb.bus, rfq1, 0)
	require.Equal(t, int64(1), recv(t, idle).Seq)
	bb.bus.Close()
	// Its stored event unread, one watch ends all the same; the other,
	// waiting on Ready with nothing pending, is woken.
	requireClosed(t, ch)
	requireClosed(t, idle)
	require.Zero(t, bb.bus.hub.registered(), "Close leaves no watch registered")
	_, err = bb.bus.WatchRFQ(ctx, rfq1, 0)
	require.ErrorContains(t, err, "closed")
}

func TestWatchRFQRefusesBadArguments(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	_, err := bb.bus.WatchRFQ(ctx, "a.>", 0)
	require.Error(t, err)
	_, err = bb.bus.WatchRFQ(ctx, rfq1, -1)
	require.Error(t, err)
}

// TestWatchRFQNoLeak starts many watches, ends them every way there is,
// and checks that no goroutine, consumer or registration is left.
func TestWatchRFQNoLeak(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	_, err := bb.bus.Publish(ctx, rfqEvents(rfq1, 1, 2, false))
	require.NoError(t, err)
	// The first watch subscribes the process's one subscription to stored
	// events, which lives as long as the bus: count from after it.
	other := rydes.NewID()
	_, err = bb.bus.Publish(ctx, rfqEvents(other, 1, 2, true))
	require.NoError(t, err)
	warm := watch(t, ctx, bb.bus, other, 0)
	require.Equal(t, []int64{1, 2}, recvSeqs(t, warm, 2))
	requireClosed(t, warm)
	bb.waitNoConsumers(t)
	before := runtime.NumGoroutine()

	const n = 20
	watches := make([]*testWatch, n)
	for i := range n {
		watches[i] = watch(t, ctx, bb.bus, rfq1, 0)
	}
	for i := range n / 2 {
		require.Equal(t, int64(1), recv(t, watches[i]).Seq)
		watches[i].Close() // abandoned mid-way, seq 2 unread
	}
	_, err = bb.bus.Publish(ctx, rfqEvents(rfq1, 3, 3, true))
	require.NoError(t, err)
	for i := n / 2; i < n; i++ {
		require.Equal(t, []int64{1, 2, 3}, recvSeqs(t, watches[i], 3))
		requireClosed(t, watches[i])
		watches[i].Close()
	}
	for i := range n / 2 {
		events, err := watches[i].Next(ctx)
		require.Empty(t, events)
		require.ErrorIs(t, err, io.EOF)
	}
	bb.waitNoConsumers(t)
	require.Zero(t, bb.bus.hub.registered(), "watches left registered")
	rydestest.WaitFor(t, "the goroutines of the watches' reads to end", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

// A watch runs on its caller's goroutine: a hundred open watches, with
// stored events read and live ones delivered, add no goroutine.
func TestWatchRFQStartsNoGoroutine(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	_, err := bb.bus.Publish(ctx, rfqEvents(rfq1, 1, 2, false))
	require.NoError(t, err)
	// The hub's subscription (and its goroutine) lives as long as the bus:
	// made before counting.
	warm := watch(t, ctx, bb.bus, rfq1, 0)
	require.Equal(t, []int64{1, 2}, recvSeqs(t, warm, 2))
	warm.Close()
	before := runtime.NumGoroutine()

	const n = 100
	watches := make([]*testWatch, n)
	for i := range watches {
		watches[i] = watch(t, ctx, bb.bus, rfq1, 0)
	}
	require.Equal(t, n, bb.bus.hub.registered())
	// Reading what is stored subscribes and unsubscribes a reply inbox,
	// whose goroutine ends soon after; the watches themselves hold none.
	// (With a goroutine per watch, this never comes true.)
	rydestest.WaitFor(t, "no more goroutines than before the watches", func() bool {
		return runtime.NumGoroutine() <= before
	})
	_, err = bb.bus.Publish(ctx, rfqEvents(rfq1, 3, 3, true))
	require.NoError(t, err)
	for _, w := range watches {
		require.Equal(t, []int64{1, 2, 3}, recvSeqs(t, w, 3))
		requireClosed(t, w)
	}
	require.Zero(t, bb.bus.hub.registered())
}

func TestSequencer(t *testing.T) {
	ev := func(seq int64) rydes.Event { return rydes.Event{RFQID: rfq1, Seq: seq, Type: rydes.EventQuote} }
	seqs := func(evs []rydes.Event) []int64 {
		var s []int64
		for _, e := range evs {
			s = append(s, e.Seq)
		}
		return s
	}
	s := newSequencer(2)
	for _, step := range []struct {
		in   int64
		want []int64
	}{
		{1, nil}, {2, nil}, // at or before the start
		{3, []int64{3}},
		{3, nil},           // a repeat
		{5, nil}, {5, nil}, // early, and its repeat
		{4, []int64{4, 5}}, // the gap filled
		{4, nil}, {6, []int64{6}},
	} {
		got, skipped := s.add(ev(step.in))
		require.Zero(t, skipped)
		require.Equal(t, step.want, seqs(got), "after adding %d", step.in)
	}

	// A gap that never fills is given up once too much is held back.
	s = newSequencer(0)
	for seq := int64(2); seq < 2+watchMaxReorder; seq++ {
		got, _ := s.add(ev(seq))
		require.Empty(t, got)
	}
	got, skipped := s.add(ev(2 + watchMaxReorder))
	require.EqualValues(t, 1, skipped)
	require.Len(t, got, watchMaxReorder+1)
	require.EqualValues(t, 2, got[0].Seq)

	// A final event after a gap (events the broker lost) ends the wait:
	// the watcher gets what is held and the end.
	s = newSequencer(0)
	got, _ = s.add(ev(1))
	require.Equal(t, []int64{1}, seqs(got))
	got, _ = s.add(ev(3))
	require.Empty(t, got)
	got, skipped = s.add(rydes.Event{RFQID: rfq1, Seq: 5, Type: rydes.EventComplete})
	require.EqualValues(t, 2, skipped, "2 and 4 never came")
	require.Equal(t, []int64{3, 5}, seqs(got))
}

// TestEmbeddedAllowsManyConsumers checks that the embedded server takes
// more consumers on one stream than nats-server's default limit of 1,000:
// each SSE watcher holds one on RYDES_EVENTS.
func TestEmbeddedAllowsManyConsumers(t *testing.T) {
	ctx := rydestest.Context(t)
	_, nc := startEmbedded(t, EmbeddedConfig{})
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "MANY", Subjects: []string{"many.>"}, Storage: jetstream.MemoryStorage})
	require.NoError(t, err)
	for i := range 1001 {
		_, err := js.CreateConsumer(ctx, "MANY", jetstream.ConsumerConfig{
			FilterSubject: fmt.Sprintf("many.%d", i), MemoryStorage: true, InactiveThreshold: time.Minute,
		})
		require.NoError(t, err, "consumer %d", i+1)
	}
}

// A watch that does not keep up loses nothing: the events the process's
// subscription could not hand it are read from the stream again, in order.
func TestWatchRFQFallsBehindAndCatchesUp(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	_, err := bb.bus.Publish(ctx, rfqEvents(rfq1, 1, 1, false))
	require.NoError(t, err)
	ch := watch(t, ctx, bb.bus, rfq1, 0)
	require.Equal(t, []int64{1}, recvSeqs(t, ch, 1))
	// Nobody reads while far more events than the watch's inbox holds
	// are stored.
	const last = 4*watchBuffer + 10
	_, err = bb.bus.Publish(ctx, rfqEvents(rfq1, 2, last, true))
	require.NoError(t, err)
	rydestest.WaitFor(t, "the watch to fall behind", ch.hw.behind.Load)
	want := make([]int64, 0, last-1)
	for seq := int64(2); seq <= last; seq++ {
		want = append(want, seq)
	}
	require.Equal(t, want, recvSeqs(t, ch, last-1))
	requireClosed(t, ch)
}

// consumerCreations counts the requests to create a consumer on the events
// stream that the broker received, through a subscription of the test's
// own connection to the JetStream API subject.
func (bb *bundle) consumerCreations(t *testing.T) func() int {
	t.Helper()
	sub, err := bb.nc.SubscribeSync("$JS.API.CONSUMER.CREATE." + EventsStream + ".>")
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(t, bb.nc.Flush())
	return func() int {
		// The watch got the server's answer before it returned, so the
		// server routed the request to sub before this flush's PONG.
		require.NoError(t, bb.nc.Flush())
		n, _, err := sub.Pending()
		require.NoError(t, err)
		return n
	}
}

// A watcher reads the stored events with one direct get through the
// broker's subject index, not with a consumer (which makes the broker walk
// the stream message by message).
func TestWatchRFQReadsStoredEventsWithoutAConsumer(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	_, err := bb.bus.Publish(ctx, rfqEvents(rfq2, 1, 2, false))
	require.NoError(t, err)
	_, err = bb.bus.Publish(ctx, rfqEvents(rfq1, 1, 3, false))
	require.NoError(t, err)
	created := bb.consumerCreations(t)

	ch := watch(t, ctx, bb.bus, rfq1, 1)
	require.Equal(t, []int64{2, 3}, recvSeqs(t, ch, 2))
	require.Zero(t, created(), "consumers created to read stored events")

	// An RFQ with no event stored yet: nothing is ready.
	ch3 := watch(t, ctx, bb.bus, "0b5e3c1a-2f4d-4e6b-8a9c-7d1e2f3a4b5c", 0)
	require.Zero(t, created())
	select {
	case <-ch3.Ready():
		t.Fatal("ready with nothing stored")
	default:
	}
	ch3.Close()
	requireClosed(t, ch3)
}

// Where the stream refuses direct gets (an operator's stream, an older
// broker), a watcher reads the stored events with a consumer instead.
func TestWatchRFQReadsStoredEventsWithAConsumerWithoutDirectGets(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	bb.allowDirectGets(t, false)
	_, err := bb.bus.Publish(ctx, rfqEvents(rfq1, 1, 3, false))
	require.NoError(t, err)
	created := bb.consumerCreations(t)

	ch := watch(t, ctx, bb.bus, rfq1, 0)
	require.Equal(t, []int64{1, 2, 3}, recvSeqs(t, ch, 3))
	require.Equal(t, 1, created(), "consumers created to read stored events")
	bb.waitNoConsumers(t)
}

// A message that is not an event, stored on an event's subject after the
// event, hides the event from a read of each subject's last message: the
// watcher then reads every message with a consumer, and misses nothing.
func TestWatchRFQSeesPastJunkOnAnEventSubject(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	_, err := bb.bus.Publish(ctx, rfqEvents(rfq1, 1, 3, false))
	require.NoError(t, err)
	// A server response reflected onto event 2's subject.
	require.NoError(t, bb.nc.PublishMsg(&nats.Msg{Subject: "$JS.API.STREAM.INFO." + EventsStream, Reply: EventSubject(rfq1, rydes.EventQuote, 2)}))
	rydestest.WaitFor(t, "the response to be stored", func() bool { return bb.streamMsgs(t, EventsStream) == 4 })
	created := bb.consumerCreations(t)

	ch := watch(t, ctx, bb.bus, rfq1, 0)
	require.Equal(t, []int64{1, 2, 3}, recvSeqs(t, ch, 3))
	require.Equal(t, 1, created(), "consumers created to read stored events")
}

// EndWatches ends every watch, those waiting on Ready with nothing
// pending and those with events unread, and the watches started after it,
// while the bus goes on publishing.
func TestEndWatches(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	_, err := bb.bus.Publish(ctx, rfqEvents(rfq1, 1, 2, false))
	require.NoError(t, err)
	ch := watch(t, ctx, bb.bus, rfq1, 0)
	require.Equal(t, []int64{1, 2}, recvSeqs(t, ch, 2))
	unread := watch(t, ctx, bb.bus, rfq1, 0)

	bb.bus.EndWatches()
	requireClosed(t, ch)
	requireClosed(t, unread)
	require.Zero(t, bb.bus.hub.registered(), "EndWatches leaves no watch registered")
	later := watch(t, ctx, bb.bus, rfq1, 0)
	requireClosed(t, later)
	require.Zero(t, bb.bus.hub.registered())
	_, err = bb.bus.Publish(ctx, rfqEvents(rfq1, 3, 3, true))
	require.NoError(t, err, "the bus still publishes")
}

// BenchmarkWatchRFQStored opens and closes watches of RFQs whose events the
// stream holds among those of 20,000 others, four events each, each on a
// subject of its own: 80,000 subjects (past 64,000 the broker stops
// skipping through its subject index for a wildcard consumer). "direct" is the
// batched direct get WatchRFQ uses; "consumer" the fallback, forced by
// turning the stream's direct gets off. Compare B/op (the broker's copies
// are in this process) and ns/op.
func BenchmarkWatchRFQStored(b *testing.B) {
	const rfqs = 20_000
	bb := setup(b, false)
	ctx := rydestest.Context(b)
	ids := make([]string, rfqs)
	msgs := make([]store.OutboxMessage, 0, 500)
	for i := range ids {
		ids[i] = rydes.NewID()
		msgs = append(msgs, eventMsg(int64(i), ids[i], 1, rydes.EventCreated))
		if len(msgs) == cap(msgs) || i == len(ids)-1 {
			if _, err := bb.bus.Publish(ctx, msgs); err != nil {
				b.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
	// Three more events (subjects) per RFQ: 80,000 subjects in all.
	for i, id := range ids {
		for seq := int64(2); seq <= 4; seq++ {
			msgs = append(msgs, eventMsg(int64(rfqs+3*i+int(seq)), id, seq, rydes.EventQuote))
		}
		if len(msgs) >= 498 || i == rfqs-1 {
			if _, err := bb.bus.Publish(ctx, msgs); err != nil {
				b.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
	for _, direct := range []bool{true, false} {
		name := "consumer"
		if direct {
			name = "direct"
		}
		b.Run(name, func(b *testing.B) {
			bb.allowDirectGets(b, direct)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				// Watch the older half: their events lie deep in the stream.
				w, err := bb.bus.WatchRFQ(ctx, ids[i%(rfqs/2)], 0)
				if err != nil {
					b.Fatal(err)
				}
				evs, err := w.Next(ctx)
				if err != nil || len(evs) == 0 {
					b.Fatalf("watch %d: %d events, %v", i, len(evs), err)
				}
				w.Close()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "watches/s")
		})
	}
}

// allowDirectGets turns the events stream's direct gets on or off, the
// rest of its configuration as New makes it.
func (bb *bundle) allowDirectGets(t testing.TB, allow bool) {
	t.Helper()
	for _, sc := range StreamConfigs(Config{}) {
		if sc.Name == EventsStream {
			sc.AllowDirect = allow
			_, err := bb.js.UpdateStream(rydestest.Context(t), sc)
			require.NoError(t, err)
		}
	}
}

// group makes one outbox message of msgs' events, as the store writes the
// events of one write for one RFQ.
func group(id int64, msgs []store.OutboxMessage) store.OutboxMessage {
	m := msgs[0]
	m.ID, m.Events = id, nil
	for _, o := range msgs {
		m.Events = append(m.Events, o.Events...)
	}
	return m
}

// The events of one write for one RFQ are one message, on the subject and
// with the id of the last; a watcher gets each of them, stored and live,
// and so does one reading a message of one event as an object, as rydes
// published before it grouped events.
func TestWatchRFQReadsGroupedEvents(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	evs := rfqEvents(rfq1, 1, 6, true)

	// Seq 1 as an earlier rydes published it: one event, an object.
	old := evs[0].Events[0]
	body, err := json.Marshal(old)
	require.NoError(t, err)
	nm := nats.NewMsg(EventSubject(rfq1, old.Type, old.Seq))
	nm.Data = body
	nm.Header.Set(jetstream.MsgIDHeader, "event."+old.ID())
	_, err = bb.js.PublishMsg(ctx, nm)
	require.NoError(t, err)
	_, err = bb.bus.Publish(ctx, []store.OutboxMessage{group(2, evs[1:3])})
	require.NoError(t, err)
	require.EqualValues(t, 2, bb.streamMsgs(t, EventsStream), "seqs 2 and 3 are one message")

	s, err := bb.js.Stream(ctx, EventsStream)
	require.NoError(t, err)
	raw, err := s.GetLastMsgForSubject(ctx, EventSubject(rfq1, rydes.EventQuote, 3))
	require.NoError(t, err)
	require.Equal(t, "event."+rfq1+".3", raw.Header.Get(jetstream.MsgIDHeader), "the id of the last event")
	got, err := store.DecodeEvents(raw.Data)
	require.NoError(t, err)
	require.Equal(t, []rydes.Event{evs[1].Events[0], evs[2].Events[0]}, got)

	ch := watch(t, ctx, bb.bus, rfq1, 0)
	require.Equal(t, []int64{1, 2, 3}, recvSeqs(t, ch, 3), "the stored events, of both kinds of message")
	_, err = bb.bus.Publish(ctx, []store.OutboxMessage{group(3, evs[3:6])})
	require.NoError(t, err)
	require.Equal(t, []int64{4, 5, 6}, recvSeqs(t, ch, 3), "a live message of three events")
	requireClosed(t, ch)

	// A late watcher resuming inside a message gets the rest of it.
	late := watch(t, ctx, bb.bus, rfq1, 4)
	require.Equal(t, []int64{5, 6}, recvSeqs(t, late, 2))
	requireClosed(t, late)
}

// DecodeEvents refuses what Publish would not have stored: a body that is
// not events, events of two RFQs or with a gap, a subject or message id
// that is not the last event's.
func TestDecodeEventsRefusesForgeries(t *testing.T) {
	q2, q3 := rydes.Event{RFQID: rfq1, Seq: 2, Type: rydes.EventQuote}, rydes.Event{RFQID: rfq1, Seq: 3, Type: rydes.EventQuote}
	other := rydes.Event{RFQID: rfq2, Seq: 3, Type: rydes.EventQuote}
	gap := rydes.Event{RFQID: rfq1, Seq: 4, Type: rydes.EventQuote}
	body := func(evs ...rydes.Event) []byte {
		b, err := json.Marshal(evs)
		require.NoError(t, err)
		return b
	}
	tests := []struct {
		name    string
		subject string
		id      string
		data    []byte
		ok      bool
	}{
		{"the last's subject and id", EventSubject(rfq1, rydes.EventQuote, 3), "event." + rfq1 + ".3", body(q2, q3), true},
		{"the first's subject", EventSubject(rfq1, rydes.EventQuote, 2), "event." + rfq1 + ".3", body(q2, q3), false},
		{"the first's id", EventSubject(rfq1, rydes.EventQuote, 3), "event." + rfq1 + ".2", body(q2, q3), false},
		{"two RFQs", EventSubject(rfq2, rydes.EventQuote, 3), "event." + rfq2 + ".3", body(q2, other), false},
		{"a gap", EventSubject(rfq1, rydes.EventQuote, 4), "event." + rfq1 + ".4", body(q2, gap), false},
		{"not events", EventSubject(rfq1, rydes.EventQuote, 3), "event." + rfq1 + ".3", []byte(`{"type":"io.nats.jetstream.api.v1.stream_info_response"}`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := nats.Header{}
			h.Set(jetstream.MsgIDHeader, tt.id)
			evs, err := decodeEvents(tt.subject, tt.data, h)
			if tt.ok {
				require.NoError(t, err)
				require.Equal(t, []rydes.Event{q2, q3}, evs)
			} else {
				require.Error(t, err)
			}
		})
	}
}

// subjectMsg is a message of EventsStream as far as LastEventOf reads it.
type subjectMsg struct {
	jetstream.Msg
	subject string
	header  nats.Header
}

func (m subjectMsg) Subject() string      { return m.subject }
func (m subjectMsg) Headers() nats.Header { return m.header }

func TestLastEventOf(t *testing.T) {
	withID := func(id string) nats.Header {
		h := nats.Header{}
		if id != "" {
			h.Set(jetstream.MsgIDHeader, id)
		}
		return h
	}
	rfqID, typ, seq, err := LastEventOf(subjectMsg{subject: EventSubject(rfq1, rydes.EventComplete, 12), header: withID("event." + rfq1 + ".12")})
	require.NoError(t, err)
	require.Equal(t, rfq1, rfqID)
	require.Equal(t, rydes.EventComplete, typ)
	require.Equal(t, int64(12), seq)

	for name, m := range map[string]subjectMsg{
		"a reflected server response: no message id": {subject: EventSubject(rfq1, rydes.EventComplete, 12), header: withID("")},
		"no header at all":                           {subject: EventSubject(rfq1, rydes.EventComplete, 12)},
		"another event's id":                         {subject: EventSubject(rfq1, rydes.EventComplete, 12), header: withID("event." + rfq1 + ".11")},
		"another RFQ's id":                           {subject: EventSubject(rfq1, rydes.EventComplete, 12), header: withID("event." + rfq2 + ".12")},
		"too few tokens":                             {subject: EventSubjectPrefix + rfq1 + ".complete", header: withID("event." + rfq1 + ".complete")},
		"too many tokens":                            {subject: EventSubject(rfq1, rydes.EventComplete, 12) + ".x", header: withID("event." + rfq1 + ".12")},
		"seq 0":                                      {subject: EventSubject(rfq1, rydes.EventComplete, 0), header: withID("event." + rfq1 + ".0")},
		"not an RFQ id":                              {subject: EventSubject("nope", rydes.EventComplete, 1), header: withID("event.nope.1")},
		"another stream's subject":                   {subject: DispatchSubject("p1", rfq1), header: withID("event." + rfq1 + ".1")},
	} {
		_, _, _, err := LastEventOf(m)
		require.Error(t, err, name)
	}
}

// StoredEvents returns what the stream holds of one RFQ after a seq, in
// seq order, each once, without waiting for a gap to fill.
func TestStoredEvents(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	grouped := eventMsg(3, rfq1, 2, rydes.EventQuote)
	second := grouped.Events[0]
	second.Seq, second.Type = 3, rydes.EventDecline
	grouped.Events = append(grouped.Events, second)
	_, err := bb.bus.Publish(ctx, []store.OutboxMessage{
		eventMsg(1, rfq1, 5, rydes.EventComplete), // published before the others (an outbox retry)
		eventMsg(2, rfq1, 1, rydes.EventCreated),
		grouped,
		eventMsg(4, rfq2, 1, rydes.EventCreated),
	})
	require.NoError(t, err)

	seqs := func(after int64) []int64 {
		t.Helper()
		events, err := bb.bus.StoredEvents(ctx, rfq1, after)
		require.NoError(t, err)
		var out []int64
		for _, ev := range events {
			require.Equal(t, rfq1, ev.RFQID)
			out = append(out, ev.Seq)
		}
		return out
	}
	require.Equal(t, []int64{1, 2, 3, 5}, seqs(0), "seq 4 is not there: not waited for")
	require.Equal(t, []int64{3, 5}, seqs(2))
	require.Empty(t, seqs(5))

	events, err := bb.bus.StoredEvents(ctx, rydes.NewID(), 0)
	require.NoError(t, err)
	require.Empty(t, events)
	_, err = bb.bus.StoredEvents(ctx, "not an id", 0)
	require.Error(t, err)
	bb.bus.Close()
	_, err = bb.bus.StoredEvents(ctx, rfq1, 0)
	require.ErrorContains(t, err, "closed")
}
