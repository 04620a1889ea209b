package engine_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
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

// setupRetention is setup with a store at a known path and an engine
// configured by configure.
func setupRetention(t *testing.T, configure func(*engine.Config)) (*bundle, string) {
	t.Helper()
	ctx := rydestest.Context(t)
	path := filepath.Join(t.TempDir(), "rydes.db")
	st, err := sqlite.Open(ctx, path, rydestest.Logger(t))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	for _, id := range []string{"p1", "p2", "p3"} {
		_, err := st.UpsertProvider(ctx, store.UpsertProviderParams{ID: id, Name: id, Kind: rydes.ProviderKindNATS, Status: rydes.ProviderActive, Now: start})
		require.NoError(t, err)
	}
	b := &bundle{ctx: ctx, clock: clockwork.NewFakeClockAt(start), store: st, pub: &recordingPublisher{}}
	cfg := engine.Config{
		Store: st, Publisher: b.pub, Clock: b.clock, Logger: rydestest.Logger(t),
		Limits: rydes.Limits{DefaultTimeout: 30 * time.Second, MaxTimeout: 5 * time.Minute},
	}
	configure(&cfg)
	b.engine, err = engine.New(cfg)
	require.NoError(t, err)
	return b, path
}

func (b *bundle) exists(t *testing.T, id string) bool {
	t.Helper()
	_, err := b.engine.GetRFQ(b.ctx, id, "")
	if rydes.ErrorCodeOf(err) == rydes.ENOTFOUND {
		return false
	}
	require.NoError(t, err)
	return true
}

func (b *bundle) purge(t *testing.T) engine.PurgeResult {
	t.Helper()
	res, err := b.engine.Purge(b.ctx)
	require.NoError(t, err)
	return res
}

func TestPurgeDeletesWhatIsOlderThanTheRetention(t *testing.T) {
	b, _ := setupRetention(t, func(c *engine.Config) { c.Retention = time.Hour; c.PurgeBatch = 2 })
	var closed, open []rydes.RFQ
	for i := range 5 {
		r := b.create(t)
		if i < 3 {
			_, err := b.engine.CancelRFQ(b.ctx, r.ID, "")
			require.NoError(t, err)
			closed = append(closed, r)
		} else {
			open = append(open, r)
		}
	}
	_, err := b.store.AddAudit(b.ctx, rydes.AuditEntry{At: start, Actor: "admin", Action: rydes.AuditCustomerCreate, Target: "c"})
	require.NoError(t, err)
	b.flush(t)

	b.clock.Advance(59 * time.Minute)
	require.Equal(t, engine.PurgeResult{}, b.purge(t), "nothing is older than the retention yet")
	for _, r := range closed {
		require.True(t, b.exists(t, r.ID))
	}

	b.clock.Advance(2 * time.Minute)
	require.Equal(t, engine.PurgeResult{RFQs: 3, Records: 1}, b.purge(t), "in batches of 2 until one is short")
	for _, r := range closed {
		require.False(t, b.exists(t, r.ID), "closed more than an hour ago")
	}
	for _, r := range open {
		require.True(t, b.exists(t, r.ID), "open RFQs are never purged")
	}
	require.Equal(t, engine.PurgeResult{}, b.purge(t))
}

func TestPurgeWithoutRetentionKeepsEverything(t *testing.T) {
	b, _ := setupRetention(t, func(*engine.Config) {})
	r := b.create(t)
	_, err := b.engine.CancelRFQ(b.ctx, r.ID, "")
	require.NoError(t, err)
	b.flush(t)
	b.clock.Advance(365 * 24 * time.Hour)
	require.Equal(t, engine.PurgeResult{}, b.purge(t))
	require.True(t, b.exists(t, r.ID))
}

func TestNegativeRetentionIsRefused(t *testing.T) {
	_, err := engine.New(engine.Config{Store: fakeNoStore{}, Publisher: &recordingPublisher{}, Retention: -time.Second})
	require.ErrorContains(t, err, "retention")
}

// fakeNoStore is a store.Store that New accepts and nothing calls.
type fakeNoStore struct{ store.Store }

func TestRunPurgesEveryRetentionInterval(t *testing.T) {
	// Deletes at once: the delete delay waits on the fake clock too.
	b, _ := setupRetention(t, func(c *engine.Config) {
		c.Retention, c.RetentionInterval, c.OutboxDeleteDelay = time.Hour, time.Minute, -1
	})
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan error, 1)
	go func() { done <- b.engine.Run(ctx) }()

	r := b.create(t)
	_, err := b.engine.CancelRFQ(b.ctx, r.ID, "")
	require.NoError(t, err)
	rydestest.WaitFor(t, "the relay to publish the cancelled event", func() bool {
		ts := eventTypes(b.pub.events(), r.ID)
		return len(ts) > 0 && ts[len(ts)-1] == rydes.EventCancelled
	})
	// The relay deletes what it published in the background; an RFQ with
	// messages left in the outbox is not purged.
	rydestest.WaitFor(t, "the relay to delete what it published", func() bool { return pendingOutbox(t, b.store) == 0 })
	// Three loops wait on the fake clock: outbox, deadlines, retention.
	require.NoError(t, b.clock.BlockUntilContext(ctx, 3))
	b.clock.Advance(30 * time.Minute)
	require.NoError(t, b.clock.BlockUntilContext(ctx, 3))
	require.True(t, b.exists(t, r.ID), "a round ran, and the RFQ is not old enough")
	b.clock.Advance(31 * time.Minute)
	// Once every loop waits again, the retention round that the advance
	// woke has finished.
	require.NoError(t, b.clock.BlockUntilContext(ctx, 3))
	require.False(t, b.exists(t, r.ID), "purged by the loop")

	cancel()
	require.NoError(t, <-done)
}

// pageCount returns the database's size in pages and how many of them are
// free, as a separate read-only connection sees the last commit.
func pageCount(t *testing.T, path string) (pages, free int64) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.QueryRowContext(rydestest.Context(t), `PRAGMA page_count`).Scan(&pages))
	require.NoError(t, db.QueryRowContext(rydestest.Context(t), `PRAGMA freelist_count`).Scan(&free))
	return pages, free
}

// TestDiskUseStaysFlatUnderSteadyLoad runs rounds of the same load (RFQs
// created, answered, published; records outside RFQs added), each followed
// by the clock moving past the retention and a purge: the pages freed by
// one round's purge hold the next round's rows, so the database stops
// growing once the first rounds have sized it.
func TestDiskUseStaysFlatUnderSteadyLoad(t *testing.T) {
	const (
		rounds = 6
		perRnd = 100
		slack  = 8 // pages: interior b-tree pages may split differently
	)
	b, path := setupRetention(t, func(c *engine.Config) { c.Retention = time.Hour })
	sizes := make([]int64, rounds)
	for round := range rounds {
		var answers []store.StageAnswer
		now := b.clock.Now()
		for i := range perRnd {
			r := b.create(t)
			answers = append(answers,
				quote(r.ID, "p1", fmt.Sprint(10+i), now),
				decline(r.ID, "p2", now),
				quote(r.ID, "p3", fmt.Sprint(20+i), now),
				quote(r.ID, "p9", "1", now)) // not asked: refused and kept with the RFQ
		}
		b.stage(t, answers...)
		for i := range 10 {
			_, err := b.store.AddAudit(b.ctx, rydes.AuditEntry{At: now, Actor: "admin", Action: rydes.AuditProviderUpdate, Target: fmt.Sprint("p", i)})
			require.NoError(t, err)
		}
		require.NoError(t, b.store.RecordRejections(b.ctx, []rydes.Rejection{{RFQID: rydes.NewID(), Provider: "p1", Reason: rydes.RejectUnknownRFQ, Message: "no such RFQ", ReceivedAt: now}}))
		b.flush(t)

		b.clock.Advance(2 * time.Hour)
		res := b.purge(t)
		require.Equal(t, perRnd, res.RFQs, "round %d: the round's RFQs are purged", round)
		require.Equal(t, 11, res.Records, "round %d: and its records", round)
		pages, free := pageCount(t, path)
		sizes[round] = pages
		// The test means something only if a round's load is much larger
		// than the slack: without reuse the file would grow by it.
		require.Greater(t, free, int64(4*slack), "round %d: the purge freed the round's pages", round)
		t.Logf("round %d: %d pages, %d free", round, pages, free)
	}
	for round := 2; round < rounds; round++ {
		require.LessOrEqual(t, sizes[round], sizes[1]+slack, "round %d: the database did not grow (sizes %v)", round, sizes)
	}
}
