package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
)

// markFailed marks provider failed for r at now and returns the events.
func markFailed(t *testing.T, s store.Store, r rydes.RFQ, provider, reason string, now time.Time) []rydes.Event {
	t.Helper()
	evs, err := s.MarkProviderFailed(rydestest.Context(t), store.MarkProviderFailedParams{RFQID: r.ID, Provider: provider, Error: reason, Now: now})
	require.NoError(t, err)
	return evs
}

func deleteProvider(t *testing.T, s store.Store, id string, now time.Time) []string {
	t.Helper()
	ids, err := s.DeleteProvider(rydestest.Context(t), store.DeleteProviderParams{ID: id, Now: now})
	require.NoError(t, err)
	require.NotNil(t, ids)
	return ids
}

func cancel(t *testing.T, s store.Store, r rydes.RFQ, now time.Time) {
	t.Helper()
	_, err := s.CancelRFQ(rydestest.Context(t), store.CancelRFQParams{ID: r.ID, Now: now})
	require.NoError(t, err)
}

// entry returns provider's roster entry of RFQ id.
func entry(t *testing.T, s store.Store, id, provider string) rydes.RosterEntry {
	t.Helper()
	for _, e := range get(t, s, id).Providers {
		if e.Provider == provider {
			return e
		}
	}
	t.Fatalf("provider %s is not in the roster of RFQ %s", provider, id)
	return rydes.RosterEntry{}
}

// testDeleteProviderMidFlight deletes a provider asked in RFQs in every
// state: it is withdrawn from the open ones it is pending or failed in, and
// nothing else changes.
func testDeleteProviderMidFlight(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	createProvider(t, s, natsProvider("gone"), secretsFor("gone", "1"), base)
	p2 := createProvider(t, s, webhookProvider("p2"), secretsFor("p2", "1"), base)
	p3, err := s.UpsertProvider(ctx, store.UpsertProviderParams{ID: "p3", Name: "P3", Kind: rydes.ProviderKindSimulated, Status: rydes.ProviderActive, Now: base})
	require.NoError(t, err)

	at := func(d time.Duration) time.Time { return base.Add(d) }
	rA := createRFQ(t, s, rfqOpts{Customer: "ann", Providers: []string{"gone", "p2"}, CreatedAt: at(0)})                 // completes
	rB := createRFQ(t, s, rfqOpts{Customer: "bob", Providers: []string{"p2", "gone", "p3"}, CreatedAt: at(time.Second)}) // stays open
	rC := createRFQ(t, s, rfqOpts{Providers: []string{"gone", "p2"}, CreatedAt: at(2 * time.Second)})                    // gone answered
	rD := createRFQ(t, s, rfqOpts{Providers: []string{"gone", "p2"}, CreatedAt: at(3 * time.Second), Timeout: 10 * time.Second})
	rE := createRFQ(t, s, rfqOpts{Providers: []string{"gone", "p2"}, CreatedAt: at(4 * time.Second)}) // cancelled
	rF := createRFQ(t, s, rfqOpts{Customer: "fay", Providers: []string{"gone", "p2"}, CreatedAt: at(5 * time.Second)})
	rG := createRFQ(t, s, rfqOpts{Providers: []string{"p2", "p3"}, CreatedAt: at(6 * time.Second)}) // without gone
	rH := createRFQ(t, s, rfqOpts{Providers: []string{"gone", "p2"}, CreatedAt: at(7 * time.Second)})
	rI := createRFQ(t, s, rfqOpts{Providers: []string{"gone", "p3"}, CreatedAt: at(9 * time.Second), Timeout: 10 * time.Second}) // due first

	t1 := at(8 * time.Second)
	stage(t, s, t1, quote(rA, "p2", "20", t1), quote(rC, "gone", "15", t1))
	require.Equal(t, []string{rD.ID}, expire(t, s, rD.Deadline, 0))
	cancel(t, s, rE, t1)
	require.Len(t, markFailed(t, s, rF, "gone", "HTTP 503", t1), 1)
	require.Len(t, markFailed(t, s, rH, "gone", "HTTP 503", t1), 1)
	require.Equal(t, rydes.StatusComplete, stage(t, s, t1, decline(rH, "p2", "", t1))[0].Status, "rH completed: gone failed, p2 answered")

	untouched := []rydes.RFQ{rC, rD, rE, rG, rH}
	before := map[string]rydes.RFQ{}
	beforeEvents := map[string][]rydes.Event{}
	for _, r := range untouched {
		before[r.ID], beforeEvents[r.ID] = get(t, s, r.ID), events(t, s, r.ID)
	}

	tDel := at(14 * time.Second)
	require.Equal(t, []string{rI.ID, rA.ID, rB.ID, rF.ID}, deleteProvider(t, s, "gone", tDel), "the open RFQs it was pending or failed in, earliest deadline first")
	withdrawn := rydes.RosterEntry{Provider: "gone", State: rydes.ProviderWithdrawn, ChangedAt: tDel}

	// rA: gone was the last one pending, so the RFQ completes.
	gotA := get(t, s, rA.ID)
	require.Equal(t, rydes.StatusComplete, gotA.Status)
	require.Equal(t, tDel, gotA.ClosedAt)
	require.Equal(t, withdrawn, gotA.Providers[0])
	require.Len(t, gotA.Quotes, 1)
	evsA := events(t, s, rA.ID)
	require.Equal(t, []rydes.EventType{rydes.EventCreated, rydes.EventQuote, rydes.EventProviderWithdrawn, rydes.EventComplete}, types(evsA))
	require.Equal(t, []rydes.Event{
		{RFQID: rA.ID, Seq: 3, Type: rydes.EventProviderWithdrawn, At: tDel, Customer: "ann", Provider: "gone", Status: rydes.StatusOpen},
		{RFQID: rA.ID, Seq: 4, Type: rydes.EventComplete, At: tDel, Customer: "ann", Status: rydes.StatusComplete},
	}, evsA[2:])

	// rB: two providers are still pending; they complete it.
	gotB := get(t, s, rB.ID)
	require.Equal(t, rydes.StatusOpen, gotB.Status)
	require.Equal(t, withdrawn, gotB.Providers[1])
	require.Equal(t, []rydes.Event{
		{RFQID: rB.ID, Seq: 1, Type: rydes.EventCreated, At: rB.CreatedAt, Customer: "bob", Status: rydes.StatusOpen},
		{RFQID: rB.ID, Seq: 2, Type: rydes.EventProviderWithdrawn, At: tDel, Customer: "bob", Provider: "gone", Status: rydes.StatusOpen},
	}, events(t, s, rB.ID))
	t2 := tDel.Add(time.Second)
	require.Equal(t, rydes.StatusOpen, stage(t, s, t2, quote(rB, "p2", "30", t2))[0].Status)
	res := stage(t, s, t2, decline(rB, "p3", "", t2))[0]
	require.Equal(t, rydes.StatusComplete, res.Status, "the last pending answer completes it")
	require.Equal(t, []rydes.EventType{rydes.EventDecline, rydes.EventComplete}, types(res.Events))

	// rF: gone had failed, so it was already done; p2 is still pending.
	gotF := get(t, s, rF.ID)
	require.Equal(t, rydes.StatusOpen, gotF.Status, "a failed provider's withdrawal does not count it twice")
	require.Equal(t, withdrawn, gotF.Providers[0], "a withdrawn entry has no failure reason")
	require.Equal(t, []rydes.EventType{rydes.EventCreated, rydes.EventProviderFailed, rydes.EventProviderWithdrawn}, types(events(t, s, rF.ID)))
	require.Equal(t, rydes.StatusComplete, stage(t, s, t2, quote(rF, "p2", "12", t2))[0].Status)

	for _, r := range untouched {
		require.Equal(t, before[r.ID], get(t, s, r.ID), "RFQ %s is untouched", r.ID)
		require.Equal(t, beforeEvents[r.ID], events(t, s, r.ID), "RFQ %s emitted nothing", r.ID)
	}
	require.Equal(t, rydes.ProviderQuoted, entry(t, s, rC.ID, "gone").State)
	require.Equal(t, rydes.ProviderTimedOut, entry(t, s, rD.ID, "gone").State)
	require.Equal(t, rydes.RosterEntry{Provider: "gone", State: rydes.ProviderWithdrawn, ChangedAt: t1}, entry(t, s, rE.ID, "gone"), "withdrawn by the cancel, not by the deletion")
	require.Equal(t, rydes.RosterEntry{Provider: "gone", State: rydes.ProviderFailed, ChangedAt: t1, Reason: "HTTP 503"}, entry(t, s, rH.ID, "gone"))

	// Later answers from the deleted provider are refused and kept.
	t3 := tDel.Add(2 * time.Second)
	res = stage(t, s, t3, quote(rB, "gone", "1", t3))[0]
	requireRejected(t, rydes.RejectWithdrawn, res)
	require.Equal(t, rydes.StatusComplete, res.Status)
	requireRejected(t, rydes.RejectWithdrawn, stage(t, s, t3, decline(rA, "gone", "", t3))[0])
	rs := rejections(t, s, rB.ID)
	require.Len(t, rs, 1)
	require.Equal(t, rydes.RejectWithdrawn, rs[0].Reason)
	require.Len(t, rejections(t, s, rA.ID), 1)

	// The provider is gone; the others are not.
	_, err = s.GetProvider(ctx, "gone")
	requireCode(t, rydes.ENOTFOUND, err)
	_, err = s.DeleteProvider(ctx, store.DeleteProviderParams{ID: "gone", Now: t3})
	requireCode(t, rydes.ENOTFOUND, err)
	require.Equal(t, []rydes.Provider{p2, p3}, listProviders(t, s, store.ListProvidersParams{}))
	require.Equal(t, secretsFor("p2", "1"), secretsOf(t, s, "p2"))

	// Its statistics remain.
	st, err := s.ProviderStats(ctx, "gone")
	require.NoError(t, err)
	require.Equal(t, rydes.ProviderStats{
		Provider: "gone", Asked: 8, Quoted: 1, TimedOut: 1, Failed: 1, Withdrawn: 5, // rA rB rE (cancelled) rF rI
		ResponseP50: rydes.Duration(6 * time.Second), ResponseP99: rydes.Duration(6 * time.Second),
	}, st)

	// Deleting a provider asked in nothing withdraws it from nothing.
	createProvider(t, s, natsProvider("idle"), store.ProviderSecrets{}, base)
	require.Empty(t, deleteProvider(t, s, "idle", t3))
}

// testMarkProviderFailed follows one RFQ through failures and answers.
func testMarkProviderFailed(t *testing.T, s store.Store) {
	r := createRFQ(t, s, rfqOpts{Customer: "fay", Providers: []string{"p1", "p2", "p3"}})
	tf := base.Add(2 * time.Second)
	failed := rydes.Event{
		RFQID: r.ID, Seq: 2, Type: rydes.EventProviderFailed, At: tf, Customer: "fay",
		Provider: "p1", Reason: "HTTP 503 Service Unavailable", Status: rydes.StatusOpen,
	}
	require.Equal(t, []rydes.Event{failed}, markFailed(t, s, r, "p1", "HTTP 503 Service Unavailable", tf))
	require.Equal(t, rydes.RosterEntry{Provider: "p1", State: rydes.ProviderFailed, ChangedAt: tf, Reason: "HTTP 503 Service Unavailable"}, entry(t, s, r.ID, "p1"))
	require.Equal(t, rydes.StatusOpen, get(t, s, r.ID).Status)
	require.Equal(t, failed, events(t, s, r.ID)[1])

	before, beforeOutbox := get(t, s, r.ID), outbox(t, s)
	require.Empty(t, markFailed(t, s, r, "p1", "connection refused", tf.Add(time.Second)), "marking twice emits once")
	require.Equal(t, before, get(t, s, r.ID))
	require.Equal(t, beforeOutbox, outbox(t, s))

	// The failed provider answers after all, before the deadline: staged,
	// and the RFQ waits for the two still pending.
	t3 := base.Add(3 * time.Second)
	q := quote(r, "p1", "20", t3)
	res := stage(t, s, t3, q)[0]
	require.Equal(t, staged(), res.Decision)
	require.Equal(t, rydes.StatusOpen, res.Status)
	require.Equal(t, []rydes.EventType{rydes.EventQuote}, types(res.Events))
	require.Equal(t, int64(3), res.Events[0].Seq)
	require.Equal(t, rydes.RosterEntry{Provider: "p1", State: rydes.ProviderQuoted, ChangedAt: t3}, entry(t, s, r.ID, "p1"), "the answer replaces the failure")
	require.Len(t, get(t, s, r.ID).Quotes, 1)
	require.Equal(t, duplicate(), stage(t, s, t3.Add(time.Second), q)[0].Decision)
	requireRejected(t, rydes.RejectAlreadyAnswered, stage(t, s, t3, decline(r, "p1", "", t3))[0])
	require.Empty(t, markFailed(t, s, r, "p1", "late failure", t3), "an answered provider does not fail")

	t4 := base.Add(4 * time.Second)
	require.Equal(t, rydes.StatusOpen, stage(t, s, t4, decline(r, "p2", "busy", t4))[0].Status)

	// p3, the last one pending, fails: the RFQ completes.
	t5 := base.Add(5 * time.Second)
	evs := markFailed(t, s, r, "p3", "dial tcp: i/o timeout", t5)
	require.Equal(t, []rydes.Event{
		{RFQID: r.ID, Seq: 5, Type: rydes.EventProviderFailed, At: t5, Customer: "fay", Provider: "p3", Reason: "dial tcp: i/o timeout", Status: rydes.StatusOpen},
		{RFQID: r.ID, Seq: 6, Type: rydes.EventComplete, At: t5, Customer: "fay", Status: rydes.StatusComplete},
	}, evs)
	got := get(t, s, r.ID)
	require.Equal(t, rydes.StatusComplete, got.Status)
	require.Equal(t, t5, got.ClosedAt)
	require.Equal(t, []rydes.EventType{
		rydes.EventCreated, rydes.EventProviderFailed, rydes.EventQuote, rydes.EventDecline, rydes.EventProviderFailed, rydes.EventComplete,
	}, types(events(t, s, r.ID)))

	// Closed: a failed provider's answer is refused, and nothing fails.
	t6 := base.Add(6 * time.Second)
	res = stage(t, s, t6, quote(r, "p3", "9", t6))[0]
	requireRejected(t, rydes.RejectClosed, res)
	require.Equal(t, rydes.StatusComplete, res.Status)
	require.Empty(t, markFailed(t, s, r, "p2", "x", t6))
	require.Len(t, events(t, s, r.ID), 6)
}

// testFailedProviderAnswers checks that a failed provider counts as done
// once: its later answer is staged without counting it again, and the RFQ
// completes exactly when every entry is done.
func testFailedProviderAnswers(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	t1, t2, t3 := base.Add(time.Second), base.Add(2*time.Second), base.Add(3*time.Second)

	// Failed, then answers while another is pending: open; the other completes it.
	r1 := createRFQ(t, s, rfqOpts{Providers: []string{"p1", "p2"}})
	markFailed(t, s, r1, "p1", "HTTP 500", t1)
	res := stage(t, s, t2, decline(r1, "p1", "no van", t2))[0]
	require.Equal(t, staged(), res.Decision)
	require.Equal(t, rydes.StatusOpen, res.Status, "p2 is still pending")
	require.Equal(t, rydes.RosterEntry{Provider: "p1", State: rydes.ProviderDeclined, ChangedAt: t2, Reason: "no van"}, entry(t, s, r1.ID, "p1"))
	res = stage(t, s, t3, quote(r1, "p2", "10", t3))[0]
	require.Equal(t, rydes.StatusComplete, res.Status)
	require.Equal(t, []rydes.EventType{rydes.EventQuote, rydes.EventComplete}, types(res.Events))
	require.Equal(t, []rydes.EventType{rydes.EventCreated, rydes.EventProviderFailed, rydes.EventDecline, rydes.EventQuote, rydes.EventComplete},
		types(events(t, s, r1.ID)))

	// Failed, then the other answers: complete; the failed answer comes too late.
	r2 := createRFQ(t, s, rfqOpts{Providers: []string{"p1", "p2"}})
	markFailed(t, s, r2, "p1", "HTTP 500", t1)
	res = stage(t, s, t2, quote(r2, "p2", "10", t2))[0]
	require.Equal(t, rydes.StatusComplete, res.Status, "a failed provider does not hold up completion")
	requireRejected(t, rydes.RejectClosed, stage(t, s, t3, quote(r2, "p1", "10", t3))[0])
	require.Equal(t, rydes.ProviderFailed, entry(t, s, r2.ID, "p1").State)

	// Alone and failed: complete at once.
	r3 := createRFQ(t, s, rfqOpts{Customer: "solo", Providers: []string{"p1"}})
	require.Equal(t, []rydes.EventType{rydes.EventProviderFailed, rydes.EventComplete}, types(markFailed(t, s, r3, "p1", "", t1)))
	require.Equal(t, rydes.RosterEntry{Provider: "p1", State: rydes.ProviderFailed, ChangedAt: t1}, entry(t, s, r3.ID, "p1"))

	// Every provider fails but one, which answers in a batch with a failed one.
	r4 := createRFQ(t, s, rfqOpts{Providers: []string{"p1", "p2", "p3"}})
	markFailed(t, s, r4, "p1", "x", t1)
	markFailed(t, s, r4, "p2", "x", t1)
	rs := stage(t, s, t2, quote(r4, "p1", "5", t2), quote(r4, "p2", "6", t2), decline(r4, "p3", "", t2))
	require.Equal(t, rydes.StatusOpen, rs[0].Status)
	require.Equal(t, rydes.StatusOpen, rs[1].Status)
	require.Equal(t, rydes.StatusComplete, rs[2].Status, "complete exactly when the last pending answered")
	require.Len(t, get(t, s, r4.ID).Quotes, 2)

	// A failed provider's answer at the deadline is late.
	r5 := createRFQ(t, s, rfqOpts{Providers: []string{"p1", "p2"}})
	markFailed(t, s, r5, "p1", "x", t1)
	requireRejected(t, rydes.RejectLate, stage(t, s, r5.Deadline, quote(r5, "p1", "5", r5.Deadline))[0])
	require.Equal(t, rydes.ProviderFailed, entry(t, s, r5.ID, "p1").State)

	// Nothing fails in a closed RFQ, or that was not pending.
	expired := createRFQ(t, s, rfqOpts{Providers: []string{"p1"}})
	expire(t, s, expired.Deadline, 0)
	cancelled := createRFQ(t, s, rfqOpts{Providers: []string{"p1", "p2"}})
	cancel(t, s, cancelled, t1)
	beforeOutbox := outbox(t, s)
	require.Empty(t, markFailed(t, s, expired, "p1", "x", t2), "a timed-out provider does not fail")
	require.Empty(t, markFailed(t, s, cancelled, "p1", "x", t2))
	require.Equal(t, beforeOutbox, outbox(t, s))
	require.Equal(t, rydes.ProviderTimedOut, entry(t, s, expired.ID, "p1").State)
	require.Equal(t, rydes.ProviderWithdrawn, entry(t, s, cancelled.ID, "p1").State, "cancelling withdrew it")

	_, err := s.MarkProviderFailed(ctx, store.MarkProviderFailedParams{RFQID: rydes.NewID(), Provider: "p1", Error: "x", Now: t1})
	requireCode(t, rydes.ENOTFOUND, err)
	_, err = s.MarkProviderFailed(ctx, store.MarkProviderFailedParams{RFQID: r5.ID, Provider: "stranger", Error: "x", Now: t1})
	requireCode(t, rydes.ENOTFOUND, err)
}

// testExpireDueLeavesFailedAndWithdrawn checks that expiry times out only
// the providers still pending.
func testExpireDueLeavesFailedAndWithdrawn(t *testing.T, s store.Store) {
	createProvider(t, s, natsProvider("wd"), secretsFor("wd", "1"), base)
	r := createRFQ(t, s, rfqOpts{Customer: "gil", Providers: []string{"fl", "wd", "qt", "pd"}, Timeout: 10 * time.Second})
	t1, t2, t3 := base.Add(time.Second), base.Add(2*time.Second), base.Add(3*time.Second)
	markFailed(t, s, r, "fl", "connection refused", t1)
	require.Equal(t, []string{r.ID}, deleteProvider(t, s, "wd", t2))
	stage(t, s, t3, quote(r, "qt", "10", t3))
	require.Equal(t, rydes.StatusOpen, get(t, s, r.ID).Status)

	require.Equal(t, []string{r.ID}, expire(t, s, r.Deadline, 0))
	got := get(t, s, r.ID)
	require.Equal(t, rydes.StatusExpired, got.Status)
	require.Equal(t, []rydes.RosterEntry{
		{Provider: "fl", State: rydes.ProviderFailed, ChangedAt: t1, Reason: "connection refused"},
		{Provider: "wd", State: rydes.ProviderWithdrawn, ChangedAt: t2},
		{Provider: "qt", State: rydes.ProviderQuoted, ChangedAt: t3},
		{Provider: "pd", State: rydes.ProviderTimedOut, ChangedAt: r.Deadline},
	}, got.Providers)
	evs := events(t, s, r.ID)
	require.Equal(t, []rydes.EventType{
		rydes.EventCreated, rydes.EventProviderFailed, rydes.EventProviderWithdrawn, rydes.EventQuote,
		rydes.EventProviderTimedOut, rydes.EventExpired,
	}, types(evs))
	require.Equal(t, "pd", evs[4].Provider)

	// The failed provider's answer is now late.
	requireRejected(t, rydes.RejectLate, stage(t, s, t3, quote(r, "fl", "1", t3))[0])
}

// testProviderStats checks the figures on a hand-built history.
func testProviderStats(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	createProvider(t, s, natsProvider("s"), secretsFor("s", "1"), base)
	n := 0
	newRFQFor := func() rydes.RFQ {
		t.Helper()
		n++
		return createRFQ(t, s, rfqOpts{Providers: []string{"other", "s"}, CreatedAt: base.Add(time.Duration(n) * time.Minute)})
	}
	// Six answers, response times 1.5s to 10s; one of them after a failure.
	for i, d := range []time.Duration{4 * time.Second, 1500 * time.Millisecond, 10 * time.Second, 2 * time.Second, 7 * time.Second, 3 * time.Second} {
		r := newRFQFor()
		at := r.CreatedAt.Add(d)
		a := quote(r, "s", "10", at)
		switch i {
		case 1:
			a = decline(r, "s", "busy", at)
		case 2:
			markFailed(t, s, r, "s", "HTTP 502", r.CreatedAt.Add(time.Second))
		}
		require.Equal(t, staged(), stage(t, s, at, a)[0].Decision)
	}
	cancelled := newRFQFor()
	cancel(t, s, cancelled, cancelled.CreatedAt.Add(time.Second))
	timedOut := newRFQFor()
	stage(t, s, timedOut.CreatedAt.Add(time.Second), decline(timedOut, "other", "", timedOut.CreatedAt.Add(time.Second)))
	expire(t, s, timedOut.Deadline, 0)
	failed := newRFQFor()
	markFailed(t, s, failed, "s", "HTTP 500", failed.CreatedAt.Add(time.Second))
	stage(t, s, failed.CreatedAt.Add(2*time.Second), quote(failed, "other", "1", failed.CreatedAt.Add(2*time.Second)))
	withdrawn := newRFQFor()
	require.Equal(t, []string{withdrawn.ID}, deleteProvider(t, s, "s", withdrawn.CreatedAt.Add(time.Second)))

	st, err := s.ProviderStats(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, rydes.ProviderStats{
		Provider: "s", Asked: 10, Quoted: 5, Declined: 1, TimedOut: 1, Failed: 1, Withdrawn: 2, // cancelled, deleted
		// Nearest rank over 1.5s 2s 3s 4s 7s 10s: the 3rd and the 6th.
		ResponseP50: rydes.Duration(3 * time.Second), ResponseP99: rydes.Duration(10 * time.Second),
	}, st)

	// The other provider of the same RFQs: the expiry of timedOut expired
	// the first six too, where it had not answered.
	other, err := s.ProviderStats(ctx, "other")
	require.NoError(t, err)
	require.Equal(t, rydes.ProviderStats{
		Provider: "other", Asked: 10, Pending: 1, Quoted: 1, Declined: 1, TimedOut: 6, Withdrawn: 1, // pending in withdrawn, withdrawn from cancelled
		ResponseP50: rydes.Duration(time.Second), ResponseP99: rydes.Duration(2 * time.Second),
	}, other)

	none, err := s.ProviderStats(ctx, "nobody")
	require.NoError(t, err)
	require.Equal(t, rydes.ProviderStats{Provider: "nobody"}, none, "no roster entries, no figures")

	asked := createRFQ(t, s, rfqOpts{Providers: []string{"quiet"}})
	quiet, err := s.ProviderStats(ctx, "quiet")
	require.NoError(t, err)
	require.Equal(t, rydes.ProviderStats{Provider: "quiet", Asked: 1, Pending: 1}, quiet, "no answers, no response times")
	cancel(t, s, asked, base.Add(time.Second))
	quiet, err = s.ProviderStats(ctx, "quiet")
	require.NoError(t, err)
	require.Equal(t, rydes.ProviderStats{Provider: "quiet", Asked: 1, Withdrawn: 1}, quiet, "only open RFQs have pending providers")
}

// testProviderChangesRace races answers, delivery failures, a provider's
// deletion and expiries on the same RFQs, and checks that every RFQ closed
// exactly once with one event per transition, and that the roster agrees
// with the events. RFQs 0-3 have a deadline no sweep reaches, so they
// complete; 4-7 race against expiry.
func testProviderChangesRace(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	const nRFQs, expirers, rounds = 8, 3, 6
	createProvider(t, s, natsProvider("gone"), secretsFor("gone", "1"), base)
	providers := []string{"gone", "flaky", "p1", "p2"}
	var rfqs []rydes.RFQ
	for i := range nRFQs {
		timeout := 10 * time.Minute
		if i >= 4 {
			timeout = time.Duration(11+i) * time.Second
		}
		rfqs = append(rfqs, createRFQ(t, s, rfqOpts{Providers: providers, Customer: fmt.Sprintf("c%d", i), Timeout: timeout}))
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
	countCompletes := func(evs []rydes.Event) {
		for _, e := range evs {
			if e.Type == rydes.EventComplete {
				completes[e.RFQID]++
			}
		}
	}
	answer := func(provider string, mk func(r rydes.RFQ) store.StageAnswer) {
		wg.Go(func() {
			<-start
			for _, r := range rfqs {
				a := mk(r)
				res, err := s.StageAnswers(ctx, store.StageAnswersParams{Answers: []store.StageAnswer{a}, Now: answeredAt})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					outcomes[key{r.ID, provider}] = append(outcomes[key{r.ID, provider}], res[0].Decision)
					countCompletes(res[0].Events)
				}
				mu.Unlock()
			}
		})
	}
	answer("p1", func(r rydes.RFQ) store.StageAnswer { return quote(r, "p1", "11", answeredAt) })
	answer("p2", func(r rydes.RFQ) store.StageAnswer { return decline(r, "p2", "busy", answeredAt) })
	answer("flaky", func(r rydes.RFQ) store.StageAnswer { return quote(r, "flaky", "12", answeredAt) })
	wg.Go(func() {
		<-start
		for i := len(rfqs) - 1; i >= 0; i-- {
			evs, err := s.MarkProviderFailed(ctx, store.MarkProviderFailedParams{RFQID: rfqs[i].ID, Provider: "flaky", Error: "HTTP 503", Now: answeredAt})
			mu.Lock()
			if err != nil {
				errs = append(errs, err)
			}
			countCompletes(evs)
			mu.Unlock()
		}
	})
	var withdrawnFrom []string
	wg.Go(func() {
		<-start
		ids, err := s.DeleteProvider(ctx, store.DeleteProviderParams{ID: "gone", Now: answeredAt})
		mu.Lock()
		if err != nil {
			errs = append(errs, err)
		}
		withdrawnFrom = ids
		mu.Unlock()
	})
	for range expirers {
		wg.Go(func() {
			<-start
			for k := range rounds {
				ids, err := s.ExpireDue(ctx, store.ExpireDueParams{Now: base.Add(time.Duration(15+k) * time.Second)})
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
	for _, id := range expire(t, s, base.Add(time.Hour), 0) {
		expiries[id]++
	}

	for i, r := range rfqs {
		got := get(t, s, r.ID)
		evs := events(t, s, r.ID)
		require.True(t, got.Status.Final(), "RFQ %d is %s", i, got.Status)
		last := evs[len(evs)-1]
		require.True(t, last.Type.Final(), "RFQ %d: the final event is the last: %v", i, types(evs))
		require.Equal(t, got.ClosedAt, last.At)
		if completes[r.ID]+expiries[r.ID] == 0 {
			// Closed by the deletion, which returns ids, not events.
			require.Contains(t, withdrawnFrom, r.ID, "RFQ %d", i)
			require.Equal(t, []rydes.EventType{rydes.EventProviderWithdrawn, rydes.EventComplete}, types(evs[len(evs)-2:]), "RFQ %d", i)
		} else {
			require.Equal(t, 1, completes[r.ID]+expiries[r.ID], "RFQ %d closed once", i)
		}
		if i < 4 {
			require.Equal(t, rydes.StatusComplete, got.Status, "RFQ %d", i)
		}

		perProvider := map[string][]rydes.EventType{}
		nFinal := 0
		for _, e := range evs {
			if e.Type.Final() {
				nFinal++
			}
			if e.Provider != "" {
				perProvider[e.Provider] = append(perProvider[e.Provider], e.Type)
			}
		}
		require.Equal(t, 1, nFinal, "RFQ %d: %v", i, types(evs))
		for _, e := range got.Providers {
			require.True(t, e.State.Done(), "RFQ %d: %s is %s", i, e.Provider, e.State)
			pe := perProvider[e.Provider]
			switch e.State {
			case rydes.ProviderQuoted:
				require.Contains(t, [][]rydes.EventType{{rydes.EventQuote}, {rydes.EventProviderFailed, rydes.EventQuote}}, pe, "RFQ %d %s", i, e.Provider)
			case rydes.ProviderDeclined:
				require.Equal(t, []rydes.EventType{rydes.EventDecline}, pe, "RFQ %d %s", i, e.Provider)
			case rydes.ProviderFailed:
				require.Equal(t, []rydes.EventType{rydes.EventProviderFailed}, pe, "RFQ %d %s", i, e.Provider)
			case rydes.ProviderWithdrawn:
				require.Equal(t, []rydes.EventType{rydes.EventProviderWithdrawn}, pe, "RFQ %d %s", i, e.Provider)
			case rydes.ProviderTimedOut:
				require.Equal(t, rydes.StatusExpired, got.Status)
				require.Equal(t, []rydes.EventType{rydes.EventProviderTimedOut}, pe, "RFQ %d %s", i, e.Provider)
			}
			for _, d := range outcomes[key{r.ID, e.Provider}] {
				switch {
				case d.Outcome == rydes.OutcomeStaged:
				case d.Outcome == rydes.OutcomeRejected && (d.Reason == rydes.RejectLate || d.Reason == rydes.RejectClosed):
				default:
					t.Fatalf("RFQ %d provider %s: unexpected decision %+v", i, e.Provider, d)
				}
			}
		}
		require.NotEqual(t, rydes.ProviderPending, entry(t, s, r.ID, "gone").State)
		require.NotEqual(t, rydes.ProviderQuoted, entry(t, s, r.ID, "gone").State)
	}
}

// testDeleteProviderInChunks deletes a provider asked in more open RFQs
// than one transaction withdraws it from: it is withdrawn from all of them,
// earliest deadline first (the later ones created are due first here),
// each with its event, and an RFQ it was the last pending provider of
// completes. Open RFQs without it lie between them.
func testDeleteProviderInChunks(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	createProvider(t, s, natsProvider("gone"), secretsFor("gone", "1"), base)
	createProvider(t, s, natsProvider("stays"), secretsFor("stays", "1"), base)
	var want, without []string
	for i := range 7 {
		providers := []string{"gone", "stays"}
		if i == 4 {
			providers = []string{"gone"} // completes when withdrawn
		}
		// Created i seconds in, due 60-4i seconds in.
		created, timeout := base.Add(time.Duration(i)*time.Second), time.Duration(60-5*i)*time.Second
		r := createRFQ(t, s, rfqOpts{Providers: providers, CreatedAt: created, Timeout: timeout})
		want = append([]string{r.ID}, want...)
		other := createRFQ(t, s, rfqOpts{Providers: []string{"stays"}, CreatedAt: created, Timeout: timeout})
		without = append(without, other.ID)
	}
	tDel := base.Add(10 * time.Second)
	ids, err := s.DeleteProvider(ctx, store.DeleteProviderParams{ID: "gone", Now: tDel, Chunk: 3})
	require.NoError(t, err)
	require.Equal(t, want, ids, "every open RFQ, earliest deadline first, over three transactions")
	for _, id := range without {
		require.Equal(t, []rydes.EventType{rydes.EventCreated}, types(events(t, s, id)), "an RFQ without it is untouched")
	}
	for i, id := range want {
		r := get(t, s, id)
		require.Equal(t, rydes.RosterEntry{Provider: "gone", State: rydes.ProviderWithdrawn, ChangedAt: tDel}, r.Providers[0], id)
		evs := events(t, s, id)
		if i == 2 { // want is in deadline order: the RFQ created fifth
			require.Equal(t, rydes.StatusComplete, r.Status)
			require.Equal(t, []rydes.EventType{rydes.EventCreated, rydes.EventProviderWithdrawn, rydes.EventComplete}, types(evs))
			continue
		}
		require.Equal(t, rydes.StatusOpen, r.Status)
		require.Equal(t, []rydes.EventType{rydes.EventCreated, rydes.EventProviderWithdrawn}, types(evs))
	}
	_, err = s.GetProvider(ctx, "gone")
	require.Equal(t, rydes.ENOTFOUND, rydes.ErrorCodeOf(err))

	// Nothing was left half-way: nothing more to withdraw.
	left, err := s.WithdrawDeleted(ctx, store.WithdrawDeletedParams{Now: tDel})
	require.NoError(t, err)
	require.Empty(t, left)
	_, err = s.WithdrawDeleted(ctx, store.WithdrawDeletedParams{})
	require.Error(t, err, "Now is required")
}
