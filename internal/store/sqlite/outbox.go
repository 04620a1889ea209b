package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/store"
)

// PendingOutbox returns up to p.Limit (0 for 100) unpublished outbox
// messages, oldest first.
func (s *Store) PendingOutbox(ctx context.Context, p store.PendingOutboxParams) ([]store.OutboxMessage, error) {
	out := []store.OutboxMessage{}
	err := s.read(ctx, "pending outbox", func(tx *txn) error {
		rows, err := tx.QueryContext(ctx, `
			SELECT id, kind, rfq_id, provider, providers, payload, created_at
			FROM outbox WHERE id > ? ORDER BY id LIMIT ?`, p.AfterID, queryLimit(p.Limit))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				m         store.OutboxMessage
				rfqID     string
				provider  sql.NullString
				providers sql.NullString
				payload   []byte
				created   int64
			)
			if err := rows.Scan(&m.ID, &m.Kind, &rfqID, &provider, &providers, &payload, &created); err != nil {
				return err
			}
			m.CreatedAt = fromMicros(created)
			m.Payload = payload
			switch m.Kind {
			case store.OutboxDispatch:
				// One provider in provider: a row written before a
				// create's dispatches were one row.
				d := &store.Dispatch{Providers: []string{provider.String}}
				if providers.Valid {
					d.Providers = nil
					if err := json.Unmarshal([]byte(providers.String), &d.Providers); err != nil {
						return fmt.Errorf("outbox message %d: providers: %w", m.ID, err)
					}
				}
				if err := json.Unmarshal(payload, &d.Request); err != nil {
					return fmt.Errorf("outbox message %d: %w", m.ID, err)
				}
				m.Dispatch = d
			case store.OutboxEvent:
				events, err := store.DecodeEvents(payload)
				if err != nil {
					return fmt.Errorf("outbox message %d: %w", m.ID, err)
				}
				m.Events = events
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

// OutboxHoldsEvents reports whether the outbox holds events of rfqID not
// yet published. The outbox has no index on RFQ ids (every insert and
// delete would pay for it), so this reads the table through, which holds
// only what the relay has not published yet.
func (s *Store) OutboxHoldsEvents(ctx context.Context, rfqID string) (bool, error) {
	var holds bool
	if err := s.readRow(ctx, `SELECT EXISTS (SELECT 1 FROM outbox WHERE rfq_id = ? AND kind = 'event')`, rfqID).Scan(&holds); err != nil {
		return false, fmt.Errorf("outbox holds events of %s: %w", rfqID, err)
	}
	return holds, nil
}

// DeleteOutbox removes published messages (ids already gone are ignored)
// and, in the same transaction, raises each stream's AckedSetting to the
// sequence in p.Acked if that is higher than the value it holds (a missing
// or unparsable value counts as 0).
func (s *Store) DeleteOutbox(ctx context.Context, p store.DeleteOutboxParams) error {
	if len(p.IDs) == 0 && len(p.Acked) == 0 {
		return nil
	}
	list, err := json.Marshal(p.IDs)
	if err != nil {
		return fmt.Errorf("delete outbox: %w", err)
	}
	return s.write(ctx, "delete outbox", func(tx *txn) error {
		if len(p.IDs) > 0 {
			if _, err := tx.ExecContext(ctx, sqlDeleteOutbox, string(list)); err != nil {
				return err
			}
		}
		for _, stream := range slices.Sorted(maps.Keys(p.Acked)) {
			if err := raiseAcked(ctx, tx, store.AckedSetting(stream), p.Acked[stream]); err != nil {
				return fmt.Errorf("raise %s: %w", store.AckedSetting(stream), err)
			}
		}
		return nil
	})
}

// raiseAcked sets the setting name to seq unless it holds a higher sequence.
func raiseAcked(ctx context.Context, tx *txn, name string, seq uint64) error {
	if seq == 0 {
		return nil
	}
	var cur string
	err := tx.QueryRowContext(ctx, sqlSelectSetting, name).Scan(&cur)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if n, perr := strconv.ParseUint(cur, 10, 64); err == nil && perr == nil && n >= seq {
		return nil
	}
	_, err = tx.ExecContext(ctx, sqlUpsertSetting, name, strconv.FormatUint(seq, 10))
	return err
}

// insertEvents adds events, in the order emitted, to the outbox: one row
// per RFQ, in the order of each RFQ's first event, holding its events as a
// JSON array (store.GroupEvents). SQLite numbers the rows of a multi-row
// insert in the order of its values.
func insertEvents(ctx context.Context, tx *txn, events ...rydes.Event) error {
	groups := store.GroupEvents(events)
	rows := make([]any, 0, 3*len(groups))
	var msgs []store.OutboxMessage
	if tx.collect {
		msgs = make([]store.OutboxMessage, len(groups))
	}
	for i, g := range groups {
		if err := store.CheckEvents(g); err != nil {
			return err
		}
		b, err := json.Marshal(g)
		if err != nil {
			return err
		}
		first := g[0]
		rows = append(rows, first.RFQID, string(b), micros(first.At))
		if tx.collect {
			// Its payload (b) is what reading it back would decode.
			msgs[i] = store.OutboxMessage{Kind: store.OutboxEvent, CreatedAt: fromMicros(micros(first.At)), Events: g, Payload: b}
		}
	}
	return insertOutboxRows(ctx, tx, eventInserts, 3, rows, msgs)
}
