package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/wildrydes/rydes/internal/store"
)

// purgeLimit is the batch of a purge: n, or store.DefaultPurgeLimit if n is
// not positive.
func purgeLimit(n int) int {
	if n <= 0 {
		return store.DefaultPurgeLimit
	}
	return n
}

// PurgeFinished deletes at most p.Limit (0 for store.DefaultPurgeLimit)
// final RFQs that closed before p.Before, those that closed first first,
// in one write transaction: the RFQ rows, and with them (ON DELETE CASCADE)
// their roster with its quotes and their notification log, and their
// refused answers and dead letters. RFQs that still have outbox messages are skipped: their
// events are not published yet. It returns how many RFQs it deleted.
func (s *Store) PurgeFinished(ctx context.Context, p store.PurgeFinishedParams) (int, error) {
	if p.Before.IsZero() {
		return 0, errors.New("purge finished rfqs: Before is required")
	}
	limit := purgeLimit(p.Limit)
	var n int
	err := s.write(ctx, "purge finished rfqs", func(tx *txn) error {
		// rfqs_closed holds only final RFQs, in the order they closed. The
		// outbox is small (rows go once published) and NOT IN reads it once.
		rows, err := tx.QueryContext(ctx, `
			SELECT id FROM rfqs
			WHERE closed_at IS NOT NULL AND closed_at < ? AND status <> 'open'
				AND id NOT IN (SELECT rfq_id FROM outbox)
			ORDER BY closed_at, id LIMIT ?`, micros(p.Before), limit)
		if err != nil {
			return err
		}
		ids := make([]string, 0, limit)
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				_ = rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		list, err := json.Marshal(ids)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM rejections WHERE rfq_id IN (SELECT value FROM json_each(?))`, string(list)); err != nil {
			return fmt.Errorf("rejections: %w", err)
		}
		// dead_letters has no index on rfq_id: it is small, and this reads
		// it once per batch.
		if _, err := tx.ExecContext(ctx, `DELETE FROM dead_letters WHERE rfq_id IN (SELECT value FROM json_each(?))`, string(list)); err != nil {
			return fmt.Errorf("dead letters: %w", err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM rfqs WHERE id IN (SELECT value FROM json_each(?)) AND status <> 'open'`, string(list))
		if err != nil {
			return fmt.Errorf("rfqs: %w", err)
		}
		deleted, err := res.RowsAffected()
		n = int(deleted)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// PurgeHistory deletes, in one write transaction, at most p.Limit (0 for
// store.DefaultPurgeLimit) rows in all: dead letters created
// before p.Before, then refused answers received before it (or with no
// time) whose RFQ does not exist, then audit entries made before it. Dead
// letters and audit entries go oldest first; refused answers in no
// particular order (they are all past the cut). It returns how many rows
// it deleted.
func (s *Store) PurgeHistory(ctx context.Context, p store.PurgeHistoryParams) (int, error) {
	if p.Before.IsZero() {
		return 0, errors.New("purge history: Before is required")
	}
	limit := purgeLimit(p.Limit)
	before := micros(p.Before)
	var n int
	err := s.write(ctx, "purge history", func(tx *txn) error {
		for _, step := range []struct{ what, query string }{
			{"dead letters", `DELETE FROM dead_letters WHERE id IN (
				SELECT id FROM dead_letters WHERE created_at < ? ORDER BY created_at, id LIMIT ?)`},
			{"rejections", `DELETE FROM rejections WHERE id IN (
				SELECT r.id FROM rejections r
				WHERE (r.received_at IS NULL OR r.received_at < ?)
					AND NOT EXISTS (SELECT 1 FROM rfqs WHERE rfqs.id = r.rfq_id)
				LIMIT ?)`}, // no ORDER BY: it would sort every old row first
			{"audit log", `DELETE FROM audit_log WHERE id IN (
				SELECT id FROM audit_log WHERE at < ? ORDER BY at, id LIMIT ?)`},
		} {
			if n >= limit {
				return nil
			}
			res, err := tx.ExecContext(ctx, step.query, before, limit-n)
			if err != nil {
				return fmt.Errorf("%s: %w", step.what, err)
			}
			deleted, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("%s: %w", step.what, err)
			}
			n += int(deleted)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
