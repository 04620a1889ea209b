package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/store"
)

// maxDeadLetterError bounds the last error kept with a dead letter; longer
// ones are cut.
const maxDeadLetterError = 1 << 10

// deadLetterColumns are the columns scanDeadLetter reads.
const deadLetterColumns = `id, provider, rfq_id, attempts, last_error, last_status, request, created_at, replayed_at`

// AddDeadLetter keeps a delivery that exhausted its retries and returns it
// as stored, with its id. d.ID is ignored; d.CreatedAt is required. It fails
// with EINVALID for a dead letter without provider or RFQ id, with negative
// attempts or with a last status that is not an HTTP status. A last error
// longer than 1 KiB is cut.
func (s *Store) AddDeadLetter(ctx context.Context, d rydes.DeadLetter) (rydes.DeadLetter, error) {
	switch {
	case d.Provider == "":
		return rydes.DeadLetter{}, rydes.FieldErrorf("provider", "is required")
	case d.RFQID == "":
		return rydes.DeadLetter{}, rydes.FieldErrorf("rfq_id", "is required")
	case d.Attempts < 0:
		return rydes.DeadLetter{}, rydes.FieldErrorf("attempts", "must not be negative")
	case d.LastStatus != 0 && (d.LastStatus < 100 || d.LastStatus > 599):
		return rydes.DeadLetter{}, rydes.FieldErrorf("last_status", "must be an HTTP status, or 0 if none came back")
	case d.CreatedAt.IsZero():
		return rydes.DeadLetter{}, errors.New("add dead letter: CreatedAt is required")
	}
	d.CreatedAt, d.ReplayedAt = utc(d.CreatedAt), utcOrZero(d.ReplayedAt)
	d.LastError = truncate(d.LastError, maxDeadLetterError)
	req, err := json.Marshal(d.Request)
	if err != nil {
		return rydes.DeadLetter{}, fmt.Errorf("add dead letter: %w", err)
	}
	var status any
	if d.LastStatus != 0 {
		status = d.LastStatus
	}
	var out rydes.DeadLetter
	err = s.write(ctx, "add dead letter", func(tx *txn) error {
		var err error
		out, err = scanDeadLetter(tx.QueryRowContext(ctx, `
			INSERT INTO dead_letters (provider, rfq_id, attempts, last_error, last_status, request, created_at, replayed_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			RETURNING `+deadLetterColumns,
			d.Provider, d.RFQID, d.Attempts, d.LastError, status, string(req), micros(d.CreatedAt), nullMicros(d.ReplayedAt)))
		return err
	})
	if err != nil {
		return rydes.DeadLetter{}, err
	}
	return out, nil
}

// ListDeadLetters returns dead letters newest first, only p.Provider's if it
// is set, at most p.Limit (0 for 100), with ids below p.BeforeID if it is
// set: the next page starts before the last id of the one before.
func (s *Store) ListDeadLetters(ctx context.Context, p store.ListDeadLettersParams) ([]rydes.DeadLetter, error) {
	var out []rydes.DeadLetter
	err := s.read(ctx, "list dead letters", func(tx *txn) error {
		var err error
		out, err = pageNewestFirst(ctx, tx, deadLetterColumns, "dead_letters", "provider", p.Provider, p.BeforeID, p.Limit, scanDeadLetter)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// pageNewestFirst reads a page of table, newest (highest id) first: the
// rows whose column col equals eq, if eq is not "", with ids below beforeID,
// if it is positive, at most limit (0 for 100), each read by scan.
func pageNewestFirst[T any](ctx context.Context, tx *txn, columns, table, col, eq string, beforeID int64, limit int, scan func(scanner) (T, error)) ([]T, error) {
	var (
		where []string
		args  []any
	)
	if eq != "" {
		where, args = append(where, col+" = ?"), append(args, eq)
	}
	if beforeID > 0 {
		where, args = append(where, "id < ?"), append(args, beforeID)
	}
	q := `SELECT ` + columns + ` FROM ` + table
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	rows, err := tx.QueryContext(ctx, q+` ORDER BY id DESC LIMIT ?`, append(args, queryLimit(limit))...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// GetDeadLetter returns one dead letter. ENOTFOUND if there is none.
func (s *Store) GetDeadLetter(ctx context.Context, id int64) (rydes.DeadLetter, error) {
	var out rydes.DeadLetter
	err := s.read(ctx, "get dead letter", func(tx *txn) error {
		var err error
		out, err = scanDeadLetter(tx.QueryRowContext(ctx, `SELECT `+deadLetterColumns+` FROM dead_letters WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return deadLetterNotFound(id)
		}
		return err
	})
	if err != nil {
		return rydes.DeadLetter{}, err
	}
	return out, nil
}

// MarkDeadLetterReplayed sets a dead letter's ReplayedAt to at. ENOTFOUND if
// there is none.
func (s *Store) MarkDeadLetterReplayed(ctx context.Context, id int64, at time.Time) error {
	if at.IsZero() {
		return errors.New("mark dead letter replayed: the time is required")
	}
	return s.write(ctx, "mark dead letter replayed", func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE dead_letters SET replayed_at = ? WHERE id = ?`, micros(utc(at)), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return deadLetterNotFound(id)
		}
		return nil
	})
}

// scanDeadLetter reads the deadLetterColumns of a dead letter.
func scanDeadLetter(sc scanner) (rydes.DeadLetter, error) {
	var (
		d                rydes.DeadLetter
		status, replayed sql.NullInt64
		req              string
		created          int64
	)
	if err := sc.Scan(&d.ID, &d.Provider, &d.RFQID, &d.Attempts, &d.LastError, &status, &req, &created, &replayed); err != nil {
		return rydes.DeadLetter{}, err
	}
	d.LastStatus = int(status.Int64)
	d.CreatedAt, d.ReplayedAt = fromMicros(created), fromNullMicros(replayed)
	if err := json.Unmarshal([]byte(req), &d.Request); err != nil {
		return rydes.DeadLetter{}, fmt.Errorf("dead letter %d: request: %w", d.ID, err)
	}
	return d, nil
}

func deadLetterNotFound(id int64) error {
	return rydes.Errorf(rydes.ENOTFOUND, "dead letter %d not found", id)
}
