package sqlite

import (
	"context"
	"database/sql"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/store"
)

// auditColumns are the columns scanAudit reads.
const auditColumns = `id, at, actor, action, target, remote_addr, details`

// AddAudit appends e to the audit log and returns it as stored: with its
// id, its time in UTC microseconds. e.ID is ignored. It fails with EINVALID
// if e does not pass rydes.AuditEntry.Validate.
func (s *Store) AddAudit(ctx context.Context, e rydes.AuditEntry) (rydes.AuditEntry, error) {
	if err := e.Validate(); err != nil {
		return rydes.AuditEntry{}, err
	}
	var details any
	if len(e.Details) > 0 {
		details = string(e.Details)
	}
	var out rydes.AuditEntry
	err := s.write(ctx, "add audit entry", func(tx *txn) error {
		var err error
		out, err = scanAudit(tx.QueryRowContext(ctx, `
			INSERT INTO audit_log (at, actor, action, target, remote_addr, details)
			VALUES (?, ?, ?, ?, ?, ?)
			RETURNING `+auditColumns,
			micros(utc(e.At)), e.Actor, string(e.Action), nullString(e.Target), nullString(e.RemoteAddr), details))
		return err
	})
	if err != nil {
		return rydes.AuditEntry{}, err
	}
	return out, nil
}

// ListAudit returns audit entries newest first, only of p.Action if it is
// set, at most p.Limit (0 for 100), with ids below p.BeforeID if it is set.
func (s *Store) ListAudit(ctx context.Context, p store.ListAuditParams) ([]rydes.AuditEntry, error) {
	var out []rydes.AuditEntry
	err := s.read(ctx, "list audit entries", func(tx *txn) error {
		var err error
		out, err = pageNewestFirst(ctx, tx, auditColumns, "audit_log", "action", string(p.Action), p.BeforeID, p.Limit, scanAudit)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scanAudit reads the auditColumns of an audit entry.
func scanAudit(sc scanner) (rydes.AuditEntry, error) {
	var (
		e                     rydes.AuditEntry
		at                    int64
		action                string
		target, addr, details sql.NullString
	)
	if err := sc.Scan(&e.ID, &at, &e.Actor, &action, &target, &addr, &details); err != nil {
		return rydes.AuditEntry{}, err
	}
	e.At, e.Action, e.Target, e.RemoteAddr = fromMicros(at), rydes.AuditAction(action), target.String, addr.String
	if details.Valid {
		e.Details = []byte(details.String)
	}
	return e, nil
}
