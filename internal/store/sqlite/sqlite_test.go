package sqlite

import (
	"bytes"
	"context"
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
	var sync, fk, busy int
	require.NoError(t, s.w.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&journal))
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
// deadline no expiry reaches; odd ones race answers against expiry.
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
// number of its pending roster entries, and its event_seq the seq of its last
// event in the outbox.
func requireCountersConsistent(t *testing.T, s *Store) {
	t.Helper()
	ctx := rydestest.Context(t)
	rows, err := s.r.QueryContext(ctx, `
		SELECT r.id, r.status, r.pending, r.event_seq,
			(SELECT COUNT(*) FROM roster WHERE rfq_id = r.id AND state = 'pending'),
			(SELECT COUNT(*) FROM outbox WHERE rfq_id = r.id AND kind = 'event'),
			(SELECT MAX(json_extract(payload, '$.seq')) FROM outbox WHERE rfq_id = r.id AND kind = 'event')
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

func BenchmarkStageAnswers(b *testing.B) {
	const rosterSize = 100
	providers := make([]string, rosterSize)
	for i := range providers {
		providers[i] = fmt.Sprintf("provider-%03d", i)
	}
	for _, n := range []int{1, 100} {
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
