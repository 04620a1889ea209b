package engine_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/engine"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
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
// until the test ends.
func runRelay(t *testing.T, st store.Store) (*engine.Engine, *recordingPublisher) {
	t.Helper()
	pub := &recordingPublisher{}
	e, err := engine.New(engine.Config{
		Store: st, Publisher: pub, Clock: clockwork.NewRealClock(), Logger: rydestest.Logger(t),
		OutboxSweep: time.Hour, RetryBackoff: time.Millisecond,
		Limits: rydes.Limits{DefaultTimeout: 30 * time.Second, MaxTimeout: 5 * time.Minute},
	})
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
	require.Equal(t, 3, pub.count(), "two dispatches and the created event")

	_, err = e.CreateRFQ(ctx, req)
	require.NoError(t, err)
	rydestest.WaitFor(t, "the second request's messages", func() bool { return pub.count() >= 6 })
	require.Equal(t, 6, pub.count(), "nothing of the first published twice")

	st.mu.Lock()
	gate := st.gate
	st.gate = nil
	st.mu.Unlock()
	close(gate)
	rydestest.WaitFor(t, "the outbox to empty", func() bool { return pendingOutbox(t, st) == 0 })
	require.Equal(t, 6, pub.count())
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
