package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/store"
)

// PendingOutbox returns up to p.Limit (0 for 100) unpublished outbox
// messages, oldest first.
func (s *Store) PendingOutbox(ctx context.Context, p store.PendingOutboxParams) ([]store.OutboxMessage, error) {
	out := []store.OutboxMessage{}
	err := s.read(ctx, "pending outbox", func(tx *txn) error {
		rows, err := tx.QueryContext(ctx, `
			SELECT id, kind, rfq_id, provider, payload, created_at
			FROM outbox ORDER BY id LIMIT ?`, queryLimit(p.Limit))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				m        store.OutboxMessage
				rfqID    string
				provider sql.NullString
				payload  []byte
				created  int64
			)
			if err := rows.Scan(&m.ID, &m.Kind, &rfqID, &provider, &payload, &created); err != nil {
				return err
			}
			m.CreatedAt = fromMicros(created)
			switch m.Kind {
			case store.OutboxDispatch:
				d := &store.Dispatch{Provider: provider.String}
				if err := json.Unmarshal(payload, &d.Request); err != nil {
					return fmt.Errorf("outbox message %d: %w", m.ID, err)
				}
				m.Dispatch = d
			case store.OutboxEvent:
				e := &rydes.Event{}
				if err := json.Unmarshal(payload, e); err != nil {
					return fmt.Errorf("outbox message %d: %w", m.ID, err)
				}
				m.Event = e
			default:
				return fmt.Errorf("outbox message %d: unknown kind %q", m.ID, m.Kind)
			}
			out = append(out, m)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteOutbox removes published messages. Ids already gone are ignored.
func (s *Store) DeleteOutbox(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return fmt.Errorf("delete outbox: %w", err)
	}
	return s.write(ctx, "delete outbox", func(tx *txn) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))`, string(list))
		return err
	})
}

// insertDispatch adds to the outbox the dispatch of req to provider.
func insertDispatch(ctx context.Context, tx *txn, provider string, req []byte, at int64, rfqID string) error {
	_, err := tx.ExecContext(ctx, sqlInsertDispatch, rfqID, provider, string(req), at)
	return err
}

// insertEvents adds events to the outbox, in order.
func insertEvents(ctx context.Context, tx *txn, events ...rydes.Event) error {
	for _, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, sqlInsertEvent, e.RFQID, nullString(e.Provider), string(b), micros(e.At)); err != nil {
			return err
		}
	}
	return nil
}
