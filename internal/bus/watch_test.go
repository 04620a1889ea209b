package bus

import (
	"context"
	"encoding/json"
	"fmt"
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

// recv returns the next event on ch, failing the test if ch is closed or
// nothing comes within rydestest.WaitTimeout (a bound against hangs).
func recv(t *testing.T, ch <-chan rydes.Event) rydes.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		require.True(t, ok, "the watch channel closed early")
		return ev
	case <-time.After(rydestest.WaitTimeout):
		t.Fatal("timed out waiting for an event")
		return rydes.Event{}
	}
}

// requireClosed fails the test unless ch is closed with nothing more on it.
func requireClosed(t *testing.T, ch <-chan rydes.Event) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		require.False(t, ok, "unexpected event %+v after the end", ev)
	case <-time.After(rydestest.WaitTimeout):
		t.Fatal("timed out waiting for the watch channel to close")
	}
}

// recvSeqs receives n events and returns their seqs.
func recvSeqs(t *testing.T, ch <-chan rydes.Event, n int) []int64 {
	t.Helper()
	seqs := make([]int64, n)
	for i := range seqs {
		seqs[i] = recv(t, ch).Seq
	}
	return seqs
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

	ch, err := bb.bus.WatchRFQ(ctx, rfq1, 0)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3}, recvSeqs(t, ch, 3), "the events stored before the watch")

	// Live events, with another RFQ's in between; seq 5 is stored before 4
	// (an outbox retry), and is still sent after it.
	more := rfqEvents(rfq1, 4, 6, true)
	_, err = bb.bus.Publish(ctx, []store.OutboxMessage{more[1], eventMsg(3, rfq2, 3, rydes.EventComplete)})
	require.NoError(t, err)
	_, err = bb.bus.Publish(ctx, []store.OutboxMessage{more[0], more[2]})
	require.NoError(t, err)
	ev4 := recv(t, ch)
	require.Equal(t, *more[0].Event, ev4)
	require.Equal(t, []int64{5, 6}, recvSeqs(t, ch, 2))
	requireClosed(t, ch)
	bb.waitNoConsumers(t)
}

func TestWatchRFQResumesAfterSeq(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	_, err := bb.bus.Publish(ctx, rfqEvents(rfq1, 1, 4, false))
	require.NoError(t, err)

	ch, err := bb.bus.WatchRFQ(ctx, rfq1, 2)
	require.NoError(t, err)
	require.Equal(t, []int64{3, 4}, recvSeqs(t, ch, 2))
	_, err = bb.bus.Publish(ctx, rfqEvents(rfq1, 5, 6, true))
	require.NoError(t, err)
	require.Equal(t, []int64{5, 6}, recvSeqs(t, ch, 2))
	requireClosed(t, ch)

	// Resuming after the final event's predecessor yields only the final
	// event; after the final one, nothing more comes, so ctx ends it.
	ch, err = bb.bus.WatchRFQ(ctx, rfq1, 5)
	require.NoError(t, err)
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

	ch, err := b2.WatchRFQ(ctx, rfq1, 0)
	require.NoError(t, err)
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

	ch, err := bb.bus.WatchRFQ(ctx, rfq1, 0)
	require.NoError(t, err)
	require.Equal(t, int64(1), recv(t, ch).Seq)
	// The junk did not end the watch: the real seq 2 comes, then the end.
	real := rfqEvents(rfq1, 2, 3, true)
	_, err = bb.bus.Publish(ctx, real)
	require.NoError(t, err)
	require.Equal(t, *real[0].Event, recv(t, ch))
	require.Equal(t, *real[1].Event, recv(t, ch))
	requireClosed(t, ch)
}

func TestWatchRFQCancel(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	_, err := bb.bus.Publish(ctx, rfqEvents(rfq1, 1, 2, false))
	require.NoError(t, err)

	wctx, cancel := context.WithCancel(ctx)
	ch, err := bb.bus.WatchRFQ(wctx, rfq1, 0)
	require.NoError(t, err)
	require.Equal(t, int64(1), recv(t, ch).Seq)
	// Seq 2 is not read: cancelling still closes the channel, though the
	// watcher may be blocked sending it.
	cancel()
	for range ch {
	}
	bb.waitNoConsumers(t)
}

func TestWatchRFQEndsWhenBusCloses(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	ch, err := bb.bus.WatchRFQ(ctx, rfq1, 0)
	require.NoError(t, err)
	bb.bus.Close()
	requireClosed(t, ch)
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

// TestWatchRFQNoLeak starts many watchers, ends them every way there is,
// and checks that their goroutines and consumers are all gone.
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
	warm, err := bb.bus.WatchRFQ(ctx, other, 0)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2}, recvSeqs(t, warm, 2))
	requireClosed(t, warm)
	bb.waitNoConsumers(t)
	before := runtime.NumGoroutine()

	const n = 20
	chans := make([]<-chan rydes.Event, n)
	cancels := make([]context.CancelFunc, n)
	for i := range n {
		wctx, cancel := context.WithCancel(ctx)
		cancels[i] = cancel
		var err error
		chans[i], err = bb.bus.WatchRFQ(wctx, rfq1, 0)
		require.NoError(t, err)
	}
	for i := range n / 2 {
		require.Equal(t, int64(1), recv(t, chans[i]).Seq)
		cancels[i]() // abandoned mid-way, seq 2 unread
	}
	_, err = bb.bus.Publish(ctx, rfqEvents(rfq1, 3, 3, true))
	require.NoError(t, err)
	for i := n / 2; i < n; i++ {
		require.Equal(t, []int64{1, 2, 3}, recvSeqs(t, chans[i], 3))
		requireClosed(t, chans[i])
		cancels[i]()
	}
	for i := range n / 2 {
		for range chans[i] {
		}
	}
	bb.waitNoConsumers(t)
	rydestest.WaitFor(t, "the watchers' goroutines to end", func() bool {
		return runtime.NumGoroutine() <= before
	})
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

// A watcher that does not keep up loses nothing: the events the process's
// subscription could not hand it are read from the stream again, in order.
func TestWatchRFQFallsBehindAndCatchesUp(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	_, err := bb.bus.Publish(ctx, rfqEvents(rfq1, 1, 1, false))
	require.NoError(t, err)
	ch, err := bb.bus.WatchRFQ(ctx, rfq1, 0)
	require.NoError(t, err)
	require.Equal(t, []int64{1}, recvSeqs(t, ch, 1))
	// Nobody reads while far more events than the watcher's buffers hold
	// are stored.
	const last = 4*watchBuffer + 10
	_, err = bb.bus.Publish(ctx, rfqEvents(rfq1, 2, last, true))
	require.NoError(t, err)
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

	ch, err := bb.bus.WatchRFQ(ctx, rfq1, 1)
	require.NoError(t, err)
	require.Equal(t, []int64{2, 3}, recvSeqs(t, ch, 2))
	require.Zero(t, created(), "consumers created to read stored events")

	// An RFQ with no event stored yet.
	ctx3, cancel := context.WithCancel(ctx)
	ch3, err := bb.bus.WatchRFQ(ctx3, "0b5e3c1a-2f4d-4e6b-8a9c-7d1e2f3a4b5c", 0)
	require.NoError(t, err)
	require.Zero(t, created())
	cancel()
	requireClosed(t, ch3)
}

// Where the stream refuses direct gets (an operator's stream, an older
// broker), a watcher reads the stored events with a consumer instead.
func TestWatchRFQReadsStoredEventsWithAConsumerWithoutDirectGets(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	for _, sc := range StreamConfigs(Config{}) {
		if sc.Name == EventsStream {
			sc.AllowDirect = false
			_, err := bb.js.UpdateStream(ctx, sc)
			require.NoError(t, err)
		}
	}
	_, err := bb.bus.Publish(ctx, rfqEvents(rfq1, 1, 3, false))
	require.NoError(t, err)
	created := bb.consumerCreations(t)

	ch, err := bb.bus.WatchRFQ(ctx, rfq1, 0)
	require.NoError(t, err)
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
	require.Eventually(t, func() bool { return bb.streamMsgs(t, EventsStream) == 4 }, 5*time.Second, 5*time.Millisecond)
	created := bb.consumerCreations(t)

	ch, err := bb.bus.WatchRFQ(ctx, rfq1, 0)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3}, recvSeqs(t, ch, 3))
	require.Equal(t, 1, created(), "consumers created to read stored events")
}

// EndWatches closes every watch's channel, and those of watches started
// after it, while the bus goes on publishing.
func TestEndWatches(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	_, err := bb.bus.Publish(ctx, rfqEvents(rfq1, 1, 2, false))
	require.NoError(t, err)
	ch, err := bb.bus.WatchRFQ(ctx, rfq1, 0)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2}, recvSeqs(t, ch, 2))

	bb.bus.EndWatches()
	requireClosed(t, ch)
	later, err := bb.bus.WatchRFQ(ctx, rfq1, 0)
	require.NoError(t, err)
	requireClosed(t, later)
	_, err = bb.bus.Publish(ctx, rfqEvents(rfq1, 3, 3, true))
	require.NoError(t, err, "the bus still publishes")
}
