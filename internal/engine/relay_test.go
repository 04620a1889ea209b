package engine_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/engine"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
	"github.com/wildrydes/rydes/internal/store/sqlite"
)

// deleteGate holds DeleteOutbox calls at a gate and can fail them.
type deleteGate struct {
	store.Store
	mu      sync.Mutex
	gate    chan struct{} // nil: open
	fail    int           // calls left to fail
	calls   int
	entered chan struct{}
}

func (s *deleteGate) DeleteOutbox(ctx context.Context, p store.DeleteOutboxParams) error {
	s.mu.Lock()
	s.calls++
	gate, fail := s.gate, s.fail > 0
	if fail {
		s.fail--
	}
	s.mu.Unlock()
	if gate != nil {
		s.entered <- struct{}{}
		<-gate
	}
	if fail {
		return errors.New("disk full")
	}
	return s.Store.DeleteOutbox(ctx, p)
}

// runRelay starts an engine on st with a recording publisher and runs it
// until the test ends; configure, if given, changes the engine's
// configuration first.
func runRelay(t *testing.T, st store.Store, configure ...func(*engine.Config)) (*engine.Engine, *recordingPublisher) {
	t.Helper()
	pub := &recordingPublisher{}
	cfg := engine.Config{
		Store: st, Publisher: pub, Clock: clockwork.NewRealClock(), Logger: rydestest.Logger(t),
		OutboxSweep: time.Hour, RetryBackoff: time.Millisecond,
		Limits: rydes.Limits{DefaultTimeout: 30 * time.Second, MaxTimeout: 5 * time.Minute},
	}
	for _, f := range configure {
		f(&cfg)
	}
	e, err := engine.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(rydestest.Context(t))
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return e, pub
}

func (p *recordingPublisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.msgs)
}

func pendingOutbox(t *testing.T, st store.Store) int {
	t.Helper()
	ms, err := st.PendingOutbox(rydestest.Context(t), store.PendingOutboxParams{})
	require.NoError(t, err)
	return len(ms)
}

// The relay publishes a new request's messages while the delete of the
// ones before still waits for its commit, and does not publish those
// again.
func TestRelayDoesNotWaitForDeletes(t *testing.T) {
	st := &deleteGate{Store: openStore(t, "p1", "p2"), gate: make(chan struct{}), entered: make(chan struct{}, 10)}
	e, pub := runRelay(t, st)
	ctx := rydestest.Context(t)
	req := rydes.RFQRequest{Customer: "cmr", From: "a", To: "b"}

	_, err := e.CreateRFQ(ctx, req)
	require.NoError(t, err)
	<-st.entered // the first batch's delete is held
	require.Equal(t, 2, pub.count(), "the dispatches to two providers and the created event")

	_, err = e.CreateRFQ(ctx, req)
	require.NoError(t, err)
	rydestest.WaitFor(t, "the second request's messages", func() bool { return pub.count() >= 4 })
	require.Equal(t, 4, pub.count(), "nothing of the first published twice")

	st.mu.Lock()
	gate := st.gate
	st.gate = nil
	st.mu.Unlock()
	close(gate)
	rydestest.WaitFor(t, "the outbox to empty", func() bool { return pendingOutbox(t, st) == 0 })
	require.Equal(t, 4, pub.count())
}

// The relay lets published rows wait for a batch (OutboxBatch) or the
// delete delay before it deletes them: two requests' rows, published in
// two rounds, go in one delete.
func TestRelayDeletesPublishedRowsTogether(t *testing.T) {
	st := &deleteGate{Store: openStore(t, "p1")}
	e, pub := runRelay(t, st, func(c *engine.Config) {
		c.OutboxBatch = 4
		c.OutboxDeleteDelay = time.Hour
	})
	ctx := rydestest.Context(t)
	req := rydes.RFQRequest{Customer: "cmr", From: "a", To: "b"}

	_, err := e.CreateRFQ(ctx, req)
	require.NoError(t, err)
	rydestest.WaitFor(t, "the first request's dispatch and created event", func() bool { return pub.count() == 2 })
	_, err = e.CreateRFQ(ctx, req)
	require.NoError(t, err)
	rydestest.WaitFor(t, "the outbox to empty", func() bool { return pendingOutbox(t, st) == 0 })
	require.Equal(t, 4, pub.count())
	st.mu.Lock()
	defer st.mu.Unlock()
	require.Equal(t, 1, st.calls, "one delete for both rounds")
}

// Rows waiting for the delete delay are deleted when the engine stops.
func TestRelayDeletesWaitingRowsAtStop(t *testing.T) {
	st := openStore(t, "p1")
	pub := &recordingPublisher{}
	e, err := engine.New(engine.Config{
		Store: st, Publisher: pub, Clock: clockwork.NewRealClock(), Logger: rydestest.Logger(t),
		OutboxSweep: time.Hour, OutboxDeleteDelay: time.Hour,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(rydestest.Context(t))
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()

	_, err = e.CreateRFQ(ctx, rydes.RFQRequest{Customer: "cmr", From: "a", To: "b"})
	require.NoError(t, err)
	rydestest.WaitFor(t, "the dispatch and the created event", func() bool { return pub.count() == 2 })
	require.Equal(t, 2, pendingOutbox(t, st), "published, waiting for the delete delay")
	cancel()
	require.NoError(t, <-done)
	require.Zero(t, pendingOutbox(t, st))
	require.Equal(t, 2, pub.count(), "nothing published twice")
}

// A delete that fails leaves the rows: the relay publishes them again
// (the broker drops the duplicates) and deletes them then.
func TestRelayRepublishesWhatItCouldNotDelete(t *testing.T) {
	st := &deleteGate{Store: openStore(t, "p1"), fail: 1}
	e, pub := runRelay(t, st)
	ctx := rydestest.Context(t)
	_, err := e.CreateRFQ(ctx, rydes.RFQRequest{Customer: "cmr", From: "a", To: "b"})
	require.NoError(t, err)
	rydestest.WaitFor(t, "the outbox to empty", func() bool { return pendingOutbox(t, st) == 0 })
	require.Equal(t, 4, pub.count(), "a dispatch and the created event, twice")
	evs := pub.events()
	require.Equal(t, evs[0], evs[1])
}

// readCounter is the SQLite store, which feeds the relay from memory
// (store.OutboxFeed), counting the reads of the outbox table.
type readCounter struct {
	*sqlite.Store
	reads atomic.Int64
}

func (s *readCounter) PendingOutbox(ctx context.Context, p store.PendingOutboxParams) ([]store.OutboxMessage, error) {
	s.reads.Add(1)
	return s.Store.PendingOutbox(ctx, p)
}

// A store that feeds the relay: what each commit wrote to the outbox is
// published from memory, each message once; the table is read at the
// first round only.
func TestRelayPublishesFromMemory(t *testing.T) {
	st := &readCounter{Store: openStore(t, "p1", "p2")}
	e, pub := runRelay(t, st)
	rydestest.WaitFor(t, "the first round's read", func() bool { return st.reads.Load() == 1 })
	ctx := rydestest.Context(t)
	for range 5 {
		_, err := e.CreateRFQ(ctx, rydes.RFQRequest{Customer: "cmr", From: "a", To: "b"})
		require.NoError(t, err)
	}
	rydestest.WaitFor(t, "every message", func() bool { return pub.count() >= 10 })
	rydestest.WaitFor(t, "the outbox to empty", func() bool { return pendingOutbox(t, st.Store) == 0 })
	require.Equal(t, 10, pub.count(), "the dispatches and the created event of each request, each once")
	require.EqualValues(t, 1, st.reads.Load(), "reads of the outbox table")
}

// When the relay falls so far behind that the feed holds no more, what it
// dropped is read from the table, and published once all the same.
func TestRelayReadsWhatTheFeedDropped(t *testing.T) {
	st := &readCounter{Store: openStore(t, "p1")}
	e, pub := runRelay(t, st, func(c *engine.Config) { c.OutboxBatch = 1 }) // the feed holds 4
	rydestest.WaitFor(t, "the first round's read", func() bool { return st.reads.Load() == 1 })
	ctx := rydestest.Context(t)
	var answers []store.StageAnswer
	for range 5 {
		rfq, err := e.CreateRFQ(ctx, rydes.RFQRequest{Customer: "cmr", From: "a", To: "b"})
		require.NoError(t, err)
		answers = append(answers, store.StageAnswer{Answer: rydes.Answer{RFQID: rfq.ID, Provider: "p1", Kind: rydes.AnswerDecline, ReceivedAt: time.Now()}})
	}
	rydestest.WaitFor(t, "the creates' messages", func() bool { return pub.count() >= 10 })
	// One commit of five messages, one per RFQ: more than the feed holds.
	_, err := st.StageAnswers(ctx, store.StageAnswersParams{Answers: answers, Now: time.Now()})
	require.NoError(t, err)
	rydestest.WaitFor(t, "the outbox to empty", func() bool { return pendingOutbox(t, st.Store) == 0 })
	require.Equal(t, 15, pub.count(), "per request its dispatch, its created event and its decline with complete, each once")
	require.GreaterOrEqual(t, st.reads.Load(), int64(2), "the first round's read, and one for what was dropped")
}

// What a process writes at start, before its relay runs (a provider delete
// it finishes), the store feeds the relay and the table holds, behind what
// an earlier run left unpublished: the first round publishes the table in
// id order, each message once, so the older rows go first.
func TestRelayStartsInIDOrder(t *testing.T) {
	st := openStore(t, "p1")
	ctx := rydestest.Context(t)
	left, err := rydes.NewRFQ(rydes.NewID(), rydes.RFQRequest{Customer: "cmr", From: "a", To: "b"}, []string{"p1"}, time.Now(), rydes.Limits{DefaultTimeout: time.Minute, MaxTimeout: time.Hour})
	require.NoError(t, err)
	require.NoError(t, st.CreateRFQ(ctx, store.CreateRFQParams{RFQ: left})) // before the engine: not fed

	pub := &recordingPublisher{}
	e, err := engine.New(engine.Config{
		Store: st, Publisher: pub, Clock: clockwork.NewRealClock(), Logger: rydestest.Logger(t),
		OutboxSweep: time.Hour, RetryBackoff: time.Millisecond,
		Limits: rydes.Limits{DefaultTimeout: 30 * time.Second, MaxTimeout: 5 * time.Minute},
	})
	require.NoError(t, err)
	fed, err := e.CreateRFQ(ctx, rydes.RFQRequest{Customer: "cmr", From: "a", To: "b"}) // fed, before Run
	require.NoError(t, err)

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	rydestest.WaitFor(t, "the outbox to empty", func() bool { return pendingOutbox(t, st) == 0 })

	pub.mu.Lock()
	defer pub.mu.Unlock()
	var order []string
	for _, m := range pub.msgs {
		if m.Kind == store.OutboxEvent {
			order = append(order, m.Events[0].RFQID)
		}
	}
	require.Equal(t, []string{left.ID, fed.ID}, order, "created events in id order, each once")
	require.Len(t, pub.msgs, 4)
}
