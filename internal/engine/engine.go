// Package engine runs rydes's scatter-gather: it creates RFQs and records who
// is asked, stages the answers that come back, closes each RFQ exactly once
// when every asked provider answered or its deadline passed, and relays the
// outbox (dispatches and events) to the broker.
//
// The engine knows neither HTTP nor NATS nor SQL: it works against the
// store.Store interface, a Publisher and a clock, and is tested with a fake
// clock.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/jonboulle/clockwork"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/auth"
	"github.com/wildrydes/rydes/internal/store"
)

// Publisher publishes committed outbox messages to the broker, durably, and
// so that publishing one again stores nothing twice while the broker holds
// it (bus.Publish: a request by its subject, events by their message id).
type Publisher interface {
	// Publish returns a nil error only when every message is acknowledged
	// by the broker, and then, per stream, the highest sequence the broker
	// acknowledged a message of this call with (a duplicate's ack
	// included), which the relay records with the delete of the messages
	// (store.DeleteOutboxParams.Acked).
	Publish(ctx context.Context, msgs []store.OutboxMessage) (map[string]uint64, error)
}

// Config holds what an Engine needs. Store and Publisher are required.
type Config struct {
	Store     store.Store
	Publisher Publisher
	Clock     clockwork.Clock // defaults to the real clock
	Logger    *slog.Logger    // defaults to slog.Default()
	Limits    rydes.Limits    // defaults to rydes.DefaultTimeout and rydes.DefaultMaxTimeout
	NewID     func() string   // defaults to rydes.NewID

	// OutboxBatch is how many outbox messages one publish round takes (default 512).
	OutboxBatch int
	// OutboxSweep is how often the outbox is checked without being kicked,
	// which picks up what another process or a crashed run left (default 1s).
	OutboxSweep time.Duration
	// DeadlineSweep is the longest the deadline loop sleeps, so that
	// deadlines of RFQs created by other processes fire too (default 1s).
	DeadlineSweep time.Duration
	// RetryBackoff is how long a loop waits after a failed round (default 250ms).
	RetryBackoff time.Duration
	// OutboxDeleteDelay is how long the relay lets the rows of what it
	// published wait to be deleted, unless OutboxBatch of them wait
	// already (default 50ms; negative: after every round). Nothing waits
	// for a delete, and a commit each round was most of the commits at
	// moderate load; a row still there after a crash is published again,
	// which the broker drops while it holds the message.
	OutboxDeleteDelay time.Duration

	// Retention is how long final RFQs (from when they closed) and the
	// records outside RFQs (dead letters, refused answers of no RFQ,
	// audit entries) are kept before the retention loop deletes them.
	// Zero keeps everything.
	Retention time.Duration
	// RetentionInterval is how often the retention loop runs (default 1m).
	RetentionInterval time.Duration
	// PurgeBatch is how many RFQs (or records) one purge transaction
	// deletes at most (default store.DefaultPurgeLimit), so that a purge
	// holds the database's write lock only briefly.
	PurgeBatch int

	// AnswersWatermark, if set, returns when the oldest answer still
	// waiting to be staged was received (false if none waits): the
	// Gatherer's Watermark. An RFQ whose deadline is after it is not
	// expired yet, since that answer, received before its deadline, may
	// still complete it.
	AnswersWatermark func(ctx context.Context) (oldest time.Time, ok bool, err error)
	// ExpiryGrace bounds how long the watermark may hold an expiry back
	// after its deadline (default 1m), so that an answer that cannot be
	// staged does not keep RFQs open.
	ExpiryGrace time.Duration
}

// DefaultOutboxDeleteDelay is Config.OutboxDeleteDelay's default.
const DefaultOutboxDeleteDelay = 50 * time.Millisecond

// Engine is rydes's scatter-gather engine. Its methods are safe for
// concurrent use; Run drives its background loops.
type Engine struct {
	store  store.Store
	pub    Publisher
	clock  clockwork.Clock
	log    *slog.Logger
	limits rydes.Limits
	newID  func() string

	outboxBatch   int
	outboxSweep   time.Duration
	deadlineSweep time.Duration
	retryBackoff  time.Duration
	deleteDelay   time.Duration

	retention         time.Duration
	retentionInterval time.Duration
	purgeBatch        int

	outboxKick   chan struct{}
	deadlineKick chan struct{}
	// deadlineWake is when the deadline loop means to wake next (Unix
	// nanoseconds), or 0 while it is not waiting: a new RFQ kicks it only
	// if it is due before that.
	deadlineWake atomic.Int64

	watermark   func(ctx context.Context) (time.Time, bool, error)
	expiryGrace time.Duration

	finals *expirable.LRU[string, rydes.RFQ] // final RFQs, by id
	// answersDue counts, for the RFQs this engine created, the answers not
	// yet staged (see Gatherer's linger); an RFQ missing from it is one
	// the gatherer knows nothing of.
	answersDue *expirable.LRU[string, int]

	// fresh holds what the store committed to the outbox, for the relay
	// to publish from memory (store.OutboxFeed); nil if the store does not
	// feed it.
	fresh *freshOutbox
}

// New returns an Engine for cfg.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.Publisher == nil {
		return nil, errors.New("engine: Store and Publisher are required")
	}
	e := &Engine{
		finals:            expirable.NewLRU[string, rydes.RFQ](finalCacheSize, nil, finalCacheTTL),
		store:             cfg.Store,
		pub:               cfg.Publisher,
		clock:             cfg.Clock,
		log:               cfg.Logger,
		limits:            cfg.Limits,
		newID:             cfg.NewID,
		outboxBatch:       cfg.OutboxBatch,
		outboxSweep:       cfg.OutboxSweep,
		deadlineSweep:     cfg.DeadlineSweep,
		retryBackoff:      cfg.RetryBackoff,
		deleteDelay:       cfg.OutboxDeleteDelay,
		retention:         cfg.Retention,
		retentionInterval: cfg.RetentionInterval,
		purgeBatch:        cfg.PurgeBatch,
		watermark:         cfg.AnswersWatermark,
		expiryGrace:       cfg.ExpiryGrace,
		outboxKick:        make(chan struct{}, 1),
		deadlineKick:      make(chan struct{}, 1),
	}
	if e.clock == nil {
		e.clock = clockwork.NewRealClock()
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.limits == (rydes.Limits{}) {
		e.limits = rydes.Limits{DefaultTimeout: rydes.DefaultTimeout, MaxTimeout: rydes.DefaultMaxTimeout}
	}
	if err := e.limits.Validate(); err != nil {
		return nil, fmt.Errorf("engine limits: %w", err)
	}
	// An RFQ takes answers for at most MaxTimeout (and the expiry's grace).
	e.answersDue = expirable.NewLRU[string, int](answersDueSize, nil, e.limits.MaxTimeout+time.Minute)
	if e.newID == nil {
		e.newID = rydes.NewID
	}
	if e.outboxBatch <= 0 {
		e.outboxBatch = 512
	}
	if e.outboxSweep <= 0 {
		e.outboxSweep = time.Second
	}
	if e.deadlineSweep <= 0 {
		e.deadlineSweep = time.Second
	}
	if e.retryBackoff <= 0 {
		e.retryBackoff = 250 * time.Millisecond
	}
	if e.deleteDelay == 0 {
		e.deleteDelay = DefaultOutboxDeleteDelay
	}
	if e.retention < 0 {
		return nil, fmt.Errorf("engine: retention must not be negative, got %s", e.retention)
	}
	if e.retentionInterval <= 0 {
		e.retentionInterval = time.Minute
	}
	if e.purgeBatch <= 0 {
		e.purgeBatch = store.DefaultPurgeLimit
	}
	if e.expiryGrace <= 0 {
		e.expiryGrace = time.Minute
	}
	if feed, ok := e.store.(store.OutboxFeed); ok {
		e.fresh = &freshOutbox{max: freshOutboxBatches * e.outboxBatch}
		feed.SetOutboxListener(func(msgs []store.OutboxMessage) {
			e.fresh.add(msgs)
			e.KickOutbox()
		})
	}
	return e, nil
}

// Limits returns the bounds requests are held to.
func (e *Engine) Limits() rydes.Limits { return e.limits }

// CreateRFQ validates req, asks every active provider, stores the RFQ with
// its dispatches in one transaction and returns it. The dispatches are
// published after the commit by the outbox relay; a crash in between still
// publishes them on the next run.
func (e *Engine) CreateRFQ(ctx context.Context, req rydes.RFQRequest) (rydes.RFQ, error) {
	if err := req.Validate(e.limits); err != nil {
		return rydes.RFQ{}, err
	}
	providers, err := e.store.ListProviders(ctx, store.ListProvidersParams{Status: rydes.ProviderActive})
	if err != nil {
		return rydes.RFQ{}, fmt.Errorf("create rfq: list providers: %w", err)
	}
	// The asked set: every active provider whose routing filter takes the
	// request, fixed now.
	asked := make([]string, 0, len(providers))
	for _, p := range providers {
		if p.Filter.Matches(req) {
			asked = append(asked, p.ID)
		}
	}
	slices.SortFunc(asked, rydes.CompareProviderIDs)
	rfq, err := rydes.NewRFQ(e.newID(), req, asked, e.clock.Now(), e.limits)
	if err != nil {
		return rydes.RFQ{}, err
	}
	if rfq.NotifyURL != "" {
		// Signs the completion notification; shown once, in this answer.
		rfq.NotifySecret = auth.NewWebhookSecret()
	}
	if err := e.store.CreateRFQ(ctx, store.CreateRFQParams{RFQ: rfq}); err != nil {
		return rydes.RFQ{}, fmt.Errorf("create rfq %s: %w", rfq.ID, err)
	}
	e.KickOutbox()
	if len(rfq.Providers) > 1 {
		e.answersDue.Add(rfq.ID, len(rfq.Providers))
	}
	// The loop wakes for it only if it would sleep past its deadline:
	// with one timeout for all, a new RFQ is due after those before it,
	// and a kick for each (a round, a read of the next deadline) was 1 %
	// of the CPU at saturation.
	if wake := e.deadlineWake.Load(); wake == 0 || rfq.Deadline.UnixNano() < wake {
		kick(e.deadlineKick)
	}
	return rfq, nil
}

// GetRFQ returns the RFQ with its roster and quotes. If customer is not
// empty, another customer's RFQ is not found.
func (e *Engine) GetRFQ(ctx context.Context, id, customer string) (rydes.RFQ, error) {
	if err := rydes.ValidateID(id); err != nil {
		return rydes.RFQ{}, err
	}
	if rfq, ok, err := e.cachedFinal(id, customer); ok {
		if err != nil {
			return rydes.RFQ{}, fmt.Errorf("get rfq %s: %w", id, err)
		}
		return cloneRFQ(rfq), nil
	}
	rfq, err := e.store.GetRFQ(ctx, store.GetRFQParams{ID: id, Customer: customer})
	if err != nil {
		return rydes.RFQ{}, fmt.Errorf("get rfq %s: %w", id, err)
	}
	if rfq.Status.Final() {
		e.finals.Add(id, cloneRFQ(rfq))
	}
	return rfq, nil
}

// RFQVersion returns the seq of the RFQ's latest event (what its ETag is
// made of) without reading the rest of it: cheap conditional reads. Errors
// as for GetRFQ.
func (e *Engine) RFQVersion(ctx context.Context, id, customer string) (int64, error) {
	if err := rydes.ValidateID(id); err != nil {
		return 0, err
	}
	if rfq, ok, err := e.cachedFinal(id, customer); ok {
		if err != nil {
			return 0, fmt.Errorf("rfq version %s: %w", id, err)
		}
		return rfq.Seq, nil
	}
	seq, err := e.store.RFQSeq(ctx, store.GetRFQParams{ID: id, Customer: customer})
	if err != nil {
		return 0, fmt.Errorf("rfq version %s: %w", id, err)
	}
	return seq, nil
}

// answersDueSize bounds how many RFQs answersDue follows: the oldest are
// forgotten first, and the gatherer then stages their answers without
// lingering, as for an RFQ another instance created.
const answersDueSize = 65_536

// answersExpected returns how many answers of RFQ id are still to come, as
// far as this engine knows: 0 for an RFQ it did not create, or no longer
// follows.
func (e *Engine) answersExpected(id string) int {
	n, _ := e.answersDue.Peek(id)
	return n
}

// answerDecided records how the store decided an answer of RFQ id: one
// answer fewer is due if it was staged, and none once the RFQ is final.
func (e *Engine) answerDecided(id string, r store.StageResult) {
	staged := r.Decision.Outcome == rydes.OutcomeStaged
	if !staged && !r.Status.Final() {
		return
	}
	n, ok := e.answersDue.Peek(id)
	if !ok {
		return
	}
	if staged {
		n--
	}
	if r.Status.Final() || n <= 0 {
		e.answersDue.Remove(id)
		return
	}
	e.answersDue.Add(id, n)
}

// Final RFQs never change, so reads of them are served from memory: at most
// finalCacheSize of them, each for at most finalCacheTTL (which bounds how
// long one outlives its removal by retention).
const (
	finalCacheSize = 4096
	finalCacheTTL  = time.Minute
)

// cachedFinal looks the final RFQ id up in memory: ok reports whether it is
// there, and err is ENOTFOUND, as the store's, if customer is set and owns
// another's. The RFQ returned is the cache's own: copy it to hand it out.
func (e *Engine) cachedFinal(id, customer string) (rydes.RFQ, bool, error) {
	rfq, ok := e.finals.Get(id)
	if ok && customer != "" && rfq.Customer != customer {
		return rydes.RFQ{}, true, rydes.Errorf(rydes.ENOTFOUND, "no RFQ %s", id)
	}
	return rfq, ok, nil
}

// cloneRFQ copies r's roster, quotes and attributes, so that the cache and
// its callers never share them.
func cloneRFQ(r rydes.RFQ) rydes.RFQ {
	r.Providers = slices.Clone(r.Providers)
	r.Quotes = slices.Clone(r.Quotes)
	r.Attributes = maps.Clone(r.Attributes)
	return r
}

// CancelRFQ cancels an open RFQ. If customer is not empty, another
// customer's RFQ is not found.
func (e *Engine) CancelRFQ(ctx context.Context, id, customer string) (rydes.RFQ, error) {
	if err := rydes.ValidateID(id); err != nil {
		return rydes.RFQ{}, err
	}
	res, err := e.store.CancelRFQ(ctx, store.CancelRFQParams{ID: id, Customer: customer, Now: e.clock.Now().UTC()})
	if err != nil {
		return rydes.RFQ{}, fmt.Errorf("cancel rfq %s: %w", id, err)
	}
	e.KickOutbox()
	return res.RFQ, nil
}

// StageAnswers stages a batch of answers in one transaction (group commit)
// and records the rejections given (answers that could not even be decoded)
// for audit. When it returns nil, every answer is durably decided and the
// messages carrying them may be acknowledged.
func (e *Engine) StageAnswers(ctx context.Context, answers []store.StageAnswer, rejections []rydes.Rejection) ([]store.StageResult, error) {
	if len(rejections) > 0 {
		if err := e.store.RecordRejections(ctx, rejections); err != nil {
			return nil, fmt.Errorf("record %d rejections: %w", len(rejections), err)
		}
	}
	if len(answers) == 0 {
		return nil, nil
	}
	res, err := e.store.StageAnswers(ctx, store.StageAnswersParams{Answers: answers, Now: e.clock.Now().UTC()})
	if err != nil {
		return nil, fmt.Errorf("stage %d answers: %w", len(answers), err)
	}
	for i, r := range res {
		a := answers[i].Answer
		if r.Decision.Outcome == rydes.OutcomeRejected {
			e.log.Info("answer refused", "rfq", a.RFQID, "provider", a.Provider, "reason", r.Decision.Reason, "detail", r.Decision.Message)
		}
		if len(r.Events) > 0 {
			e.KickOutbox()
		}
	}
	return res, nil
}

// SubmitAnswer stages one answer that a provider sent over HTTP, signed in
// with its own credentials. A provider that was not asked for the RFQ gets
// EFORBIDDEN and nothing is recorded; an unknown RFQ is ENOTFOUND. Anything
// else is decided and staged like an answer from the answers stream.
func (e *Engine) SubmitAnswer(ctx context.Context, provider rydes.Provider, a rydes.Answer, payload []byte) (store.StageResult, error) {
	if err := e.checkAsked(ctx, provider, a); err != nil {
		return store.StageResult{}, err
	}
	res, err := e.StageAnswers(ctx, []store.StageAnswer{{Answer: a, Payload: payload}}, nil)
	if err != nil {
		return store.StageResult{}, err
	}
	return res[0], nil
}

// checkAsked checks that provider answers a as itself, for an RFQ that
// exists and asked it.
func (e *Engine) checkAsked(ctx context.Context, provider rydes.Provider, a rydes.Answer) error {
	if a.Provider != provider.ID {
		return rydes.Errorf(rydes.EFORBIDDEN, "a provider answers only as itself")
	}
	if err := rydes.ValidateID(a.RFQID); err != nil {
		return err
	}
	rfq, err := e.store.GetRFQ(ctx, store.GetRFQParams{ID: a.RFQID})
	if err != nil {
		return fmt.Errorf("submit answer to rfq %s: %w", a.RFQID, err)
	}
	if !slices.Contains(rfq.Asked(), provider.ID) {
		return rydes.Errorf(rydes.EFORBIDDEN, "provider %s was not asked for rfq %s", provider.ID, a.RFQID)
	}
	return nil
}

// ExpireDue expires every open RFQ whose deadline has passed and returns how
// many it expired.
func (e *Engine) ExpireDue(ctx context.Context) (int, error) {
	n, _, _, err := e.expireDue(ctx)
	return n, err
}

// expireDue is ExpireDue that also returns the earliest deadline of an open
// RFQ afterwards (false if none is open), for the deadline loop to sleep
// until.
func (e *Engine) expireDue(ctx context.Context) (n int, next time.Time, ok bool, err error) {
	const batch = 256
	now := e.clock.Now().UTC()
	before := e.expiryCutoff(ctx, now)
	// Most rounds find nothing due (the loop wakes for every new RFQ): a
	// read says so without taking the database's write lock, and is then
	// the next deadline too.
	if next, ok, err = e.store.NextDeadline(ctx); err != nil {
		return 0, next, ok, fmt.Errorf("expire due rfqs: next deadline: %w", err)
	}
	if !ok || next.After(before) {
		return 0, next, ok, nil
	}
	for {
		ids, err := e.store.ExpireDue(ctx, store.ExpireDueParams{Now: now, Before: before, Limit: batch})
		if err != nil {
			return n, next, false, fmt.Errorf("expire due rfqs: %w", err)
		}
		n += len(ids)
		if len(ids) > 0 {
			e.KickOutbox()
		}
		if len(ids) < batch {
			break
		}
	}
	if next, ok, err = e.store.NextDeadline(ctx); err != nil {
		return n, next, ok, fmt.Errorf("expire due rfqs: next deadline: %w", err)
	}
	return n, next, ok, nil
}

// FlushOutbox publishes pending outbox messages until none is left and
// returns how many it published. Messages are removed from the outbox only
// after the broker acknowledged them, and in the same transaction the
// highest sequence each stream acknowledged them with is recorded
// (store.AckedSetting), for reconciliation to compare the broker with
// whatever stops the process.
func (e *Engine) FlushOutbox(ctx context.Context) (int, error) {
	r := newRelay(e)
	r.syncDeletes = true
	return r.round(ctx, true)
}

// KickOutbox wakes the outbox relay; it never blocks.
func (e *Engine) KickOutbox() { kick(e.outboxKick) }

func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// PurgeResult is what one retention round deleted.
type PurgeResult struct {
	RFQs    int // final RFQs, with their roster, quotes, notifications and refused answers
	Records int // dead letters, refused answers of no RFQ, audit entries
}

// Purge deletes what is older than the retention: final RFQs that closed
// before now - Retention, then the other records from before then, each in
// transactions of at most PurgeBatch rows, until a batch comes back short.
// With no retention it deletes nothing.
func (e *Engine) Purge(ctx context.Context) (PurgeResult, error) {
	var res PurgeResult
	if e.retention == 0 {
		return res, nil
	}
	before := e.clock.Now().UTC().Add(-e.retention)
	for {
		n, err := e.store.PurgeFinished(ctx, store.PurgeFinishedParams{Before: before, Limit: e.purgeBatch})
		if err != nil {
			return res, fmt.Errorf("purge rfqs closed before %s: %w", before.Format(time.RFC3339), err)
		}
		res.RFQs += n
		if n < e.purgeBatch {
			break
		}
	}
	if res.RFQs > 0 {
		// What was purged is no longer served from memory either.
		for _, id := range e.finals.Keys() {
			if r, ok := e.finals.Peek(id); ok && r.ClosedAt.Before(before) {
				e.finals.Remove(id)
			}
		}
	}
	for {
		n, err := e.store.PurgeHistory(ctx, store.PurgeHistoryParams{Before: before, Limit: e.purgeBatch})
		if err != nil {
			return res, fmt.Errorf("purge records from before %s: %w", before.Format(time.RFC3339), err)
		}
		res.Records += n
		if n < e.purgeBatch {
			break
		}
	}
	if res != (PurgeResult{}) {
		e.log.Info("retention: purged", "rfqs", res.RFQs, "records", res.Records, "before", before)
	}
	return res, nil
}

// Run drives the outbox relay, the deadline loop and, with a retention,
// the retention loop until ctx is done, then makes a last attempt to
// publish what is pending, and returns nil.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { e.runDeadlines(ctx) })
	if e.retention > 0 {
		wg.Go(func() { e.runRetention(ctx) })
	}
	r := newRelay(e)
	wg.Go(func() { r.runDeleter(ctx) })
	e.runOutbox(ctx, r)
	wg.Wait()
	// Publish what the last moments committed; what fails stays in the
	// outbox for the next run.
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := e.FlushOutbox(flushCtx); err != nil {
		e.log.Warn("final outbox flush failed; the next start publishes the rest", "err", err)
	}
	return nil
}

func (e *Engine) runOutbox(ctx context.Context, r *relay) {
	sweep := true
	for {
		wait := e.outboxSweep
		if _, err := r.round(ctx, sweep); err != nil {
			if ctx.Err() != nil {
				return
			}
			e.log.Warn("outbox relay round failed; retrying", "err", err)
			wait = e.retryBackoff
		}
		select {
		case <-ctx.Done():
			return
		case <-e.outboxKick:
			sweep = false
		case <-e.clock.After(wait):
			sweep = true
		}
	}
}

// runRetention purges at once and then every retentionInterval.
func (e *Engine) runRetention(ctx context.Context) {
	for {
		wait := e.retentionInterval
		if _, err := e.Purge(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			e.log.Warn("retention round failed; retrying", "err", err)
			wait = min(wait, max(e.retryBackoff, 10*time.Second))
		}
		select {
		case <-ctx.Done():
			return
		case <-e.clock.After(wait):
		}
	}
}

// expiryCutoff returns the latest deadline that may expire at now: now, or
// earlier while answers received before now still wait to be staged (see
// Config.AnswersWatermark), but never more than ExpiryGrace earlier.
func (e *Engine) expiryCutoff(ctx context.Context, now time.Time) time.Time {
	if e.watermark == nil {
		return now
	}
	floor := now.Add(-e.expiryGrace)
	oldest, ok, err := e.watermark(ctx)
	switch {
	case err != nil:
		// Unknown: wait as if an answer were waiting, up to the grace.
		e.log.Warn("read the answers watermark; holding expiries back", "err", err)
		return floor
	case !ok || !oldest.Before(now):
		return now
	case oldest.Before(floor):
		return floor
	default:
		return oldest
	}
}

// heldBackPoll is how often the deadline loop looks again at deadlines that
// passed but were held back by answers waiting to be staged.
const heldBackPoll = 100 * time.Millisecond

func (e *Engine) runDeadlines(ctx context.Context) {
	defer e.deadlineWake.Store(0)
	for {
		e.deadlineWake.Store(0) // a round reads the deadlines: anything new kicks
		wait := e.deadlineSweep
		if _, next, ok, err := e.expireDue(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			e.log.Warn("deadline round failed; retrying", "err", err)
			wait = e.retryBackoff
		} else if ok {
			// A deadline at or before now fires on the next round; the
			// store judges it by the same clock.
			wait = min(max(next.Sub(e.clock.Now()), 0), e.deadlineSweep)
			if wait == 0 {
				// Due but not expired: held back by answers waiting to be
				// staged. Look again soon rather than spin.
				wait = min(heldBackPoll, e.deadlineSweep)
			}
		}
		// A create that committed before this round's read is in it; one
		// after sees either 0 (and kicks) or this wake-up.
		e.deadlineWake.Store(e.clock.Now().Add(wait).UnixNano())
		select {
		case <-ctx.Done():
			return
		case <-e.deadlineKick:
		case <-e.clock.After(wait):
		}
	}
}
