package engine_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
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

// gatedStore counts StageAnswers transactions and can hold them at a gate.
type gatedStore struct {
	store.Store
	mu      sync.Mutex
	batches []int // answers per StageAnswers call
	gate    chan struct{}
	entered chan struct{}
}

func (s *gatedStore) StageAnswers(ctx context.Context, p store.StageAnswersParams) ([]store.StageResult, error) {
	s.mu.Lock()
	s.batches = append(s.batches, len(p.Answers))
	gate, entered := s.gate, s.entered
	s.mu.Unlock()
	if gate != nil {
		entered <- struct{}{}
		<-gate
	}
	return s.Store.StageAnswers(ctx, p)
}

func (s *gatedStore) hold() (entered, release chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate, s.entered = make(chan struct{}), make(chan struct{}, 1)
	return s.entered, s.gate
}

func (s *gatedStore) open() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate, s.entered = nil, nil
}

func (s *gatedStore) counts() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.batches...)
}

type gatherBundle struct {
	*bundle
	gated    *gatedStore
	gatherer *engine.Gatherer
	stop     func()
}

// setupGatherer returns an engine on a gated store with providers p1..p10
// and a running Gatherer; stop stops it and waits for Run to return.
func setupGatherer(t *testing.T) *gatherBundle {
	t.Helper()
	return setupGathererWith(t, engine.GathererConfig{MaxBatch: 64})
}

// setupGathererWith is setupGatherer with the Gatherer configured by cfg.
func setupGathererWith(t *testing.T, cfg engine.GathererConfig) *gatherBundle {
	t.Helper()
	providers := []string{"p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9", "p10"}
	gs := &gatedStore{Store: openStore(t, providers...)}
	b := &bundle{ctx: rydestest.Context(t), clock: clockwork.NewFakeClockAt(start), store: gs, pub: &recordingPublisher{}}
	var err error
	b.engine, err = engine.New(engine.Config{
		Store: gs, Publisher: b.pub, Clock: b.clock, Logger: rydestest.Logger(t),
		Limits: rydes.Limits{DefaultTimeout: 30 * time.Second, MaxTimeout: 5 * time.Minute},
	})
	require.NoError(t, err)
	g := engine.NewGatherer(b.engine, cfg)
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	return &gatherBundle{bundle: b, gated: gs, gatherer: g, stop: stop}
}

func inbound(a store.StageAnswer) engine.Inbound { return engine.Inbound{Answer: a.Answer} }

// submitHeld submits p1's quote to rfqID and returns once its transaction
// is committing, held at the gate until release is closed; later
// transactions pass. first receives Submit's error.
func (gb *gatherBundle) submitHeld(rfqID string) (first <-chan error, release chan struct{}) {
	entered, release := gb.gated.hold()
	errc := make(chan error, 1)
	go func() {
		_, err := gb.gatherer.Submit(gb.ctx, inbound(quote(rfqID, "p1", "10.00", start)))
		errc <- err
	}()
	<-entered
	gb.gated.open()
	return errc, release
}

// submitAll submits answers concurrently and returns the results in order.
func (gb *gatherBundle) submitAll(answers []store.StageAnswer) ([]store.StageResult, []error) {
	res := make([]store.StageResult, len(answers))
	errs := make([]error, len(answers))
	var wg sync.WaitGroup
	for i, a := range answers {
		wg.Go(func() { res[i], errs[i] = gb.gatherer.Submit(gb.ctx, inbound(a)) })
	}
	wg.Wait()
	return res, errs
}

// An RFQ's answers that come together are staged in one transaction: the
// batch waits (here as long as it takes) for the answers due of the RFQs
// it holds. Once the RFQ is complete, nothing is due for it any more, and
// a redelivered answer commits at once.
func TestGathererLingersForTheRestOfAnRFQsAnswers(t *testing.T) {
	gb := setupGathererWith(t, engine.GathererConfig{MaxBatch: 64, Linger: time.Hour})
	rfq := gb.create(t)
	var answers []store.StageAnswer
	for i, p := range []string{"p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9", "p10"} {
		answers = append(answers, quote(rfq.ID, p, "11.00", start.Add(time.Duration(i)*time.Millisecond)))
	}
	res, errs := gb.submitAll(answers)
	require.NoError(t, errors.Join(errs...))
	for _, r := range res {
		require.Equal(t, rydes.OutcomeStaged, r.Decision.Outcome)
	}
	require.Equal(t, []int{10}, gb.gated.counts(), "ten answers of one RFQ, one transaction")
	require.Equal(t, rydes.StatusComplete, gb.get(t, rfq.ID).Status)

	again, err := gb.gatherer.Submit(gb.ctx, inbound(answers[0]))
	require.NoError(t, err)
	require.Equal(t, rydes.OutcomeDuplicate, again.Decision.Outcome)
	require.Equal(t, []int{10, 1}, gb.gated.counts())
}

// An answer for an RFQ that this process did not create (another instance
// did, or this one before a restart) is staged without waiting for others.
func TestGathererDoesNotLingerForAnRFQItDoesNotFollow(t *testing.T) {
	gb := setupGathererWith(t, engine.GathererConfig{MaxBatch: 64, Linger: time.Hour})
	rfq, err := rydes.NewRFQ(rydes.NewID(), rydes.RFQRequest{Customer: "cmr", From: "Frankfurt", To: "Las Vegas"},
		[]string{"p1", "p2", "p3"}, start, rydes.Limits{DefaultTimeout: 30 * time.Second, MaxTimeout: 5 * time.Minute})
	require.NoError(t, err)
	require.NoError(t, gb.store.CreateRFQ(gb.ctx, store.CreateRFQParams{RFQ: rfq}))
	res, err := gb.gatherer.Submit(gb.ctx, inbound(quote(rfq.ID, "p1", "10.00", start)))
	require.NoError(t, err)
	require.Equal(t, rydes.OutcomeStaged, res.Decision.Outcome)
	require.Equal(t, []int{1}, gb.gated.counts())
}

// A stop ends the wait: the answers taken are staged, not refused.
func TestGathererStopEndsTheLinger(t *testing.T) {
	gb := setupGathererWith(t, engine.GathererConfig{MaxBatch: 64, Linger: time.Hour})
	rfq := gb.create(t)
	type outcome struct {
		res store.StageResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := gb.gatherer.Submit(gb.ctx, inbound(quote(rfq.ID, "p1", "10.00", start)))
		done <- outcome{res, err}
	}()
	rydestest.WaitFor(t, "the gatherer waiting for the RFQ's other answers", func() bool {
		buf := make([]byte, 1<<20)
		return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "engine.(*Gatherer).lingerFor(")
	})
	gb.stop()
	out := <-done
	require.NoError(t, out.err)
	require.Equal(t, rydes.OutcomeStaged, out.res.Decision.Outcome)
	require.Equal(t, []int{1}, gb.gated.counts())
}

// A lone answer, with nine more due for its RFQ, is staged once the linger
// (the default, 1 ms) passed.
func TestGathererStagesOneAnswerAtOnce(t *testing.T) {
	gb := setupGatherer(t)
	rfq := gb.create(t)
	res, err := gb.gatherer.Submit(gb.ctx, inbound(quote(rfq.ID, "p1", "10.00", start)))
	require.NoError(t, err)
	require.Equal(t, rydes.OutcomeStaged, res.Decision.Outcome)
	require.Equal(t, rydes.StatusOpen, res.Status)
	require.Equal(t, []int{1}, gb.gated.counts())
	require.Len(t, gb.get(t, rfq.ID).Quotes, 1, "staged before Submit returned")
	_, inflight := gb.gatherer.Oldest()
	require.False(t, inflight)
}

// While one transaction commits, the answers that arrive wait and are
// staged together by the next: one commit for all of them.
func TestGathererCommitsWaitingAnswersTogether(t *testing.T) {
	gb := setupGatherer(t)
	rfq := gb.create(t)
	first, release := gb.submitHeld(rfq.ID)

	var rest []store.StageAnswer
	for i, p := range []string{"p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9", "p10"} {
		rest = append(rest, quote(rfq.ID, p, "11.00", start.Add(time.Duration(i+1)*time.Millisecond)))
	}
	type outcome struct {
		res []store.StageResult
		err error
	}
	results := make(chan outcome, 1)
	go func() {
		res, errs := gb.submitAll(rest)
		results <- outcome{res, errors.Join(errs...)}
	}()
	require.Eventually(t, func() bool { return gb.gatherer.InFlight() == 10 }, 10*time.Second, time.Millisecond,
		"the nine answers wait behind the first commit")
	oldest, ok := gb.gatherer.Oldest()
	require.True(t, ok)
	require.Equal(t, start, oldest, "the watermark is the oldest answer not yet decided")

	close(release)
	require.NoError(t, <-first)
	out := <-results
	require.NoError(t, out.err)
	for _, r := range out.res {
		require.Equal(t, rydes.OutcomeStaged, r.Decision.Outcome)
	}
	require.Equal(t, []int{1, 9}, gb.gated.counts(), "nine answers, one transaction")
	require.Equal(t, rydes.StatusComplete, gb.get(t, rfq.ID).Status)
	require.Zero(t, gb.gatherer.InFlight())
}

func TestGathererRefusesWhatDidNotDecode(t *testing.T) {
	gb := setupGatherer(t)
	rfq := gb.create(t)
	bad := engine.Inbound{
		Answer:  rydes.Answer{RFQID: rfq.ID, Provider: "p1", ReceivedAt: start},
		Payload: []byte(`{"rfq_id":`), Err: rydes.Errorf(rydes.EINVALID, "body: unexpected end of JSON input"),
	}
	res, err := gb.gatherer.Submit(gb.ctx, bad)
	require.NoError(t, err)
	require.Equal(t, rydes.Decision{Outcome: rydes.OutcomeRejected, Reason: rydes.RejectInvalid, Message: bad.Err.Error()}, res.Decision)
	rej, err := gb.store.ListRejections(gb.ctx, store.ListRejectionsParams{RFQID: rfq.ID})
	require.NoError(t, err)
	require.Len(t, rej, 1)
	require.Equal(t, rydes.RejectInvalid, rej[0].Reason)
	require.Equal(t, bad.Payload, rej[0].Payload)
}

// A stop stages what waits; what comes after is refused with
// ErrGathererStopped, and nothing of it is recorded.
func TestGathererStopStagesWhatWaits(t *testing.T) {
	gb := setupGatherer(t)
	rfq := gb.create(t)
	first, release := gb.submitHeld(rfq.ID)
	second := make(chan error, 1)
	go func() {
		_, err := gb.gatherer.Submit(gb.ctx, inbound(quote(rfq.ID, "p2", "10.00", start)))
		second <- err
	}()
	require.Eventually(t, func() bool { return gb.gatherer.InFlight() == 2 }, 10*time.Second, time.Millisecond)
	stopped := make(chan struct{})
	go func() { gb.stop(); close(stopped) }()
	close(release)
	<-stopped
	require.NoError(t, <-first)
	require.NoError(t, <-second, "queued before the stop: staged by it")
	_, err := gb.gatherer.Submit(gb.ctx, inbound(quote(rfq.ID, "p3", "10.00", start)))
	require.ErrorIs(t, err, engine.ErrGathererStopped)
	got := gb.get(t, rfq.ID)
	require.Len(t, got.Quotes, 2)
	require.Zero(t, gb.gatherer.InFlight())
}

// The gatherer's watermark holds expiry back: an answer received before
// the deadline and still committing is staged, not refused as late.
func TestGathererWatermarkHoldsExpiryBack(t *testing.T) {
	providers := []string{"p1", "p2"}
	gs := &gatedStore{Store: openStore(t, providers...)}
	clock := clockwork.NewFakeClockAt(start)
	var g *engine.Gatherer
	e, err := engine.New(engine.Config{
		Store: gs, Publisher: &recordingPublisher{}, Clock: clock, Logger: rydestest.Logger(t),
		Limits:           rydes.Limits{DefaultTimeout: 30 * time.Second, MaxTimeout: 5 * time.Minute},
		AnswersWatermark: func(ctx context.Context) (time.Time, bool, error) { return g.Watermark(ctx) },
	})
	require.NoError(t, err)
	g = engine.NewGatherer(e, engine.GathererConfig{})
	ctx, cancel := context.WithCancel(rydestest.Context(t))
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	rfq, err := e.CreateRFQ(ctx, rydes.RFQRequest{Customer: "cmr", From: "a", To: "b", Timeout: 10 * time.Second})
	require.NoError(t, err)
	entered, release := gs.hold()
	type outcome struct {
		res store.StageResult
		err error
	}
	res := make(chan outcome, 1)
	go func() {
		r, err := g.Submit(ctx, inbound(quote(rfq.ID, "p1", "10.00", rfq.Deadline.Add(-time.Millisecond))))
		res <- outcome{r, err}
	}()
	<-entered
	gs.open()
	clock.Advance(11 * time.Second) // past the deadline, the answer still committing
	n, err := e.ExpireDue(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "held back by the answer in flight")
	close(release)
	got := <-res
	require.NoError(t, got.err)
	require.Equal(t, rydes.OutcomeStaged, got.res.Decision.Outcome)
	n, err = e.ExpireDue(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "expires once the answer is decided")
}
