package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/store"
)

// maxFailureReason bounds the delivery error kept with a failed provider's
// roster entry and its event; longer ones are cut.
const maxFailureReason = rydes.MaxReasonLen

// DeleteProvider removes a provider and its secrets and withdraws it from
// every open RFQ whose roster has it pending or failed: the entry becomes
// withdrawn with a provider_withdrawn event, and an RFQ left with nobody
// pending completes with a complete event. Entries of closed RFQs and
// answered entries stay as they are, so that the provider's statistics
// remain. The first transaction deletes the provider and withdraws it from
// the first p.Chunk of those RFQs by deadline, each next one from the next
// p.Chunk: deleting a provider asked in 20,000 open RFQs in one transaction
// held the writer for about 2 s (every create and answer waited) and
// 260 MB of garbage. It returns the ids of the RFQs withdrawn from,
// earliest deadline first. ENOTFOUND if there is no such provider.
func (s *Store) DeleteProvider(ctx context.Context, p store.DeleteProviderParams) ([]string, error) {
	if p.Now.IsZero() {
		return nil, errors.New("delete provider: Now is required")
	}
	now, chunk := utc(p.Now), withdrawChunk(p.Chunk)
	var (
		ids  []string
		next openCursor
	)
	err := s.write(ctx, "delete provider", func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM providers WHERE id = ?`, p.ID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return providerNotFound(p.ID)
		}
		ids, next, err = withdraw(ctx, tx, p.ID, firstOpen, now, chunk)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(ids) == chunk {
		more, err := s.withdrawAll(ctx, p.ID, next, now, chunk)
		ids = append(ids, more...)
		if err != nil {
			return ids, fmt.Errorf("delete provider %s: deleted, withdrawn from %d open RFQs, then: %w", p.ID, len(ids), err)
		}
	}
	s.logger.Debug("deleted provider", "provider", p.ID, "withdrawn_from", len(ids))
	return ids, nil
}

// WithdrawDeleted withdraws providers that no longer exist from the open
// RFQs they are still pending or failed in, as DeleteProvider does: what
// a DeleteProvider that stopped half-way left.
func (s *Store) WithdrawDeleted(ctx context.Context, p store.WithdrawDeletedParams) ([]string, error) {
	if p.Now.IsZero() {
		return nil, errors.New("withdraw deleted providers: Now is required")
	}
	var gone []string
	err := s.read(ctx, "withdraw deleted providers", func(tx *txn) error {
		// Through the open RFQs (an index has them) and their rosters.
		rows, err := tx.QueryContext(ctx, `
			SELECT DISTINCT ro.provider
			FROM rfqs r JOIN roster ro ON ro.rfq_id = r.id
			WHERE r.status = 'open' AND ro.state IN ('pending', 'failed')
				AND NOT EXISTS (SELECT 1 FROM providers p WHERE p.id = ro.provider)
			ORDER BY ro.provider`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			gone = append(gone, id)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	ids := []string{}
	now, chunk := utc(p.Now), withdrawChunk(p.Chunk)
	for _, provider := range gone {
		more, err := s.withdrawAll(ctx, provider, firstOpen, now, chunk)
		ids = append(ids, more...)
		if err != nil {
			return ids, fmt.Errorf("withdraw deleted provider %s: %w", provider, err)
		}
		s.logger.Info("withdrew a deleted provider from the open RFQs it was left in", "provider", provider, "withdrawn_from", len(more))
	}
	return ids, nil
}

// withdrawChunk is n, or store.DefaultWithdrawChunk for 0 or less.
func withdrawChunk(n int) int {
	if n <= 0 {
		return store.DefaultWithdrawChunk
	}
	return n
}

// withdrawAll withdraws provider, which no longer exists, from the open
// RFQs it is pending or failed in from the cursor on, chunk RFQs a
// transaction, until none is left, and returns their ids. Then it walks
// the open RFQs once more from the first: a create that listed the
// providers before the provider was deleted and committed after may have
// asked it in an RFQ due before the cursor.
func (s *Store) withdrawAll(ctx context.Context, provider string, from openCursor, now time.Time, chunk int) ([]string, error) {
	var ids []string
	rewound := false
	for {
		var batch []string
		err := s.write(ctx, "withdraw provider "+provider, func(tx *txn) error {
			var err error
			batch, from, err = withdraw(ctx, tx, provider, from, now, chunk)
			return err
		})
		ids = append(ids, batch...)
		switch {
		case err != nil:
			return ids, err
		case len(batch) == chunk:
		case rewound:
			return ids, nil
		default:
			from, rewound = firstOpen, true
		}
	}
}

// openCursor is a place in the open RFQs ordered by deadline then id, as
// the rfqs_open_deadline index has them: the RFQs after it are still to
// be walked.
type openCursor struct {
	deadline int64
	id       string
}

// firstOpen is the cursor before every open RFQ.
var firstOpen = openCursor{deadline: math.MinInt64}

// sqlSelectWithdrawable finds the open RFQs after a cursor in which a
// provider is pending or failed. It walks the open RFQs by deadline and
// looks the provider up in each roster by primary key (CROSS JOIN keeps
// that order): roster_provider leaves pending entries out, so that a create
// does not write one index page per provider asked, and only open RFQs
// have pending entries.
const sqlSelectWithdrawable = `
	SELECT r.id, r.customer, r.pending, r.event_seq, r.deadline, ro.state
	FROM rfqs r CROSS JOIN roster ro ON ro.rfq_id = r.id AND ro.provider = ?1
	WHERE r.status = 'open' AND (r.deadline, r.id) > (?2, ?3) AND ro.state IN ('pending', 'failed')
	ORDER BY r.deadline, r.id LIMIT ?4`

// withdraw withdraws provider from the first limit open RFQs after from
// that it is pending or failed in, within tx, and returns their ids and the
// cursor after the last.
func withdraw(ctx context.Context, tx *txn, provider string, from openCursor, now time.Time, limit int) ([]string, openCursor, error) {
	type entry struct {
		rfq   openRFQ
		state rydes.ProviderState
	}
	var entries []entry
	rows, err := tx.QueryContext(ctx, sqlSelectWithdrawable, provider, from.deadline, from.id, limit)
	if err != nil {
		return nil, from, err
	}
	for rows.Next() {
		e := entry{rfq: openRFQ{status: rydes.StatusOpen}}
		if err := rows.Scan(&e.rfq.id, &e.rfq.customer, &e.rfq.pending, &e.rfq.seq, &from.deadline, &e.state); err != nil {
			rows.Close()
			return nil, from, err
		}
		from.id = e.rfq.id
		entries = append(entries, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, from, err
	}

	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		res, err := tx.ExecContext(ctx, `
			UPDATE roster SET state = 'withdrawn', changed_at = ?, reason = NULL
			WHERE rfq_id = ? AND provider = ? AND state = ?`, micros(now), e.rfq.id, provider, e.state)
		if err != nil {
			return nil, from, err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return nil, from, fmt.Errorf("RFQ %s: provider %s is not %s (%d rows, %v)", e.rfq.id, provider, e.state, n, err)
		}
		ev := rydes.Event{
			RFQID: e.rfq.id, Seq: e.rfq.seq + 1, Type: rydes.EventProviderWithdrawn, At: now,
			Customer: e.rfq.customer, Provider: provider, Status: rydes.StatusOpen,
		}
		if _, _, err := advanceRFQ(ctx, tx, e.rfq, e.state == rydes.ProviderPending, ev, now); err != nil {
			return nil, from, err
		}
		ids = append(ids, e.rfq.id)
	}
	return ids, from, nil
}

// MarkProviderFailed records that RFQ p.RFQID could not be delivered to
// p.Provider: if the provider's roster entry is pending and the RFQ open,
// the entry becomes failed with p.Error (cut to rydes.MaxReasonLen) as its
// reason and a provider_failed event, and an RFQ left with nobody pending
// completes with a complete event. Otherwise (the provider answered, failed
// already, timed out or was withdrawn, or the RFQ is closed) nothing
// changes. It returns the events emitted, none if nothing changed.
// ENOTFOUND if there is no such RFQ or the provider was not asked for it.
func (s *Store) MarkProviderFailed(ctx context.Context, p store.MarkProviderFailedParams) ([]rydes.Event, error) {
	if p.Now.IsZero() {
		return nil, errors.New("mark provider failed: Now is required")
	}
	now := utc(p.Now)
	reason := truncate(p.Error, maxFailureReason)
	events := []rydes.Event{}
	err := s.write(ctx, "mark provider failed", func(tx *txn) error {
		r := openRFQ{id: p.RFQID}
		var deadline int64
		err := tx.QueryRowContext(ctx, sqlSelectRFQForAnswer, p.RFQID).Scan(&r.customer, &r.status, &deadline, &r.pending, &r.seq)
		if errors.Is(err, sql.ErrNoRows) {
			return rfqNotFound(p.RFQID)
		}
		if err != nil {
			return err
		}
		e, _, err := scanRoster(tx.QueryRowContext(ctx, sqlSelectRosterEntry, p.RFQID, p.Provider), p.RFQID)
		if errors.Is(err, sql.ErrNoRows) {
			return rydes.Errorf(rydes.ENOTFOUND, "provider %s was not asked for RFQ %s",
				truncate(p.Provider, maxRejectionID), truncate(p.RFQID, maxRejectionID))
		}
		if err != nil {
			return err
		}
		if r.status != rydes.StatusOpen || e.State != rydes.ProviderPending {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE roster SET state = 'failed', changed_at = ?, reason = ?
			WHERE rfq_id = ? AND provider = ? AND state = 'pending'`,
			micros(now), nullString(reason), p.RFQID, p.Provider); err != nil {
			return err
		}
		ev := rydes.Event{
			RFQID: p.RFQID, Seq: r.seq + 1, Type: rydes.EventProviderFailed, At: now,
			Customer: r.customer, Provider: p.Provider, Reason: reason, Status: rydes.StatusOpen,
		}
		events, _, err = advanceRFQ(ctx, tx, r, true, ev, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return events, nil
}
