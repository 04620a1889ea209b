package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/wildrydes/rydes/internal/store"
)

// The statements on the hot paths (creating RFQs, staging answers, reading
// RFQs, authenticating providers and customers), prepared once per
// connection rather than once per use.
const (
	sqlSelectSetting = `SELECT value FROM settings WHERE name = ?`
	sqlUpsertSetting = `INSERT INTO settings (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`
	sqlSelectNotifyTarget = `SELECT notify_url, notify_secret FROM rfqs WHERE id = ?`
	sqlSelectNextDeadline = `SELECT deadline FROM rfqs WHERE status = 'open' ORDER BY deadline LIMIT 1`
	sqlDeleteOutbox       = `DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))`

	sqlInsertRFQ = `
		INSERT INTO rfqs (id, customer, from_place, to_place, passengers, pickup_at, attributes,
			created_at, deadline, status, pending, event_seq, notify_url, notify_secret)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, 1, ?, ?)`
	// Multi-row inserts: the prefix, then a value list per row.
	sqlInsertRosterRows = `INSERT INTO roster (rfq_id, provider, position, state, changed_at) VALUES `
	rosterRow           = `(?, ?, ?, 'pending', ?)`
	sqlInsertOutboxRows = `INSERT INTO outbox (kind, rfq_id, provider, providers, payload, created_at) VALUES `
	// sqlInsertDispatch inserts a new RFQ's dispatches: its id, the JSON
	// array of its providers, the request and when it was created.
	sqlInsertDispatch = sqlInsertOutboxRows + `('dispatch', ?, NULL, ?, ?, ?)`
	eventRow          = `('event', ?, NULL, NULL, ?, ?)`

	sqlSelectRFQ = `
		SELECT id, customer, from_place, to_place, passengers, pickup_at, attributes,
			created_at, deadline, status, closed_at, event_seq, notify_url
		FROM rfqs WHERE id = ?`
	sqlSelectRoster = `SELECT ` + rosterColumns + ` FROM roster WHERE rfq_id = ? ORDER BY position`

	sqlSelectRFQForAnswer = `SELECT customer, status, deadline, pending, event_seq FROM rfqs WHERE id = ?`
	sqlSelectRosterEntry  = `SELECT ` + rosterColumns + ` FROM roster WHERE rfq_id = ? AND provider = ?`
	// An RFQ's roster entries of the providers in a JSON array (none for
	// one not asked).
	sqlSelectRosterEntries = `SELECT ` + rosterColumns + ` FROM roster
		WHERE rfq_id = ? AND provider IN (SELECT value FROM json_each(?))`
	// A failed provider may still answer while the RFQ is open.
	sqlStageRosterAnswer = `
		UPDATE roster SET state = ?, changed_at = ?, reason = ?, kind = ?, price_amount = ?,
			price_units = ?, currency = ?, eta_seconds = ?, expires_at = ?, received_at = ?
		WHERE rfq_id = ? AND provider = ? AND state IN ('pending', 'failed')`
	// sqlAdvanceRFQ records events of an open RFQ: how many entries left
	// pending, the last event's seq, and the status after them.
	sqlAdvanceRFQ = `
		UPDATE rfqs SET pending = pending - ?, event_seq = ?, status = ?, closed_at = ?
		WHERE id = ? AND status = 'open'`
	sqlInsertRejection = `
		INSERT INTO rejections (rfq_id, provider, reason, message, received_at, payload)
		VALUES (?, ?, ?, ?, ?, ?)`

	// Every request of a provider authenticates through this lookup.
	sqlSelectProviderByAPIKeyHash = `SELECT ` + providerColumns + ` FROM providers WHERE api_key_hash = ?`
	// Every request of a customer authenticates through this lookup.
	sqlSelectCustomerByAPIKeyHash = `SELECT ` + customerColumns + ` FROM customers WHERE api_key_hash = ?`
)

// rosterColumns are the columns scanRoster reads.
const rosterColumns = `provider, state, changed_at, reason, kind, price_amount, currency,
	eta_seconds, expires_at, received_at`

var (
	// readQueries are prepared on both pools.
	readQueries = []string{sqlSelectSetting, sqlSelectNotifyTarget, sqlSelectNextDeadline, sqlSelectRFQ, sqlSelectRoster, sqlSelectProviderByAPIKeyHash, sqlSelectCustomerByAPIKeyHash}
	// writeQueries are prepared on the writer only.
	writeQueries = append([]string{
		sqlSelectSetting, sqlUpsertSetting, sqlDeleteOutbox, sqlSelectNextDeadline,
		sqlInsertRFQ,
		sqlSelectRFQForAnswer, sqlSelectRosterEntry, sqlSelectRosterEntries, sqlStageRosterAnswer, sqlAdvanceRFQ, sqlInsertRejection,
	}, slices.Concat(rosterInserts[1:], dispatchInserts[1:], eventInserts[1:])...)
)

// maxInsertRows is the most rows one multi-row insert takes; larger sets
// go in chunks. Every count up to it is prepared.
const maxInsertRows = 32

// rosterInserts and eventInserts are the multi-row inserts, by row count
// (index 0 unused); dispatchInserts has the one row a create writes.
var (
	rosterInserts   = multiRowInserts(sqlInsertRosterRows, rosterRow)
	dispatchInserts = []string{1: sqlInsertDispatch}
	eventInserts    = multiRowInserts(sqlInsertOutboxRows, eventRow)
)

// multiRowInserts returns prefix followed by 1 to maxInsertRows copies of
// row, indexed by the count.
func multiRowInserts(prefix, row string) []string {
	qs := make([]string, maxInsertRows+1)
	for n := 1; n <= maxInsertRows; n++ {
		qs[n] = prefix + strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
	}
	return qs
}

// insertRows inserts rows (each of width values) with inserts, the
// multi-row inserts of one table by count, in chunks of at most
// maxInsertRows.
func insertRows(ctx context.Context, tx *txn, inserts []string, width int, rows []any) error {
	for len(rows) > 0 {
		n := min(len(rows)/width, maxInsertRows)
		if _, err := tx.ExecContext(ctx, inserts[n], rows[:n*width]...); err != nil {
			return err
		}
		rows = rows[n*width:]
	}
	return nil
}

// insertOutboxRows is insertRows for outbox rows: msgs are the messages of
// rows, in order, which the transaction records with their ids if it
// collects them (SQLite numbers the rows of one insert consecutively, in
// the order of its values: the table's ids only grow, AUTOINCREMENT).
func insertOutboxRows(ctx context.Context, tx *txn, inserts []string, width int, rows []any, msgs []store.OutboxMessage) error {
	for len(rows) > 0 {
		n := min(len(rows)/width, maxInsertRows)
		res, err := tx.ExecContext(ctx, inserts[n], rows[:n*width]...)
		if err != nil {
			return err
		}
		if tx.collect {
			last, err := res.LastInsertId()
			if err != nil {
				return fmt.Errorf("outbox ids: %w", err)
			}
			for i := range n {
				m := msgs[i]
				m.ID = last - int64(n-1-i)
				tx.outbox = append(tx.outbox, m)
			}
			msgs = msgs[n:]
		}
		rows = rows[n*width:]
	}
	return nil
}

// prepare prepares queries on db. database/sql prepares each again on every
// other connection of db the first time it is used there.
func prepare(ctx context.Context, db *sql.DB, queries ...[]string) (map[string]*sql.Stmt, error) {
	stmts := map[string]*sql.Stmt{}
	for _, qs := range queries {
		for _, q := range qs {
			st, err := db.PrepareContext(ctx, q)
			if err != nil {
				closeStmts(stmts)
				return nil, fmt.Errorf("prepare %s: %w", q, err)
			}
			stmts[q] = st
		}
	}
	return stmts, nil
}

func closeStmts(stmts map[string]*sql.Stmt) {
	for _, st := range stmts {
		_ = st.Close()
	}
}

// txn is a transaction that runs the statements prepared for its pool as
// such and any other as plain text.
type txn struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
	// bound holds the statements of stmts bound to tx so far: a batch
	// runs the same few many times, and binding each time allocates.
	bound map[string]*sql.Stmt
	// uncancelable makes statements ignore their context's cancellation.
	// A write transaction is shared by a group of writes, and SQLite rolls
	// back the whole transaction when a statement is interrupted, as the
	// driver does when a context ends: one caller giving up must not undo
	// the others' writes.
	uncancelable bool
	// collect makes the outbox inserts record their messages in outbox,
	// for the store's outbox listener once the transaction commits.
	collect bool
	outbox  []store.OutboxMessage
}

// stmtCtx is the context a statement runs with.
func (t *txn) stmtCtx(ctx context.Context) context.Context {
	if t.uncancelable {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// stmt returns query's prepared statement bound to the transaction, or
// nil if it has none.
func (t *txn) stmt(ctx context.Context, query string) *sql.Stmt {
	if st := t.bound[query]; st != nil {
		return st
	}
	st := t.stmts[query]
	if st == nil {
		return nil
	}
	// Closed by the transaction's commit or rollback.
	st = t.tx.StmtContext(ctx, st)
	if t.bound == nil {
		t.bound = make(map[string]*sql.Stmt, 4)
	}
	t.bound[query] = st
	return st
}

// ExecContext is sql.Tx's, with a prepared statement if there is one.
func (t *txn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = t.stmtCtx(ctx)
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

// QueryContext is sql.Tx's, with a prepared statement if there is one.
func (t *txn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = t.stmtCtx(ctx)
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

// QueryRowContext is sql.Tx's, with a prepared statement if there is one.
func (t *txn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = t.stmtCtx(ctx)
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}
