package storetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
)

// publishAll deletes every pending outbox message, as the relay does once
// the broker stored them.
func publishAll(t *testing.T, s store.Store) {
	t.Helper()
	ms := outbox(t, s)
	ids := make([]int64, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	require.NoError(t, s.DeleteOutbox(rydestest.Context(t), store.DeleteOutboxParams{IDs: ids}))
}

func purgeFinished(t *testing.T, s store.Store, before time.Time, limit int) int {
	t.Helper()
	n, err := s.PurgeFinished(rydestest.Context(t), store.PurgeFinishedParams{Before: before, Limit: limit})
	require.NoError(t, err)
	return n
}

func purgeHistory(t *testing.T, s store.Store, before time.Time, limit int) int {
	t.Helper()
	n, err := s.PurgeHistory(rydestest.Context(t), store.PurgeHistoryParams{Before: before, Limit: limit})
	require.NoError(t, err)
	return n
}

func requireGone(t *testing.T, s store.Store, id string) {
	t.Helper()
	_, err := s.GetRFQ(rydestest.Context(t), store.GetRFQParams{ID: id})
	requireCode(t, rydes.ENOTFOUND, err)
	_, _, err = s.NotifyTarget(rydestest.Context(t), id)
	requireCode(t, rydes.ENOTFOUND, err)
	require.Empty(t, rejections(t, s, id), "its refused answers go with it")
	ns, err := s.ListNotifications(rydestest.Context(t), id)
	require.NoError(t, err)
	require.Empty(t, ns, "its notification log goes with it")
}

func stats(t *testing.T, s store.Store, provider string) rydes.ProviderStats {
	t.Helper()
	st, err := s.ProviderStats(rydestest.Context(t), provider)
	require.NoError(t, err)
	return st
}

// testPurgeFinished: old final RFQs go with everything kept for them; open
// RFQs, recent final ones and final ones whose events are not published yet
// stay.
func testPurgeFinished(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	// complete, with a notification log and a refused answer
	complete := createRFQ(t, s, rfqOpts{NotifyURL: "https://example.com/done"})
	stage(t, s, base.Add(time.Second),
		quote(complete, "p1", "10", base.Add(time.Second)),
		decline(complete, "p2", "busy", base.Add(time.Second)),
		quote(complete, "p3", "12", base.Add(time.Second)),
		quote(complete, "p9", "1", base.Add(time.Second))) // not asked: refused
	require.Equal(t, rydes.StatusComplete, get(t, s, complete.ID).Status)
	require.Len(t, rejections(t, s, complete.ID), 1)
	recordNotification(t, s, rydes.Notification{RFQID: complete.ID, Event: rydes.EventComplete, At: base.Add(2 * time.Second), Delivered: true, Status: 204})
	// expired
	expired := createRFQ(t, s, rfqOpts{Timeout: 10 * time.Second})
	require.Equal(t, []string{expired.ID}, expire(t, s, base.Add(10*time.Second), 0))
	// cancelled
	cancelled := createRFQ(t, s, rfqOpts{})
	cancel(t, s, cancelled, base.Add(3*time.Second))
	// open, as old as the others
	open := createRFQ(t, s, rfqOpts{Timeout: 10 * time.Minute})
	stage(t, s, base, quote(open, "p1", "9", base))
	// final, but recently
	recent := createRFQ(t, s, rfqOpts{CreatedAt: base.Add(2 * time.Hour)})
	cancel(t, s, recent, base.Add(2*time.Hour))
	publishAll(t, s)
	// final long ago, but its events are still in the outbox
	unpublished := createRFQ(t, s, rfqOpts{})
	cancel(t, s, unpublished, base.Add(4*time.Second))
	pending := len(outbox(t, s))
	require.Positive(t, pending)
	before := stats(t, s, "p1")
	// Dead letters newer than the cut: they go with their RFQ, not by age.
	dlGone := addDeadLetter(t, s, rydes.DeadLetter{Provider: "hook", RFQID: complete.ID, Attempts: 1, LastError: "HTTP 500",
		Request: complete.ProviderRequest(), CreatedAt: base.Add(2 * time.Hour)})
	dlKept := addDeadLetter(t, s, rydes.DeadLetter{Provider: "hook", RFQID: open.ID, Attempts: 1, LastError: "HTTP 500",
		Request: open.ProviderRequest(), CreatedAt: base.Add(2 * time.Hour)})

	cut := base.Add(time.Hour)
	require.Equal(t, 3, purgeFinished(t, s, cut, 0))
	for _, id := range []string{complete.ID, expired.ID, cancelled.ID} {
		requireGone(t, s, id)
	}
	require.Equal(t, rydes.StatusOpen, get(t, s, open.ID).Status, "an open RFQ stays, however old")
	require.Len(t, get(t, s, open.ID).Quotes, 1)
	require.Equal(t, rydes.StatusCancelled, get(t, s, recent.ID).Status, "an RFQ closed after the cut stays")
	require.Equal(t, rydes.StatusCancelled, get(t, s, unpublished.ID).Status, "an RFQ with unpublished events stays")
	require.Len(t, outbox(t, s), pending, "the outbox is untouched")
	_, err := s.GetDeadLetter(ctx, dlGone.ID)
	requireCode(t, rydes.ENOTFOUND, err)
	got, err := s.GetDeadLetter(ctx, dlKept.ID)
	require.NoError(t, err)
	require.Equal(t, dlKept, got, "the open RFQ's dead letter stays")
	after := stats(t, s, "p1")
	require.Equal(t, before.Asked-3, after.Asked, "the roster entries went with their RFQs")
	require.Equal(t, before.Quoted-1, after.Quoted)

	require.Zero(t, purgeFinished(t, s, cut, 0), "nothing more to purge")
	publishAll(t, s)
	require.Equal(t, 1, purgeFinished(t, s, cut, 0), "once published, it goes too")
	requireGone(t, s, unpublished.ID)
	require.Equal(t, 1, purgeFinished(t, s, base.Add(3*time.Hour), 0), "the recent one goes at a later cut; the open one never")
	requireGone(t, s, recent.ID)
	require.Equal(t, rydes.StatusOpen, get(t, s, open.ID).Status)

	// The cut is exclusive: an RFQ closed exactly at Before stays.
	at := createRFQ(t, s, rfqOpts{CreatedAt: base.Add(5 * time.Hour)})
	cancel(t, s, at, base.Add(5*time.Hour))
	publishAll(t, s)
	require.Zero(t, purgeFinished(t, s, base.Add(5*time.Hour), 0))
	require.Equal(t, 1, purgeFinished(t, s, base.Add(5*time.Hour+time.Microsecond), 0))
	_, err = s.PurgeFinished(ctx, store.PurgeFinishedParams{})
	require.Error(t, err, "a purge needs its cut")
}

// testPurgeFinishedLimit: a purge deletes at most Limit RFQs, those that
// closed first first.
func testPurgeFinishedLimit(t *testing.T, s store.Store) {
	var rs []rydes.RFQ
	for i := range 5 {
		r := createRFQ(t, s, rfqOpts{})
		// Closed in the reverse order of creation.
		cancel(t, s, r, base.Add(time.Duration(10-i)*time.Second))
		rs = append(rs, r)
	}
	publishAll(t, s)
	cut := base.Add(time.Hour)
	require.Equal(t, 2, purgeFinished(t, s, cut, 2))
	requireGone(t, s, rs[4].ID)
	requireGone(t, s, rs[3].ID)
	require.Equal(t, rydes.StatusCancelled, get(t, s, rs[2].ID).Status, "closed later: still there")
	require.Equal(t, 2, purgeFinished(t, s, cut, 2))
	require.Equal(t, 1, purgeFinished(t, s, cut, 2))
	require.Zero(t, purgeFinished(t, s, cut, 2))
	for _, r := range rs {
		requireGone(t, s, r.ID)
	}
}

// testPurgeHistory: old dead letters, refused answers of no RFQ and audit
// entries go; recent ones, and refused answers of an RFQ that exists, stay.
func testPurgeHistory(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	r := createRFQ(t, s, rfqOpts{})
	old, recent := base.Add(-48*time.Hour), base.Add(time.Hour)
	dl := func(at time.Time) rydes.DeadLetter {
		return addDeadLetter(t, s, rydes.DeadLetter{Provider: "hook", RFQID: r.ID, Attempts: 1, LastError: "HTTP 500", LastStatus: 500,
			Request: r.ProviderRequest(), CreatedAt: at})
	}
	dlOld1, dlOld2, dlNew := dl(old), dl(old.Add(time.Second)), dl(recent)
	unknown := rydes.NewID()
	require.NoError(t, s.RecordRejections(ctx, []rydes.Rejection{
		{RFQID: unknown, Provider: "p1", Reason: rydes.RejectUnknownRFQ, Message: "old, no RFQ", ReceivedAt: old},
		{RFQID: "", Provider: "p1", Reason: rydes.RejectInvalid, Message: "old, undecodable", ReceivedAt: old},
		{RFQID: unknown, Provider: "p1", Reason: rydes.RejectUnknownRFQ, Message: "recent, no RFQ", ReceivedAt: recent},
		{RFQID: r.ID, Provider: "p9", Reason: rydes.RejectNotAsked, Message: "old, its RFQ exists", ReceivedAt: old},
	}))
	a := func(at time.Time) rydes.AuditEntry {
		return addAudit(t, s, rydes.AuditEntry{At: at, Actor: "admin", Action: rydes.AuditCustomerCreate, Target: "c"})
	}
	a(old)
	auditNew := a(recent)

	// 2 dead letters, 2 refused answers, 1 audit entry are old.
	require.Equal(t, 3, purgeHistory(t, s, base, 3), "at most Limit rows in all")
	require.Equal(t, 2, purgeHistory(t, s, base, 3))
	require.Zero(t, purgeHistory(t, s, base, 3))

	require.Equal(t, []rydes.DeadLetter{dlNew}, listDeadLetters(t, s, store.ListDeadLettersParams{}))
	for _, id := range []int64{dlOld1.ID, dlOld2.ID} {
		_, err := s.GetDeadLetter(ctx, id)
		requireCode(t, rydes.ENOTFOUND, err)
	}
	var msgs []string
	for _, rej := range rejections(t, s, "") {
		msgs = append(msgs, rej.Message)
	}
	require.ElementsMatch(t, []string{"recent, no RFQ", "old, its RFQ exists"}, msgs)
	require.Equal(t, []rydes.AuditEntry{auditNew}, listAudit(t, s, store.ListAuditParams{}))
	require.Equal(t, rydes.StatusOpen, get(t, s, r.ID).Status, "RFQs are not history")

	require.Equal(t, 3, purgeHistory(t, s, recent.Add(time.Second), 0), "the default limit takes the rest: 1 dead letter, 1 refused answer, 1 entry")
	require.Len(t, rejections(t, s, ""), 1, "the refused answer of an existing RFQ stays with it")
	_, err := s.PurgeHistory(ctx, store.PurgeHistoryParams{})
	require.Error(t, err, "a purge needs its cut")
}

func addAudit(t *testing.T, s store.Store, e rydes.AuditEntry) rydes.AuditEntry {
	t.Helper()
	got, err := s.AddAudit(rydestest.Context(t), e)
	require.NoError(t, err)
	require.Positive(t, got.ID)
	want := e
	want.ID = got.ID
	require.Equal(t, want, got, "the entry as given, with its id")
	return got
}

func listAudit(t *testing.T, s store.Store, p store.ListAuditParams) []rydes.AuditEntry {
	t.Helper()
	es, err := s.ListAudit(rydestest.Context(t), p)
	require.NoError(t, err)
	require.NotNil(t, es)
	return es
}

func testAudit(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	require.Empty(t, listAudit(t, s, store.ListAuditParams{}))
	e1 := addAudit(t, s, rydes.AuditEntry{
		At: base, Actor: "admin:0123456789ab", Action: rydes.AuditProviderCreate, Target: "hooks",
		RemoteAddr: "127.0.0.1:5555", Details: json.RawMessage(`{"kind":"webhook","webhook_url":"https://example.com/rides"}`),
	})
	e2 := addAudit(t, s, rydes.AuditEntry{At: base.Add(time.Second), Actor: "config", Action: rydes.AuditAdminKeySet})
	e3 := addAudit(t, s, rydes.AuditEntry{
		At: base.Add(2 * time.Second), Actor: "admin:0123456789ab", Action: rydes.AuditProviderUpdate, Target: "hooks",
		Details: json.RawMessage(`{"status":"paused"}`),
	})
	require.Less(t, e1.ID, e2.ID)
	require.Less(t, e2.ID, e3.ID)
	require.Empty(t, e2.Target)
	require.Nil(t, e2.Details)

	require.Equal(t, []rydes.AuditEntry{e3, e2, e1}, listAudit(t, s, store.ListAuditParams{}), "newest first")
	require.Equal(t, []rydes.AuditEntry{e1}, listAudit(t, s, store.ListAuditParams{Action: rydes.AuditProviderCreate}))
	require.Empty(t, listAudit(t, s, store.ListAuditParams{Action: rydes.AuditCustomerDelete}))
	page := listAudit(t, s, store.ListAuditParams{Limit: 2})
	require.Equal(t, []rydes.AuditEntry{e3, e2}, page)
	require.Equal(t, []rydes.AuditEntry{e1}, listAudit(t, s, store.ListAuditParams{Limit: 2, BeforeID: page[1].ID}))
	require.Empty(t, listAudit(t, s, store.ListAuditParams{BeforeID: e1.ID}))
	require.Equal(t, []rydes.AuditEntry{e1}, listAudit(t, s, store.ListAuditParams{Action: rydes.AuditProviderCreate, BeforeID: e3.ID}))

	for name, mod := range map[string]func(e *rydes.AuditEntry){
		"no actor":              func(e *rydes.AuditEntry) { e.Actor = "" },
		"no time":               func(e *rydes.AuditEntry) { e.At = time.Time{} },
		"bad action":            func(e *rydes.AuditEntry) { e.Action = "create" },
		"details not JSON":      func(e *rydes.AuditEntry) { e.Details = json.RawMessage(`{"a":`) },
		"details not an object": func(e *rydes.AuditEntry) { e.Details = json.RawMessage(`[1,2]`) },
		"details null":          func(e *rydes.AuditEntry) { e.Details = json.RawMessage(`null`) },
		"target too long":       func(e *rydes.AuditEntry) { e.Target = string(make([]byte, rydes.MaxAuditTargetLen+1)) },
	} {
		e := e1
		e.ID = 0
		mod(&e)
		_, err := s.AddAudit(ctx, e)
		require.Equal(t, rydes.EINVALID, rydes.ErrorCodeOf(err), "%s: %v", name, err)
	}
	require.Len(t, listAudit(t, s, store.ListAuditParams{}), 3, "nothing invalid was stored")

	for i := range 102 {
		addAudit(t, s, rydes.AuditEntry{At: base.Add(time.Hour), Actor: "admin", Action: rydes.AuditCustomerRotate, Target: fmt.Sprintf("c%d", i)})
	}
	all := listAudit(t, s, store.ListAuditParams{})
	require.Len(t, all, 100, "the default limit")
	require.Equal(t, "c101", all[0].Target)
}
