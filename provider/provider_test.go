package provider

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/bus"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
	"github.com/wildrydes/rydes/internal/wire"
)

// bundle is a rydes side (server, bus, gathered answers) and one provider.
type bundle struct {
	nc      *nats.Conn
	bus     *bus.Bus
	answers chan bus.Inbound
	p       *Provider
	nextID  atomic.Int64
}

func setup(t *testing.T, ackWait time.Duration, cfg Config) *bundle {
	t.Helper()
	ctx := rydestest.Context(t)
	emb, err := bus.StartEmbedded(ctx, bus.EmbeddedConfig{StoreDir: t.TempDir(), Logger: rydestest.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(emb.Shutdown)
	nc, err := emb.Connect()
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	b, err := bus.New(ctx, nc, bus.Config{AckWait: ackWait, Logger: rydestest.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(b.Close)

	if cfg.ID == "" {
		cfg.ID = "p1"
	}
	require.NoError(t, b.EnsureProviderQueue(ctx, cfg.ID))
	// The provider gets a connection of its own, as it would in real life.
	pnc, err := emb.Connect()
	require.NoError(t, err)
	t.Cleanup(pnc.Close)
	cfg.Conn = pnc
	cfg.Logger = rydestest.Logger(t)
	p, err := New(cfg)
	require.NoError(t, err)

	return &bundle{nc: nc, bus: b, answers: make(chan bus.Inbound, 100), p: p}
}

// gather runs rydes's answer service until the test ends: it puts each
// answer into bb.answers and replies with the receipt receipt makes of it
// (staged, if nil).
func (bb *bundle) gather(t *testing.T) { bb.gatherWith(t, nil) }

func (bb *bundle) gatherWith(t *testing.T, receipt func(bus.Inbound) rydes.AnswerReceipt) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(rydestest.Context(t))
	done := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		defer close(done)
		err := bb.bus.ServeAnswers(ctx, func(_ context.Context, in bus.Inbound) rydes.AnswerReceipt {
			bb.answers <- in
			if receipt != nil {
				return receipt(in)
			}
			return rydes.AnswerReceipt{Outcome: rydes.OutcomeStaged, RFQStatus: rydes.StatusOpen}
		}, bus.ServeOptions{Ready: func() { close(ready) }})
		if err != nil {
			t.Errorf("serve answers: %v", err)
		}
	}()
	select {
	case <-ready:
	case <-done:
	}
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// run runs the provider until stop is called or the test ends; stop
// returns Run's error.
func (bb *bundle) run(t *testing.T, h Handler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(rydestest.Context(t))
	done := make(chan error, 1)
	go func() { done <- bb.p.Run(ctx, h) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(rydestest.WaitTimeout):
				t.Errorf("Run did not return after its context was cancelled")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// dispatch scatters a request to the provider the way rydes does, and
// returns it.
func (bb *bundle) dispatch(t *testing.T, from string, deadline time.Time) rydes.ProviderRequest {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	req := rydes.ProviderRequest{RFQID: rydes.NewID(), From: from, To: "Rainbow", CreatedAt: now, Deadline: deadline.UTC().Truncate(time.Microsecond)}
	msg := store.OutboxMessage{ID: bb.nextID.Add(1), Kind: store.OutboxDispatch, CreatedAt: now, Dispatch: &store.Dispatch{Providers: []string{bb.p.ID()}, Request: req}}
	_, err := bb.bus.Publish(rydestest.Context(t), []store.OutboxMessage{msg})
	require.NoError(t, err)
	return req
}

func (bb *bundle) nextAnswer(t *testing.T) bus.Inbound {
	t.Helper()
	select {
	case in := <-bb.answers:
		require.NoError(t, in.Err, "rydes must accept what the SDK sends")
		return in
	case <-rydestest.Context(t).Done():
		t.Fatal("timed out waiting for an answer")
		return bus.Inbound{}
	}
}

// waitQueueEmpty waits until the provider settled every request: none is
// left in the dispatch stream (a work queue, which drops what was acked)
// nor pending on the provider's queue. The stream's count is exact as soon
// as a publish returns; the queue's counts may lag a message just stored.
func (bb *bundle) waitQueueEmpty(t *testing.T) {
	t.Helper()
	rydestest.WaitFor(t, "the provider's queue to be empty", func() bool {
		if bb.streamMsgs(t, bus.DispatchStream) != 0 {
			return false
		}
		pending, ackPending, err := bb.bus.QueueDepth(rydestest.Context(t), bb.p.ID())
		require.NoError(t, err)
		return pending == 0 && ackPending == 0
	})
}

func (bb *bundle) streamMsgs(t *testing.T, name string) uint64 {
	t.Helper()
	s, err := bb.bus.JetStream().Stream(rydestest.Context(t), name)
	require.NoError(t, err)
	return s.CachedInfo().State.Msgs
}

func eur(amount string) rydes.Price { return rydes.Price{Amount: amount, Currency: "EUR"} }

func TestNamesMatchTheBus(t *testing.T) {
	require.Equal(t, bus.DispatchStream, dispatchStream)
	require.Equal(t, bus.AnswerSubject("p1"), answerSubjectPrefix+"p1")
	require.Equal(t, bus.ProviderQueue("p1"), queuePrefix+"p1")
	require.Equal(t, bus.ProviderInboxPrefix("p1"), InboxPrefix("p1"))
}

func TestNewValidates(t *testing.T) {
	_, err := New(Config{ID: "p1"})
	require.Error(t, err)
	nc := &nats.Conn{}
	_, err = New(Config{Conn: nc, ID: "p.1"})
	require.Error(t, err)
	_, err = New(Config{Conn: nc, ID: "p1", Concurrency: -1})
	require.Error(t, err)
}

func TestQuoteDeclineSilent(t *testing.T) {
	bb := setup(t, 0, Config{})
	bb.gather(t)
	expiry := time.Now().Add(time.Hour).UTC().Round(0)
	bb.run(t, func(ctx context.Context, req rydes.ProviderRequest) (Reply, error) {
		switch req.From {
		case "quote":
			return Quote(eur("45.50"), WithETA(5*time.Minute), WithExpiry(expiry)), nil
		case "decline":
			return Decline("no unicorns left"), nil
		default:
			return Silent(), nil
		}
	})

	deadline := time.Now().Add(time.Hour)
	quoted := bb.dispatch(t, "quote", deadline)
	declined := bb.dispatch(t, "decline", deadline)
	bb.dispatch(t, "silent", deadline)

	got := map[string]rydes.Answer{}
	for range 2 {
		in := bb.nextAnswer(t)
		got[in.Answer.RFQID] = in.Answer
	}
	q := got[quoted.RFQID]
	require.Equal(t, "p1", q.Provider)
	require.Equal(t, rydes.AnswerQuote, q.Kind)
	require.Equal(t, eur("45.50"), q.Price)
	require.Equal(t, 300, *q.ETASeconds)
	require.True(t, expiry.Equal(q.ExpiresAt), "expiry %s, got %s", expiry, q.ExpiresAt)

	d := got[declined.RFQID]
	require.Equal(t, rydes.AnswerDecline, d.Kind)
	require.Equal(t, "no unicorns left", d.Reason)

	// The silent request was acked all the same, and answered nothing.
	bb.waitQueueEmpty(t)
	require.Empty(t, bb.answers)
}

func TestAckOnlyAfterPublish(t *testing.T) {
	bb := setup(t, 0, Config{RetryDelay: 10 * time.Millisecond})
	ctx := rydestest.Context(t)
	// No answer service runs: sending an answer fails (no responders).
	calls := make(chan string, 10)
	bb.run(t, func(ctx context.Context, req rydes.ProviderRequest) (Reply, error) {
		calls <- req.RFQID
		return Quote(eur("12")), nil
	})
	req := bb.dispatch(t, "quote", time.Now().Add(time.Hour))

	// The handler ran, its answer could not be staged: the request is not
	// acked, and comes back.
	for range 2 {
		select {
		case id := <-calls:
			require.Equal(t, req.RFQID, id)
		case <-ctx.Done():
			t.Fatal("timed out waiting for the handler")
		}
	}
	require.EqualValues(t, 1, bb.streamMsgs(t, bus.DispatchStream), "the request is still queued")

	// Once rydes takes answers, the answer goes through and only then is
	// the request acked.
	bb.gather(t)
	in := bb.nextAnswer(t)
	require.Equal(t, req.RFQID, in.Answer.RFQID)
	bb.waitQueueEmpty(t)
	require.EqualValues(t, 0, bb.streamMsgs(t, bus.DispatchStream))
}

// A receipt saying rydes could not stage the answer now leaves the request
// to come back; one saying the answer was refused settles it.
func TestReceiptDecidesTheAck(t *testing.T) {
	bb := setup(t, 0, Config{RetryDelay: 10 * time.Millisecond})
	var receipts atomic.Int32
	bb.gatherWith(t, func(in bus.Inbound) rydes.AnswerReceipt {
		if receipts.Add(1) == 1 {
			return rydes.AnswerReceipt{Error: "database is locked"}
		}
		return rydes.AnswerReceipt{Outcome: rydes.OutcomeRejected, Reason: rydes.RejectLate, Message: "the deadline had passed"}
	})
	var calls atomic.Int32
	bb.run(t, func(ctx context.Context, req rydes.ProviderRequest) (Reply, error) {
		calls.Add(1)
		return Quote(eur("12")), nil
	})
	req := bb.dispatch(t, "x", time.Now().Add(time.Hour))
	require.Equal(t, req.RFQID, bb.nextAnswer(t).Answer.RFQID)
	require.Equal(t, req.RFQID, bb.nextAnswer(t).Answer.RFQID, "sent again after the error receipt")
	bb.waitQueueEmpty(t)
	require.EqualValues(t, 2, calls.Load(), "the refusal settled the request")
	require.Empty(t, bb.answers)
}

func TestRedeliveryOnHandlerError(t *testing.T) {
	bb := setup(t, 0, Config{RetryDelay: 10 * time.Millisecond})
	bb.gather(t)
	var calls atomic.Int32
	bb.run(t, func(ctx context.Context, req rydes.ProviderRequest) (Reply, error) {
		if calls.Add(1) == 1 {
			return Reply{}, errors.New("pricing service down")
		}
		return Decline("busy"), nil
	})
	req := bb.dispatch(t, "x", time.Now().Add(time.Hour))
	in := bb.nextAnswer(t)
	require.Equal(t, req.RFQID, in.Answer.RFQID)
	require.Equal(t, rydes.AnswerDecline, in.Answer.Kind)
	bb.waitQueueEmpty(t)
	require.EqualValues(t, 2, calls.Load())
}

func TestHandlerPanicIsAnError(t *testing.T) {
	bb := setup(t, 0, Config{RetryDelay: 10 * time.Millisecond})
	bb.gather(t)
	var calls atomic.Int32
	bb.run(t, func(ctx context.Context, req rydes.ProviderRequest) (Reply, error) {
		if calls.Add(1) == 1 {
			panic("oops")
		}
		return Quote(eur("1")), nil
	})
	bb.dispatch(t, "x", time.Now().Add(time.Hour))
	bb.nextAnswer(t)
	require.EqualValues(t, 2, calls.Load())
}

func TestInvalidReplyIsRetried(t *testing.T) {
	bb := setup(t, 0, Config{RetryDelay: 10 * time.Millisecond})
	bb.gather(t)
	var calls atomic.Int32
	bb.run(t, func(ctx context.Context, req rydes.ProviderRequest) (Reply, error) {
		if calls.Add(1) == 1 {
			return Quote(rydes.Price{Amount: "-3", Currency: "EUR"}), nil
		}
		return Quote(eur("3")), nil
	})
	bb.dispatch(t, "x", time.Now().Add(time.Hour))
	in := bb.nextAnswer(t)
	require.Equal(t, "3", in.Answer.Price.Amount)
	require.EqualValues(t, 2, calls.Load())
}

func TestPastDeadlineIsAckedUnhandled(t *testing.T) {
	bb := setup(t, 0, Config{})
	bb.gather(t)
	var calls atomic.Int32
	bb.run(t, func(ctx context.Context, req rydes.ProviderRequest) (Reply, error) {
		calls.Add(1)
		return Quote(eur("1")), nil
	})
	bb.dispatch(t, "late", time.Now().Add(-time.Second))
	bb.waitQueueEmpty(t)
	require.Zero(t, calls.Load())
	require.Empty(t, bb.answers)
}

func TestHandlerContextEndsAtDeadline(t *testing.T) {
	bb := setup(t, 0, Config{})
	bb.gather(t)
	got := make(chan time.Time, 1)
	bb.run(t, func(ctx context.Context, req rydes.ProviderRequest) (Reply, error) {
		d, _ := ctx.Deadline()
		got <- d
		return Silent(), nil
	})
	req := bb.dispatch(t, "x", time.Now().Add(time.Hour))
	select {
	case d := <-got:
		require.True(t, req.Deadline.Equal(d))
	case <-rydestest.Context(t).Done():
		t.Fatal("timed out")
	}
}

func TestGracefulStop(t *testing.T) {
	bb := setup(t, 0, Config{})
	bb.gather(t)
	started := make(chan struct{})
	release := make(chan struct{})
	ctxErr := make(chan error, 1)
	stop := bb.run(t, func(ctx context.Context, req rydes.ProviderRequest) (Reply, error) {
		close(started)
		<-release
		ctxErr <- ctx.Err()
		return Quote(eur("9.99")), nil
	})
	req := bb.dispatch(t, "x", time.Now().Add(time.Hour))
	<-started

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// Run waits for the handler in flight, whose context is not cancelled.
	select {
	case err := <-stopped:
		t.Fatalf("Run returned with a handler in flight: %v", err)
	default:
	}
	close(release)
	require.NoError(t, <-stopped)
	require.NoError(t, <-ctxErr)

	// The answer was sent and the request acked before Run returned (Run
	// flushed the connection: the broker has the ack, and applies it a
	// moment later).
	in := bb.nextAnswer(t)
	require.Equal(t, req.RFQID, in.Answer.RFQID)
	var pending, ackPending int
	var err error
	rydestest.WaitFor(t, "the ack to settle the request", func() bool {
		pending, ackPending, err = bb.bus.QueueDepth(rydestest.Context(t), "p1")
		require.NoError(t, err)
		return pending == 0 && ackPending == 0
	})

	// Nothing is taken any more: the request waits (the consumer counts it
	// a moment after the PubAck).
	bb.dispatch(t, "y", time.Now().Add(time.Hour))
	rydestest.WaitFor(t, "the request to wait in the queue", func() bool {
		pending, ackPending, err = bb.bus.QueueDepth(rydestest.Context(t), "p1")
		require.NoError(t, err)
		return pending == 1 && ackPending == 0
	})
}

func TestConcurrencyIsBounded(t *testing.T) {
	bb := setup(t, 0, Config{Concurrency: 2})
	bb.gather(t)
	var inflight, most atomic.Int32
	release := make(chan struct{})
	bb.run(t, func(ctx context.Context, req rydes.ProviderRequest) (Reply, error) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		<-release
		return Silent(), nil
	})
	for range 6 {
		bb.dispatch(t, "x", time.Now().Add(time.Hour))
	}
	rydestest.WaitFor(t, "two handlers in flight", func() bool { return inflight.Load() == 2 })
	close(release)
	bb.waitQueueEmpty(t)
	require.EqualValues(t, 2, most.Load())
}

func TestLongHandlerIsNotRedelivered(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for more than the ack wait")
	}
	const ackWait = time.Second
	bb := setup(t, ackWait, Config{})
	bb.gather(t)
	var calls atomic.Int32
	bb.run(t, func(ctx context.Context, req rydes.ProviderRequest) (Reply, error) {
		calls.Add(1)
		// Work for more than twice the ack wait.
		select {
		case <-time.After(2*ackWait + ackWait/2):
		case <-ctx.Done():
		}
		return Silent(), nil
	})
	bb.dispatch(t, "x", time.Now().Add(time.Hour))
	bb.waitQueueEmpty(t)
	require.EqualValues(t, 1, calls.Load(), "the request was redelivered while being handled")
}

// fakeMsg counts InProgress calls.
type fakeMsg struct {
	jetstream.Msg
	beats chan struct{}
}

func (m *fakeMsg) InProgress() error {
	m.beats <- struct{}{}
	return nil
}

func TestKeepAlive(t *testing.T) {
	m := &fakeMsg{beats: make(chan struct{})}
	stop := keepAlive(m, time.Millisecond, rydestest.Logger(t))
	for range 3 {
		select {
		case <-m.beats:
		case <-rydestest.Context(t).Done():
			t.Fatal("no InProgress")
		}
	}
	go func() {
		for range m.beats { // let a beat in progress finish
		}
	}()
	stop()
	close(m.beats)
}

func TestRunWithoutQueue(t *testing.T) {
	bb := setup(t, 0, Config{})
	bb.gather(t)
	p, err := New(Config{Conn: bb.nc, ID: "p9"})
	require.NoError(t, err)
	err = p.Run(rydestest.Context(t), func(context.Context, rydes.ProviderRequest) (Reply, error) { return Silent(), nil })
	require.ErrorIs(t, err, jetstream.ErrConsumerNotFound)
	require.Contains(t, err.Error(), "provider-p9")
}

func TestRunStopsWhenQueueDeleted(t *testing.T) {
	bb := setup(t, 0, Config{})
	bb.gather(t)
	ctx := rydestest.Context(t)
	done := make(chan error, 1)
	go func() {
		done <- bb.p.Run(ctx, func(context.Context, rydes.ProviderRequest) (Reply, error) { return Silent(), nil })
	}()
	rydestest.WaitFor(t, "the provider to pull", func() bool {
		c, err := bb.bus.JetStream().Consumer(ctx, bus.DispatchStream, bus.ProviderQueue("p1"))
		return err == nil && c.CachedInfo().NumWaiting > 0
	})
	require.NoError(t, bb.bus.DeleteProviderQueue(ctx, "p1"))
	select {
	case err := <-done:
		require.Error(t, err)
	case <-ctx.Done():
		t.Fatal("Run did not return after its queue was deleted")
	}
}

// Sending an answer again (after a redelivery) sends the same answer:
// rydes stages it once and calls the second a duplicate.
func TestSameAnswerIsSentAlike(t *testing.T) {
	bb := setup(t, 0, Config{})
	bb.gather(t)
	ctx := rydestest.Context(t)
	id := rydes.NewID()
	require.NoError(t, bb.p.publish(ctx, id, Quote(eur("5"))))
	require.NoError(t, bb.p.publish(ctx, id, Quote(eur("5"))), "a second sending after a redelivery")
	first, second := bb.nextAnswer(t), bb.nextAnswer(t)
	require.Equal(t, first.Payload, second.Payload)
	first.Answer.ReceivedAt, second.Answer.ReceivedAt = time.Time{}, time.Time{}
	require.Equal(t, first.Answer, second.Answer)
}

// TestWireAcceptsWhatTheSDKSends checks the SDK's own encoder against the
// decoder rydes runs on every answer.
func TestWireAcceptsWhatTheSDKSends(t *testing.T) {
	p := &Provider{cfg: Config{ID: "unicorn-1"}}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	id := rydes.NewID()
	eta := 90
	tests := []struct {
		reply Reply
		want  rydes.Answer
	}{
		{Quote(eur("45.50")), rydes.Answer{Kind: rydes.AnswerQuote, Price: eur("45.50")}},
		{
			Quote(rydes.Price{Amount: "1000000", Currency: "JPY"}, WithETA(89500*time.Millisecond), WithExpiry(now.Add(time.Minute+time.Nanosecond).In(time.FixedZone("CET", 3600)))),
			rydes.Answer{Kind: rydes.AnswerQuote, Price: rydes.Price{Amount: "1000000", Currency: "JPY"}, ETASeconds: &eta, ExpiresAt: now.Add(time.Minute + time.Nanosecond)},
		},
		{Decline(""), rydes.Answer{Kind: rydes.AnswerDecline}},
		{Decline("fully booked — sorry"), rydes.Answer{Kind: rydes.AnswerDecline, Reason: "fully booked — sorry"}},
	}
	for _, tt := range tests {
		body, err := p.encodeAnswer(id, tt.reply, now)
		require.NoError(t, err)
		got, err := wire.DecodeAnswer("unicorn-1", body, now)
		require.NoError(t, err, "body %s", body)
		tt.want.RFQID, tt.want.Provider, tt.want.ReceivedAt = id, "unicorn-1", now
		require.Equal(t, tt.want, got)
	}

	for _, bad := range []Reply{
		Quote(eur("0")),
		Quote(eur("1"), WithETA(-time.Minute)),
		Quote(eur("1"), WithExpiry(now.Add(-time.Minute))),
		Decline(strings.Repeat("x", rydes.MaxReasonLen+1)),
	} {
		_, err := p.encodeAnswer(id, bad, now)
		require.Equal(t, rydes.EINVALID, rydes.ErrorCodeOf(err))
	}
}

// BenchmarkKeepAlive is the cost of the keep-alive of one request answered
// before its first beat, as most are.
func BenchmarkKeepAlive(b *testing.B) {
	m := &fakeMsg{beats: make(chan struct{})}
	log := slog.New(slog.DiscardHandler)
	b.ReportAllocs()
	for b.Loop() {
		keepAlive(m, time.Minute, log)()
	}
}
