package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/store"
)

// Inbound is one answer as a transport received it.
type Inbound struct {
	// Answer is the decoded answer. Its Provider is whoever the transport
	// authenticated and ReceivedAt when the transport received it; both
	// are always set. When Err is set, Answer may hold only those two and
	// the RFQ id.
	Answer rydes.Answer
	// Payload is the body as received, kept with the answer for audit.
	Payload []byte
	// Err is why the body did not decode to a valid answer, or nil. Such
	// an answer is refused (rydes.RejectInvalid) and recorded for audit.
	Err error
}

// ErrGathererStopped is returned for an answer handed to a Gatherer that
// stopped before it was staged: nothing was recorded, and the provider
// should send it again (to another instance, or after a restart).
var ErrGathererStopped = errors.New("the gatherer stopped before the answer was staged")

// GathererConfig tunes a Gatherer.
type GathererConfig struct {
	// MaxBatch is the most answers one transaction stages (default 256).
	MaxBatch int
	// CommitTimeout bounds one group commit, which a stop does not cut
	// short (default 30s).
	CommitTimeout time.Duration
	// Linger is how long a batch waits for the rest of the answers due for
	// its RFQs before it commits (default DefaultLinger; negative: never).
	// Providers asked at once answer within a fraction of a millisecond of
	// each other; staging an RFQ's answers in one transaction rather than
	// two saves a commit and brings its completion one commit sooner. A
	// batch that holds every answer due commits at once, and so does one
	// whose RFQs this process did not create.
	Linger time.Duration
}

// DefaultLinger is GathererConfig.Linger's default.
const DefaultLinger = time.Millisecond

// Gatherer stages answers in groups: each answer handed to Submit waits
// while the transaction before it commits, and the next transaction takes
// every answer that waited, up to MaxBatch (group commit). Under load one
// commit, and its fsync, stages many answers. A batch whose RFQs still
// have answers due (the engine counts them for the RFQs it created) waits
// for them up to Linger, so that providers that answer together are
// staged together; otherwise, and for RFQs it does not know, it commits at
// once. The linger is measured on the real clock, not the engine's: it is
// a matter of performance, not of deadlines. Submit returns only once the
// answer's transaction committed, so a transport may acknowledge the
// answer to its provider then: nothing is acknowledged before it is
// durable.
//
// A Gatherer is safe for concurrent use; Run drives it.
type Gatherer struct {
	e        *Engine
	maxBatch int
	timeout  time.Duration
	linger   time.Duration

	queue    chan *submission
	quit     chan struct{} // closed when Run stops taking answers
	finished chan struct{} // closed when Run returned

	mu       sync.Mutex
	inflight map[*submission]time.Time // received, not yet decided
}

// submission is one answer waiting for its group commit.
type submission struct {
	in   Inbound
	res  store.StageResult
	err  error
	done chan struct{}
}

// NewGatherer returns a Gatherer staging answers through e.
func NewGatherer(e *Engine, cfg GathererConfig) *Gatherer {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 256
	}
	if cfg.CommitTimeout <= 0 {
		cfg.CommitTimeout = 30 * time.Second
	}
	if cfg.Linger == 0 {
		cfg.Linger = DefaultLinger
	}
	return &Gatherer{
		e:        e,
		maxBatch: cfg.MaxBatch,
		timeout:  cfg.CommitTimeout,
		linger:   cfg.Linger,
		queue:    make(chan *submission, cfg.MaxBatch),
		quit:     make(chan struct{}),
		finished: make(chan struct{}),
		inflight: make(map[*submission]time.Time),
	}
}

// Submit stages in with the next group commit and returns what staging
// decided, once it is durable. An answer that did not decode (in.Err) is
// refused as invalid and recorded. An error means the answer's fate is
// unknown to the caller (ctx ended, the store failed, the gatherer
// stopped): it may or may not be staged, and sending it again is safe,
// since staging is idempotent.
func (g *Gatherer) Submit(ctx context.Context, in Inbound) (store.StageResult, error) {
	if in.Answer.ReceivedAt.IsZero() {
		in.Answer.ReceivedAt = g.e.clock.Now().UTC().Truncate(time.Microsecond)
	}
	s := &submission{in: in, done: make(chan struct{})}
	g.mu.Lock()
	g.inflight[s] = in.Answer.ReceivedAt
	g.mu.Unlock()
	select {
	case <-g.quit:
		g.forget(s)
		return store.StageResult{}, ErrGathererStopped
	default:
	}
	select {
	case g.queue <- s:
	case <-g.quit:
		g.forget(s)
		return store.StageResult{}, ErrGathererStopped
	case <-ctx.Done():
		g.forget(s)
		return store.StageResult{}, fmt.Errorf("submit answer: %w", ctx.Err())
	}
	select {
	case <-s.done:
		return s.res, s.err
	case <-g.finished:
		// Run drains the queue before it returns; a submission that got
		// in after that was never taken.
		select {
		case <-s.done:
			return s.res, s.err
		default:
			g.forget(s)
			return store.StageResult{}, ErrGathererStopped
		}
	case <-ctx.Done():
		// The commit goes on; the watermark keeps covering the answer
		// until it is decided.
		return store.StageResult{}, fmt.Errorf("submit answer: %w", ctx.Err())
	}
}

// SubmitAnswer stages one answer that a provider sent over HTTP, signed in
// with its own credentials, with the next group commit. A provider that
// was not asked for the RFQ gets EFORBIDDEN and nothing is recorded; an
// unknown RFQ is ENOTFOUND; anything else is decided and staged as Submit
// does.
func (g *Gatherer) SubmitAnswer(ctx context.Context, provider rydes.Provider, a rydes.Answer, payload []byte) (store.StageResult, error) {
	if err := g.e.checkAsked(ctx, provider, a); err != nil {
		return store.StageResult{}, err
	}
	return g.Submit(ctx, Inbound{Answer: a, Payload: payload})
}

// forget drops s from the answers in flight.
func (g *Gatherer) forget(s *submission) {
	g.mu.Lock()
	delete(g.inflight, s)
	g.mu.Unlock()
}

// Oldest returns when the oldest answer handed to Submit and not yet
// decided was received, and false if none is in flight. An RFQ whose
// deadline is after it must not expire yet: that answer may be on time.
func (g *Gatherer) Oldest() (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var oldest time.Time
	for _, t := range g.inflight {
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	return oldest, !oldest.IsZero()
}

// InFlight returns how many answers were handed to Submit and are not
// decided yet.
func (g *Gatherer) InFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.inflight)
}

// Watermark is Oldest in the shape of Config.AnswersWatermark.
func (g *Gatherer) Watermark(context.Context) (time.Time, bool, error) {
	t, ok := g.Oldest()
	return t, ok, nil
}

// Run stages submitted answers until ctx ends; then it stages what is
// already waiting, refuses what comes later with ErrGathererStopped, and
// returns nil. Run must be called once.
func (g *Gatherer) Run(ctx context.Context) error {
	defer close(g.finished)
	batch := make([]*submission, 0, g.maxBatch)
	for {
		select {
		case <-ctx.Done():
			close(g.quit)
			// Stage what waits; a Submit racing with the stop may still
			// get in after this, and Submit answers it.
			for {
				batch = g.fill(batch[:0])
				if len(batch) == 0 {
					return nil
				}
				g.commit(ctx, batch)
			}
		case s := <-g.queue:
			batch = g.fill(append(batch[:0], s))
			batch = g.lingerFor(ctx, batch)
			g.commit(ctx, batch)
		}
	}
}

// fill adds to batch whatever is already waiting, up to MaxBatch, without
// waiting for more.
func (g *Gatherer) fill(batch []*submission) []*submission {
	for len(batch) < g.maxBatch {
		select {
		case s := <-g.queue:
			batch = append(batch, s)
		default:
			return batch
		}
	}
	return batch
}

// lingerFor returns batch with the answers that arrive while it waits for
// the rest of the answers due for its RFQs: until every RFQ of batch that
// the engine follows has all its due answers in it, Linger passed, batch is
// full or ctx ended, whichever comes first.
func (g *Gatherer) lingerFor(ctx context.Context, batch []*submission) []*submission {
	if g.linger <= 0 || len(batch) >= g.maxBatch {
		return batch
	}
	// missing counts, per RFQ of batch, the due answers not in it (none
	// for an RFQ the engine does not follow); waiting is how many RFQs
	// miss some.
	missing := map[string]int{}
	waiting := 0
	add := func(s *submission) {
		id := s.in.Answer.RFQID
		n, seen := missing[id]
		if !seen {
			if n = g.e.answersExpected(id); n > 0 {
				waiting++
			}
		}
		if n > 0 {
			if n--; n == 0 {
				waiting--
			}
		}
		missing[id] = n
	}
	for _, s := range batch {
		add(s)
	}
	if waiting == 0 {
		return batch
	}
	timer := time.NewTimer(g.linger)
	defer timer.Stop()
	for waiting > 0 && len(batch) < g.maxBatch {
		select {
		case s := <-g.queue:
			batch = append(batch, s)
			add(s)
		case <-timer.C:
			return batch
		case <-ctx.Done():
			return batch
		}
	}
	return batch
}

// commit stages batch in one transaction and tells each submission.
func (g *Gatherer) commit(ctx context.Context, batch []*submission) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.timeout)
	defer cancel()
	answers := make([]store.StageAnswer, 0, len(batch))
	staged := make([]*submission, 0, len(batch))
	var rejections []rydes.Rejection
	var refused []*submission
	for _, s := range batch {
		in := s.in
		if in.Err != nil {
			rejections = append(rejections, rydes.Rejection{
				RFQID: in.Answer.RFQID, Provider: in.Answer.Provider, Reason: rydes.RejectInvalid,
				Message: in.Err.Error(), ReceivedAt: in.Answer.ReceivedAt, Payload: in.Payload,
			})
			refused = append(refused, s)
			continue
		}
		answers = append(answers, store.StageAnswer{Answer: in.Answer, Payload: in.Payload})
		staged = append(staged, s)
	}
	res, err := g.e.StageAnswers(ctx, answers, rejections)
	if err == nil && len(res) != len(staged) {
		err = fmt.Errorf("stage answers: %d results for %d answers", len(res), len(staged))
	}
	for i, s := range staged {
		if err != nil {
			s.err = err
			continue
		}
		s.res = res[i]
		g.e.answerDecided(s.in.Answer.RFQID, res[i])
	}
	for _, s := range refused {
		if err != nil {
			s.err = err
			continue
		}
		s.res = store.StageResult{Decision: rydes.Decision{
			Outcome: rydes.OutcomeRejected, Reason: rydes.RejectInvalid, Message: s.in.Err.Error(),
		}}
	}
	g.mu.Lock()
	for _, s := range batch {
		delete(g.inflight, s)
	}
	g.mu.Unlock()
	for _, s := range slices.Concat(staged, refused) {
		close(s.done)
	}
}
