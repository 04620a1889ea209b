package sqlite

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
	"github.com/wildrydes/rydes/internal/store/storetest"
)

var base = time.Date(2030, time.March, 4, 5, 6, 7, 891011000, time.UTC)

var limits = rydes.Limits{DefaultTimeout: 30 * time.Second, MaxTimeout: 10 * time.Minute}

// openAt opens the store at path, closed when t ends.
func openAt(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, rydestest.Logger(t))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func newTestStore(t testing.TB) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "rydes.db"))
}

// newBenchStore opens a store in a temporary directory that logs nothing.
func newBenchStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "rydes.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Exercise(t, func(t *testing.T) store.Store { return newTestStore(t) })
}

func newRFQ(t testing.TB, providers ...string) rydes.RFQ {
	t.Helper()
	r, err := rydes.NewRFQ(rydes.NewID(), rydes.RFQRequest{Customer: "c", From: "a", To: "b"}, providers, base, limits)
	require.NoError(t, err)
	return r
}

func TestMigrationsIdempotentOnReopen(t *testing.T) {
	ctx := rydestest.Context(t)
	path := filepath.Join(t.TempDir(), "rydes.db")
	ms, err := loadMigrations(migrationFS)
	require.NoError(t, err)
	require.NotEmpty(t, ms)
	for range 3 {
		s, err := Open(ctx, path, rydestest.Logger(t))
		require.NoError(t, err)
		var n, maxVersion int
		require.NoError(t, s.r.QueryRowContext(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &maxVersion))
		require.Equal(t, len(ms), n, "each migration is recorded once")
		require.Equal(t, len(ms), maxVersion)
		require.NoError(t, s.Close())
	}
}

func TestMigrationsRefuseNewerSchema(t *testing.T) {
	ctx := rydestest.Context(t)
	path := filepath.Join(t.TempDir(), "rydes.db")
	s, err := Open(ctx, path, nil)
	require.NoError(t, err)
	_, err = s.w.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)`)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = Open(ctx, path, nil)
	require.ErrorContains(t, err, "newer")
}

func TestLoadMigrationsChecksNumbering(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"gap":      {"migration/001_a.up.sql": {}, "migration/003_c.up.sql": {}},
		"repeated": {"migration/001_a.up.sql": {}, "migration/001_b.up.sql": {}},
		"bad name": {"migration/1_a.sql": {}},
	} {
		_, err := loadMigrations(fsys)
		require.Error(t, err, name)
	}
	ms, err := loadMigrations(fstest.MapFS{
		"migration/001_init.up.sql": {Data: []byte("a")}, "migration/002_more.up.sql": {Data: []byte("b")},
	})
	require.NoError(t, err)
	require.Equal(t, []migration{{1, "init", "a"}, {2, "more", "b"}}, ms)
}

func TestDataSurvivesReopen(t *testing.T) {
	ctx := rydestest.Context(t)
	path := filepath.Join(t.TempDir(), "rydes.db")
	s, err := Open(ctx, path, rydestest.Logger(t))
	require.NoError(t, err)
	r := newRFQ(t, "p1", "p2")
	require.NoError(t, s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: r}))
	now := base.Add(time.Second)
	_, err = s.StageAnswers(ctx, store.StageAnswersParams{Now: now, Answers: []store.StageAnswer{{Answer: rydes.Answer{
		RFQID: r.ID, Provider: "p1", Kind: rydes.AnswerQuote, Price: rydes.Price{Amount: "12.5", Currency: "EUR"}, ReceivedAt: now,
	}}}})
	require.NoError(t, err)
	_, err = s.UpsertProvider(ctx, store.UpsertProviderParams{ID: "p1", Name: "P", Kind: rydes.ProviderKindSimulated, Status: rydes.ProviderActive, Now: base})
	require.NoError(t, err)
	want, err := s.GetRFQ(ctx, store.GetRFQParams{ID: r.ID})
	require.NoError(t, err)
	wantOutbox, err := s.PendingOutbox(ctx, store.PendingOutboxParams{})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s = openAt(t, path)
	got, err := s.GetRFQ(ctx, store.GetRFQParams{ID: r.ID})
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Len(t, got.Quotes, 1)
	gotOutbox, err := s.PendingOutbox(ctx, store.PendingOutboxParams{})
	require.NoError(t, err)
	require.Equal(t, wantOutbox, gotOutbox)
	ps, err := s.ListProviders(ctx, store.ListProvidersParams{})
	require.NoError(t, err)
	require.Len(t, ps, 1)
}

func TestPragmas(t *testing.T) {
	ctx := rydestest.Context(t)
	s := newTestStore(t)
	var journal string
	var sync, fk, busy, checkpoint int
	require.NoError(t, s.w.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&journal))
	require.NoError(t, s.w.QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&checkpoint))
	require.Equal(t, walCheckpointPages, checkpoint)
	require.NoError(t, s.w.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync))
	require.NoError(t, s.w.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk))
	require.NoError(t, s.w.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy))
	require.Equal(t, "wal", journal)
	require.Equal(t, 2, sync, "synchronous=FULL")
	require.Equal(t, 1, fk)
	require.Equal(t, int(BusyTimeout.Milliseconds()), busy)

	var queryOnly int
	require.NoError(t, s.r.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&journal))
	require.NoError(t, s.r.QueryRowContext(ctx, `PRAGMA query_only`).Scan(&queryOnly))
	require.NoError(t, s.r.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy))
	require.Equal(t, "wal", journal)
	require.Equal(t, 1, queryOnly)
	require.Equal(t, int(BusyTimeout.Milliseconds()), busy)
	_, err := s.r.ExecContext(ctx, `DELETE FROM outbox`)
	require.Error(t, err, "readers cannot write")
}

func TestOpenRefusesMemory(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file::memory:"} {
		_, err := Open(rydestest.Context(t), path, nil)
		require.Error(t, err, path)
	}
}

func TestOpenPathWithQueryCharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "odd ?#% name")
	path := filepath.Join(dir, "r.db")
	require.NoError(t, os.Mkdir(dir, 0o700))
	s := openAt(t, path)
	require.NoError(t, s.CreateRFQ(rydestest.Context(t), store.CreateRFQParams{RFQ: newRFQ(t, "p1")}))
	require.FileExists(t, path)
}

func TestRejectionPayloadBounded(t *testing.T) {
	ctx := rydestest.Context(t)
	s := newTestStore(t)
	big := bytes.Repeat([]byte("x"), 3*MaxRejectionPayload)
	long := strings.Repeat("é", 1000)
	require.NoError(t, s.RecordRejections(ctx, []rydes.Rejection{{
		RFQID: long, Provider: long, Reason: rydes.RejectInvalid, Message: long + long, ReceivedAt: base, Payload: big,
	}}))
	now := base.Add(time.Second)
	_, err := s.StageAnswers(ctx, store.StageAnswersParams{Now: now, Answers: []store.StageAnswer{{
		Answer: rydes.Answer{RFQID: rydes.NewID(), Provider: "p1", Kind: rydes.AnswerDecline, ReceivedAt: now}, Payload: big,
	}}})
	require.NoError(t, err)
	rs, err := s.ListRejections(ctx, store.ListRejectionsParams{})
	require.NoError(t, err)
	require.Len(t, rs, 2)
	for _, r := range rs {
		require.Len(t, r.Payload, MaxRejectionPayload)
		require.LessOrEqual(t, len(r.RFQID), maxRejectionID)
		require.LessOrEqual(t, len(r.Provider), maxRejectionID)
		require.LessOrEqual(t, len(r.Message), maxRejectionMessage)
	}
	require.True(t, strings.HasPrefix(long, rs[0].RFQID), "cut on a character boundary")
}

// TestSharedFile races two Stores on one database file, as two processes
// would, and checks that each RFQ closed once and that the counters the
// schema keeps agree with the roster and the outbox. Even RFQs have a
// deadline no expiry reaches; odd ones race answers against expiry. p3's
// deliveries fail, from both Stores, racing its answers.
func TestSharedFile(t *testing.T) {
	ctx := rydestest.Context(t)
	path := filepath.Join(t.TempDir(), "rydes.db")
	stores := []*Store{openAt(t, path), openAt(t, path)}
	providers := []string{"p0", "p1", "p2", "p3"}
	var rfqs []rydes.RFQ
	for i := range 10 {
		timeout := 11 * time.Second
		if i%2 == 0 {
			timeout = 10 * time.Minute
		}
		r, err := rydes.NewRFQ(rydes.NewID(), rydes.RFQRequest{Customer: "c", From: "a", To: "b", Timeout: timeout}, providers, base, limits)
		require.NoError(t, err)
		rfqs = append(rfqs, r)
		require.NoError(t, stores[i%2].CreateRFQ(ctx, store.CreateRFQParams{RFQ: r}))
	}

	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		errs      []error
		completes = map[string]int{}
		expiries  = map[string]int{}
		start     = make(chan struct{})
	)
	for i, p := range providers {
		for delivery := range 2 {
			s := stores[(i+delivery)%2]
			wg.Go(func() {
				<-start
				for _, r := range rfqs {
					res, err := s.StageAnswers(ctx, store.StageAnswersParams{Now: base.Add(10 * time.Second), Answers: []store.StageAnswer{{Answer: rydes.Answer{
						RFQID: r.ID, Provider: p, Kind: rydes.AnswerDecline, ReceivedAt: base.Add(time.Duration(delivery) * time.Second),
					}}}})
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					}
					for _, rr := range res {
						for _, e := range rr.Events {
							if e.Type == rydes.EventComplete {
								completes[e.RFQID]++
							}
						}
					}
					mu.Unlock()
				}
			})
		}
	}
	for _, s := range stores {
		wg.Go(func() {
			<-start
			for _, r := range rfqs {
				evs, err := s.MarkProviderFailed(ctx, store.MarkProviderFailedParams{RFQID: r.ID, Provider: "p3", Error: "HTTP 503", Now: base.Add(5 * time.Second)})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				for _, e := range evs {
					if e.Type == rydes.EventComplete {
						completes[e.RFQID]++
					}
				}
				mu.Unlock()
			}
		})
	}
	for i := range 4 {
		s := stores[i%2]
		wg.Go(func() {
			<-start
			for range 5 {
				ids, err := s.ExpireDue(ctx, store.ExpireDueParams{Now: base.Add(time.Minute)})
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

	for i, r := range rfqs {
		require.Equal(t, 1, completes[r.ID]+expiries[r.ID], "RFQ %s closed once", r.ID)
		if i%2 == 0 {
			require.Equal(t, 1, completes[r.ID], "RFQ %s completed", r.ID)
		}
	}
	requireCountersConsistent(t, stores[0])
}

// requireCountersConsistent checks that every RFQ's pending counter is the
// number of its roster entries still pending (failed, withdrawn and timed
// out ones are done), and its event_seq the seq of its last event in the
// outbox (whose event rows hold arrays of events).
func requireCountersConsistent(t *testing.T, s *Store) {
	t.Helper()
	ctx := rydestest.Context(t)
	rows, err := s.r.QueryContext(ctx, `
		SELECT r.id, r.status, r.pending, r.event_seq,
			(SELECT COUNT(*) FROM roster WHERE rfq_id = r.id AND state = 'pending'),
			(SELECT SUM(json_array_length(payload)) FROM outbox WHERE rfq_id = r.id AND kind = 'event'),
			(SELECT MAX(json_extract(payload, '$[#-1].seq')) FROM outbox WHERE rfq_id = r.id AND kind = 'event')
		FROM rfqs r`)
	require.NoError(t, err)
	defer rows.Close()
	n := 0
	for rows.Next() {
		var (
			id, status                              string
			pending, seq, nPending, nEvents, maxSeq int
		)
		require.NoError(t, rows.Scan(&id, &status, &pending, &seq, &nPending, &nEvents, &maxSeq))
		require.Equal(t, nPending, pending, "RFQ %s pending", id)
		require.Equal(t, maxSeq, seq, "RFQ %s event_seq", id)
		require.Equal(t, nEvents, seq, "RFQ %s has one event per seq", id)
		require.NotEqual(t, "open", status)
		n++
	}
	require.NoError(t, rows.Err())
	require.Positive(t, n)
}

func BenchmarkCreateRFQ(b *testing.B) {
	ctx := context.Background()
	s := newBenchStore(b)
	providers := make([]string, 10)
	for i := range providers {
		providers[i] = fmt.Sprintf("provider-%02d", i)
	}
	rfqs := make([]rydes.RFQ, b.N)
	for i := range rfqs {
		rfqs[i] = newRFQ(b, providers...)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: rfqs[i]}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rfqs/s")
}

// BenchmarkCreateRFQConcurrent creates RFQs from 64 goroutines at once, as
// HTTP handlers do: group commit runs the creates that wait in one
// transaction.
func BenchmarkCreateRFQConcurrent(b *testing.B) {
	ctx := context.Background()
	s := newBenchStore(b)
	providers := make([]string, 10)
	for i := range providers {
		providers[i] = fmt.Sprintf("provider-%02d", i)
	}
	rfqs := make(chan rydes.RFQ, b.N)
	for range b.N {
		rfqs <- newRFQ(b, providers...)
	}
	close(rfqs)
	b.ReportAllocs()
	b.SetParallelism(32) // 64 goroutines on 2 CPUs
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: <-rfqs}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rfqs/s")
}

func BenchmarkStageAnswers(b *testing.B) {
	const rosterSize = 100
	providers := make([]string, rosterSize)
	for i := range providers {
		providers[i] = fmt.Sprintf("provider-%03d", i)
	}
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			ctx := context.Background()
			s := newBenchStore(b)
			total := b.N * n
			answers := make([]store.StageAnswer, 0, total)
			for len(answers) < total {
				r := newRFQ(b, providers...)
				if err := s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: r}); err != nil {
					b.Fatal(err)
				}
				for i, p := range providers {
					answers = append(answers, store.StageAnswer{Answer: rydes.Answer{
						RFQID: r.ID, Provider: p, Kind: rydes.AnswerQuote,
						Price:      rydes.Price{Amount: fmt.Sprintf("%d.50", 10+i), Currency: "EUR"},
						ReceivedAt: base.Add(time.Second),
					}})
				}
			}
			now := base.Add(2 * time.Second)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				res, err := s.StageAnswers(ctx, store.StageAnswersParams{Answers: answers[i*n : (i+1)*n], Now: now})
				if err != nil {
					b.Fatal(err)
				}
				if res[0].Decision.Outcome != rydes.OutcomeStaged {
					b.Fatalf("answer not staged: %+v", res[0])
				}
			}
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "answers/s")
		})
	}
}

// BenchmarkProviderStats reads one provider's statistics with 20,000 open
// RFQs (the memory target's) and 100,000 complete ones in the store, each
// asking the same 10 providers: the pending ones counted through the open
// RFQs, the answered ones from roster_provider, the response times over
// the latest 10,000 answers.
func BenchmarkProviderStats(b *testing.B) {
	const open, closed, providers = 20_000, 100_000, 10
	ctx := context.Background()
	s := newBenchStore(b)
	_, err := s.w.ExecContext(ctx, `
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 + ?2)
		INSERT INTO rfqs (id, customer, from_place, to_place, created_at, deadline, status, closed_at, pending, event_seq)
		SELECT printf('rfq-%07d', i), 'c', 'a', 'b', ?4 + i * 1000, ?4 + i * 1000 + 60000000,
			IIF(i <= ?2, 'complete', 'open'), IIF(i <= ?2, ?4 + i * 1000 + 5000, NULL), IIF(i <= ?2, 0, ?3), 1
		FROM n;
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 + ?2),
			p(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM p WHERE j + 1 < ?3)
		INSERT INTO roster (rfq_id, provider, position, state, changed_at, kind, price_amount, price_units, currency)
		SELECT printf('rfq-%07d', i), printf('provider-%02d', j), j, IIF(i <= ?2, 'quoted', 'pending'),
			?4 + i * 1000 + IIF(i <= ?2, 5000, 0), IIF(i <= ?2, 'quote', NULL),
			IIF(i <= ?2, '10', NULL), IIF(i <= ?2, 100000, NULL), IIF(i <= ?2, 'EUR', NULL)
		FROM n, p;`, open, closed, providers, micros(base))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		st, err := s.ProviderStats(ctx, "provider-03")
		if err != nil {
			b.Fatal(err)
		}
		if st.Pending != open || st.Quoted != closed {
			b.Fatalf("stats %+v", st)
		}
	}
}

// BenchmarkDeleteProvider deletes a provider asked in 20,000 open RFQs
// among 100,000 complete ones (each RFQ asks 10 providers): the withdrawal
// walks the open RFQs by deadline in chunks of store.DefaultWithdrawChunk.
func BenchmarkDeleteProvider(b *testing.B) {
	const open, closed, providers = 20_000, 100_000, 10
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		s := newBenchStore(b)
		_, err := s.w.ExecContext(ctx, `
			INSERT INTO providers (id, name, kind, status, created_at, updated_at) VALUES ('provider-03', 'P', 'simulated', 'active', 0, 0);
			WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 + ?2)
			INSERT INTO rfqs (id, customer, from_place, to_place, created_at, deadline, status, closed_at, pending, event_seq)
			SELECT printf('rfq-%07d', i), 'c', 'a', 'b', ?4 + i * 1000, ?4 + i * 1000 + 60000000,
				IIF(i <= ?2, 'complete', 'open'), IIF(i <= ?2, ?4 + i * 1000 + 5000, NULL), IIF(i <= ?2, 0, ?3), 1
			FROM n;
			WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 + ?2),
				p(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM p WHERE j + 1 < ?3)
			INSERT INTO roster (rfq_id, provider, position, state, changed_at, kind, price_amount, price_units, currency)
			SELECT printf('rfq-%07d', i), printf('provider-%02d', j), j, IIF(i <= ?2, 'quoted', 'pending'),
				?4 + i * 1000 + IIF(i <= ?2, 5000, 0), IIF(i <= ?2, 'quote', NULL),
				IIF(i <= ?2, '10', NULL), IIF(i <= ?2, 100000, NULL), IIF(i <= ?2, 'EUR', NULL)
			FROM n, p;`, open, closed, providers, micros(base))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		ids, err := s.DeleteProvider(ctx, store.DeleteProviderParams{ID: "provider-03", Now: base.Add(time.Hour)})
		if err != nil {
			b.Fatal(err)
		}
		if len(ids) != open {
			b.Fatalf("withdrawn from %d RFQs", len(ids))
		}
	}
}

func BenchmarkGetRFQ(b *testing.B) {
	ctx := context.Background()
	s := newBenchStore(b)
	providers := make([]string, 10)
	for i := range providers {
		providers[i] = fmt.Sprintf("provider-%02d", i)
	}
	r := newRFQ(b, providers...)
	if err := s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: r}); err != nil {
		b.Fatal(err)
	}
	answers := make([]store.StageAnswer, len(providers))
	for i, p := range providers {
		answers[i] = store.StageAnswer{Answer: rydes.Answer{RFQID: r.ID, Provider: p, Kind: rydes.AnswerQuote,
			Price: rydes.Price{Amount: fmt.Sprintf("%d.50", 10+i), Currency: "EUR"}, ReceivedAt: base.Add(time.Second)}}
	}
	if _, err := s.StageAnswers(ctx, store.StageAnswersParams{Answers: answers, Now: base.Add(2 * time.Second)}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			got, err := s.GetRFQ(ctx, store.GetRFQParams{ID: r.ID})
			if err != nil {
				b.Error(err)
				return
			}
			if len(got.Quotes) != len(providers) {
				b.Errorf("got %d quotes", len(got.Quotes))
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}

// TestMigrateFromVersion1 builds a database at schema version 1 with data,
// as the released rydes left it, and checks that opening it migrates it
// with every row kept, and that the migrated rows take part in what
// version 2 adds.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := rydestest.Context(t)
	path := filepath.Join(t.TempDir(), "rydes.db")
	ms, err := loadMigrations(migrationFS)
	require.NoError(t, err)
	db, err := openPool(ctx, path, []string{"foreign_keys(ON)"}, "_txlock=immediate")
	require.NoError(t, err)
	require.NoError(t, applyMigrations(ctx, db, ms[:1], rydestest.Logger(t)))

	open := newRFQ(t, "quoter", "decliner", "waiter")
	closed := newRFQ(t, "late")
	t1, t2 := micros(base.Add(time.Second)), micros(base.Add(2*time.Second))
	_, err = db.ExecContext(ctx, `
		INSERT INTO providers (id, name, kind, status, created_at, updated_at) VALUES
			('quoter', 'Quoter', 'simulated', 'active', ?1, ?2),
			('late', 'Late', 'nats', 'paused', ?1, ?1);
		INSERT INTO rfqs (id, customer, from_place, to_place, passengers, pickup_at, attributes,
			created_at, deadline, status, closed_at, pending, event_seq) VALUES
			(?3, 'c', 'a', 'b', 2, NULL, '{"pets":"yes"}', ?1, ?4, 'open', NULL, 1, 3),
			(?5, 'c', 'a', 'b', 0, NULL, NULL, ?1, ?6, 'expired', ?6, 0, 3);
		INSERT INTO roster (rfq_id, provider, position, state, changed_at, reason, kind, price_amount,
			price_units, currency, eta_seconds, expires_at, received_at) VALUES
			(?3, 'quoter', 0, 'quoted', ?2, NULL, 'quote', '12.50', 125000, 'EUR', 300, NULL, ?2),
			(?3, 'decliner', 1, 'declined', ?7, 'no vans', 'decline', NULL, NULL, NULL, NULL, NULL, ?7),
			(?3, 'waiter', 2, 'pending', ?1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
			(?5, 'late', 0, 'timed_out', ?6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
		INSERT INTO rejections (rfq_id, provider, reason, message, received_at, payload) VALUES
			(?3, 'stranger', 'not_asked', 'provider stranger was not asked', ?2, x'7b7d');
		INSERT INTO outbox (kind, rfq_id, provider, payload, created_at) VALUES
			('event', ?3, NULL, json_object('rfq_id', ?3, 'seq', 1, 'type', 'created', 'at', '2030-03-04T05:06:07.891011Z', 'customer', 'c', 'status', 'open'), ?1),
			('dispatch', ?3, 'waiter', json_object('rfq_id', ?3, 'from', 'a', 'to', 'b', 'created_at', '2030-03-04T05:06:07.891011Z', 'deadline', '2030-03-04T05:07:07.891011Z'), ?1);`,
		micros(base), t1, open.ID, micros(open.Deadline), closed.ID, micros(closed.Deadline), t2)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	s := openAt(t, path)
	var version int
	require.NoError(t, s.r.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&version))
	require.Equal(t, len(ms), version)
	var check string
	require.NoError(t, s.r.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check))
	require.Equal(t, "ok", check)
	rows, err := s.r.QueryContext(ctx, `PRAGMA foreign_key_check`)
	require.NoError(t, err)
	require.False(t, rows.Next(), "no foreign key is broken")
	require.NoError(t, rows.Close())

	ps, err := s.ListProviders(ctx, store.ListProvidersParams{})
	require.NoError(t, err)
	require.Equal(t, []rydes.Provider{
		{ID: "late", Name: "Late", Kind: rydes.ProviderKindNATS, Status: rydes.ProviderPaused, CreatedAt: base, UpdatedAt: base},
		{ID: "quoter", Name: "Quoter", Kind: rydes.ProviderKindSimulated, Status: rydes.ProviderActive, CreatedAt: base, UpdatedAt: fromMicros(t1)},
	}, ps)
	sec, err := s.ProviderSecrets(ctx, "late")
	require.NoError(t, err)
	require.Equal(t, store.ProviderSecrets{}, sec)

	got, err := s.GetRFQ(ctx, store.GetRFQParams{ID: open.ID})
	require.NoError(t, err)
	eta := 300
	require.Equal(t, []rydes.RosterEntry{
		{Provider: "quoter", State: rydes.ProviderQuoted, ChangedAt: fromMicros(t1)},
		{Provider: "decliner", State: rydes.ProviderDeclined, ChangedAt: fromMicros(t2), Reason: "no vans"},
		{Provider: "waiter", State: rydes.ProviderPending, ChangedAt: base},
	}, got.Providers)
	require.Equal(t, []rydes.Quote{{Provider: "quoter", Price: rydes.Price{Amount: "12.50", Currency: "EUR"}, ETASeconds: &eta, ReceivedAt: fromMicros(t1)}}, got.Quotes)
	require.Equal(t, map[string]string{"pets": "yes"}, got.Attributes)
	gotClosed, err := s.GetRFQ(ctx, store.GetRFQParams{ID: closed.ID})
	require.NoError(t, err)
	require.Equal(t, rydes.StatusExpired, gotClosed.Status)
	require.Equal(t, rydes.ProviderTimedOut, gotClosed.Providers[0].State)
	rs, err := s.ListRejections(ctx, store.ListRejectionsParams{})
	require.NoError(t, err)
	require.Len(t, rs, 1)
	require.Equal(t, []byte("{}"), rs[0].Payload)
	msgs, err := s.PendingOutbox(ctx, store.PendingOutboxParams{})
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	require.Len(t, msgs[0].Events, 1, "a row of one event, as an object")
	require.Equal(t, rydes.EventCreated, msgs[0].Events[0].Type)
	require.Equal(t, []string{"waiter"}, msgs[1].Dispatch.Providers, "a row of a dispatch to one provider")
	require.Equal(t, open.ID, msgs[1].Dispatch.Request.RFQID)

	// The migrated RFQ goes on: its last pending provider fails, which
	// completes it, and the stats count the old entries.
	evs, err := s.MarkProviderFailed(ctx, store.MarkProviderFailedParams{RFQID: open.ID, Provider: "waiter", Error: "HTTP 503", Now: base.Add(3 * time.Second)})
	require.NoError(t, err)
	require.Equal(t, []rydes.EventType{rydes.EventProviderFailed, rydes.EventComplete}, []rydes.EventType{evs[0].Type, evs[1].Type})
	require.Equal(t, []int64{4, 5}, []int64{evs[0].Seq, evs[1].Seq}, "seqs follow the migrated event_seq")
	st, err := s.ProviderStats(ctx, "quoter")
	require.NoError(t, err)
	require.Equal(t, rydes.ProviderStats{Provider: "quoter", Asked: 1, Quoted: 1, ResponseP50: rydes.Duration(time.Second), ResponseP99: rydes.Duration(time.Second)}, st)

	// The rebuilt tables keep their constraints.
	_, err = s.w.ExecContext(ctx, `UPDATE roster SET state = 'lost' WHERE rfq_id = ?`, closed.ID)
	require.ErrorContains(t, err, "CHECK constraint failed")
	_, err = s.w.ExecContext(ctx, `UPDATE providers SET webhook_url = 'https://x.example/' WHERE id = 'late'`)
	require.ErrorContains(t, err, "CHECK constraint failed", "only webhook providers have a URL")
	_, err = s.w.ExecContext(ctx, `UPDATE providers SET paused_reason = 'x' WHERE id = 'quoter'`)
	require.ErrorContains(t, err, "CHECK constraint failed", "only paused providers have a reason")
	_, err = s.w.ExecContext(ctx, `UPDATE providers SET filter = '[1]' WHERE id = 'quoter'`)
	require.ErrorContains(t, err, "CHECK constraint failed", "a filter is a JSON object")
	_, err = s.w.ExecContext(ctx, `DELETE FROM rfqs WHERE id = ?`, closed.ID)
	require.NoError(t, err)
	var n int
	require.NoError(t, s.w.QueryRowContext(ctx, `SELECT COUNT(*) FROM roster WHERE rfq_id = ?`, closed.ID).Scan(&n))
	require.Zero(t, n, "the roster still cascades from its RFQ")
}

// TestLookupsUseIndexes checks the query plans of the lookups that must not
// scan a table: providers by API key hash, a provider's roster entries, the
// roster entries of the providers answering an RFQ.
func TestLookupsUseIndexes(t *testing.T) {
	ctx := rydestest.Context(t)
	s := newTestStore(t)
	plan := func(query string, args ...any) string {
		t.Helper()
		rows, err := s.r.QueryContext(ctx, `EXPLAIN QUERY PLAN `+query, args...)
		require.NoError(t, err)
		defer rows.Close()
		var lines []string
		for rows.Next() {
			var id, parent, notUsed int
			var detail string
			require.NoError(t, rows.Scan(&id, &parent, &notUsed, &detail))
			lines = append(lines, detail)
		}
		require.NoError(t, rows.Err())
		return strings.Join(lines, "\n")
	}
	require.Contains(t, plan(sqlSelectProviderByAPIKeyHash, "h"), "USING INDEX providers_api_key_hash (api_key_hash=?)")
	// A provider's pending and failed entries: through the open RFQs, by
	// deadline from a cursor, each roster by primary key.
	withdraw := plan(sqlSelectWithdrawable, "p", 0, "", 10)
	require.Contains(t, withdraw, "SEARCH r USING INDEX rfqs_open_deadline ((deadline,id)>(?,?))")
	require.Contains(t, withdraw, "SEARCH ro USING PRIMARY KEY (rfq_id=? AND provider=?)")
	require.NotContains(t, withdraw, "TEMP B-TREE", "read in order from the index")
	pending := plan(sqlCountPending, "p")
	require.Contains(t, pending, "rfqs_open_deadline")
	require.Contains(t, pending, "SEARCH ro USING PRIMARY KEY (rfq_id=? AND provider=?)")
	counts := plan(sqlCountDone, "p")
	require.Contains(t, counts, "roster_provider (provider=?)")
	var index string
	require.NoError(t, s.r.QueryRowContext(ctx, `SELECT sql FROM sqlite_schema WHERE name = 'roster_provider'`).Scan(&index))
	require.Contains(t, index, "WHERE state <> 'pending'", "a create writes no roster_provider page")
	latest := plan(sqlLatestAnswers, "p", 10)
	require.Equal(t, 2, strings.Count(latest, "SEARCH ro USING COVERING INDEX roster_provider (provider=? AND state=?)"), "quotes and declines:\n%s", latest)
	require.NotContains(t, latest, "SCAN ro")
	require.Equal(t, 1, strings.Count(latest, "TEMP B-TREE"), "only the merge of both sorts; each is read in order from the index:\n%s", latest)
	answering := plan(sqlSelectRosterEntries, "r", `["p1", "p2"]`)
	require.Contains(t, answering, "SEARCH roster USING PRIMARY KEY (rfq_id=? AND provider=?)")
	require.NotContains(t, answering, "SCAN roster")
}

// TestProviderStatsRecentAnswers checks that response times come from the
// most recent answers, quotes and declines alike, while the counts cover
// every entry. The window is made small so that the history is quick to
// build.
func TestProviderStatsRecentAnswers(t *testing.T) {
	ctx := rydestest.Context(t)
	s := newTestStore(t)
	require.Equal(t, 10_000, s.statsWindow)
	const window, old = 100, 60
	s.statsWindow = window
	// RFQ i is created i hours after base. The old answers, first, took an
	// hour; the window's answers after them one second, alternately quotes
	// and declines.
	_, err := s.w.ExecContext(ctx, `
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 + ?2)
		INSERT INTO rfqs (id, customer, from_place, to_place, created_at, deadline, status, closed_at, pending, event_seq)
		SELECT 'rfq-' || i, 'c', 'a', 'b', ?3 + i * 3600000000, ?3 + i * 3600000000 + 7200000000, 'complete',
			?3 + i * 3600000000 + 7200000000, 0, 3
		FROM n;
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 + ?2)
		INSERT INTO roster (rfq_id, provider, position, state, changed_at, kind, price_amount, price_units, currency)
		SELECT 'rfq-' || i, 'busy', 0, IIF(i % 2 = 0, 'quoted', 'declined'),
			?3 + i * 3600000000 + IIF(i <= ?1, 3600000000, 1000000), IIF(i % 2 = 0, 'quote', 'decline'),
			IIF(i % 2 = 0, '10', NULL), IIF(i % 2 = 0, 100000, NULL), IIF(i % 2 = 0, 'EUR', NULL)
		FROM n;`, old, window, micros(base))
	require.NoError(t, err)
	st, err := s.ProviderStats(ctx, "busy")
	require.NoError(t, err)
	require.Equal(t, old+window, st.Asked)
	require.Equal(t, (old+window)/2, st.Quoted)
	require.Equal(t, (old+window)/2, st.Declined)
	require.Equal(t, rydes.Duration(time.Second), st.ResponseP50)
	require.Equal(t, rydes.Duration(time.Second), st.ResponseP99, "the hour-long answers are older than the most recent %d", window)

	s.statsWindow = window + 2
	st, err = s.ProviderStats(ctx, "busy")
	require.NoError(t, err)
	require.Equal(t, rydes.Duration(time.Hour), st.ResponseP99, "a wider window reaches the old answers")
}

func TestPercentile(t *testing.T) {
	ds := func(secs ...int) []time.Duration {
		out := make([]time.Duration, len(secs))
		for i, s := range secs {
			out[i] = time.Duration(s) * time.Second
		}
		return out
	}
	for _, tc := range []struct {
		sorted   []time.Duration
		p50, p99 time.Duration
	}{
		{nil, 0, 0},
		{ds(7), 7 * time.Second, 7 * time.Second},
		{ds(1, 2), time.Second, 2 * time.Second},
		{ds(1, 2, 3, 4), 2 * time.Second, 4 * time.Second},
		{ds(1, 2, 3, 4, 5), 3 * time.Second, 5 * time.Second},
	} {
		require.Equal(t, tc.p50, percentile(tc.sorted, 50), "%v", tc.sorted)
		require.Equal(t, tc.p99, percentile(tc.sorted, 99), "%v", tc.sorted)
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	require.Equal(t, 50*time.Millisecond, percentile(hundred, 50))
	require.Equal(t, 99*time.Millisecond, percentile(hundred, 99))
}

func TestReasonsBounded(t *testing.T) {
	ctx := rydestest.Context(t)
	s := newTestStore(t)
	long := strings.Repeat("é", 2000)

	r := newRFQ(t, "p1", "p2")
	require.NoError(t, s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: r}))
	evs, err := s.MarkProviderFailed(ctx, store.MarkProviderFailedParams{RFQID: r.ID, Provider: "p1", Error: long, Now: base.Add(time.Second)})
	require.NoError(t, err)
	require.LessOrEqual(t, len(evs[0].Reason), maxFailureReason)
	require.True(t, strings.HasPrefix(long, evs[0].Reason), "cut on a character boundary")
	got, err := s.GetRFQ(ctx, store.GetRFQParams{ID: r.ID})
	require.NoError(t, err)
	require.Equal(t, evs[0].Reason, got.Providers[0].Reason)

	d, err := s.AddDeadLetter(ctx, rydes.DeadLetter{Provider: "p1", RFQID: r.ID, Attempts: 1, LastError: long, Request: r.ProviderRequest(), CreatedAt: base})
	require.NoError(t, err)
	require.LessOrEqual(t, len(d.LastError), maxDeadLetterError)
	require.True(t, strings.HasPrefix(long, d.LastError))

	_, err = s.UpsertProvider(ctx, store.UpsertProviderParams{ID: "p1", Name: "P", Kind: rydes.ProviderKindWebhook, Status: rydes.ProviderPaused, Now: base})
	require.NoError(t, err)
	p, err := s.UpdateProvider(ctx, store.UpdateProviderParams{ID: "p1", PausedReason: &long, Now: base})
	require.NoError(t, err)
	require.LessOrEqual(t, len(p.PausedReason), maxPausedReason)
	require.True(t, strings.HasPrefix(long, p.PausedReason))
}

// TestMigrateFromVersion2 builds a database at schema version 2 with data
// and checks that opening it migrates it to version 3 with every row kept:
// the RFQs of before have no notify URL, keep their seq and go on, and the
// new tables work.
func TestMigrateFromVersion2(t *testing.T) {
	ctx := rydestest.Context(t)
	path := filepath.Join(t.TempDir(), "rydes.db")
	ms, err := loadMigrations(migrationFS)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(ms), 3)
	db, err := openPool(ctx, path, []string{"foreign_keys(ON)"}, "_txlock=immediate")
	require.NoError(t, err)
	require.NoError(t, applyMigrations(ctx, db, ms[:2], rydestest.Logger(t)))

	open := newRFQ(t, "quoter", "waiter")
	closed := newRFQ(t, "late")
	t1 := micros(base.Add(time.Second))
	_, err = db.ExecContext(ctx, `
		INSERT INTO providers (id, name, kind, status, webhook_url, api_key_hash, webhook_secret, created_at, updated_at) VALUES
			('quoter', 'Quoter', 'webhook', 'active', 'https://quoter.example/rfq', 'hash-q', 'whsec-q', ?1, ?1);
		INSERT INTO rfqs (id, customer, from_place, to_place, passengers, pickup_at, attributes,
			created_at, deadline, status, closed_at, pending, event_seq) VALUES
			(?2, 'acme', 'a', 'b', 2, NULL, '{"pets":"yes"}', ?1, ?3, 'open', NULL, 1, 2),
			(?4, 'acme', 'a', 'b', 0, NULL, NULL, ?1, ?5, 'expired', ?5, 0, 3);
		INSERT INTO roster (rfq_id, provider, position, state, changed_at, reason, kind, price_amount,
			price_units, currency, eta_seconds, expires_at, received_at) VALUES
			(?2, 'quoter', 0, 'quoted', ?6, NULL, 'quote', '12.50', 125000, 'EUR', NULL, NULL, ?6),
			(?2, 'waiter', 1, 'pending', ?1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
			(?4, 'late', 0, 'timed_out', ?5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
		INSERT INTO dead_letters (provider, rfq_id, attempts, last_error, last_status, request, created_at) VALUES
			('quoter', ?2, 5, 'HTTP 503', 503, '{}', ?6);
		INSERT INTO settings (name, value) VALUES ('admin_key_hash', 'hash-admin');`,
		micros(base), open.ID, micros(open.Deadline), closed.ID, micros(closed.Deadline), t1)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	s := openAt(t, path)
	var version int
	require.NoError(t, s.r.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&version))
	require.Equal(t, len(ms), version)
	var check string
	require.NoError(t, s.r.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check))
	require.Equal(t, "ok", check)

	// Every row is kept; the RFQs of before have no notify target.
	got, err := s.GetRFQ(ctx, store.GetRFQParams{ID: open.ID})
	require.NoError(t, err)
	require.Equal(t, int64(2), got.Seq)
	require.Empty(t, got.NotifyURL)
	require.Equal(t, map[string]string{"pets": "yes"}, got.Attributes)
	require.Equal(t, []rydes.Quote{{Provider: "quoter", Price: rydes.Price{Amount: "12.50", Currency: "EUR"}, ReceivedAt: fromMicros(t1)}}, got.Quotes)
	require.Equal(t, rydes.ProviderPending, got.Providers[1].State)
	gotClosed, err := s.GetRFQ(ctx, store.GetRFQParams{ID: closed.ID})
	require.NoError(t, err)
	require.Equal(t, rydes.StatusExpired, gotClosed.Status)
	require.Equal(t, int64(3), gotClosed.Seq)
	url, secret, err := s.NotifyTarget(ctx, open.ID)
	require.NoError(t, err)
	require.Empty(t, url)
	require.Empty(t, secret)
	p, err := s.ProviderByAPIKeyHash(ctx, "hash-q")
	require.NoError(t, err)
	require.Equal(t, "https://quoter.example/rfq", p.WebhookURL)
	dls, err := s.ListDeadLetters(ctx, store.ListDeadLettersParams{})
	require.NoError(t, err)
	require.Len(t, dls, 1)
	v, ok, err := s.GetSetting(ctx, "admin_key_hash")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "hash-admin", v)

	// The migrated RFQ goes on from its seq: waiter withdrawn (3), cancelled (4).
	res, err := s.CancelRFQ(ctx, store.CancelRFQParams{ID: open.ID, Now: base.Add(2 * time.Second)})
	require.NoError(t, err)
	require.Equal(t, int64(4), res.Event.Seq)
	require.Equal(t, int64(4), res.RFQ.Seq)

	// What version 3 adds works on the migrated database.
	n, err := s.RecordNotification(ctx, rydes.Notification{RFQID: closed.ID, Event: rydes.EventExpired, At: base, Status: 200, Delivered: true})
	require.NoError(t, err)
	require.Equal(t, 1, n.Attempt)
	c, err := s.CreateCustomer(ctx, store.CreateCustomerParams{Customer: rydes.Customer{ID: "acme", Name: "ACME"}, APIKeyHash: "hash-acme", Now: base})
	require.NoError(t, err)
	got2, err := s.CustomerByAPIKeyHash(ctx, "hash-acme")
	require.NoError(t, err)
	require.Equal(t, c, got2)
	withTarget := newRFQ(t, "quoter")
	withTarget.NotifyURL, withTarget.NotifySecret = "https://hooks.example/x", "whsec-x"
	require.NoError(t, s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: withTarget}))
	url, secret, err = s.NotifyTarget(ctx, withTarget.ID)
	require.NoError(t, err)
	require.Equal(t, []string{"https://hooks.example/x", "whsec-x"}, []string{url, secret})

	// The new columns and tables keep their constraints.
	_, err = s.w.ExecContext(ctx, `UPDATE rfqs SET notify_secret = 's' WHERE id = ?`, closed.ID)
	require.ErrorContains(t, err, "CHECK constraint failed", "a secret needs a URL")
	_, err = s.w.ExecContext(ctx, `INSERT INTO notifications (rfq_id, event, attempt, at, delivered) VALUES (?, 'quote', 1, 0, 0)`, closed.ID)
	require.ErrorContains(t, err, "CHECK constraint failed", "only final events are notified")
	_, err = s.w.ExecContext(ctx, `INSERT INTO notifications (rfq_id, event, attempt, at, delivered) VALUES (?, 'expired', 9, 0, 0)`, rydes.NewID())
	require.ErrorContains(t, err, "FOREIGN KEY constraint failed")
	_, err = s.w.ExecContext(ctx, `INSERT INTO customers (id, name, api_key_hash, created_at) VALUES ('other', 'O', 'hash-acme', 0)`)
	require.ErrorContains(t, err, "UNIQUE constraint failed")
}

// TestMigrateFromVersion7 builds a database at schema version 7 in which
// an RFQ was cancelled with a provider still pending, as rydes then left
// it, and checks that opening it withdraws that provider at the time the
// RFQ closed, leaves the open RFQ's pending provider as it is, and makes
// roster_provider leave pending entries out.
func TestMigrateFromVersion7(t *testing.T) {
	ctx := rydestest.Context(t)
	path := filepath.Join(t.TempDir(), "rydes.db")
	ms, err := loadMigrations(migrationFS)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(ms), 8)
	db, err := openPool(ctx, path, []string{"foreign_keys(ON)"}, "_txlock=immediate")
	require.NoError(t, err)
	require.NoError(t, applyMigrations(ctx, db, ms[:7], rydestest.Logger(t)))

	open, cancelled := newRFQ(t, "quoter", "waiter"), newRFQ(t, "quoter", "waiter")
	t1, tc := micros(base.Add(time.Second)), micros(base.Add(2*time.Second))
	_, err = db.ExecContext(ctx, `
		INSERT INTO rfqs (id, customer, from_place, to_place, created_at, deadline, status, closed_at, pending, event_seq) VALUES
			(?1, 'c', 'a', 'b', ?3, ?4, 'open', NULL, 1, 2),
			(?2, 'c', 'a', 'b', ?3, ?4, 'cancelled', ?6, 1, 3);
		INSERT INTO roster (rfq_id, provider, position, state, changed_at, kind, price_amount, price_units, currency, received_at) VALUES
			(?1, 'quoter', 0, 'quoted', ?5, 'quote', '12.50', 125000, 'EUR', ?5),
			(?1, 'waiter', 1, 'pending', ?3, NULL, NULL, NULL, NULL, NULL),
			(?2, 'quoter', 0, 'quoted', ?5, 'quote', '9', 90000, 'EUR', ?5),
			(?2, 'waiter', 1, 'pending', ?3, NULL, NULL, NULL, NULL, NULL);`,
		open.ID, cancelled.ID, micros(base), micros(open.Deadline), t1, tc)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	s := openAt(t, path)
	var version int
	require.NoError(t, s.r.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&version))
	require.Equal(t, len(ms), version)
	var check string
	require.NoError(t, s.r.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check))
	require.Equal(t, "ok", check)

	got, err := s.GetRFQ(ctx, store.GetRFQParams{ID: cancelled.ID})
	require.NoError(t, err)
	require.Equal(t, []rydes.RosterEntry{
		{Provider: "quoter", State: rydes.ProviderQuoted, ChangedAt: fromMicros(t1)},
		{Provider: "waiter", State: rydes.ProviderWithdrawn, ChangedAt: fromMicros(tc)},
	}, got.Providers, "withdrawn when the RFQ was cancelled")
	require.Equal(t, int64(3), got.Seq, "no event added to its past")
	var pending int
	require.NoError(t, s.r.QueryRowContext(ctx, `SELECT pending FROM rfqs WHERE id = ?`, cancelled.ID).Scan(&pending))
	require.Zero(t, pending)
	got, err = s.GetRFQ(ctx, store.GetRFQParams{ID: open.ID})
	require.NoError(t, err)
	require.Equal(t, rydes.ProviderPending, got.Providers[1].State, "the open RFQ still waits for it")

	st, err := s.ProviderStats(ctx, "waiter")
	require.NoError(t, err)
	require.Equal(t, rydes.ProviderStats{Provider: "waiter", Asked: 2, Pending: 1, Withdrawn: 1}, st)
	var n int
	require.NoError(t, s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM roster INDEXED BY roster_provider WHERE provider = 'waiter' AND state <> 'pending'`).Scan(&n))
	require.Equal(t, 1, n, "the pending entry is not in the index")

	// The open RFQ goes on: the waiter answers and completes it.
	t3 := base.Add(3 * time.Second)
	res, err := s.StageAnswers(ctx, store.StageAnswersParams{Now: t3, Answers: []store.StageAnswer{{Answer: rydes.Answer{
		RFQID: open.ID, Provider: "waiter", Kind: rydes.AnswerDecline, ReceivedAt: t3,
	}}}})
	require.NoError(t, err)
	require.Equal(t, rydes.StatusComplete, res[0].Status)
}

// TestStoreRefusals checks what the SQLite store refuses beyond the
// conformance suite: notify secrets without URL, notifications that are
// not of a final event, of an unknown RFQ, or delivered with an error; and
// that it cuts long notification errors.
func TestStoreRefusals(t *testing.T) {
	ctx := rydestest.Context(t)
	s := newTestStore(t)

	secretOnly := newRFQ(t, "p1")
	secretOnly.NotifySecret = "whsec-x"
	err := s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: secretOnly})
	require.Equal(t, rydes.EINVALID, rydes.ErrorCodeOf(err), "%v", err)
	badURL := newRFQ(t, "p1")
	badURL.NotifyURL = "ftp://hooks.example/x"
	err = s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: badURL})
	require.Equal(t, rydes.EINVALID, rydes.ErrorCodeOf(err), "%v", err)
	require.Equal(t, "notify_url", rydes.ErrorFieldOf(err))

	r := newRFQ(t, "p1")
	require.NoError(t, s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: r}))
	for name, n := range map[string]rydes.Notification{
		"not final":   {RFQID: r.ID, Event: rydes.EventQuote, At: base},
		"bad status":  {RFQID: r.ID, Event: rydes.EventComplete, At: base, Status: 42},
		"contradicts": {RFQID: r.ID, Event: rydes.EventComplete, At: base, Status: 200, Delivered: true, Error: "but failed"},
	} {
		_, err := s.RecordNotification(ctx, n)
		require.Equal(t, rydes.EINVALID, rydes.ErrorCodeOf(err), "%s: %v", name, err)
	}
	_, err = s.RecordNotification(ctx, rydes.Notification{RFQID: rydes.NewID(), Event: rydes.EventComplete, At: base})
	require.Equal(t, rydes.ENOTFOUND, rydes.ErrorCodeOf(err), "%v", err)
	ns, err := s.ListNotifications(ctx, r.ID)
	require.NoError(t, err)
	require.Empty(t, ns, "nothing refused was recorded")

	long := strings.Repeat("é", 2000)
	n, err := s.RecordNotification(ctx, rydes.Notification{RFQID: r.ID, Event: rydes.EventComplete, At: base, Error: long})
	require.NoError(t, err)
	require.LessOrEqual(t, len(n.Error), maxNotificationError)
	require.True(t, strings.HasPrefix(long, n.Error), "cut on a character boundary")

	_, err = s.CreateCustomer(ctx, store.CreateCustomerParams{Customer: rydes.Customer{ID: "c", Name: "C"}, Now: base})
	require.Equal(t, rydes.EINVALID, rydes.ErrorCodeOf(err), "a customer needs a key hash: %v", err)
	_, err = s.CreateCustomer(ctx, store.CreateCustomerParams{Customer: rydes.Customer{ID: "c", Name: "C"}, APIKeyHash: "h", Now: base})
	require.NoError(t, err)
	require.Equal(t, rydes.EINVALID, rydes.ErrorCodeOf(s.SetCustomerKey(ctx, "c", "")))
}

// TestCustomerLookupUsesIndex checks that authenticating a customer does not
// scan the customers.
func TestCustomerLookupUsesIndex(t *testing.T) {
	ctx := rydestest.Context(t)
	s := newTestStore(t)
	var id, parent, notUsed int
	var detail string
	require.NoError(t, s.r.QueryRowContext(ctx, `EXPLAIN QUERY PLAN `+sqlSelectCustomerByAPIKeyHash, "h").Scan(&id, &parent, &notUsed, &detail))
	require.Contains(t, detail, "USING INDEX customers_api_key_hash (api_key_hash=?)")
}

func TestSynchronousOption(t *testing.T) {
	ctx := context.Background()
	full := newTestStore(t)
	n, err := full.Synchronous(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n, "FULL by default")

	s, err := Open(ctx, filepath.Join(t.TempDir(), "rydes.db"), nil, WithSynchronous(SynchronousNormal))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	n, err = s.Synchronous(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	_, err = Open(ctx, filepath.Join(t.TempDir(), "rydes.db"), nil, WithSynchronous("OFF"))
	require.ErrorContains(t, err, `synchronous "OFF"`)
}

// TestDeleteOutboxIsAtomic makes raising the acked setting fail (a trigger)
// and checks that the delete of the same call is rolled back with it: the
// outbox rows stay, to be published again, and no mark is written.
func TestDeleteOutboxIsAtomic(t *testing.T) {
	ctx := rydestest.Context(t)
	s := newTestStore(t)
	require.NoError(t, s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: newRFQ(t, "p1")}))
	ms, err := s.PendingOutbox(ctx, store.PendingOutboxParams{})
	require.NoError(t, err)
	require.Len(t, ms, 2)
	ids := []int64{ms[0].ID, ms[1].ID}

	_, err = s.w.ExecContext(ctx, `
		CREATE TRIGGER fail_acked BEFORE INSERT ON settings WHEN NEW.name = 'reconcile.acked.T'
		BEGIN SELECT RAISE(ABORT, 'no acked mark'); END`)
	require.NoError(t, err)
	require.NoError(t, s.DeleteOutbox(ctx, store.DeleteOutboxParams{IDs: ids, Acked: map[string]uint64{"S": 4}}))
	require.NoError(t, s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: newRFQ(t, "p1")}))
	ms, err = s.PendingOutbox(ctx, store.PendingOutboxParams{})
	require.NoError(t, err)
	require.Len(t, ms, 2)
	ids = []int64{ms[0].ID, ms[1].ID}

	err = s.DeleteOutbox(ctx, store.DeleteOutboxParams{IDs: ids, Acked: map[string]uint64{"S": 9, "T": 5}})
	require.ErrorContains(t, err, "no acked mark")
	after, err := s.PendingOutbox(ctx, store.PendingOutboxParams{})
	require.NoError(t, err)
	require.Equal(t, ms, after, "the delete is rolled back with the setting")
	v, _, err := s.GetSetting(ctx, store.AckedSetting("S"))
	require.NoError(t, err)
	require.Equal(t, "4", v, "and so is the other stream's setting, raised before")
	_, ok, err := s.GetSetting(ctx, store.AckedSetting("T"))
	require.NoError(t, err)
	require.False(t, ok)

	_, err = s.w.ExecContext(ctx, `DROP TRIGGER fail_acked`)
	require.NoError(t, err)
	require.NoError(t, s.DeleteOutbox(ctx, store.DeleteOutboxParams{IDs: ids, Acked: map[string]uint64{"S": 9, "T": 5}}))
	after, err = s.PendingOutbox(ctx, store.PendingOutboxParams{})
	require.NoError(t, err)
	require.Empty(t, after)
	v, _, err = s.GetSetting(ctx, store.AckedSetting("S"))
	require.NoError(t, err)
	require.Equal(t, "9", v)
	v, _, err = s.GetSetting(ctx, store.AckedSetting("T"))
	require.NoError(t, err)
	require.Equal(t, "5", v)
}

// An RFQ asking more providers than one multi-row insert takes is stored
// in chunks, in roster order, with one message of dispatches to all of
// them.
func TestCreateRFQInChunks(t *testing.T) {
	s := newTestStore(t)
	ctx := rydestest.Context(t)
	providers := make([]string, 2*maxInsertRows+5)
	for i := range providers {
		providers[i] = fmt.Sprintf("p%03d", i)
	}
	r := newRFQ(t, providers...)
	require.NoError(t, s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: r}))
	got, err := s.GetRFQ(ctx, store.GetRFQParams{ID: r.ID})
	require.NoError(t, err)
	require.Len(t, got.Providers, len(providers))
	for i, e := range got.Providers {
		require.Equal(t, providers[i], e.Provider)
	}
	msgs, err := s.PendingOutbox(ctx, store.PendingOutboxParams{Limit: 1000})
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	require.Equal(t, store.OutboxDispatch, msgs[0].Kind)
	require.Equal(t, providers, msgs[0].Dispatch.Providers, "in roster order")
	require.Equal(t, r.ID, msgs[0].Dispatch.Request.RFQID)
	require.Equal(t, store.OutboxEvent, msgs[1].Kind)
}

// The events of a batch reach the outbox as one message per RFQ, each with
// its events in the order emitted, the RFQs in the order of their first
// event, even when the answers of RFQs interleave and the messages take
// more than one multi-row insert.
func TestStageAnswersInChunks(t *testing.T) {
	s := newTestStore(t)
	ctx := rydestest.Context(t)
	providers := make([]string, maxInsertRows)
	for i := range providers {
		providers[i] = fmt.Sprintf("p%03d", i)
	}
	r1, r2 := newRFQ(t, providers...), newRFQ(t, providers...)
	rfqs := []rydes.RFQ{r1, r2}
	for range maxInsertRows {
		rfqs = append(rfqs, newRFQ(t, "solo"))
	}
	for _, r := range rfqs {
		require.NoError(t, s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: r}))
	}
	msgs, err := s.PendingOutbox(ctx, store.PendingOutboxParams{Limit: 1000})
	require.NoError(t, err)
	after := msgs[len(msgs)-1].ID

	now := base.Add(time.Second)
	quote := func(r rydes.RFQ, p string, i int) store.StageAnswer {
		return store.StageAnswer{Answer: rydes.Answer{
			RFQID: r.ID, Provider: p, Kind: rydes.AnswerQuote,
			Price: rydes.Price{Amount: fmt.Sprintf("%d", 10+i), Currency: "EUR"}, ReceivedAt: now,
		}}
	}
	var answers []store.StageAnswer
	for i, p := range providers {
		answers = append(answers, quote(r1, p, i), quote(r2, p, i), quote(rfqs[2+i], "solo", i))
	}
	res, err := s.StageAnswers(ctx, store.StageAnswersParams{Answers: answers, Now: now})
	require.NoError(t, err)
	var emitted []rydes.Event
	for _, r := range res {
		require.Equal(t, rydes.OutcomeStaged, r.Decision.Outcome)
		emitted = append(emitted, r.Events...)
	}
	require.Len(t, emitted, 2*(maxInsertRows+1)+2*maxInsertRows, "a quote each, and a complete per RFQ")

	msgs, err = s.PendingOutbox(ctx, store.PendingOutboxParams{AfterID: after, Limit: 1000})
	require.NoError(t, err)
	require.Len(t, msgs, len(rfqs), "one message per RFQ")
	var got [][]rydes.Event
	for _, m := range msgs {
		require.Equal(t, store.OutboxEvent, m.Kind)
		got = append(got, m.Events)
	}
	require.Equal(t, store.GroupEvents(emitted), got)
	require.Len(t, got[0], maxInsertRows+1, "r1's quotes and its complete")
	require.Equal(t, r1.ID, got[0][0].RFQID)
	require.Equal(t, r2.ID, got[1][0].RFQID)
}

// The outbox listener gets, after each commit, exactly what the outbox
// holds for it, with the ids reading it back gives: dispatches in chunks,
// events of staged answers, of a cancel and of an expiry; and nothing of a
// write that failed.
func TestOutboxListenerGetsWhatTheOutboxHolds(t *testing.T) {
	s := newTestStore(t)
	ctx := rydestest.Context(t)
	var (
		mu     sync.Mutex
		got    []store.OutboxMessage
		calls  int
		sorted = true
	)
	s.SetOutboxListener(func(msgs []store.OutboxMessage) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		for _, m := range msgs {
			if len(got) > 0 && m.ID <= got[len(got)-1].ID {
				sorted = false
			}
			got = append(got, m)
		}
	})
	providers := make([]string, maxInsertRows+3)
	for i := range providers {
		providers[i] = fmt.Sprintf("p%03d", i)
	}
	r1, r2, r3 := newRFQ(t, providers...), newRFQ(t, "p000", "p001"), newRFQ(t, "p000")
	r3.Deadline = base.Add(time.Second)
	for _, r := range []rydes.RFQ{r1, r2, r3} {
		require.NoError(t, s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: r}))
	}
	require.Error(t, s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: r2}), "the same RFQ twice")
	now := base.Add(500 * time.Millisecond)
	_, err := s.StageAnswers(ctx, store.StageAnswersParams{Now: now, Answers: []store.StageAnswer{
		{Answer: rydes.Answer{RFQID: r1.ID, Provider: "p001", Kind: rydes.AnswerQuote, Price: rydes.Price{Amount: "12.50", Currency: "EUR"}, ReceivedAt: now}},
		{Answer: rydes.Answer{RFQID: r2.ID, Provider: "p000", Kind: rydes.AnswerDecline, Reason: "busy", ReceivedAt: now}},
	}})
	require.NoError(t, err)
	_, err = s.CancelRFQ(ctx, store.CancelRFQParams{ID: r2.ID, Now: now})
	require.NoError(t, err)
	_, err = s.ExpireDue(ctx, store.ExpireDueParams{Now: base.Add(2 * time.Second)})
	require.NoError(t, err)

	want, err := s.PendingOutbox(ctx, store.PendingOutboxParams{Limit: 1000})
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.True(t, sorted, "in id order")
	require.Equal(t, 6, calls, "one call per commit that inserted messages: 3 creates, staging, cancel, expiry")
	require.Len(t, got, len(want))
	for i, w := range want {
		g := got[i]
		require.Equal(t, w.ID, g.ID, "message %d", i)
		require.Equal(t, w.Kind, g.Kind, "message %d", i)
		require.True(t, w.CreatedAt.Equal(g.CreatedAt), "message %d: created %s, read back %s", i, g.CreatedAt, w.CreatedAt)
		// What the relay publishes: the content, encoded.
		wb, err := json.Marshal([]any{w.Dispatch, w.Events})
		require.NoError(t, err)
		gb, err := json.Marshal([]any{g.Dispatch, g.Events})
		require.NoError(t, err)
		require.JSONEq(t, string(wb), string(gb), "message %d", i)
		require.Equal(t, string(wb), string(gb), "message %d", i)
		require.NotEmpty(t, g.Payload, "message %d", i)
		require.Equal(t, string(w.Payload), string(g.Payload), "message %d: the payload as stored", i)
		content := any(g.Events)
		if g.Kind == store.OutboxDispatch {
			content = g.Dispatch.Request
		}
		cb, err := json.Marshal(content)
		require.NoError(t, err)
		require.JSONEq(t, string(cb), string(g.Payload), "message %d: the payload is the content", i)
	}

	s.SetOutboxListener(nil)
	require.NoError(t, s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: newRFQ(t, "p000")}))
	require.Len(t, got, len(want), "no listener, nothing received")
}

// ListProviders keeps the lists it read, and still sees every change to
// the providers, its own and another process's; what it returns is the
// caller's to change.
func TestListProvidersSeesEveryChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rydes.db")
	s, other := openAt(t, path), openAt(t, path)
	ctx := rydestest.Context(t)
	active := store.ListProvidersParams{Status: rydes.ProviderActive}
	ids := func(st *Store) []string {
		t.Helper()
		ps, err := st.ListProviders(ctx, active)
		require.NoError(t, err)
		out := []string{}
		for _, p := range ps {
			out = append(out, p.ID)
		}
		return out
	}
	upsert := func(st *Store, id string) {
		t.Helper()
		_, err := st.UpsertProvider(ctx, store.UpsertProviderParams{ID: id, Name: id, Kind: rydes.ProviderKindNATS, Status: rydes.ProviderActive, Now: base})
		require.NoError(t, err)
	}

	require.Empty(t, ids(s))
	upsert(s, "p1")
	require.Equal(t, []string{"p1"}, ids(s))
	require.Equal(t, []string{"p1"}, ids(s), "again, from what it kept")
	upsert(other, "p2")
	require.Equal(t, []string{"p1", "p2"}, ids(s), "another process's change")

	paused := rydes.ProviderPaused
	_, err := other.UpdateProvider(ctx, store.UpdateProviderParams{ID: "p1", Status: &paused, Now: base})
	require.NoError(t, err)
	require.Equal(t, []string{"p2"}, ids(s))

	filter := rydes.Filter{From: []string{"Frankfurt"}, Attributes: map[string][]string{"tier": {"gold"}}}
	_, err = s.UpdateProvider(ctx, store.UpdateProviderParams{ID: "p2", Filter: &filter, Now: base})
	require.NoError(t, err)
	ps, err := s.ListProviders(ctx, active)
	require.NoError(t, err)
	require.Equal(t, filter, ps[0].Filter)
	ps[0].Filter.From[0], ps[0].Filter.Attributes["tier"][0] = "Mallory", "lead"
	ps, err = s.ListProviders(ctx, active)
	require.NoError(t, err)
	require.Equal(t, filter, ps[0].Filter, "what a caller changes is its own")

	_, err = other.DeleteProvider(ctx, store.DeleteProviderParams{ID: "p2", Now: base})
	require.NoError(t, err)
	require.Empty(t, ids(s))
}

// TestWithdrawAllWalksAgainFromTheFirst starts a withdrawal in chunks past
// an RFQ that still asks the deleted provider, as one created by a create
// that listed the providers before the delete and committed after it,
// due before where the walk had got to: the walk from the first open RFQ
// that ends the withdrawal finds it.
func TestWithdrawAllWalksAgainFromTheFirst(t *testing.T) {
	ctx := rydestest.Context(t)
	s := newTestStore(t)
	var rfqs []rydes.RFQ
	for _, due := range []time.Duration{10 * time.Second, 40 * time.Second, 50 * time.Second} {
		r := newRFQ(t, "gone", "stays")
		r.Deadline = r.CreatedAt.Add(due)
		require.NoError(t, s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: r}))
		rfqs = append(rfqs, r)
	}
	early, late1, late2 := rfqs[0], rfqs[1], rfqs[2]

	now := base.Add(time.Second)
	ids, err := s.withdrawAll(ctx, "gone", openCursor{deadline: micros(early.Deadline), id: early.ID}, now, 1)
	require.NoError(t, err)
	require.Equal(t, []string{late1.ID, late2.ID, early.ID}, ids, "from the cursor on, then from the first")
	for _, r := range rfqs {
		got, err := s.GetRFQ(ctx, store.GetRFQParams{ID: r.ID})
		require.NoError(t, err)
		require.Equal(t, rydes.RosterEntry{Provider: "gone", State: rydes.ProviderWithdrawn, ChangedAt: now}, got.Providers[0])
		require.Equal(t, rydes.ProviderPending, got.Providers[1].State)
	}
}

// A DeleteProvider that stopped after its first transaction (a crash, an
// error) left the provider deleted and still pending in open RFQs:
// WithdrawDeleted, which rydes runs at start, finishes it.
func TestWithdrawDeletedFinishesAHalfDoneDelete(t *testing.T) {
	ctx := rydestest.Context(t)
	s := newTestStore(t)
	for _, id := range []string{"gone", "stays"} {
		_, err := s.CreateProvider(ctx, store.CreateProviderParams{Provider: rydes.Provider{
			ID: id, Name: id, Kind: rydes.ProviderKindNATS, Status: rydes.ProviderActive,
		}, Now: base})
		require.NoError(t, err)
	}
	var open []string
	for range 5 {
		r := newRFQ(t, "gone", "stays")
		require.NoError(t, s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: r}))
		open = append(open, r.ID)
	}
	// What the first transaction of a delete that then stopped leaves:
	// the provider gone, its entries still pending.
	require.NoError(t, s.write(ctx, "half a delete", func(tx *txn) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM providers WHERE id = 'gone'`)
		return err
	}))

	now := base.Add(time.Minute)
	ids, err := s.WithdrawDeleted(ctx, store.WithdrawDeletedParams{Now: now, Chunk: 2})
	require.NoError(t, err)
	require.ElementsMatch(t, open, ids)
	for _, id := range open {
		r, err := s.GetRFQ(ctx, store.GetRFQParams{ID: id})
		require.NoError(t, err)
		require.Equal(t, rydes.StatusOpen, r.Status, "stays is still pending")
		require.Equal(t, rydes.ProviderWithdrawn, r.Providers[0].State)
		require.Equal(t, rydes.ProviderPending, r.Providers[1].State)
		require.EqualValues(t, 2, r.Seq, "created, provider_withdrawn")
	}
	ids, err = s.WithdrawDeleted(ctx, store.WithdrawDeletedParams{Now: now})
	require.NoError(t, err)
	require.Empty(t, ids, "done")
}
