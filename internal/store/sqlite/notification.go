package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/wildrydes/rydes"
)

// maxNotificationError bounds the error kept with a notification attempt;
// longer ones are cut.
const maxNotificationError = 1 << 10

// notificationColumns are the columns scanNotification reads.
const notificationColumns = `rfq_id, event, attempt, at, status, error, delivered`

// NotifyTarget returns the URL an RFQ's final state is to be POSTed to (""
// if none) and the secret that signs it. ENOTFOUND if there is no such RFQ.
func (s *Store) NotifyTarget(ctx context.Context, rfqID string) (url, secret string, err error) {
	var u, sec sql.NullString
	err = s.readRow(ctx, sqlSelectNotifyTarget, rfqID).Scan(&u, &sec)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", rfqNotFound(rfqID)
	}
	if err != nil {
		return "", "", fmt.Errorf("notify target: %w", err)
	}
	return u.String, sec.String, nil
}

// RecordNotification appends one delivery attempt to an RFQ's notification
// log and returns it as stored: numbered 1 + the attempts of its RFQ and
// event so far, inside the write transaction, so racing callers get distinct
// numbers; its time in UTC microseconds; its error cut to 1 KiB. n.Attempt
// is ignored. It fails with ENOTFOUND if there is no such RFQ, and with
// EINVALID for an event that is not final, a status that is not an HTTP
// status, or a delivered attempt with an error.
func (s *Store) RecordNotification(ctx context.Context, n rydes.Notification) (rydes.Notification, error) {
	switch {
	case !n.Event.Final():
		return rydes.Notification{}, rydes.FieldErrorf("event", "must be %q, %q or %q, not %q",
			rydes.EventComplete, rydes.EventExpired, rydes.EventCancelled, n.Event)
	case n.Status != 0 && (n.Status < 100 || n.Status > 599):
		return rydes.Notification{}, rydes.FieldErrorf("status", "must be an HTTP status, or 0 if none came back")
	case n.Delivered && n.Error != "":
		return rydes.Notification{}, rydes.FieldErrorf("error", "a delivered notification has none")
	case n.At.IsZero():
		return rydes.Notification{}, errors.New("record notification: At is required")
	}
	var status any
	if n.Status != 0 {
		status = n.Status
	}
	var out rydes.Notification
	err := s.write(ctx, "record notification", func(tx *txn) error {
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM rfqs WHERE id = ?)`, n.RFQID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return rfqNotFound(n.RFQID)
		}
		var err error
		out, err = scanNotification(tx.QueryRowContext(ctx, `
			INSERT INTO notifications (rfq_id, event, attempt, at, status, error, delivered)
			SELECT ?1, ?2, COALESCE(MAX(attempt), 0) + 1, ?3, ?4, ?5, ?6
			FROM notifications WHERE rfq_id = ?1 AND event = ?2
			RETURNING `+notificationColumns,
			n.RFQID, n.Event, micros(utc(n.At)), status, nullString(truncate(n.Error, maxNotificationError)), n.Delivered))
		return err
	})
	if err != nil {
		return rydes.Notification{}, err
	}
	return out, nil
}

// ListNotifications returns an RFQ's notification log, oldest first (by
// time, then attempt); empty if there is no such RFQ.
func (s *Store) ListNotifications(ctx context.Context, rfqID string) ([]rydes.Notification, error) {
	out := []rydes.Notification{}
	err := s.read(ctx, "list notifications", func(tx *txn) error {
		rows, err := tx.QueryContext(ctx, `
			SELECT `+notificationColumns+` FROM notifications
			WHERE rfq_id = ? ORDER BY at, attempt, event`, rfqID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			n, err := scanNotification(rows)
			if err != nil {
				return err
			}
			out = append(out, n)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// NotificationDelivered reports whether an attempt to deliver the RFQ's
// event was accepted already; false if there is no such RFQ.
func (s *Store) NotificationDelivered(ctx context.Context, rfqID string, event rydes.EventType) (bool, error) {
	var delivered bool
	err := s.read(ctx, "notification delivered", func(tx *txn) error {
		return tx.QueryRowContext(ctx, `
			SELECT EXISTS (SELECT 1 FROM notifications WHERE rfq_id = ? AND event = ? AND delivered)`,
			rfqID, event).Scan(&delivered)
	})
	if err != nil {
		return false, err
	}
	return delivered, nil
}

// scanNotification reads the notificationColumns of a notification.
func scanNotification(sc scanner) (rydes.Notification, error) {
	var (
		n      rydes.Notification
		at     int64
		status sql.NullInt64
		msg    sql.NullString
	)
	if err := sc.Scan(&n.RFQID, &n.Event, &n.Attempt, &at, &status, &msg, &n.Delivered); err != nil {
		return rydes.Notification{}, err
	}
	n.At, n.Status, n.Error = fromMicros(at), int(status.Int64), msg.String
	return n, nil
}
