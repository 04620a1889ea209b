package engine_test

import (
	"context"
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

// watermark is a settable answers watermark.
type watermark struct {
	mu     sync.Mutex
	oldest time.Time
	ok     bool
}

func (w *watermark) set(oldest time.Time, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.oldest, w.ok = oldest, ok
}

func (w *watermark) get(context.Context) (time.Time, bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.oldest, w.ok, nil
}

// An answer received before the deadline but held up (a gatherer killed
// with it, the ack wait) keeps its RFQ open until it is staged: the RFQ
// completes with it instead of expiring without it.
func TestExpiryWaitsForAnswersReceivedBeforeTheDeadline(t *testing.T) {
	ctx := rydestest.Context(t)
	st := openStore(t, "p1", "p2")
	clock := clockwork.NewFakeClockAt(start)
	wm := &watermark{}
	eng, err := engine.New(engine.Config{
		Store: st, Publisher: &recordingPublisher{}, Clock: clock, Logger: rydestest.Logger(t),
		Limits:           rydes.Limits{DefaultTimeout: 10 * time.Second, MaxTimeout: time.Minute},
		AnswersWatermark: wm.get, ExpiryGrace: time.Minute,
	})
	require.NoError(t, err)
	held, err := eng.CreateRFQ(ctx, rydes.RFQRequest{Customer: "cmr", From: "A", To: "B"})
	require.NoError(t, err)
	free, err := eng.CreateRFQ(ctx, rydes.RFQRequest{Customer: "cmr", From: "A", To: "B", Timeout: 5 * time.Second})
	require.NoError(t, err)

	// p1 answered held at 9s, stored by the broker, not yet staged.
	received := start.Add(9 * time.Second)
	wm.set(received, true)
	clock.Advance(30 * time.Second)
	n, err := eng.ExpireDue(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "only the RFQ whose deadline came before the waiting answer expires")
	got, err := eng.GetRFQ(ctx, free.ID, "")
	require.NoError(t, err)
	require.Equal(t, rydes.StatusExpired, got.Status)
	got, err = eng.GetRFQ(ctx, held.ID, "")
	require.NoError(t, err)
	require.Equal(t, rydes.StatusOpen, got.Status, "held open: an answer received before its deadline waits")

	// The answers come back after the ack wait, decided now, received then.
	res, err := eng.StageAnswers(ctx, []store.StageAnswer{
		{Answer: rydes.Answer{RFQID: held.ID, Provider: "p1", Kind: rydes.AnswerDecline, ReceivedAt: received}},
		{Answer: rydes.Answer{RFQID: held.ID, Provider: "p2", Kind: rydes.AnswerDecline, ReceivedAt: received}},
	}, nil)
	require.NoError(t, err)
	require.Equal(t, rydes.OutcomeStaged, res[0].Decision.Outcome)
	require.Equal(t, rydes.StatusComplete, res[1].Status, "complete with the answers, not expired without them")
}

// The watermark holds expiries back at most ExpiryGrace: an answer that
// cannot be staged does not keep RFQs open for ever.
func TestExpiryGraceBoundsTheWatermark(t *testing.T) {
	ctx := rydestest.Context(t)
	st := openStore(t, "p1")
	clock := clockwork.NewFakeClockAt(start)
	wm := &watermark{}
	wm.set(start.Add(-time.Hour), true) // a poison answer, stuck
	eng, err := engine.New(engine.Config{
		Store: st, Publisher: &recordingPublisher{}, Clock: clock, Logger: rydestest.Logger(t),
		Limits:           rydes.Limits{DefaultTimeout: 10 * time.Second, MaxTimeout: time.Minute},
		AnswersWatermark: wm.get, ExpiryGrace: 30 * time.Second,
	})
	require.NoError(t, err)
	r, err := eng.CreateRFQ(ctx, rydes.RFQRequest{Customer: "cmr", From: "A", To: "B"})
	require.NoError(t, err)

	clock.Advance(39 * time.Second) // deadline + 29s
	n, err := eng.ExpireDue(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "within the grace")
	clock.Advance(time.Second) // deadline + 30s
	n, err = eng.ExpireDue(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the grace is over")
	got, err := eng.GetRFQ(ctx, r.ID, "")
	require.NoError(t, err)
	require.Equal(t, rydes.StatusExpired, got.Status)
}
