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
	"github.com/wildrydes/rydes/internal/store/sqlite"
)

// recordingPublisher stands in for the broker: it records what it is asked
// to publish, answers with acked and can be told to fail.
type recordingPublisher struct {
	mu    sync.Mutex
	msgs  []store.OutboxMessage
	fail  error
	acked map[string]uint64
}

func (p *recordingPublisher) Publish(_ context.Context, msgs []store.OutboxMessage) (map[string]uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return nil, p.fail
	}
	p.msgs = append(p.msgs, msgs...)
	return p.acked, nil
}

func (p *recordingPublisher) events() []rydes.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	var evs []rydes.Event
	for _, m := range p.msgs {
		if m.Kind == store.OutboxEvent {
			evs = append(evs, m.Events...)
		}
	}
	return evs
}

// dispatches returns what was published to providers' queues: a dispatch
// per provider, as the broker gets them.
func (p *recordingPublisher) dispatches() []store.Dispatch {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ds []store.Dispatch
	for _, m := range p.msgs {
		if m.Kind == store.OutboxDispatch {
			for _, to := range m.Dispatch.Providers {
				ds = append(ds, store.Dispatch{Providers: []string{to}, Request: m.Dispatch.Request})
			}
		}
	}
	return ds
}

var start = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type bundle struct {
	ctx    context.Context
	clock  *clockwork.FakeClock
	store  store.Store
	pub    *recordingPublisher
	engine *engine.Engine
}

func setup(t *testing.T, providers ...string) *bundle {
	t.Helper()
	ctx := rydestest.Context(t)
	if len(providers) == 0 {
		providers = []string{"p1", "p2", "p3"}
	}
	st := openStore(t, providers...)
	var err error
	b := &bundle{ctx: ctx, clock: clockwork.NewFakeClockAt(start), store: st, pub: &recordingPublisher{}}
	b.engine, err = engine.New(engine.Config{
		Store: st, Publisher: b.pub, Clock: b.clock, Logger: rydestest.Logger(t),
		Limits: rydes.Limits{DefaultTimeout: 30 * time.Second, MaxTimeout: 5 * time.Minute},
	})
	require.NoError(t, err)
	return b
}

// openStore opens a SQLite store in a temporary dir, closed when the test
// ends, with the given active NATS providers.
func openStore(t *testing.T, providers ...string) *sqlite.Store {
	t.Helper()
	ctx := rydestest.Context(t)
	st, err := sqlite.Open(ctx, t.TempDir()+"/rydes.db", rydestest.Logger(t))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	for _, id := range providers {
		_, err := st.UpsertProvider(ctx, store.UpsertProviderParams{ID: id, Name: id, Kind: rydes.ProviderKindNATS, Status: rydes.ProviderActive, Now: start})
		require.NoError(t, err)
	}
	return st
}

func (b *bundle) create(t *testing.T) rydes.RFQ {
	t.Helper()
	rfq, err := b.engine.CreateRFQ(b.ctx, rydes.RFQRequest{Customer: "cmr", From: "Frankfurt", To: "Las Vegas"})
	require.NoError(t, err)
	return rfq
}

func quote(rfq, provider, amount string, at time.Time) store.StageAnswer {
	return store.StageAnswer{Answer: rydes.Answer{RFQID: rfq, Provider: provider, Kind: rydes.AnswerQuote,
		Price: rydes.Price{Amount: amount, Currency: "USD"}, ReceivedAt: at}}
}

func decline(rfq, provider string, at time.Time) store.StageAnswer {
	return store.StageAnswer{Answer: rydes.Answer{RFQID: rfq, Provider: provider, Kind: rydes.AnswerDecline, Reason: "busy", ReceivedAt: at}}
}

func (b *bundle) stage(t *testing.T, answers ...store.StageAnswer) []store.StageResult {
	t.Helper()
	res, err := b.engine.StageAnswers(b.ctx, answers, nil)
	require.NoError(t, err)
	require.Len(t, res, len(answers))
	return res
}

func (b *bundle) get(t *testing.T, id string) rydes.RFQ {
	t.Helper()
	rfq, err := b.engine.GetRFQ(b.ctx, id, "")
	require.NoError(t, err)
	return rfq
}

func (b *bundle) flush(t *testing.T) {
	t.Helper()
	_, err := b.engine.FlushOutbox(b.ctx)
	require.NoError(t, err)
}

func eventTypes(evs []rydes.Event, rfq string) []rydes.EventType {
	var ts []rydes.EventType
	for _, e := range evs {
		if e.RFQID == rfq {
			ts = append(ts, e.Type)
		}
	}
	return ts
}

func TestCreateAsksEveryActiveProviderAndDispatchesAfterCommit(t *testing.T) {
	b := setup(t, "p1", "p2", "p3")
	_, err := b.store.UpsertProvider(b.ctx, store.UpsertProviderParams{ID: "paused", Name: "paused", Kind: rydes.ProviderKindNATS, Status: rydes.ProviderPaused, Now: start})
	require.NoError(t, err)

	rfq := b.create(t)
	require.Equal(t, rydes.StatusOpen, rfq.Status)
	require.Equal(t, []string{"p1", "p2", "p3"}, rfq.Asked())
	require.Equal(t, start.Add(30*time.Second), rfq.Deadline)
	require.Empty(t, b.pub.dispatches(), "nothing is published before the relay runs")

	b.flush(t)
	var to []string
	for _, d := range b.pub.dispatches() {
		require.Equal(t, rfq.ID, d.Request.RFQID)
		to = append(to, d.Providers...)
	}
	require.ElementsMatch(t, []string{"p1", "p2", "p3"}, to)
	require.Equal(t, []rydes.EventType{rydes.EventCreated}, eventTypes(b.pub.events(), rfq.ID))

	b.flush(t)
	require.Len(t, b.pub.dispatches(), 3, "a flushed outbox is not published twice")
}

func TestCreateWithOwnTimeoutAndBounds(t *testing.T) {
	b := setup(t)
	rfq, err := b.engine.CreateRFQ(b.ctx, rydes.RFQRequest{Customer: "c", From: "a", To: "b", Timeout: 2 * time.Minute})
	require.NoError(t, err)
	require.Equal(t, start.Add(2*time.Minute), rfq.Deadline)

	_, err = b.engine.CreateRFQ(b.ctx, rydes.RFQRequest{Customer: "c", From: "a", To: "b", Timeout: 6 * time.Minute})
	require.Equal(t, rydes.EINVALID, rydes.ErrorCodeOf(err))
	require.Equal(t, "timeout", rydes.ErrorFieldOf(err))
}

func TestCreateWithNoActiveProviderIsRefused(t *testing.T) {
	b := setup(t, "p1")
	_, err := b.store.UpsertProvider(b.ctx, store.UpsertProviderParams{ID: "p1", Name: "p1", Kind: rydes.ProviderKindNATS, Status: rydes.ProviderPaused, Now: start})
	require.NoError(t, err)
	_, err = b.engine.CreateRFQ(b.ctx, rydes.RFQRequest{Customer: "c", From: "a", To: "b"})
	require.Equal(t, rydes.EUNMATCHED, rydes.ErrorCodeOf(err))
}

func TestCompleteWhenEveryAskedProviderAnswered(t *testing.T) {
	b := setup(t)
	rfq := b.create(t)
	b.clock.Advance(time.Second)
	res := b.stage(t, quote(rfq.ID, "p2", "45", b.clock.Now()), decline(rfq.ID, "p3", b.clock.Now()))
	require.Equal(t, rydes.OutcomeStaged, res[0].Decision.Outcome)
	require.Equal(t, rydes.StatusOpen, res[1].Status)

	got := b.get(t, rfq.ID)
	require.Equal(t, rydes.StatusOpen, got.Status)
	states := map[string]rydes.ProviderState{}
	for _, p := range got.Providers {
		states[p.Provider] = p.State
	}
	require.Equal(t, map[string]rydes.ProviderState{"p1": rydes.ProviderPending, "p2": rydes.ProviderQuoted, "p3": rydes.ProviderDeclined}, states)

	res = b.stage(t, quote(rfq.ID, "p1", "12.50", b.clock.Now()))
	require.Equal(t, rydes.StatusComplete, res[0].Status)
	got = b.get(t, rfq.ID)
	require.Equal(t, rydes.StatusComplete, got.Status)
	require.Equal(t, start.Add(time.Second), got.ClosedAt)
	require.Len(t, got.Quotes, 2)
	require.Equal(t, "p1", got.Quotes[0].Provider, "best price first")

	b.flush(t)
	require.Equal(t, []rydes.EventType{rydes.EventCreated, rydes.EventQuote, rydes.EventDecline, rydes.EventQuote, rydes.EventComplete},
		eventTypes(b.pub.events(), rfq.ID))

	// Closing twice is impossible: the deadline passing later changes nothing.
	b.clock.Advance(time.Minute)
	n, err := b.engine.ExpireDue(b.ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, rydes.StatusComplete, b.get(t, rfq.ID).Status)
}

func TestExpireKeepsQuotesAndTimesOutTheRest(t *testing.T) {
	b := setup(t)
	rfq := b.create(t)
	b.stage(t, quote(rfq.ID, "p1", "30", b.clock.Now()))

	b.clock.Advance(29 * time.Second)
	n, err := b.engine.ExpireDue(b.ctx)
	require.NoError(t, err)
	require.Zero(t, n, "not due yet")

	b.clock.Advance(time.Second)
	n, err = b.engine.ExpireDue(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = b.engine.ExpireDue(b.ctx)
	require.NoError(t, err)
	require.Zero(t, n, "expires exactly once")

	got := b.get(t, rfq.ID)
	require.Equal(t, rydes.StatusExpired, got.Status)
	require.Len(t, got.Quotes, 1)
	for _, p := range got.Providers {
		if p.Provider == "p1" {
			require.Equal(t, rydes.ProviderQuoted, p.State)
		} else {
			require.Equal(t, rydes.ProviderTimedOut, p.State)
		}
	}
	b.flush(t)
	require.Equal(t, []rydes.EventType{rydes.EventCreated, rydes.EventQuote, rydes.EventProviderTimedOut, rydes.EventProviderTimedOut, rydes.EventExpired},
		eventTypes(b.pub.events(), rfq.ID))
}

func TestCancel(t *testing.T) {
	b := setup(t)
	rfq := b.create(t)
	got, err := b.engine.CancelRFQ(b.ctx, rfq.ID, "")
	require.NoError(t, err)
	require.Equal(t, rydes.StatusCancelled, got.Status)

	_, err = b.engine.CancelRFQ(b.ctx, rfq.ID, "")
	require.Equal(t, rydes.ECONFLICT, rydes.ErrorCodeOf(err), "a cancelled RFQ cannot be cancelled again")

	res := b.stage(t, quote(rfq.ID, "p1", "10", b.clock.Now()))
	require.Equal(t, rydes.OutcomeRejected, res[0].Decision.Outcome)
	require.Equal(t, rydes.RejectClosed, res[0].Decision.Reason)

	_, err = b.engine.CancelRFQ(b.ctx, rydes.NewID(), "")
	require.Equal(t, rydes.ENOTFOUND, rydes.ErrorCodeOf(err))
	_, err = b.engine.CancelRFQ(b.ctx, "not-a-uuid", "")
	require.Equal(t, rydes.EINVALID, rydes.ErrorCodeOf(err))
}

func TestCustomerScoping(t *testing.T) {
	b := setup(t)
	rfq := b.create(t)
	_, err := b.engine.GetRFQ(b.ctx, rfq.ID, "someone-else")
	require.Equal(t, rydes.ENOTFOUND, rydes.ErrorCodeOf(err))
	_, err = b.engine.CancelRFQ(b.ctx, rfq.ID, "someone-else")
	require.Equal(t, rydes.ENOTFOUND, rydes.ErrorCodeOf(err))
	got, err := b.engine.GetRFQ(b.ctx, rfq.ID, "cmr")
	require.NoError(t, err)
	require.Equal(t, rydes.StatusOpen, got.Status)
}

func TestDuplicateAnswerChangesNothing(t *testing.T) {
	b := setup(t)
	rfq := b.create(t)
	first := quote(rfq.ID, "p1", "20", b.clock.Now())
	b.stage(t, first)
	b.flush(t)
	before := b.get(t, rfq.ID)
	eventsBefore := len(b.pub.events())

	b.clock.Advance(time.Second)
	redelivered := first
	redelivered.Answer.ReceivedAt = b.clock.Now()
	res := b.stage(t, redelivered, redelivered)
	require.Equal(t, rydes.OutcomeDuplicate, res[0].Decision.Outcome)
	require.Equal(t, rydes.OutcomeDuplicate, res[1].Decision.Outcome)
	require.Empty(t, res[0].Events)

	b.flush(t)
	require.Equal(t, before, b.get(t, rfq.ID))
	require.Len(t, b.pub.events(), eventsBefore, "a duplicate emits no event")

	changed := quote(rfq.ID, "p1", "5", b.clock.Now())
	res = b.stage(t, changed)
	require.Equal(t, rydes.OutcomeRejected, res[0].Decision.Outcome)
	require.Equal(t, rydes.RejectAlreadyAnswered, res[0].Decision.Reason)
	require.Equal(t, before, b.get(t, rfq.ID), "a changed second answer does not replace the first")
}

func TestLateUnaskedAndInvalidAnswersAreRefusedAndRecorded(t *testing.T) {
	b := setup(t)
	rfq := b.create(t)

	res := b.stage(t,
		quote(rfq.ID, "stranger", "10", b.clock.Now()),
		quote(rydes.NewID(), "p1", "10", b.clock.Now()),
		quote(rfq.ID, "p2", "-3", b.clock.Now()),
	)
	require.Equal(t, rydes.RejectNotAsked, res[0].Decision.Reason)
	require.Equal(t, rydes.RejectUnknownRFQ, res[1].Decision.Reason)
	require.Equal(t, rydes.RejectInvalid, res[2].Decision.Reason)

	b.clock.Advance(30 * time.Second)
	res = b.stage(t, quote(rfq.ID, "p3", "10", b.clock.Now()))
	require.Equal(t, rydes.RejectLate, res[0].Decision.Reason, "at the deadline, before the expiry ran")

	_, err := b.engine.ExpireDue(b.ctx)
	require.NoError(t, err)
	res = b.stage(t, decline(rfq.ID, "p1", b.clock.Now()))
	require.Equal(t, rydes.RejectLate, res[0].Decision.Reason, "after the expiry")

	_, err = b.engine.StageAnswers(b.ctx, nil, []rydes.Rejection{{RFQID: rfq.ID, Provider: "p2", Reason: rydes.RejectInvalid, Message: "undecodable", ReceivedAt: b.clock.Now(), Payload: []byte("{")}})
	require.NoError(t, err)

	rejected, err := b.store.ListRejections(b.ctx, store.ListRejectionsParams{RFQID: rfq.ID})
	require.NoError(t, err)
	var reasons []rydes.RejectReason
	for _, r := range rejected {
		reasons = append(reasons, r.Reason)
	}
	require.Equal(t, []rydes.RejectReason{rydes.RejectNotAsked, rydes.RejectInvalid, rydes.RejectLate, rydes.RejectLate, rydes.RejectInvalid}, reasons)

	got := b.get(t, rfq.ID)
	require.Empty(t, got.Quotes, "no refused answer was staged")
}

func TestOutboxKeepsWhatFailedToPublish(t *testing.T) {
	b := setup(t)
	rfq := b.create(t)
	b.pub.fail = errors.New("broker unavailable")
	_, err := b.engine.FlushOutbox(b.ctx)
	require.Error(t, err)
	pending, err := b.store.PendingOutbox(b.ctx, store.PendingOutboxParams{})
	require.NoError(t, err)
	require.Len(t, pending, 2, "the dispatches to three providers and the created event wait for the broker")

	b.pub.fail = nil
	n, err := b.engine.FlushOutbox(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Len(t, b.pub.dispatches(), 3)
	require.Equal(t, rfq.ID, b.pub.dispatches()[0].Request.RFQID)
}

// The relay records, with the delete of the published rows, the highest
// sequence each stream acknowledged them with.
func TestFlushOutboxRecordsAckedSequences(t *testing.T) {
	b := setup(t)
	b.create(t)
	b.pub.acked = map[string]uint64{"S": 7}
	n, err := b.engine.FlushOutbox(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	pending, err := b.store.PendingOutbox(b.ctx, store.PendingOutboxParams{})
	require.NoError(t, err)
	require.Empty(t, pending, "the rows are deleted")
	v, ok, err := b.store.GetSetting(b.ctx, store.AckedSetting("S"))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "7", v)

	// A later publication acknowledged lower (another process's mark is
	// higher, say) leaves it.
	b.create(t)
	b.pub.acked = map[string]uint64{"S": 5}
	_, err = b.engine.FlushOutbox(b.ctx)
	require.NoError(t, err)
	v, _, err = b.store.GetSetting(b.ctx, store.AckedSetting("S"))
	require.NoError(t, err)
	require.Equal(t, "7", v)
}

func TestRunFiresDeadlinesAndRelaysOutbox(t *testing.T) {
	b := setup(t)
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan error, 1)
	go func() { done <- b.engine.Run(ctx) }()

	rfq := b.create(t)
	rydestest.WaitFor(t, "the relay to publish the dispatches", func() bool { return len(b.pub.dispatches()) == 3 })

	// The loops wait on the fake clock: moving it on wakes them, and once it
	// passes the deadline the deadline loop expires the RFQ.
	rydestest.WaitFor(t, "the RFQ to expire", func() bool {
		b.clock.Advance(time.Second)
		return b.get(t, rfq.ID).Status == rydes.StatusExpired
	})
	require.False(t, b.clock.Now().Before(rfq.Deadline), "not before its deadline")
	rydestest.WaitFor(t, "the expired event", func() bool {
		ts := eventTypes(b.pub.events(), rfq.ID)
		return len(ts) > 0 && ts[len(ts)-1] == rydes.EventExpired
	})

	cancel()
	require.NoError(t, <-done)
}

// The deadline loop sleeps until the earliest deadline (DeadlineSweep
// bounds nothing here); an RFQ due before that wakes it, and expires on
// time while the later one stays open.
func TestEarlierDeadlineWakesTheDeadlineLoop(t *testing.T) {
	ctx := rydestest.Context(t)
	st := openStore(t, "p1")
	clock := clockwork.NewFakeClockAt(start)
	e, err := engine.New(engine.Config{
		Store: st, Publisher: &recordingPublisher{}, Clock: clock, Logger: rydestest.Logger(t),
		Limits:        rydes.Limits{DefaultTimeout: 30 * time.Second, MaxTimeout: 2 * time.Hour},
		DeadlineSweep: 2 * time.Hour,
	})
	require.NoError(t, err)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()

	late, err := e.CreateRFQ(ctx, rydes.RFQRequest{Customer: "cmr", From: "a", To: "b", Timeout: time.Hour})
	require.NoError(t, err)
	early, err := e.CreateRFQ(ctx, rydes.RFQRequest{Customer: "cmr", From: "a", To: "b", Timeout: 30 * time.Second})
	require.NoError(t, err)
	rydestest.WaitFor(t, "the earlier RFQ to expire", func() bool {
		clock.Advance(time.Second)
		got, err := st.GetRFQ(ctx, store.GetRFQParams{ID: early.ID})
		require.NoError(t, err)
		return got.Status == rydes.StatusExpired
	})
	require.True(t, clock.Now().Before(late.Deadline), "expired long before the later deadline the loop slept towards")
	got, err := st.GetRFQ(ctx, store.GetRFQParams{ID: late.ID})
	require.NoError(t, err)
	require.Equal(t, rydes.StatusOpen, got.Status)

	cancel()
	require.NoError(t, <-done)
}

func TestRoutingFiltersDecideTheAskedSet(t *testing.T) {
	b := setup(t, "anyone")
	for _, p := range []rydes.Provider{
		{ID: "frankfurt", Filter: rydes.Filter{From: []string{"frankfurt*"}}},
		{ID: "vegas-small", Filter: rydes.Filter{To: []string{"Las Vegas"}, MaxPassengers: 2}},
		{ID: "gold", Filter: rydes.Filter{Attributes: map[string][]string{"class": {"gold", "platinum"}}}},
	} {
		p.Name, p.Kind, p.Status = p.ID, rydes.ProviderKindNATS, rydes.ProviderActive
		_, err := b.store.CreateProvider(b.ctx, store.CreateProviderParams{Provider: p, Now: start})
		require.NoError(t, err)
	}
	for _, tc := range []struct {
		name  string
		req   rydes.RFQRequest
		asked []string
	}{
		{"city pattern and destination", rydes.RFQRequest{From: "Frankfurt Airport", To: "las vegas"}, []string{"anyone", "frankfurt", "vegas-small"}},
		{"too many passengers", rydes.RFQRequest{From: "Berlin", To: "Las Vegas", Passengers: 3}, []string{"anyone"}},
		{"attribute match", rydes.RFQRequest{From: "Berlin", To: "Paris", Attributes: map[string]string{"class": "platinum"}}, []string{"anyone", "gold"}},
		{"attribute mismatch", rydes.RFQRequest{From: "Berlin", To: "Paris", Attributes: map[string]string{"class": "economy"}}, []string{"anyone"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Customer = "cmr"
			rfq, err := b.engine.CreateRFQ(b.ctx, tc.req)
			require.NoError(t, err)
			require.Equal(t, tc.asked, rfq.Asked())
			got := b.get(t, rfq.ID)
			require.Equal(t, tc.asked, got.Asked(), "the asked set is recorded")
		})
	}

	_, err := b.store.UpsertProvider(b.ctx, store.UpsertProviderParams{ID: "anyone", Name: "anyone", Kind: rydes.ProviderKindNATS, Status: rydes.ProviderPaused, Now: start})
	require.NoError(t, err)
	_, err = b.engine.CreateRFQ(b.ctx, rydes.RFQRequest{Customer: "cmr", From: "Berlin", To: "Paris"})
	require.Equal(t, rydes.EUNMATCHED, rydes.ErrorCodeOf(err), "no provider matches")
}

func TestSubmitAnswerOverHTTP(t *testing.T) {
	b := setup(t, "p1", "p2")
	_, err := b.store.UpsertProvider(b.ctx, store.UpsertProviderParams{ID: "p3", Name: "p3", Kind: rydes.ProviderKindNATS, Status: rydes.ProviderPaused, Now: start})
	require.NoError(t, err)
	rfq := b.create(t)
	p1 := rydes.Provider{ID: "p1"}
	p3 := rydes.Provider{ID: "p3"}

	res, err := b.engine.SubmitAnswer(b.ctx, p1, quote(rfq.ID, "p1", "10", b.clock.Now()).Answer, nil)
	require.NoError(t, err)
	require.Equal(t, rydes.OutcomeStaged, res.Decision.Outcome)

	_, err = b.engine.SubmitAnswer(b.ctx, p3, quote(rfq.ID, "p3", "1", b.clock.Now()).Answer, nil)
	require.Equal(t, rydes.EFORBIDDEN, rydes.ErrorCodeOf(err), "not asked")
	_, err = b.engine.SubmitAnswer(b.ctx, p1, quote(rfq.ID, "p2", "1", b.clock.Now()).Answer, nil)
	require.Equal(t, rydes.EFORBIDDEN, rydes.ErrorCodeOf(err), "answering as another provider")
	_, err = b.engine.SubmitAnswer(b.ctx, p1, quote(rydes.NewID(), "p1", "1", b.clock.Now()).Answer, nil)
	require.Equal(t, rydes.ENOTFOUND, rydes.ErrorCodeOf(err))

	got := b.get(t, rfq.ID)
	require.Len(t, got.Quotes, 1, "the forbidden answers changed nothing")
	rejected, err := b.store.ListRejections(b.ctx, store.ListRejectionsParams{RFQID: rfq.ID})
	require.NoError(t, err)
	require.Empty(t, rejected, "forbidden answers are refused before staging")
}
