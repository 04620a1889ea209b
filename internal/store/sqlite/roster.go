package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/store"
)

// maxFailureReason bounds the delivery error kept with a failed provider's
// roster entry and its event; longer ones are cut.
const maxFailureReason = rydes.MaxReasonLen

// DeleteProvider removes a provider and its secrets and, in the same
// transaction, withdraws it from every open RFQ whose roster has it pending
// or failed: the entry becomes withdrawn with a provider_withdrawn event,
// and an RFQ left with nobody pending completes with a complete event.
// Entries of closed RFQs and answered entries stay as they are, so that the
// provider's statistics remain. It returns the ids of the RFQs withdrawn
// from, oldest first. ENOTFOUND if there is no such provider.
func (s *Store) DeleteProvider(ctx context.Context, p store.DeleteProviderParams) ([]string, error) {
	if p.Now.IsZero() {
		return nil, errors.New("delete provider: Now is required")
	}
	now := utc(p.Now)
	ids := []string{}
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

		type entry struct {
			rfq   openRFQ
			state rydes.ProviderState
		}
		var entries []entry
		rows, err := tx.QueryContext(ctx, `
			SELECT r.id, r.customer, r.pending, r.event_seq, ro.state
			FROM roster ro JOIN rfqs r ON r.id = ro.rfq_id
			WHERE ro.provider = ? AND ro.state IN ('pending', 'failed') AND r.status = 'open'
			ORDER BY r.created_at, r.id`, p.ID)
		if err != nil {
			return err
		}
		for rows.Next() {
			e := entry{rfq: openRFQ{status: rydes.StatusOpen}}
			if err := rows.Scan(&e.rfq.id, &e.rfq.customer, &e.rfq.pending, &e.rfq.seq, &e.state); err != nil {
				rows.Close()
				return err
			}
			entries = append(entries, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}

		for _, e := range entries {
			res, err := tx.ExecContext(ctx, `
				UPDATE roster SET state = 'withdrawn', changed_at = ?, reason = NULL
				WHERE rfq_id = ? AND provider = ? AND state = ?`, micros(now), e.rfq.id, p.ID, e.state)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				return fmt.Errorf("RFQ %s: provider %s is not %s (%d rows, %v)", e.rfq.id, p.ID, e.state, n, err)
			}
			ev := rydes.Event{
				RFQID: e.rfq.id, Seq: e.rfq.seq + 1, Type: rydes.EventProviderWithdrawn, At: now,
				Customer: e.rfq.customer, Provider: p.ID, Status: rydes.StatusOpen,
			}
			if _, _, err := advanceRFQ(ctx, tx, e.rfq, e.state == rydes.ProviderPending, ev, now); err != nil {
				return err
			}
			ids = append(ids, e.rfq.id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.logger.Debug("deleted provider", "provider", p.ID, "withdrawn_from", len(ids))
	return ids, nil
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
