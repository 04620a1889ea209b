// Package sqlite implements store.Store on SQLite with modernc.org/sqlite, a
// pure-Go driver: rydes's embedded default store, one file on disk.
//
// The database runs in WAL mode with synchronous=FULL by default, so a
// committed transaction survives a crash of the process or of the machine;
// WithSynchronous(SynchronousNormal) relaxes that to surviving a crash of
// the process only (a power loss may undo the last commits, never corrupt). Writes go
// through a single connection whose transactions begin IMMEDIATE: a write
// transaction holds the database's write lock from its first statement, so
// what it reads cannot change under it and every transition it decides
// happens exactly once. Several processes may share the file; SQLite's lock
// and a busy timeout serialise them. Reads go through a pool of query-only
// connections, each read a consistent snapshot of the last commit.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/store"
)

// BusyTimeout is how long a statement waits for another connection, or
// another process, to release the database's lock before it fails.
const BusyTimeout = 10 * time.Second

// Bounds of what is kept of a refused answer, so that a flood of oversized
// garbage cannot grow the audit without limit.
const (
	MaxRejectionPayload = 4 << 10 // bytes of the payload as received
	maxRejectionID      = 128     // bytes of the RFQ id and of the provider
	maxRejectionMessage = 1 << 10 // bytes of the message
)

// Store is the SQLite implementation of store.Store. It is safe for
// concurrent use.
type Store struct {
	w       *sql.DB              // one connection; BEGIN IMMEDIATE
	r       *sql.DB              // query-only connections
	ws, rs  map[string]*sql.Stmt // statements prepared on w and r
	commits *committer           // runs writes on w in groups
	logger  *slog.Logger
	// outboxListener receives the outbox messages of each commit
	// (SetOutboxListener); nil for none.
	outboxListener atomic.Pointer[func([]store.OutboxMessage)]
	// providers keeps the provider lists ListProviders read.
	providers providerLists
	// statsWindow is how many recent answers ProviderStats's percentiles
	// cover: statsAnswers, smaller in tests.
	statsWindow int
}

var (
	_ store.Store      = (*Store)(nil)
	_ store.OutboxFeed = (*Store)(nil)
)

// SetOutboxListener implements store.OutboxFeed.
func (s *Store) SetOutboxListener(f func([]store.OutboxMessage)) {
	if f == nil {
		s.outboxListener.Store(nil)
		return
	}
	s.outboxListener.Store(&f)
}

// Synchronous is SQLite's synchronous setting of the writing connection:
// when it waits for the disk.
type Synchronous string

const (
	// SynchronousFull syncs the write-ahead log at every commit: a commit
	// survives a power loss. The default.
	SynchronousFull Synchronous = "FULL"
	// SynchronousNormal syncs the write-ahead log only at checkpoints: a
	// commit survives a crash of the process, and a power loss may roll
	// back the last ones (the database stays consistent).
	SynchronousNormal Synchronous = "NORMAL"
)

// Option tunes Open.
type Option func(*options)

type options struct {
	synchronous Synchronous
}

// walCheckpointPages is how many pages the write-ahead log grows to before
// a commit copies it back into the database (SQLite's wal_autocheckpoint;
// its default is 1,000). A checkpoint runs on the writing connection, in
// the way of the next group of writes, and copies each page once however
// often the log has it: the hot pages (the outbox's, the newest RFQs')
// are in it many times over. 10,000 pages (40 MiB of log at most) made
// sqlite BenchmarkCreateRFQConcurrent 7-16 % and BenchmarkStageAnswers
// (batch 10) 19-26 % faster than 1,000.
const walCheckpointPages = 10_000

// WithSynchronous sets the synchronous setting of the writing connection;
// SynchronousFull when not given.
func WithSynchronous(s Synchronous) Option {
	return func(o *options) { o.synchronous = s }
}

// Open opens the SQLite database at path, creating it if it does not exist,
// and brings its schema up to date by applying the embedded migrations that
// it lacks. path names a file: an in-memory database cannot be shared by the
// reading and the writing connections. A nil logger discards.
func Open(ctx context.Context, path string, logger *slog.Logger, opts ...Option) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open sqlite: %q is not the path of a database file", path)
	}
	o := options{synchronous: SynchronousFull}
	for _, opt := range opts {
		opt(&o)
	}
	if o.synchronous != SynchronousFull && o.synchronous != SynchronousNormal {
		return nil, fmt.Errorf("open sqlite %s: synchronous %q: must be %s or %s", path, o.synchronous, SynchronousFull, SynchronousNormal)
	}
	busy := fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds())

	w, err := openPool(ctx, path, []string{busy, "journal_mode(WAL)", "synchronous(" + string(o.synchronous) + ")", "foreign_keys(ON)", "wal_autocheckpoint(" + strconv.Itoa(walCheckpointPages) + ")"}, "_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := migrate(ctx, w, logger); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}

	r, err := openPool(ctx, path, []string{busy, "foreign_keys(ON)", "query_only(1)"})
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxIdleTime(0)
	r.SetConnMaxLifetime(0)

	s := &Store{w: w, r: r, logger: logger, statsWindow: statsAnswers}
	if s.ws, err = prepare(ctx, w, readQueries, writeQueries); err == nil {
		s.rs, err = prepare(ctx, r, readQueries)
	}
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	s.commits = newCommitter(s)
	logger.Debug("opened sqlite store", "path", path, "readers", n)
	return s, nil
}

// openPool opens a pool of connections to the database file at path, each
// set up with pragmas and the driver parameters params, and checks that a
// connection can be made.
func openPool(ctx context.Context, path string, pragmas []string, params ...string) (*sql.DB, error) {
	q := make([]string, 0, len(pragmas)+len(params))
	for _, p := range pragmas {
		q = append(q, "_pragma="+url.QueryEscape(p))
	}
	q = append(q, params...)
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + strings.Join(q, "&")
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// Synchronous returns the synchronous setting of the writing connection as
// SQLite reports it: 2 for FULL, 1 for NORMAL.
func (s *Store) Synchronous(ctx context.Context) (int, error) {
	var n int
	if err := s.w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&n); err != nil {
		return 0, fmt.Errorf("read synchronous: %w", err)
	}
	return n, nil
}

// Close closes the database. The Store must not be used afterwards.
func (s *Store) Close() error {
	if s.commits != nil {
		s.commits.stop()
	}
	closeStmts(s.rs)
	closeStmts(s.ws)
	return errors.Join(s.r.Close(), s.w.Close())
}

// write runs fn in a write transaction, shared with the writes that
// arrived meanwhile (group commit, see groupcommit.go), and returns once
// that transaction committed; if fn fails, its changes alone are rolled
// back. A *rydes.Error from fn is returned as it is; other errors are
// wrapped with op. fn must not call write.
func (s *Store) write(ctx context.Context, op string, fn func(tx *txn) error) error {
	return s.commits.write(ctx, op, fn)
}

// read runs fn in a read transaction: a consistent snapshot of the database.
func (s *Store) read(ctx context.Context, op string, fn func(tx *txn) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("%s: begin: %w", op, err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(&txn{tx: tx, stmts: s.rs}); err != nil {
		return wrap(op, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", op, err)
	}
	return nil
}

// readRow runs query, one statement of readQueries, on a reading
// connection without a transaction of its own (SQLite gives the statement
// one): half the time and allocations of read for a single row.
func (s *Store) readRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := s.rs[query]; st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.r.QueryRowContext(ctx, query, args...)
}

// wrap adds op to err unless err is a domain error, which goes to the caller
// as it is.
func wrap(op string, err error) error {
	var e *rydes.Error
	if errors.As(err, &e) {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}

// isUniqueViolation reports whether err is SQLite's refusal of a duplicate
// primary key or unique value.
func isUniqueViolation(err error) bool {
	code := sqliteCode(err)
	return code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || code == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// isPrimaryKeyViolation reports whether err is SQLite's refusal of a
// duplicate primary key.
func isPrimaryKeyViolation(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// sqliteCode returns the extended result code of a SQLite error, 0 if err is
// not one.
func sqliteCode(err error) int {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return 0
	}
	return e.Code()
}

// rfqNotFound is the error for an RFQ that does not exist or that the caller
// may not see.
func rfqNotFound(id string) error {
	return rydes.Errorf(rydes.ENOTFOUND, "RFQ %s not found", truncate(id, maxRejectionID))
}

// micros returns t as the database keeps it: Unix microseconds.
func micros(t time.Time) int64 { return t.UnixMicro() }

// nullMicros is micros with NULL for the zero time.
func nullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// fromMicros is the inverse of micros, in UTC.
func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// fromNullMicros is the inverse of nullMicros.
func fromNullMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMicros(v.Int64)
}

// nullString is s with NULL for "".
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// utc returns t in UTC to the microsecond, as the database keeps times.
func utc(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// queryLimit is the limit of a listing: n, or 100 if n is not positive.
func queryLimit(n int) int {
	if n <= 0 {
		return 100
	}
	return n
}
