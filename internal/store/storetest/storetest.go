// Package storetest is the one conformance suite of store.Store: every
// implementation (SQLite, PostgreSQL) runs Exercise from its own tests and
// passes it unchanged.
//
// The suite uses fixed times (no clock, no sleeps) and judges behaviour only
// through the Store interface.
package storetest

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
)

// base is the time the suite's RFQs are created at. It has microseconds, the
// precision stores keep, to show that they are kept.
var base = time.Date(2030, time.March, 4, 5, 6, 7, 891011000, time.UTC)

var limits = rydes.Limits{DefaultTimeout: 30 * time.Second, MaxTimeout: 10 * time.Minute}

// Exercise runs the conformance suite. newStore must return a new, empty
// store each time it is called, and close it when t ends (t.Cleanup).
func Exercise(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"UpsertAndListProviders", testProviders},
		{"ListProvidersEmpty", testListProvidersEmpty},
		{"InvalidProvider", testInvalidProvider},
		{"CreateAndGetRoundTrip", testCreateAndGet},
		{"CreateMinimal", testCreateMinimal},
		{"CreateDuplicateID", testCreateDuplicate},
		{"CreateInvalid", testCreateInvalid},
		{"GetNotFoundAndCustomerScope", testGetNotFound},
		{"StageQuoteAndDecline", testStageQuoteAndDecline},
		{"QuotesBestPriceFirst", testQuotesOrder},
		{"CompleteWithinOneBatch", testCompleteInBatch},
		{"MixedBatch", testMixedBatch},
		{"CompleteByDeclinesOnly", testCompleteByDeclines},
		{"StageNoAnswers", testStageNoAnswers},
		{"DuplicateAnswer", testDuplicate},
		{"DifferentSecondAnswer", testAlreadyAnswered},
		{"NotAsked", testNotAsked},
		{"UnknownRFQ", testUnknownRFQ},
		{"InvalidContent", testInvalidContent},
		{"LateAtDeadline", testLate},
		{"AfterExpiry", testAfterExpiry},
		{"AfterCancel", testAfterCancel},
		{"ExpireDue", testExpireDue},
		{"ExpireDueLimitAndOrder", testExpireDueLimit},
		{"ExpireDueBefore", testExpireDueBefore},
		{"ExpireDueExactlyOnce", testExpireDueOnce},
		{"ExpireDueSkipsClosed", testExpireDueSkipsClosed},
		{"NextDeadline", testNextDeadline},
		{"Cancel", testCancel},
		{"CancelScopeAndConflicts", testCancelConflicts},
		{"OutboxContents", testOutbox},
		{"DeleteOutbox", testDeleteOutbox},
		{"OutboxHoldsEvents", testOutboxHoldsEvents},
		{"DeleteOutboxRaisesAcked", testDeleteOutboxRaisesAcked},
		{"DeleteOutboxAckedRace", testDeleteOutboxAckedRace},
		{"ListRFQs", testListRFQs},
		{"RFQSeq", testRFQSeq},
		{"Rejections", testRejections},
		{"RejectionsDefaultLimit", testRejectionsLimit},
		{"Concurrency", testConcurrency},
		{"CreateAndGetProvider", testCreateAndGetProvider},
		{"CreateProviderConflicts", testCreateProviderConflicts},
		{"CreateProviderInvalid", testCreateProviderInvalid},
		{"ProviderIDReuse", testProviderIDReuse},
		{"UpdateProvider", testUpdateProvider},
		{"UpsertKeepsRegisteredFields", testUpsertKeepsRegisteredFields},
		{"ProviderSecrets", testProviderSecrets},
		{"DeleteProviderMidFlight", testDeleteProviderMidFlight},
		{"DeleteProviderInChunks", testDeleteProviderInChunks},
		{"MarkProviderFailed", testMarkProviderFailed},
		{"FailedProviderAnswers", testFailedProviderAnswers},
		{"ExpireDueLeavesFailedAndWithdrawn", testExpireDueLeavesFailedAndWithdrawn},
		{"ProviderStats", testProviderStats},
		{"ProviderChangesRace", testProviderChangesRace},
		{"DeadLetters", testDeadLetters},
		{"DeadLettersDefaultLimit", testDeadLettersDefaultLimit},
		{"Settings", testSettings},
		{"InitSettingRace", testInitSettingRace},
		{"SeqGrowsWithEvents", testSeq},
		{"SeqAfterProviderChanges", testSeqAfterProviderChanges},
		{"NotifyTarget", testNotifyTarget},
		{"Notifications", testNotifications},
		{"NotificationAttemptsRace", testNotificationAttemptsRace},
		{"Customers", testCustomers},
		{"CustomerConflicts", testCustomerConflicts},
		{"CustomerKeyRotation", testCustomerKeyRotation},
		{"PurgeFinished", testPurgeFinished},
		{"PurgeFinishedLimit", testPurgeFinishedLimit},
		{"PurgeHistory", testPurgeHistory},
		{"Audit", testAudit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore(t))
		})
	}
}

// rfqOpts are the options of newRFQ; zero fields take defaults.
type rfqOpts struct {
	Customer   string        // default "customer-1"
	Providers  []string      // default p1, p2, p3
	Timeout    time.Duration // default 30s
	CreatedAt  time.Time     // default base
	Passengers int
	PickupAt   time.Time
	Attributes map[string]string
	NotifyURL  string
}

// newRFQ returns a new RFQ as rydes.NewRFQ makes it, not yet stored.
func newRFQ(t *testing.T, o rfqOpts) rydes.RFQ {
	t.Helper()
	if o.Customer == "" {
		o.Customer = "customer-1"
	}
	if o.Providers == nil {
		o.Providers = []string{"p1", "p2", "p3"}
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if o.CreatedAt.IsZero() {
		o.CreatedAt = base
	}
	r, err := rydes.NewRFQ(rydes.NewID(), rydes.RFQRequest{
		Customer: o.Customer, From: "Main Street 1", To: "Rainbow Road 7",
		Passengers: o.Passengers, PickupAt: o.PickupAt, Attributes: o.Attributes, Timeout: o.Timeout,
		NotifyURL: o.NotifyURL,
	}, o.Providers, o.CreatedAt, limits)
	require.NoError(t, err)
	return r
}

// createRFQ stores a new RFQ made by newRFQ and returns it.
func createRFQ(t *testing.T, s store.Store, o rfqOpts) rydes.RFQ {
	t.Helper()
	r := newRFQ(t, o)
	require.NoError(t, s.CreateRFQ(rydestest.Context(t), store.CreateRFQParams{RFQ: r}))
	return r
}

// quote returns a quote for r from provider, received at at, with its JSON as
// payload.
func quote(r rydes.RFQ, provider, amount string, at time.Time) store.StageAnswer {
	return withPayload(rydes.Answer{
		RFQID: r.ID, Provider: provider, Kind: rydes.AnswerQuote,
		Price: rydes.Price{Amount: amount, Currency: "EUR"}, ReceivedAt: at,
	})
}

// decline returns a decline for r from provider, received at at.
func decline(r rydes.RFQ, provider, reason string, at time.Time) store.StageAnswer {
	return withPayload(rydes.Answer{RFQID: r.ID, Provider: provider, Kind: rydes.AnswerDecline, Reason: reason, ReceivedAt: at})
}

func withPayload(a rydes.Answer) store.StageAnswer {
	b, err := json.Marshal(a)
	if err != nil {
		panic(err)
	}
	return store.StageAnswer{Answer: a, Payload: b}
}

// stage stages answers at now and returns one result per answer.
func stage(t *testing.T, s store.Store, now time.Time, answers ...store.StageAnswer) []store.StageResult {
	t.Helper()
	res, err := s.StageAnswers(rydestest.Context(t), store.StageAnswersParams{Answers: answers, Now: now})
	require.NoError(t, err)
	require.Len(t, res, len(answers))
	return res
}

func get(t *testing.T, s store.Store, id string) rydes.RFQ {
	t.Helper()
	r, err := s.GetRFQ(rydestest.Context(t), store.GetRFQParams{ID: id})
	require.NoError(t, err)
	return r
}

func expire(t *testing.T, s store.Store, now time.Time, limit int) []string {
	t.Helper()
	ids, err := s.ExpireDue(rydestest.Context(t), store.ExpireDueParams{Now: now, Limit: limit})
	require.NoError(t, err)
	return ids
}

// outbox returns every pending outbox message.
func outbox(t *testing.T, s store.Store) []store.OutboxMessage {
	t.Helper()
	ms, err := s.PendingOutbox(rydestest.Context(t), store.PendingOutboxParams{Limit: 1 << 20})
	require.NoError(t, err)
	return ms
}

// events returns the pending events of RFQ id in outbox order, checking that
// their seqs run from 1 with no gap and that they match their messages.
func events(t *testing.T, s store.Store, id string) []rydes.Event {
	t.Helper()
	var out []rydes.Event
	for _, m := range outbox(t, s) {
		if m.Kind != store.OutboxEvent {
			continue
		}
		require.NotEmpty(t, m.Events, "event message %d", m.ID)
		require.Nil(t, m.Dispatch, "event message %d", m.ID)
		require.NoError(t, store.CheckEvents(m.Events), "event message %d", m.ID)
		if m.Events[0].RFQID != id {
			continue
		}
		require.Equal(t, m.Events[0].At, m.CreatedAt, "event message %d is created at its first event's time", m.ID)
		out = append(out, m.Events...)
	}
	for i, e := range out {
		require.Equal(t, int64(i+1), e.Seq, "event %d of %s: %+v", i, id, e)
	}
	return out
}

// types returns the types of evs.
func types(evs []rydes.Event) []rydes.EventType {
	out := make([]rydes.EventType, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func requireCode(t *testing.T, code rydes.ErrorCode, err error) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, code, rydes.ErrorCodeOf(err), "error: %v", err)
}

func rejections(t *testing.T, s store.Store, rfqID string) []rydes.Rejection {
	t.Helper()
	rs, err := s.ListRejections(rydestest.Context(t), store.ListRejectionsParams{RFQID: rfqID})
	require.NoError(t, err)
	return rs
}

func staged() rydes.Decision    { return rydes.Decision{Outcome: rydes.OutcomeStaged} }
func duplicate() rydes.Decision { return rydes.Decision{Outcome: rydes.OutcomeDuplicate} }

// requireRejected checks that res rejected an answer for reason.
func requireRejected(t *testing.T, reason rydes.RejectReason, res store.StageResult) {
	t.Helper()
	require.Equal(t, rydes.OutcomeRejected, res.Decision.Outcome, "%+v", res)
	require.Equal(t, reason, res.Decision.Reason, "%+v", res)
	require.NotEmpty(t, res.Decision.Message)
	require.Empty(t, res.Events)
}

func testProviders(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	upsert := func(id, name string, kind rydes.ProviderKind, status rydes.ProviderStatus, now time.Time) rydes.Provider {
		t.Helper()
		p, err := s.UpsertProvider(ctx, store.UpsertProviderParams{ID: id, Name: name, Kind: kind, Status: status, Now: now})
		require.NoError(t, err)
		return p
	}
	b := upsert("unicorn-b", "Bee", rydes.ProviderKindSimulated, rydes.ProviderActive, base)
	require.Equal(t, rydes.Provider{
		ID: "unicorn-b", Name: "Bee", Kind: rydes.ProviderKindSimulated, Status: rydes.ProviderActive,
		CreatedAt: base, UpdatedAt: base,
	}, b)
	a := upsert("unicorn-a", "Ay", rydes.ProviderKindNATS, rydes.ProviderPaused, base.Add(time.Second))
	c := upsert("unicorn-c", "See", rydes.ProviderKindWebhook, rydes.ProviderActive, base.Add(2*time.Second))

	later := base.Add(time.Hour)
	b2 := upsert("unicorn-b", "Bee Two", rydes.ProviderKindNATS, rydes.ProviderPaused, later)
	require.Equal(t, rydes.Provider{
		ID: "unicorn-b", Name: "Bee Two", Kind: rydes.ProviderKindNATS, Status: rydes.ProviderPaused,
		CreatedAt: base, UpdatedAt: later,
	}, b2, "an update keeps the creation time")

	all, err := s.ListProviders(ctx, store.ListProvidersParams{})
	require.NoError(t, err)
	require.Equal(t, []rydes.Provider{a, b2, c}, all, "ordered by id")

	active, err := s.ListProviders(ctx, store.ListProvidersParams{Status: rydes.ProviderActive})
	require.NoError(t, err)
	require.Equal(t, []rydes.Provider{c}, active)

	paused, err := s.ListProviders(ctx, store.ListProvidersParams{Status: rydes.ProviderPaused})
	require.NoError(t, err)
	require.Equal(t, []rydes.Provider{a, b2}, paused)
}

func testListProvidersEmpty(t *testing.T, s store.Store) {
	ps, err := s.ListProviders(rydestest.Context(t), store.ListProvidersParams{})
	require.NoError(t, err)
	require.Empty(t, ps)
}

func testInvalidProvider(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	ok := store.UpsertProviderParams{ID: "unicorn", Name: "U", Kind: rydes.ProviderKindSimulated, Status: rydes.ProviderActive, Now: base}
	for name, mod := range map[string]func(p *store.UpsertProviderParams){
		"empty id":     func(p *store.UpsertProviderParams) { p.ID = "" },
		"dotted id":    func(p *store.UpsertProviderParams) { p.ID = "uni.corn" },
		"unknown kind": func(p *store.UpsertProviderParams) { p.Kind = "pigeon" },
		"no status":    func(p *store.UpsertProviderParams) { p.Status = "" },
	} {
		p := ok
		mod(&p)
		_, err := s.UpsertProvider(ctx, p)
		require.Equal(t, rydes.EINVALID, rydes.ErrorCodeOf(err), "%s: %v", name, err)
	}
	ps, err := s.ListProviders(ctx, store.ListProvidersParams{})
	require.NoError(t, err)
	require.Empty(t, ps, "nothing invalid was stored")
}

func testCreateAndGet(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	want := createRFQ(t, s, rfqOpts{
		Customer:   "customer-42",
		Providers:  []string{"zeta", "alpha", "mid"}, // not alphabetical: the order asked is kept
		Timeout:    45 * time.Second,
		Passengers: 3,
		PickupAt:   base.Add(90*time.Minute + 123*time.Microsecond),
		Attributes: map[string]string{"vehicle": "van", "child.seat": "1", "note": "ünïcode ✓"},
	})
	got, err := s.GetRFQ(ctx, store.GetRFQParams{ID: want.ID})
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.NotNil(t, got.Quotes)
	require.Equal(t, []string{"zeta", "alpha", "mid"}, got.Asked())

	scoped, err := s.GetRFQ(ctx, store.GetRFQParams{ID: want.ID, Customer: "customer-42"})
	require.NoError(t, err)
	require.Equal(t, want, scoped)
}

func testCreateMinimal(t *testing.T, s store.Store) {
	want := createRFQ(t, s, rfqOpts{Providers: []string{"solo"}})
	got := get(t, s, want.ID)
	require.Equal(t, want, got)
	require.Nil(t, got.Attributes)
	require.True(t, got.PickupAt.IsZero())
	require.Zero(t, got.Passengers)
	require.True(t, got.ClosedAt.IsZero())
	require.NotNil(t, got.Providers)
	require.NotNil(t, got.Quotes)
	require.Empty(t, got.Quotes)
}

func testCreateDuplicate(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	r := createRFQ(t, s, rfqOpts{})
	before := outbox(t, s)

	again := newRFQ(t, rfqOpts{Customer: "someone-else", Providers: []string{"x"}})
	again.ID = r.ID
	requireCode(t, rydes.ECONFLICT, s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: again}))

	require.Equal(t, r, get(t, s, r.ID), "the first RFQ is untouched")
	require.Equal(t, before, outbox(t, s), "the refused RFQ wrote no messages")
}

func testCreateInvalid(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	noProviders := newRFQ(t, rfqOpts{})
	noProviders.Providers = []rydes.RosterEntry{}
	requireCode(t, rydes.EINVALID, s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: noProviders}))

	twice := newRFQ(t, rfqOpts{Providers: []string{"p1", "p2", "p1"}})
	requireCode(t, rydes.EINVALID, s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: twice}))

	closed := newRFQ(t, rfqOpts{})
	closed.Status = rydes.StatusComplete
	requireCode(t, rydes.EINVALID, s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: closed}))

	for _, r := range []rydes.RFQ{noProviders, twice, closed} {
		_, err := s.GetRFQ(ctx, store.GetRFQParams{ID: r.ID})
		requireCode(t, rydes.ENOTFOUND, err)
	}
	require.Empty(t, outbox(t, s))
}

func testGetNotFound(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	_, err := s.GetRFQ(ctx, store.GetRFQParams{ID: rydes.NewID()})
	requireCode(t, rydes.ENOTFOUND, err)

	r := createRFQ(t, s, rfqOpts{Customer: "alice"})
	_, err = s.GetRFQ(ctx, store.GetRFQParams{ID: r.ID, Customer: "bob"})
	requireCode(t, rydes.ENOTFOUND, err)
	got, err := s.GetRFQ(ctx, store.GetRFQParams{ID: r.ID, Customer: "alice"})
	require.NoError(t, err)
	require.Equal(t, r.ID, got.ID)
}

func testStageQuoteAndDecline(t *testing.T, s store.Store) {
	r := createRFQ(t, s, rfqOpts{Customer: "carol", Providers: []string{"p1", "p2", "p3"}})
	eta := 300

	t1 := base.Add(5 * time.Second)
	q1 := quote(r, "p1", "50.00", t1.Add(-time.Millisecond))
	q1.Answer.ETASeconds = &eta
	q1.Answer.ExpiresAt = base.Add(10 * time.Minute)
	res := stage(t, s, t1, q1)[0]
	wantQ1 := rydes.Quote{
		Provider: "p1", Price: rydes.Price{Amount: "50.00", Currency: "EUR"}, ETASeconds: &eta,
		ExpiresAt: base.Add(10 * time.Minute), ReceivedAt: t1.Add(-time.Millisecond),
	}
	require.Equal(t, store.StageResult{
		Decision: staged(),
		Events: []rydes.Event{{
			RFQID: r.ID, Seq: 2, Type: rydes.EventQuote, At: t1, Customer: "carol",
			Provider: "p1", Quote: &wantQ1, Status: rydes.StatusOpen,
		}},
		Status: rydes.StatusOpen,
	}, res)

	t2 := base.Add(6 * time.Second)
	res = stage(t, s, t2, decline(r, "p2", "no unicorns free", t2))[0]
	require.Equal(t, store.StageResult{
		Decision: staged(),
		Events: []rydes.Event{{
			RFQID: r.ID, Seq: 3, Type: rydes.EventDecline, At: t2, Customer: "carol",
			Provider: "p2", Reason: "no unicorns free", Status: rydes.StatusOpen,
		}},
		Status: rydes.StatusOpen,
	}, res)

	got := get(t, s, r.ID)
	require.Equal(t, rydes.StatusOpen, got.Status)
	require.True(t, got.ClosedAt.IsZero())
	require.Equal(t, []rydes.RosterEntry{
		{Provider: "p1", State: rydes.ProviderQuoted, ChangedAt: t1},
		{Provider: "p2", State: rydes.ProviderDeclined, ChangedAt: t2, Reason: "no unicorns free"},
		{Provider: "p3", State: rydes.ProviderPending, ChangedAt: base},
	}, got.Providers)
	require.Equal(t, []rydes.Quote{wantQ1}, got.Quotes)

	t3 := base.Add(7 * time.Second)
	res = stage(t, s, t3, quote(r, "p3", "45.5", t3))[0]
	wantQ3 := rydes.Quote{Provider: "p3", Price: rydes.Price{Amount: "45.5", Currency: "EUR"}, ReceivedAt: t3}
	require.Equal(t, store.StageResult{
		Decision: staged(),
		Events: []rydes.Event{
			{RFQID: r.ID, Seq: 4, Type: rydes.EventQuote, At: t3, Customer: "carol", Provider: "p3", Quote: &wantQ3, Status: rydes.StatusOpen},
			{RFQID: r.ID, Seq: 5, Type: rydes.EventComplete, At: t3, Customer: "carol", Status: rydes.StatusComplete},
		},
		Status: rydes.StatusComplete,
	}, res)

	got = get(t, s, r.ID)
	require.Equal(t, rydes.StatusComplete, got.Status)
	require.Equal(t, t3, got.ClosedAt)
	require.Equal(t, []rydes.Quote{wantQ3, wantQ1}, got.Quotes, "best price first")
	require.Equal(t, rydes.ProviderQuoted, got.Providers[2].State)

	evs := events(t, s, r.ID)
	require.Equal(t, []rydes.EventType{rydes.EventCreated, rydes.EventQuote, rydes.EventDecline, rydes.EventQuote, rydes.EventComplete}, types(evs))
	require.Equal(t, rydes.Event{RFQID: r.ID, Seq: 1, Type: rydes.EventCreated, At: base, Customer: "carol", Status: rydes.StatusOpen}, evs[0])
	require.Equal(t, res.Events, evs[3:])
	require.Empty(t, rejections(t, s, r.ID))
}

func testQuotesOrder(t *testing.T, s store.Store) {
	r := createRFQ(t, s, rfqOpts{Providers: []string{"p1", "p2", "p3", "p4", "p5", "p6"}})
	now := base.Add(10 * time.Second)
	res := stage(t, s, now,
		quote(r, "p1", "100", base.Add(time.Second)),
		quote(r, "p3", "12.50", base.Add(3*time.Second)), // same price as p2 and p4, received later
		quote(r, "p4", "12.5", base.Add(2*time.Second)),  // same price and time as p2: by provider id
		quote(r, "p2", "12.5", base.Add(2*time.Second)),
		quote(r, "p5", "99.9999", base.Add(time.Second)),
		decline(r, "p6", "", base.Add(time.Second)),
	)
	for i, rr := range res {
		require.Equal(t, staged(), rr.Decision, "answer %d", i)
	}
	require.Equal(t, rydes.StatusComplete, res[5].Status)

	got := get(t, s, r.ID)
	var order, amounts []string
	for _, q := range got.Quotes {
		order = append(order, q.Provider)
		amounts = append(amounts, q.Price.Amount)
	}
	require.Equal(t, []string{"p2", "p4", "p3", "p5", "p1"}, order)
	require.Equal(t, []string{"12.5", "12.5", "12.50", "99.9999", "100"}, amounts, "amounts are kept as given")
	require.Equal(t, []string{"p1", "p2", "p3", "p4", "p5", "p6"}, got.Asked(), "the roster keeps the order asked")
}

func testCompleteInBatch(t *testing.T, s store.Store) {
	r := createRFQ(t, s, rfqOpts{Providers: []string{"p1", "p2"}})
	now := base.Add(time.Second)
	res := stage(t, s, now, quote(r, "p1", "20", now), decline(r, "p2", "busy", now))

	require.Equal(t, staged(), res[0].Decision)
	require.Equal(t, rydes.StatusOpen, res[0].Status, "the first answer sees one provider still pending")
	require.Equal(t, []rydes.EventType{rydes.EventQuote}, types(res[0].Events))

	require.Equal(t, staged(), res[1].Decision)
	require.Equal(t, rydes.StatusComplete, res[1].Status)
	require.Equal(t, []rydes.EventType{rydes.EventDecline, rydes.EventComplete}, types(res[1].Events))
	require.Equal(t, []int64{3, 4}, []int64{res[1].Events[0].Seq, res[1].Events[1].Seq})

	evs := events(t, s, r.ID)
	require.Equal(t, append(res[0].Events, res[1].Events...), evs[1:])
	require.Equal(t, now, get(t, s, r.ID).ClosedAt)
}

// testMixedBatch stages, in one batch, the answers of two RFQs interleaved
// with an answer for no RFQ, redeliveries and second answers of answers
// staged earlier in the batch, a provider not asked and a failed provider:
// each answer sees what the ones before it did, and the events reach the
// outbox in the order the answers emitted them.
func testMixedBatch(t *testing.T, s store.Store) {
	t1, now := base.Add(time.Second), base.Add(2*time.Second)
	ra := createRFQ(t, s, rfqOpts{Customer: "alice", Providers: []string{"p1", "p2", "p3", "p4"}})
	rb := createRFQ(t, s, rfqOpts{Customer: "bob", Providers: []string{"p1", "p2"}})
	markFailed(t, s, ra, "p4", "HTTP 500", t1) // ra's event 2
	ghost := rydes.RFQ{ID: rydes.NewID()}
	before := len(outbox(t, s))

	at := func(i int) time.Time { return now.Add(-time.Duration(20-i) * time.Millisecond) }
	answers := []store.StageAnswer{
		quote(ra, "p2", "20", at(0)),
		quote(rb, "p1", "15", at(1)),
		quote(ghost, "p1", "10", at(2)),
		quote(ra, "p2", "20", at(3)),      // a redelivery of answer 0
		quote(ra, "p2", "25", at(4)),      // p2 answered otherwise in answer 0
		quote(ra, "stranger", "5", at(5)), // not asked
		decline(rb, "p2", "busy", at(6)),  // completes rb
		quote(rb, "p1", "15", at(7)),      // a redelivery of answer 1, after rb completed
		quote(ra, "p4", "18", at(8)),      // failed, answers anyway: not counted as pending
		decline(ra, "p1", "", at(9)),
		quote(ra, "p3", "22.50", at(10)), // completes ra
	}
	// Answer 0 has every field a quote may have, with an expiry finer than
	// what is kept and in another zone; its redelivery has the same one in
	// UTC.
	eta, eta2 := 300, 300
	expires := base.Add(10*time.Minute + 123*time.Nanosecond)
	answers[0].Answer.ETASeconds, answers[0].Answer.ExpiresAt = &eta, expires.In(time.FixedZone("X", 3600))
	answers[3].Answer.ETASeconds, answers[3].Answer.ExpiresAt = &eta2, expires
	res := stage(t, s, now, answers...)
	answers[0].Answer.ExpiresAt = expires.Truncate(time.Microsecond) // as kept

	ev := func(r rydes.RFQ, seq int64, typ rydes.EventType, provider string) rydes.Event {
		return rydes.Event{RFQID: r.ID, Seq: seq, Type: typ, At: now, Customer: r.Customer, Provider: provider, Status: rydes.StatusOpen}
	}
	quoted := func(r rydes.RFQ, seq int64, i int) rydes.Event {
		e := ev(r, seq, rydes.EventQuote, answers[i].Answer.Provider)
		q := answers[i].Answer.Quote()
		e.Quote = &q
		return e
	}
	declined := func(r rydes.RFQ, seq int64, i int) rydes.Event {
		e := ev(r, seq, rydes.EventDecline, answers[i].Answer.Provider)
		e.Reason = answers[i].Answer.Reason
		return e
	}
	complete := func(r rydes.RFQ, seq int64) rydes.Event {
		e := ev(r, seq, rydes.EventComplete, "")
		e.Status = rydes.StatusComplete
		return e
	}
	open, done := rydes.StatusOpen, rydes.StatusComplete
	want := []store.StageResult{
		{Decision: staged(), Events: []rydes.Event{quoted(ra, 3, 0)}, Status: open},
		{Decision: staged(), Events: []rydes.Event{quoted(rb, 2, 1)}, Status: open},
		{},
		{Decision: duplicate(), Status: open},
		{},
		{},
		{Decision: staged(), Events: []rydes.Event{declined(rb, 3, 6), complete(rb, 4)}, Status: done},
		{Decision: duplicate(), Status: done},
		{Decision: staged(), Events: []rydes.Event{quoted(ra, 4, 8)}, Status: open},
		{Decision: staged(), Events: []rydes.Event{declined(ra, 5, 9)}, Status: open},
		{Decision: staged(), Events: []rydes.Event{quoted(ra, 6, 10), complete(ra, 7)}, Status: done},
	}
	rejected := map[int]rydes.RejectReason{2: rydes.RejectUnknownRFQ, 4: rydes.RejectAlreadyAnswered, 5: rydes.RejectNotAsked}
	var emitted []rydes.Event
	for i, r := range res {
		if reason, ok := rejected[i]; ok {
			requireRejected(t, reason, r)
			continue
		}
		require.Equal(t, want[i], stripEvents(r), "answer %d", i)
		emitted = append(emitted, r.Events...)
	}
	require.Equal(t, rydes.Status(""), res[2].Status, "no RFQ, no status")
	require.Equal(t, open, res[4].Status)
	require.Equal(t, open, res[5].Status)

	// One message per RFQ, with its events in the order emitted.
	var inOutbox [][]rydes.Event
	for _, m := range outbox(t, s)[before:] {
		require.Equal(t, store.OutboxEvent, m.Kind, "message %d", m.ID)
		inOutbox = append(inOutbox, m.Events)
	}
	require.Equal(t, store.GroupEvents(emitted), inOutbox, "the batch's events, a message per RFQ")
	require.Len(t, inOutbox, 2, "the batch's events are of two RFQs")
	require.Len(t, events(t, s, ra.ID), 7)
	require.Len(t, events(t, s, rb.ID), 4)

	gotA := get(t, s, ra.ID)
	require.Equal(t, done, gotA.Status)
	require.Equal(t, now, gotA.ClosedAt)
	require.Equal(t, int64(7), gotA.Seq)
	require.Equal(t, []rydes.RosterEntry{
		{Provider: "p1", State: rydes.ProviderDeclined, ChangedAt: now},
		{Provider: "p2", State: rydes.ProviderQuoted, ChangedAt: now},
		{Provider: "p3", State: rydes.ProviderQuoted, ChangedAt: now},
		{Provider: "p4", State: rydes.ProviderQuoted, ChangedAt: now},
	}, gotA.Providers, "the failure's reason went with p4's answer")
	require.Equal(t, []rydes.Quote{answers[8].Answer.Quote(), answers[0].Answer.Quote(), answers[10].Answer.Quote()}, gotA.Quotes,
		"p2's quote is the first one, received at %v", at(0))

	gotB := get(t, s, rb.ID)
	require.Equal(t, done, gotB.Status)
	require.Equal(t, now, gotB.ClosedAt)
	require.Equal(t, []rydes.RosterEntry{
		{Provider: "p1", State: rydes.ProviderQuoted, ChangedAt: now},
		{Provider: "p2", State: rydes.ProviderDeclined, ChangedAt: now, Reason: "busy"},
	}, gotB.Providers)
	require.Equal(t, []rydes.Quote{answers[1].Answer.Quote()}, gotB.Quotes)

	for id, want := range map[string][]int{ghost.ID: {2}, ra.ID: {4, 5}, rb.ID: nil} {
		rs := rejections(t, s, id)
		require.Len(t, rs, len(want), "rejections of %s", id)
		for j, i := range want {
			a := answers[i]
			require.Equal(t, rydes.Rejection{
				RFQID: a.Answer.RFQID, Provider: a.Answer.Provider, Reason: rejected[i], Message: res[i].Decision.Message,
				ReceivedAt: a.Answer.ReceivedAt, Payload: a.Payload,
			}, rs[j], "answer %d", i)
		}
	}
}

func testCompleteByDeclines(t *testing.T, s store.Store) {
	r := createRFQ(t, s, rfqOpts{Providers: []string{"only"}})
	now := base.Add(time.Second)
	res := stage(t, s, now, decline(r, "only", "", now))[0]
	require.Equal(t, rydes.StatusComplete, res.Status)
	require.Equal(t, []rydes.EventType{rydes.EventDecline, rydes.EventComplete}, types(res.Events))
	got := get(t, s, r.ID)
	require.Equal(t, rydes.StatusComplete, got.Status)
	require.Empty(t, got.Quotes)
	require.NotNil(t, got.Quotes)
	require.Equal(t, []rydes.RosterEntry{{Provider: "only", State: rydes.ProviderDeclined, ChangedAt: now}}, got.Providers)
}

func testStageNoAnswers(t *testing.T, s store.Store) {
	res, err := s.StageAnswers(rydestest.Context(t), store.StageAnswersParams{Now: base})
	require.NoError(t, err)
	require.Empty(t, res)
}

func testDuplicate(t *testing.T, s store.Store) {
	r := createRFQ(t, s, rfqOpts{Providers: []string{"p1", "p2", "p3"}})
	t1 := base.Add(time.Second)
	eta := 120
	q := quote(r, "p1", "33.3", t1)
	q.Answer.ETASeconds = &eta
	require.Equal(t, staged(), stage(t, s, t1, q)[0].Decision)

	// A redelivery: same content, received later.
	t2 := base.Add(2 * time.Second)
	redelivered := q
	redelivered.Answer.ReceivedAt = t2
	eta2 := 120
	redelivered.Answer.ETASeconds = &eta2
	res := stage(t, s, t2,
		redelivered,
		decline(r, "p2", "full", t2),
		decline(r, "p2", "full", t2.Add(time.Millisecond)), // duplicate within the batch
	)
	require.Equal(t, store.StageResult{Decision: duplicate(), Status: rydes.StatusOpen}, stripEvents(res[0]))
	require.Empty(t, res[0].Events)
	require.Equal(t, staged(), res[1].Decision)
	require.Equal(t, duplicate(), res[2].Decision)
	require.Empty(t, res[2].Events)
	require.Equal(t, rydes.StatusOpen, res[2].Status)

	before, beforeOutbox := get(t, s, r.ID), outbox(t, s)
	require.Equal(t, t1, before.Providers[0].ChangedAt, "a duplicate does not touch the roster")
	require.Equal(t, t1, before.Quotes[0].ReceivedAt, "a duplicate does not replace the quote")
	res = stage(t, s, base.Add(3*time.Second), redelivered)
	require.Equal(t, duplicate(), res[0].Decision)
	require.Equal(t, before, get(t, s, r.ID))
	require.Equal(t, beforeOutbox, outbox(t, s), "a duplicate emits nothing")

	// Duplicates are recognised after the RFQ closed too.
	t4 := base.Add(4 * time.Second)
	require.Equal(t, rydes.StatusComplete, stage(t, s, t4, decline(r, "p3", "", t4))[0].Status)
	res = stage(t, s, r.Deadline.Add(time.Hour), redelivered)
	require.Equal(t, store.StageResult{Decision: duplicate(), Status: rydes.StatusComplete}, stripEvents(res[0]))
	require.Empty(t, rejections(t, s, r.ID), "duplicates are not rejections")
	require.Len(t, events(t, s, r.ID), 5)
}

// stripEvents returns res with an empty Events as nil, for comparisons.
func stripEvents(res store.StageResult) store.StageResult {
	if len(res.Events) == 0 {
		res.Events = nil
	}
	return res
}

func testAlreadyAnswered(t *testing.T, s store.Store) {
	r := createRFQ(t, s, rfqOpts{Providers: []string{"p1", "p2"}})
	t1 := base.Add(time.Second)
	require.Equal(t, staged(), stage(t, s, t1, quote(r, "p1", "50", t1))[0].Decision)
	before, beforeOutbox := get(t, s, r.ID), outbox(t, s)

	t2 := base.Add(2 * time.Second)
	cheaper := quote(r, "p1", "40", t2)
	declined := decline(r, "p1", "changed my mind", t2)
	res := stage(t, s, t2, cheaper, declined)
	for _, rr := range res {
		requireRejected(t, rydes.RejectAlreadyAnswered, rr)
		require.Equal(t, rydes.StatusOpen, rr.Status)
	}
	require.Equal(t, before, get(t, s, r.ID), "the first answer stands")
	require.Equal(t, beforeOutbox, outbox(t, s))

	rs := rejections(t, s, r.ID)
	require.Len(t, rs, 2)
	for i, sa := range []store.StageAnswer{cheaper, declined} {
		require.Equal(t, r.ID, rs[i].RFQID)
		require.Equal(t, "p1", rs[i].Provider)
		require.Equal(t, rydes.RejectAlreadyAnswered, rs[i].Reason)
		require.Equal(t, res[i].Decision.Message, rs[i].Message)
		require.Equal(t, t2, rs[i].ReceivedAt)
		require.Equal(t, sa.Payload, rs[i].Payload)
	}
}

func testNotAsked(t *testing.T, s store.Store) {
	r := createRFQ(t, s, rfqOpts{Providers: []string{"p1"}})
	now := base.Add(time.Second)
	a := quote(r, "stranger", "10", now)
	res := stage(t, s, now, a)[0]
	requireRejected(t, rydes.RejectNotAsked, res)
	require.Equal(t, rydes.StatusOpen, res.Status)
	rs := rejections(t, s, r.ID)
	require.Len(t, rs, 1)
	require.Equal(t, rydes.Rejection{
		RFQID: r.ID, Provider: "stranger", Reason: rydes.RejectNotAsked, Message: res.Decision.Message,
		ReceivedAt: now, Payload: a.Payload,
	}, rs[0])
	got := get(t, s, r.ID)
	require.Equal(t, []string{"p1"}, got.Asked())
	require.Empty(t, got.Quotes)
	require.Len(t, events(t, s, r.ID), 1)
}

func testUnknownRFQ(t *testing.T, s store.Store) {
	ghost := rydes.RFQ{ID: rydes.NewID()}
	now := base.Add(time.Second)
	res := stage(t, s, now, quote(ghost, "p1", "10", now))[0]
	requireRejected(t, rydes.RejectUnknownRFQ, res)
	require.Equal(t, rydes.Status(""), res.Status)
	rs := rejections(t, s, ghost.ID)
	require.Len(t, rs, 1)
	require.Equal(t, rydes.RejectUnknownRFQ, rs[0].Reason)
	require.Equal(t, "p1", rs[0].Provider)
	require.Empty(t, outbox(t, s))
}

func testInvalidContent(t *testing.T, s store.Store) {
	r := createRFQ(t, s, rfqOpts{Providers: []string{"p1", "p2"}})
	now := base.Add(time.Second)
	badPrice := quote(r, "p1", "12,50", now)
	badKind := withPayload(rydes.Answer{RFQID: r.ID, Provider: "p1", Kind: "maybe", ReceivedAt: now})
	pricedDecline := decline(r, "p2", "", now)
	pricedDecline.Answer.Price = rydes.Price{Amount: "1", Currency: "EUR"}
	badCurrency := quote(r, "p2", "10", now)
	badCurrency.Answer.Price.Currency = "XYZ"
	badID := quote(rydes.RFQ{ID: "not-a-uuid"}, "p1", "10", now) // invalid, not unknown_rfq: content first

	res := stage(t, s, now, badPrice, badKind, pricedDecline, badCurrency, badID)
	for i, rr := range res[:4] {
		requireRejected(t, rydes.RejectInvalid, rr)
		require.Equal(t, rydes.StatusOpen, rr.Status, "answer %d", i)
	}
	requireRejected(t, rydes.RejectInvalid, res[4])
	require.Equal(t, rydes.Status(""), res[4].Status)

	got := get(t, s, r.ID)
	for _, e := range got.Providers {
		require.Equal(t, rydes.ProviderPending, e.State)
	}
	rs := rejections(t, s, r.ID)
	require.Len(t, rs, 4)
	for i, rej := range rs {
		require.Equal(t, rydes.RejectInvalid, rej.Reason)
		require.Equal(t, []store.StageAnswer{badPrice, badKind, pricedDecline, badCurrency}[i].Payload, rej.Payload)
	}
	require.Len(t, rejections(t, s, "not-a-uuid"), 1)
	require.Len(t, events(t, s, r.ID), 1)
}

func testLate(t *testing.T, s store.Store) {
	r := createRFQ(t, s, rfqOpts{Providers: []string{"p1", "p2"}})
	justBefore := r.Deadline.Add(-time.Microsecond)
	require.Equal(t, staged(), stage(t, s, justBefore, quote(r, "p1", "10", justBefore))[0].Decision)

	res := stage(t, s, r.Deadline, quote(r, "p2", "9", r.Deadline))[0]
	requireRejected(t, rydes.RejectLate, res)
	require.Equal(t, rydes.StatusOpen, res.Status, "only ExpireDue expires")
	got := get(t, s, r.ID)
	require.Equal(t, rydes.ProviderPending, got.Providers[1].State)
	require.Equal(t, rydes.StatusOpen, got.Status)
	require.Len(t, rejections(t, s, r.ID), 1)
}

func testAfterExpiry(t *testing.T, s store.Store) {
	r := createRFQ(t, s, rfqOpts{Providers: []string{"p1", "p2"}})
	t1 := base.Add(time.Second)
	q := quote(r, "p1", "10", t1)
	stage(t, s, t1, q)
	require.Equal(t, []string{r.ID}, expire(t, s, r.Deadline, 0))

	// Judged at a time before the deadline, the answer is still late: the
	// RFQ expired.
	res := stage(t, s, t1, decline(r, "p2", "", t1))[0]
	requireRejected(t, rydes.RejectLate, res)
	require.Equal(t, rydes.StatusExpired, res.Status)
	res = stage(t, s, r.Deadline.Add(time.Second), quote(r, "p2", "5", r.Deadline))[0]
	requireRejected(t, rydes.RejectLate, res)

	res = stage(t, s, r.Deadline.Add(time.Second), q)[0]
	require.Equal(t, duplicate(), res.Decision, "a redelivery of a staged answer stays a duplicate")
	require.Equal(t, rydes.StatusExpired, res.Status)
	require.Len(t, rejections(t, s, r.ID), 2)
}

func testAfterCancel(t *testing.T, s store.Store) {
	r := createRFQ(t, s, rfqOpts{Providers: []string{"p1", "p2"}})
	_, err := s.CancelRFQ(rydestest.Context(t), store.CancelRFQParams{ID: r.ID, Now: base.Add(time.Second)})
	require.NoError(t, err)
	now := base.Add(2 * time.Second)
	res := stage(t, s, now, quote(r, "p1", "10", now))[0]
	requireRejected(t, rydes.RejectClosed, res)
	require.Equal(t, rydes.StatusCancelled, res.Status)
	require.Equal(t, rydes.RejectClosed, rejections(t, s, r.ID)[0].Reason, "the RFQ closed, though cancelling withdrew p1")
	require.Equal(t, []rydes.EventType{rydes.EventCreated, rydes.EventProviderWithdrawn, rydes.EventProviderWithdrawn, rydes.EventCancelled}, types(events(t, s, r.ID)))
}

func testExpireDue(t *testing.T, s store.Store) {
	r1 := createRFQ(t, s, rfqOpts{Customer: "dave", Providers: []string{"a", "b", "c"}, Timeout: 10 * time.Second})
	r2 := createRFQ(t, s, rfqOpts{Customer: "erin", Providers: []string{"x"}, Timeout: 20 * time.Second})
	r3 := createRFQ(t, s, rfqOpts{Providers: []string{"y"}, Timeout: 60 * time.Second})
	tq := base.Add(5 * time.Second)
	stage(t, s, tq, quote(r1, "b", "42", tq))

	require.Empty(t, expire(t, s, r1.Deadline.Add(-time.Microsecond), 0), "nothing is due before its deadline")

	now := base.Add(20 * time.Second)
	require.Equal(t, []string{r1.ID, r2.ID}, expire(t, s, now, 0), "earliest deadline first; due at the deadline")

	got := get(t, s, r1.ID)
	require.Equal(t, rydes.StatusExpired, got.Status)
	require.Equal(t, now, got.ClosedAt)
	require.Equal(t, []rydes.RosterEntry{
		{Provider: "a", State: rydes.ProviderTimedOut, ChangedAt: now},
		{Provider: "b", State: rydes.ProviderQuoted, ChangedAt: tq},
		{Provider: "c", State: rydes.ProviderTimedOut, ChangedAt: now},
	}, got.Providers)
	require.Len(t, got.Quotes, 1, "quotes so far are kept")

	evs := events(t, s, r1.ID)
	require.Equal(t, []rydes.Event{
		{RFQID: r1.ID, Seq: 3, Type: rydes.EventProviderTimedOut, At: now, Customer: "dave", Provider: "a", Status: rydes.StatusOpen},
		{RFQID: r1.ID, Seq: 4, Type: rydes.EventProviderTimedOut, At: now, Customer: "dave", Provider: "c", Status: rydes.StatusOpen},
		{RFQID: r1.ID, Seq: 5, Type: rydes.EventExpired, At: now, Customer: "dave", Status: rydes.StatusExpired},
	}, evs[2:])

	require.Equal(t, []rydes.Event{
		{RFQID: r2.ID, Seq: 1, Type: rydes.EventCreated, At: base, Customer: "erin", Status: rydes.StatusOpen},
		{RFQID: r2.ID, Seq: 2, Type: rydes.EventProviderTimedOut, At: now, Customer: "erin", Provider: "x", Status: rydes.StatusOpen},
		{RFQID: r2.ID, Seq: 3, Type: rydes.EventExpired, At: now, Customer: "erin", Status: rydes.StatusExpired},
	}, events(t, s, r2.ID))

	got3 := get(t, s, r3.ID)
	require.Equal(t, rydes.StatusOpen, got3.Status)
	require.Len(t, events(t, s, r3.ID), 1)
}

func testExpireDueBefore(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	r1 := createRFQ(t, s, rfqOpts{Providers: []string{"a"}, Timeout: 10 * time.Second})
	r2 := createRFQ(t, s, rfqOpts{Providers: []string{"b"}, Timeout: 20 * time.Second})
	now := base.Add(time.Minute) // both deadlines passed
	ids, err := s.ExpireDue(ctx, store.ExpireDueParams{Now: now, Before: r2.Deadline.Add(-time.Microsecond)})
	require.NoError(t, err)
	require.Equal(t, []string{r1.ID}, ids, "only deadlines at or before Before")
	require.Equal(t, now, get(t, s, r1.ID).ClosedAt, "closed at Now")
	require.Equal(t, rydes.StatusOpen, get(t, s, r2.ID).Status)

	ids, err = s.ExpireDue(ctx, store.ExpireDueParams{Now: now, Before: now.Add(time.Hour)})
	require.NoError(t, err)
	require.Equal(t, []string{r2.ID}, ids, "a Before after Now is Now")
}

func testExpireDueLimit(t *testing.T, s store.Store) {
	late := createRFQ(t, s, rfqOpts{Timeout: 30 * time.Second})
	early := createRFQ(t, s, rfqOpts{Timeout: 10 * time.Second})
	middle := createRFQ(t, s, rfqOpts{Timeout: 20 * time.Second})
	now := base.Add(time.Minute)
	require.Equal(t, []string{early.ID}, expire(t, s, now, 1))
	require.Equal(t, []string{middle.ID, late.ID}, expire(t, s, now, 0))
	require.Empty(t, expire(t, s, now, 0))
}

func testExpireDueOnce(t *testing.T, s store.Store) {
	r := createRFQ(t, s, rfqOpts{})
	require.Equal(t, []string{r.ID}, expire(t, s, r.Deadline, 0))
	before, beforeOutbox := get(t, s, r.ID), outbox(t, s)
	require.Empty(t, expire(t, s, r.Deadline, 0))
	require.Empty(t, expire(t, s, r.Deadline.Add(time.Hour), 0))
	require.Equal(t, before, get(t, s, r.ID), "a second expiry changes nothing (not even closed_at)")
	require.Equal(t, beforeOutbox, outbox(t, s), "a second expiry emits nothing")
	evs := events(t, s, r.ID)
	require.Equal(t, rydes.EventExpired, evs[len(evs)-1].Type)
	require.Len(t, evs, 1+3+1)
}

func testExpireDueSkipsClosed(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	done := createRFQ(t, s, rfqOpts{Providers: []string{"p1"}})
	cancelled := createRFQ(t, s, rfqOpts{})
	now := base.Add(time.Second)
	stage(t, s, now, quote(done, "p1", "10", now))
	_, err := s.CancelRFQ(ctx, store.CancelRFQParams{ID: cancelled.ID, Now: now})
	require.NoError(t, err)
	before := outbox(t, s)
	require.Empty(t, expire(t, s, base.Add(time.Hour), 0))
	require.Equal(t, before, outbox(t, s))
	require.Equal(t, rydes.StatusComplete, get(t, s, done.ID).Status)
	require.Equal(t, rydes.StatusCancelled, get(t, s, cancelled.ID).Status)
}

func testNextDeadline(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	next := func() (time.Time, bool) {
		t.Helper()
		d, ok, err := s.NextDeadline(ctx)
		require.NoError(t, err)
		return d, ok
	}
	_, ok := next()
	require.False(t, ok, "no RFQ")

	r1 := createRFQ(t, s, rfqOpts{Timeout: 30 * time.Second})
	r2 := createRFQ(t, s, rfqOpts{Timeout: 10 * time.Second})
	r3 := createRFQ(t, s, rfqOpts{Providers: []string{"p1"}, Timeout: 5 * time.Second, CreatedAt: base.Add(time.Second)})
	d, ok := next()
	require.True(t, ok)
	require.Equal(t, r3.Deadline, d)

	stage(t, s, base.Add(2*time.Second), quote(r3, "p1", "1", base.Add(2*time.Second)))
	d, ok = next()
	require.True(t, ok)
	require.Equal(t, r2.Deadline, d, "complete RFQs have no deadline to keep")

	_, err := s.CancelRFQ(ctx, store.CancelRFQParams{ID: r2.ID, Now: base.Add(3 * time.Second)})
	require.NoError(t, err)
	d, ok = next()
	require.True(t, ok)
	require.Equal(t, r1.Deadline, d)

	expire(t, s, r1.Deadline, 0)
	_, ok = next()
	require.False(t, ok, "no RFQ open")
}

func testCancel(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	r := createRFQ(t, s, rfqOpts{Customer: "frank", Providers: []string{"a", "b"}})
	tq := base.Add(time.Second)
	stage(t, s, tq, quote(r, "a", "15", tq))

	now := base.Add(3 * time.Second)
	res, err := s.CancelRFQ(ctx, store.CancelRFQParams{ID: r.ID, Customer: "frank", Now: now})
	require.NoError(t, err)
	wantEvent := rydes.Event{RFQID: r.ID, Seq: 4, Type: rydes.EventCancelled, At: now, Customer: "frank", Status: rydes.StatusCancelled}
	require.Equal(t, wantEvent, res.Event)
	require.Equal(t, rydes.StatusCancelled, res.RFQ.Status)
	require.Equal(t, now, res.RFQ.ClosedAt)
	require.Len(t, res.RFQ.Quotes, 1, "quotes so far are kept")
	require.Equal(t, []rydes.RosterEntry{
		{Provider: "a", State: rydes.ProviderQuoted, ChangedAt: tq},
		{Provider: "b", State: rydes.ProviderWithdrawn, ChangedAt: now},
	}, res.RFQ.Providers, "cancelling withdraws the providers still pending")
	require.Equal(t, res.RFQ, get(t, s, r.ID))
	require.Equal(t, []rydes.Event{
		{RFQID: r.ID, Seq: 3, Type: rydes.EventProviderWithdrawn, At: now, Customer: "frank", Provider: "b", Status: rydes.StatusOpen},
		wantEvent,
	}, events(t, s, r.ID)[2:])

	_, err = s.CancelRFQ(ctx, store.CancelRFQParams{ID: r.ID, Customer: "frank", Now: now.Add(time.Second)})
	requireCode(t, rydes.ECONFLICT, err)
	require.Len(t, events(t, s, r.ID), 4, "a refused cancel emits nothing")
	require.Equal(t, now, get(t, s, r.ID).ClosedAt)
}

func testCancelConflicts(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	cancel := func(id, customer string) error {
		_, err := s.CancelRFQ(ctx, store.CancelRFQParams{ID: id, Customer: customer, Now: base.Add(time.Minute)})
		return err
	}
	requireCode(t, rydes.ENOTFOUND, cancel(rydes.NewID(), ""))

	r := createRFQ(t, s, rfqOpts{Customer: "grace"})
	requireCode(t, rydes.ENOTFOUND, cancel(r.ID, "mallory"))
	require.Equal(t, rydes.StatusOpen, get(t, s, r.ID).Status)
	require.NoError(t, cancel(r.ID, ""), "no customer: any RFQ")

	done := createRFQ(t, s, rfqOpts{Providers: []string{"p1"}})
	stage(t, s, base.Add(time.Second), decline(done, "p1", "", base.Add(time.Second)))
	requireCode(t, rydes.ECONFLICT, cancel(done.ID, ""))
	require.Equal(t, rydes.StatusComplete, get(t, s, done.ID).Status)

	expired := createRFQ(t, s, rfqOpts{})
	expire(t, s, expired.Deadline, 0)
	requireCode(t, rydes.ECONFLICT, cancel(expired.ID, ""))
	require.Equal(t, rydes.StatusExpired, get(t, s, expired.ID).Status)
}

func testOutbox(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	r1 := createRFQ(t, s, rfqOpts{Customer: "heidi", Providers: []string{"p2", "p1"}, Passengers: 2,
		PickupAt: base.Add(time.Hour), Attributes: map[string]string{"pets": "yes"}})
	r2 := createRFQ(t, s, rfqOpts{Providers: []string{"p3"}})

	ms := outbox(t, s)
	require.Len(t, ms, 1+1+1+1, "a message of dispatches and a created event each")
	for i := 1; i < len(ms); i++ {
		require.Greater(t, ms[i].ID, ms[i-1].ID, "oldest first")
	}
	dispatched := map[string][]string{}
	for _, m := range ms {
		switch m.Kind {
		case store.OutboxDispatch:
			require.NotNil(t, m.Dispatch)
			require.Nil(t, m.Events)
			r := r1
			if m.Dispatch.Request.RFQID == r2.ID {
				r = r2
			}
			require.Equal(t, r.ProviderRequest(), m.Dispatch.Request)
			require.Equal(t, r.CreatedAt, m.CreatedAt)
			require.Empty(t, dispatched[r.ID], "one message of dispatches per RFQ")
			dispatched[r.ID] = m.Dispatch.Providers
		case store.OutboxEvent:
			require.Len(t, m.Events, 1)
			require.Equal(t, rydes.EventCreated, m.Events[0].Type)
		default:
			t.Fatalf("message %d of unknown kind %q", m.ID, m.Kind)
		}
	}
	require.ElementsMatch(t, []string{"p1", "p2"}, dispatched[r1.ID])
	require.Equal(t, []string{"p3"}, dispatched[r2.ID])
	require.Equal(t, []rydes.Event{{RFQID: r1.ID, Seq: 1, Type: rydes.EventCreated, At: base, Customer: "heidi", Status: rydes.StatusOpen}},
		events(t, s, r1.ID))

	now := base.Add(time.Second)
	res := stage(t, s, now, quote(r1, "p1", "10", now), quote(r1, "stranger", "1", now))
	_, err := s.CancelRFQ(ctx, store.CancelRFQParams{ID: r2.ID, Now: now})
	require.NoError(t, err)
	require.Equal(t, []string{r1.ID}, expire(t, s, r1.Deadline, 0))

	evs := events(t, s, r1.ID)
	require.Equal(t, []rydes.EventType{rydes.EventCreated, rydes.EventQuote, rydes.EventProviderTimedOut, rydes.EventExpired}, types(evs))
	require.Equal(t, res[0].Events, evs[1:2])
	require.Equal(t, "p2", evs[2].Provider)
	require.Equal(t, []rydes.EventType{rydes.EventCreated, rydes.EventProviderWithdrawn, rydes.EventCancelled}, types(events(t, s, r2.ID)))

	ms = outbox(t, s)
	seen := map[string]bool{}
	for _, m := range ms {
		// What a broker message is known by: a dispatch's RFQ and
		// provider, the last event of a message of events.
		var keys []string
		if m.Kind == store.OutboxDispatch {
			for _, p := range m.Dispatch.Providers {
				keys = append(keys, "dispatch."+m.Dispatch.Request.RFQID+"."+p)
			}
		} else {
			keys = append(keys, "event."+m.Events[len(m.Events)-1].ID())
		}
		for _, k := range keys {
			require.False(t, seen[k], "broker message %s is published once", k)
			seen[k] = true
		}
	}
	// The expiry's two events of r1 (timed out, expired) are one message.
	require.Len(t, seen, 3+3+2, "3 dispatches (2 messages), 3 messages of r1's 4 events, 2 of r2's")

	first, err := s.PendingOutbox(ctx, store.PendingOutboxParams{Limit: 2})
	require.NoError(t, err)
	require.Equal(t, ms[:2], first)
	def, err := s.PendingOutbox(ctx, store.PendingOutboxParams{})
	require.NoError(t, err)
	require.Equal(t, ms, def, "limit 0 is 100")
}

func testRFQSeq(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	r := createRFQ(t, s, rfqOpts{Customer: "dave", Providers: []string{"a", "b"}})
	seq, err := s.RFQSeq(ctx, store.GetRFQParams{ID: r.ID})
	require.NoError(t, err)
	require.EqualValues(t, 1, seq)
	tq := base.Add(time.Second)
	stage(t, s, tq, quote(r, "a", "10", tq))
	seq, err = s.RFQSeq(ctx, store.GetRFQParams{ID: r.ID, Customer: "dave"})
	require.NoError(t, err)
	require.Equal(t, get(t, s, r.ID).Seq, seq, "the seq GetRFQ returns")
	require.EqualValues(t, 2, seq)

	_, err = s.RFQSeq(ctx, store.GetRFQParams{ID: r.ID, Customer: "erin"})
	require.Equal(t, rydes.ENOTFOUND, rydes.ErrorCodeOf(err), "another customer's")
	_, err = s.RFQSeq(ctx, store.GetRFQParams{ID: rydes.NewID()})
	require.Equal(t, rydes.ENOTFOUND, rydes.ErrorCodeOf(err))
}

func testListRFQs(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	var open []string
	for range 3 {
		open = append(open, createRFQ(t, s, rfqOpts{}).ID)
	}
	cancelled := createRFQ(t, s, rfqOpts{})
	before := cancelled.CreatedAt.Add(time.Second)
	_, err := s.CancelRFQ(ctx, store.CancelRFQParams{ID: cancelled.ID, Now: before})
	require.NoError(t, err)
	sort.Strings(open)

	ids := func(rs []rydes.RFQ) []string {
		out := []string{}
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	got, err := s.ListRFQs(ctx, store.ListRFQsParams{Open: true})
	require.NoError(t, err)
	require.Equal(t, open, ids(got), "open ones, by id")
	want, err := s.GetRFQ(ctx, store.GetRFQParams{ID: got[0].ID})
	require.NoError(t, err)
	require.Equal(t, want, got[0], "as GetRFQ returns them")

	page, err := s.ListRFQs(ctx, store.ListRFQsParams{Open: true, AfterID: open[0], Limit: 1})
	require.NoError(t, err)
	require.Equal(t, open[1:2], ids(page), "after AfterID, at most Limit")

	final, err := s.ListRFQs(ctx, store.ListRFQsParams{ClosedSince: before})
	require.NoError(t, err)
	require.Equal(t, []string{cancelled.ID}, ids(final))
	require.Equal(t, rydes.StatusCancelled, final[0].Status)
	final, err = s.ListRFQs(ctx, store.ListRFQsParams{ClosedSince: before.Add(time.Microsecond)})
	require.NoError(t, err)
	require.Empty(t, final, "closed before ClosedSince")
}

func testDeleteOutbox(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	for range 4 {
		createRFQ(t, s, rfqOpts{})
	}
	ms := outbox(t, s)
	require.Len(t, ms, 8, "per RFQ, its dispatches and its created event")

	ids := []int64{ms[0].ID, ms[2].ID, ms[5].ID}
	require.NoError(t, s.DeleteOutbox(ctx, store.DeleteOutboxParams{IDs: ids}))
	rest := outbox(t, s)
	require.Equal(t, []store.OutboxMessage{ms[1], ms[3], ms[4], ms[6], ms[7]}, rest)

	require.NoError(t, s.DeleteOutbox(ctx, store.DeleteOutboxParams{IDs: append(ids, ms[7].ID+1_000_000)}), "ids already gone are ignored")
	require.NoError(t, s.DeleteOutbox(ctx, store.DeleteOutboxParams{}))
	require.Equal(t, rest, outbox(t, s))

	all := make([]int64, len(rest))
	for i, m := range rest {
		all[i] = m.ID
	}
	require.NoError(t, s.DeleteOutbox(ctx, store.DeleteOutboxParams{IDs: all}))
	require.Empty(t, outbox(t, s))

	createRFQ(t, s, rfqOpts{Providers: []string{"p1"}})
	ms2 := outbox(t, s)
	require.Len(t, ms2, 2)
	require.Greater(t, ms2[0].ID, ms[7].ID, "ids are not reused, so oldest first holds")

	// AfterID reads on past what the relay already has.
	after, err := s.PendingOutbox(ctx, store.PendingOutboxParams{AfterID: ms2[0].ID})
	require.NoError(t, err)
	require.Equal(t, ms2[1:], after)
	after, err = s.PendingOutbox(ctx, store.PendingOutboxParams{AfterID: ms2[1].ID})
	require.NoError(t, err)
	require.Empty(t, after)
}

// testOutboxHoldsEvents checks that OutboxHoldsEvents tells whether an
// RFQ's events wait in the outbox: its dispatches do not count, nor other
// RFQs' events.
func testOutboxHoldsEvents(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	r1 := createRFQ(t, s, rfqOpts{})
	r2 := createRFQ(t, s, rfqOpts{})
	holds := func(id string) bool {
		t.Helper()
		h, err := s.OutboxHoldsEvents(ctx, id)
		require.NoError(t, err)
		return h
	}
	require.True(t, holds(r1.ID), "its created event")
	require.False(t, holds(rydes.NewID()), "an RFQ with nothing in the outbox")

	var events []int64
	for _, m := range outbox(t, s) {
		if m.Kind == store.OutboxEvent && m.Events[0].RFQID == r1.ID {
			events = append(events, m.ID)
		}
	}
	require.NoError(t, s.DeleteOutbox(ctx, store.DeleteOutboxParams{IDs: events}))
	require.False(t, holds(r1.ID), "published; its dispatches, still there, do not count")
	require.True(t, holds(r2.ID))
}

// testDeleteOutboxRaisesAcked checks that DeleteOutbox keeps, with the
// delete, each stream's highest acknowledged sequence: raised, never
// lowered, and nothing written for a stream not in Acked.
func testDeleteOutboxRaisesAcked(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	acked := func(stream string) (string, bool) {
		t.Helper()
		v, ok, err := s.GetSetting(ctx, store.AckedSetting(stream))
		require.NoError(t, err)
		return v, ok
	}
	require.Equal(t, "reconcile.acked.S", store.AckedSetting("S"))
	createRFQ(t, s, rfqOpts{})
	createRFQ(t, s, rfqOpts{})
	ms := outbox(t, s)
	require.Len(t, ms, 4)

	require.NoError(t, s.DeleteOutbox(ctx, store.DeleteOutboxParams{IDs: []int64{ms[0].ID}}))
	_, ok := acked("S")
	require.False(t, ok, "no Acked writes nothing")
	require.NoError(t, s.DeleteOutbox(ctx, store.DeleteOutboxParams{IDs: []int64{ms[1].ID}, Acked: map[string]uint64{}}))
	_, ok = acked("S")
	require.False(t, ok, "an empty Acked writes nothing")

	require.NoError(t, s.DeleteOutbox(ctx, store.DeleteOutboxParams{IDs: []int64{ms[2].ID}, Acked: map[string]uint64{"S": 7, "T": 3}}))
	require.Equal(t, ms[3:], outbox(t, s), "deleted with the setting written")
	v, _ := acked("S")
	require.Equal(t, "7", v)
	v, _ = acked("T")
	require.Equal(t, "3", v)

	require.NoError(t, s.DeleteOutbox(ctx, store.DeleteOutboxParams{IDs: []int64{ms[3].ID}, Acked: map[string]uint64{"S": 5, "T": 12}}))
	require.Empty(t, outbox(t, s), "deleted even though S is not raised")
	v, _ = acked("S")
	require.Equal(t, "7", v, "a lower sequence leaves it")
	v, _ = acked("T")
	require.Equal(t, "12", v, "a higher one raises it")

	require.NoError(t, s.DeleteOutbox(ctx, store.DeleteOutboxParams{Acked: map[string]uint64{"S": 7}}))
	v, _ = acked("S")
	require.Equal(t, "7", v, "an equal sequence leaves it")
	v, _ = acked("U")
	require.Empty(t, v)

	// A value that is not a sequence counts as 0.
	require.NoError(t, s.PutSetting(ctx, store.AckedSetting("S"), "garbage"))
	require.NoError(t, s.DeleteOutbox(ctx, store.DeleteOutboxParams{Acked: map[string]uint64{"S": 2}}))
	v, _ = acked("S")
	require.Equal(t, "2", v)
	require.NoError(t, s.DeleteOutbox(ctx, store.DeleteOutboxParams{Acked: map[string]uint64{"S": 18446744073709551615}}))
	v, _ = acked("S")
	require.Equal(t, "18446744073709551615", v, "the whole uint64 range")
}

// testDeleteOutboxAckedRace races DeleteOutbox calls raising one stream's
// setting: each reads and raises it in its transaction, so the highest
// sequence wins whatever the order.
func testDeleteOutboxAckedRace(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			seq := uint64((i*7)%n + 1) // 1..n in a scrambled order
			errs[i] = s.DeleteOutbox(ctx, store.DeleteOutboxParams{Acked: map[string]uint64{"S": seq}})
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	v, ok, err := s.GetSetting(ctx, store.AckedSetting("S"))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, fmt.Sprint(n), v)
}

func testRejections(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	require.NoError(t, s.RecordRejections(ctx, nil))
	id := rydes.NewID()
	rs := []rydes.Rejection{
		{RFQID: id, Provider: "p1", Reason: rydes.RejectInvalid, Message: "cannot decode", ReceivedAt: base, Payload: []byte(`{"kind":`)},
		{RFQID: "", Provider: "p2", Reason: rydes.RejectInvalid, Message: "no rfq id", ReceivedAt: base.Add(time.Second), Payload: []byte{0xff, 0x00, 0x01}},
		{RFQID: id, Provider: "p3", Reason: rydes.RejectInvalid, Message: "too big", ReceivedAt: base.Add(2 * time.Second)},
	}
	require.NoError(t, s.RecordRejections(ctx, rs))

	require.Equal(t, []rydes.Rejection{rs[0], rs[2]}, rejections(t, s, id))
	require.Equal(t, rs, rejections(t, s, ""))
	two, err := s.ListRejections(ctx, store.ListRejectionsParams{Limit: 2})
	require.NoError(t, err)
	require.Equal(t, rs[:2], two)
	require.Empty(t, rejections(t, s, rydes.NewID()))

	// Rejections from staging join them, oldest first.
	now := base.Add(3 * time.Second)
	a := quote(rydes.RFQ{ID: id}, "p4", "10", now)
	requireRejected(t, rydes.RejectUnknownRFQ, stage(t, s, now, a)[0])
	got := rejections(t, s, id)
	require.Len(t, got, 3)
	require.Equal(t, "p4", got[2].Provider)
	require.Equal(t, a.Payload, got[2].Payload)
	require.Equal(t, now, got[2].ReceivedAt)
}

func testRejectionsLimit(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	rs := make([]rydes.Rejection, 105)
	for i := range rs {
		rs[i] = rydes.Rejection{RFQID: "x", Provider: fmt.Sprintf("p%03d", i), Reason: rydes.RejectInvalid, Message: "m", ReceivedAt: base}
	}
	require.NoError(t, s.RecordRejections(ctx, rs))
	got := rejections(t, s, "x")
	require.Len(t, got, 100)
	require.Equal(t, "p000", got[0].Provider)
	require.Equal(t, "p099", got[99].Provider)
}

// testConcurrency races answers (each delivered twice: once in a batch for
// every RFQ, once one by one) against expiries sweeping forward in time, for
// the same RFQs, and checks that every RFQ closed exactly once, with one
// event per transition and a roster that agrees with them. RFQs 0-5 race;
// 6-7 ask a provider that never answers, so they expire; 8-9 have a deadline
// no sweep reaches, so they complete.
func testConcurrency(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	const nRFQs, expirers, rounds = 10, 4, 8
	providers := []string{"p0", "p1", "p2", "p3", "p4"}
	var rfqs []rydes.RFQ
	for i := range nRFQs {
		o := rfqOpts{Providers: providers, Customer: fmt.Sprintf("c%d", i), Timeout: time.Duration(11+i) * time.Second}
		switch {
		case i >= 8:
			o.Timeout = 10 * time.Minute
		case i >= 6:
			o.Providers = append([]string{"silent"}, providers...)
		}
		rfqs = append(rfqs, createRFQ(t, s, o))
	}
	answer := func(r rydes.RFQ, provider string, delivery int) store.StageAnswer {
		at := base.Add(time.Duration(delivery+1) * time.Second)
		if provider == "p1" || provider == "p3" {
			return decline(r, provider, "busy", at)
		}
		return quote(r, provider, "1"+provider[1:]+".25", at)
	}
	answeredAt := base.Add(10 * time.Second) // before every deadline

	type key struct{ rfq, provider string }
	var (
		mu        sync.Mutex
		errs      []error
		outcomes  = map[key][]rydes.Decision{}
		completes = map[string]int{}
		expiries  = map[string]int{}
		wg        sync.WaitGroup
		start     = make(chan struct{})
	)
	record := func(batch []store.StageAnswer, res []store.StageResult, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			return
		}
		for i, rr := range res {
			k := key{batch[i].Answer.RFQID, batch[i].Answer.Provider}
			outcomes[k] = append(outcomes[k], rr.Decision)
			for _, e := range rr.Events {
				if e.Type == rydes.EventComplete {
					completes[e.RFQID]++
				}
			}
		}
	}
	for _, p := range providers {
		wg.Go(func() { // first delivery: one batch for every RFQ
			<-start
			var batch []store.StageAnswer
			for _, r := range rfqs {
				batch = append(batch, answer(r, p, 0))
			}
			res, err := s.StageAnswers(ctx, store.StageAnswersParams{Answers: batch, Now: answeredAt})
			record(batch, res, err)
		})
		wg.Go(func() { // redelivery: one by one, last RFQ first
			<-start
			for i := len(rfqs) - 1; i >= 0; i-- {
				batch := []store.StageAnswer{answer(rfqs[i], p, 1)}
				res, err := s.StageAnswers(ctx, store.StageAnswersParams{Answers: batch, Now: answeredAt})
				record(batch, res, err)
			}
		})
	}
	for range expirers {
		wg.Go(func() {
			<-start
			for k := range rounds {
				ids, err := s.ExpireDue(ctx, store.ExpireDueParams{Now: base.Add(time.Duration(11+k) * time.Second)})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				for _, id := range ids {
					expiries[id]++
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	require.Empty(t, errs)
	for _, id := range expire(t, s, base.Add(30*time.Second), 0) {
		expiries[id]++
	}

	var statuses []rydes.Status
	for i, r := range rfqs {
		got := get(t, s, r.ID)
		evs := events(t, s, r.ID)
		require.True(t, got.Status.Final(), "RFQ %s is %s", r.ID, got.Status)
		var finals []rydes.EventType
		perProvider := map[string][]rydes.EventType{}
		for _, e := range evs {
			if e.Type.Final() {
				finals = append(finals, e.Type)
			}
			if e.Provider != "" {
				perProvider[e.Provider] = append(perProvider[e.Provider], e.Type)
			}
		}
		require.Len(t, finals, 1, "one final event for %s: %v", r.ID, types(evs))
		require.Equal(t, finals[0], evs[len(evs)-1].Type, "the final event is the last")
		switch got.Status {
		case rydes.StatusComplete:
			require.Equal(t, rydes.EventComplete, finals[0])
			require.Equal(t, 1, completes[r.ID])
			require.Zero(t, expiries[r.ID])
			require.Equal(t, got.ClosedAt, evs[len(evs)-1].At)
		case rydes.StatusExpired:
			require.Equal(t, rydes.EventExpired, finals[0])
			require.Zero(t, completes[r.ID])
			require.Equal(t, 1, expiries[r.ID], "expired once")
		default:
			t.Fatalf("RFQ %s is %s", r.ID, got.Status)
		}

		quotes := 0
		for _, e := range got.Providers {
			ds := outcomes[key{r.ID, e.Provider}]
			nStaged := 0
			for _, d := range ds {
				switch {
				case d.Outcome == rydes.OutcomeStaged:
					nStaged++
				case d.Outcome == rydes.OutcomeDuplicate:
				case d.Outcome == rydes.OutcomeRejected && d.Reason == rydes.RejectLate:
				default:
					t.Fatalf("RFQ %s provider %s: unexpected decision %+v", r.ID, e.Provider, d)
				}
			}
			switch e.State {
			case rydes.ProviderQuoted, rydes.ProviderDeclined:
				require.Equal(t, 1, nStaged, "%s staged once", e.Provider)
				want := rydes.EventQuote
				if e.State == rydes.ProviderDeclined {
					want = rydes.EventDecline
				}
				require.Equal(t, []rydes.EventType{want}, perProvider[e.Provider])
				if e.State == rydes.ProviderQuoted {
					quotes++
				}
			case rydes.ProviderTimedOut:
				require.Equal(t, rydes.StatusExpired, got.Status)
				require.Zero(t, nStaged)
				require.Equal(t, []rydes.EventType{rydes.EventProviderTimedOut}, perProvider[e.Provider])
			default:
				t.Fatalf("RFQ %s provider %s is %s after closing", r.ID, e.Provider, e.State)
			}
			if e.Provider == "silent" {
				require.Equal(t, rydes.ProviderTimedOut, e.State)
			}
		}
		require.Len(t, got.Quotes, quotes)
		require.Len(t, evs, 1+len(got.Providers)+1, "created, one per provider, one final")
		switch {
		case i >= 8:
			require.Equal(t, rydes.StatusComplete, got.Status, "RFQ %d", i)
		case i >= 6:
			require.Equal(t, rydes.StatusExpired, got.Status, "RFQ %d", i)
		}
		statuses = append(statuses, got.Status)
	}
	t.Logf("racing RFQs ended %v", statuses[:6])
}
