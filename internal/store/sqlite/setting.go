package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/wildrydes/rydes"
)

// GetSetting returns a named setting's value and whether it is set.
func (s *Store) GetSetting(ctx context.Context, name string) (string, bool, error) {
	var (
		value string
		found bool
	)
	err := s.read(ctx, "get setting", func(tx *txn) error {
		err := tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, name).Scan(&value)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return "", false, err
	}
	return value, found, nil
}

// InitSetting sets a named setting only if it is not set yet and returns the
// value in force. The write transaction holds the database's lock, so of
// callers racing, in this process or others, one sets it and all of them
// get its value. EINVALID for an empty name.
func (s *Store) InitSetting(ctx context.Context, name, value string) (string, error) {
	if name == "" {
		return "", rydes.FieldErrorf("name", "is required")
	}
	var inForce string
	err := s.write(ctx, "init setting", func(tx *txn) error {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, value); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, name).Scan(&inForce)
	})
	if err != nil {
		return "", err
	}
	return inForce, nil
}

// PutSetting sets a named setting, replacing any value. EINVALID for an
// empty name.
func (s *Store) PutSetting(ctx context.Context, name, value string) error {
	if name == "" {
		return rydes.FieldErrorf("name", "is required")
	}
	return s.write(ctx, "put setting", func(tx *txn) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO settings (name, value) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value)
		return err
	})
}
