package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/store"
)

// UpsertProvider creates the provider or updates its name, kind and status,
// and returns it as stored. It fails with EINVALID for a malformed id or an
// unknown kind or status.
func (s *Store) UpsertProvider(ctx context.Context, p store.UpsertProviderParams) (rydes.Provider, error) {
	if err := rydes.ValidateProviderID(p.ID); err != nil {
		return rydes.Provider{}, err
	}
	switch p.Kind {
	case rydes.ProviderKindSimulated, rydes.ProviderKindNATS, rydes.ProviderKindWebhook:
	default:
		return rydes.Provider{}, rydes.FieldErrorf("kind", "must be %q, %q or %q", rydes.ProviderKindSimulated, rydes.ProviderKindNATS, rydes.ProviderKindWebhook)
	}
	switch p.Status {
	case rydes.ProviderActive, rydes.ProviderPaused:
	default:
		return rydes.Provider{}, rydes.FieldErrorf("status", "must be %q or %q", rydes.ProviderActive, rydes.ProviderPaused)
	}
	if len(p.Name) > rydes.MaxTextLen {
		return rydes.Provider{}, rydes.FieldErrorf("name", "must be at most %d bytes", rydes.MaxTextLen)
	}
	if p.Now.IsZero() {
		return rydes.Provider{}, errors.New("upsert provider: Now is required")
	}
	now := micros(utc(p.Now))
	var out rydes.Provider
	err := s.write(ctx, "upsert provider", func(tx *txn) error {
		row := tx.QueryRowContext(ctx, `
			INSERT INTO providers (id, name, kind, status, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET
				name = excluded.name, kind = excluded.kind, status = excluded.status,
				updated_at = excluded.updated_at
			RETURNING id, name, kind, status, created_at, updated_at`,
			p.ID, p.Name, p.Kind, p.Status, now, now)
		var err error
		out, err = scanProvider(row)
		return err
	})
	if err != nil {
		return rydes.Provider{}, err
	}
	return out, nil
}

// ListProviders returns the providers ordered by id, only those of
// p.Status if it is set.
func (s *Store) ListProviders(ctx context.Context, p store.ListProvidersParams) ([]rydes.Provider, error) {
	out := []rydes.Provider{}
	err := s.read(ctx, "list providers", func(tx *txn) error {
		const cols = `SELECT id, name, kind, status, created_at, updated_at FROM providers`
		var rows *sql.Rows
		var err error
		if p.Status == "" {
			rows, err = tx.QueryContext(ctx, cols+` ORDER BY id`)
		} else {
			rows, err = tx.QueryContext(ctx, cols+` WHERE status = ? ORDER BY id`, p.Status)
		}
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			pr, err := scanProvider(rows)
			if err != nil {
				return err
			}
			out = append(out, pr)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanProvider(sc scanner) (rydes.Provider, error) {
	var p rydes.Provider
	var created, updated int64
	if err := sc.Scan(&p.ID, &p.Name, &p.Kind, &p.Status, &created, &updated); err != nil {
		return rydes.Provider{}, err
	}
	p.CreatedAt, p.UpdatedAt = fromMicros(created), fromMicros(updated)
	return p, nil
}
