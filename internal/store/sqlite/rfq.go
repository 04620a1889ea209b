package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/store"
)

// CreateRFQ stores a new open RFQ with its roster, its notify URL and
// notify secret, and, in the same transaction, the dispatch to every asked
// provider (one outbox row) and the created event (seq 1). It fails with
// ECONFLICT if the id exists, and with EINVALID if the RFQ is not a new
// one: not open, with no provider, a provider asked twice or one not
// pending, or with a notify secret but no notify URL, or an invalid notify
// URL.
func (s *Store) CreateRFQ(ctx context.Context, p store.CreateRFQParams) error {
	r := p.RFQ
	if err := checkNewRFQ(&r); err != nil {
		return err
	}
	var attrs any
	if len(r.Attributes) > 0 {
		b, err := json.Marshal(r.Attributes)
		if err != nil {
			return fmt.Errorf("create rfq: %w", err)
		}
		attrs = string(b)
	}
	preq := r.ProviderRequest()
	req, err := json.Marshal(preq)
	if err != nil {
		return fmt.Errorf("create rfq: %w", err)
	}
	created := micros(r.CreatedAt)
	return s.write(ctx, "create rfq", func(tx *txn) error {
		_, err := tx.ExecContext(ctx, sqlInsertRFQ,
			r.ID, r.Customer, r.From, r.To, r.Passengers, nullMicros(r.PickupAt), attrs,
			created, micros(r.Deadline), len(r.Providers), nullString(r.NotifyURL), nullString(r.NotifySecret))
		if isUniqueViolation(err) {
			return rydes.Errorf(rydes.ECONFLICT, "RFQ %s already exists", r.ID)
		}
		if err != nil {
			return err
		}
		// The roster in one statement, a row per asked provider in roster
		// order, and the dispatches in one outbox row.
		n := len(r.Providers)
		roster := make([]any, 0, 4*n)
		providers := make([]string, n)
		for i, e := range r.Providers {
			changed := e.ChangedAt
			if changed.IsZero() {
				changed = r.CreatedAt
			}
			roster = append(roster, r.ID, e.Provider, i, micros(utc(changed)))
			providers[i] = e.Provider
		}
		if err := insertRows(ctx, tx, rosterInserts, 4, roster); err != nil {
			return err
		}
		list, err := json.Marshal(providers)
		if err != nil {
			return err
		}
		var msgs []store.OutboxMessage
		if tx.collect {
			msgs = []store.OutboxMessage{{
				Kind: store.OutboxDispatch, CreatedAt: fromMicros(created),
				Dispatch: &store.Dispatch{Providers: providers, Request: preq},
				Payload:  req,
			}}
		}
		if err := insertOutboxRows(ctx, tx, dispatchInserts, 4, []any{r.ID, string(list), string(req), created}, msgs); err != nil {
			return err
		}
		return insertEvents(ctx, tx, rydes.Event{
			RFQID: r.ID, Seq: 1, Type: rydes.EventCreated, At: r.CreatedAt,
			Customer: r.Customer, Status: rydes.StatusOpen,
		})
	})
}

// checkNewRFQ checks that r is a new RFQ as rydes.NewRFQ makes them, and
// brings its times to UTC microseconds.
func checkNewRFQ(r *rydes.RFQ) error {
	if r.ID == "" {
		return rydes.FieldErrorf("id", "is required")
	}
	if r.Customer == "" {
		return rydes.FieldErrorf("customer", "is required")
	}
	if r.Status != rydes.StatusOpen {
		return rydes.FieldErrorf("status", "a new RFQ must be open, not %q", r.Status)
	}
	if r.CreatedAt.IsZero() || r.Deadline.IsZero() {
		return rydes.FieldErrorf("deadline", "a new RFQ needs its creation time and deadline")
	}
	if len(r.Providers) == 0 {
		return rydes.FieldErrorf("providers", "a new RFQ must ask at least one provider")
	}
	if r.NotifyURL != "" {
		if err := rydes.ValidateWebhookURL(r.NotifyURL); err != nil {
			return &rydes.Error{Code: rydes.EINVALID, Field: "notify_url", Message: rydes.ErrorMessageOf(err)}
		}
	} else if r.NotifySecret != "" {
		return rydes.FieldErrorf("notify_secret", "is only for an RFQ with a notify_url")
	}
	seen := make(map[string]bool, len(r.Providers))
	for _, e := range r.Providers {
		if seen[e.Provider] {
			return rydes.FieldErrorf("providers", "provider %q is asked twice", e.Provider)
		}
		seen[e.Provider] = true
		if e.State != rydes.ProviderPending {
			return rydes.FieldErrorf("providers", "provider %q of a new RFQ must be pending, not %q", e.Provider, e.State)
		}
	}
	r.CreatedAt, r.Deadline = utc(r.CreatedAt), utc(r.Deadline)
	if !r.PickupAt.IsZero() {
		r.PickupAt = utc(r.PickupAt)
	}
	return nil
}

// GetRFQ returns the RFQ with its roster in the order asked, its quotes
// best price first, its Seq (the seq of its latest event) and its notify
// URL, never its notify secret (NotifyTarget has it). ENOTFOUND if there is none, or if p.Customer is set and
// the RFQ belongs to another customer.
func (s *Store) GetRFQ(ctx context.Context, p store.GetRFQParams) (rydes.RFQ, error) {
	var r rydes.RFQ
	err := s.read(ctx, "get rfq", func(tx *txn) error {
		var err error
		r, err = loadRFQ(ctx, tx, p.ID, p.Customer)
		return err
	})
	if err != nil {
		return rydes.RFQ{}, err
	}
	return r, nil
}

// RFQSeq returns the seq of the RFQ's latest event, reading nothing else.
func (s *Store) RFQSeq(ctx context.Context, p store.GetRFQParams) (int64, error) {
	var seq int64
	err := s.read(ctx, "rfq seq", func(tx *txn) error {
		var customer string
		err := tx.QueryRowContext(ctx, `SELECT customer, event_seq FROM rfqs WHERE id = ?`, p.ID).Scan(&customer, &seq)
		if errors.Is(err, sql.ErrNoRows) || err == nil && p.Customer != "" && customer != p.Customer {
			return rfqNotFound(p.ID)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// ListRFQs returns the open RFQs, or the final ones closed since
// p.ClosedSince, ordered by id after p.AfterID, at most p.Limit (0 for 100).
func (s *Store) ListRFQs(ctx context.Context, p store.ListRFQsParams) ([]rydes.RFQ, error) {
	out := []rydes.RFQ{}
	err := s.read(ctx, "list rfqs", func(tx *txn) error {
		var (
			rows *sql.Rows
			err  error
		)
		if p.Open {
			rows, err = tx.QueryContext(ctx, `
				SELECT id FROM rfqs WHERE status = 'open' AND id > ? ORDER BY id LIMIT ?`,
				p.AfterID, queryLimit(p.Limit))
		} else {
			rows, err = tx.QueryContext(ctx, `
				SELECT id FROM rfqs WHERE status <> 'open' AND closed_at >= ? AND id > ? ORDER BY id LIMIT ?`,
				micros(p.ClosedSince), p.AfterID, queryLimit(p.Limit))
		}
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			r, err := loadRFQ(ctx, tx, id, "")
			if err != nil {
				return fmt.Errorf("rfq %s: %w", id, err)
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// loadRFQ reads the RFQ id, with roster, quotes, Seq and notify URL, as
// GetRFQ returns it.
func loadRFQ(ctx context.Context, tx *txn, id, customer string) (rydes.RFQ, error) {
	var (
		r                 rydes.RFQ
		pickup, closed    sql.NullInt64
		attrs, notifyURL  sql.NullString
		created, deadline int64
	)
	err := tx.QueryRowContext(ctx, sqlSelectRFQ, id).Scan(
		&r.ID, &r.Customer, &r.From, &r.To, &r.Passengers, &pickup, &attrs,
		&created, &deadline, &r.Status, &closed, &r.Seq, &notifyURL)
	if errors.Is(err, sql.ErrNoRows) || err == nil && customer != "" && r.Customer != customer {
		return rydes.RFQ{}, rfqNotFound(id)
	}
	if err != nil {
		return rydes.RFQ{}, err
	}
	r.PickupAt, r.ClosedAt = fromNullMicros(pickup), fromNullMicros(closed)
	r.CreatedAt, r.Deadline = fromMicros(created), fromMicros(deadline)
	r.NotifyURL = notifyURL.String
	if attrs.Valid {
		if err := json.Unmarshal([]byte(attrs.String), &r.Attributes); err != nil {
			return rydes.RFQ{}, fmt.Errorf("RFQ %s: attributes: %w", id, err)
		}
	}

	rows, err := tx.QueryContext(ctx, sqlSelectRoster, id)
	if err != nil {
		return rydes.RFQ{}, err
	}
	defer rows.Close()
	r.Providers, r.Quotes = []rydes.RosterEntry{}, []rydes.Quote{}
	for rows.Next() {
		e, a, err := scanRoster(rows, id)
		if err != nil {
			return rydes.RFQ{}, err
		}
		r.Providers = append(r.Providers, e)
		if e.State == rydes.ProviderQuoted && a != nil {
			r.Quotes = append(r.Quotes, a.Quote())
		}
	}
	if err := rows.Err(); err != nil {
		return rydes.RFQ{}, err
	}
	rydes.SortQuotes(r.Quotes)
	return r, nil
}

// scanRoster reads a roster row of RFQ rfqID: the entry and, if the provider
// answered, its answer.
func scanRoster(sc scanner, rfqID string) (rydes.RosterEntry, *rydes.Answer, error) {
	var (
		e                      rydes.RosterEntry
		changed                int64
		reason, kind           sql.NullString
		amount, currency       sql.NullString
		eta, expires, received sql.NullInt64
	)
	if err := sc.Scan(&e.Provider, &e.State, &changed, &reason, &kind, &amount, &currency, &eta, &expires, &received); err != nil {
		return rydes.RosterEntry{}, nil, err
	}
	e.ChangedAt, e.Reason = fromMicros(changed), reason.String
	if !kind.Valid {
		return e, nil, nil
	}
	a := &rydes.Answer{
		RFQID:      rfqID,
		Provider:   e.Provider,
		Kind:       rydes.AnswerKind(kind.String),
		Price:      rydes.Price{Amount: amount.String, Currency: currency.String},
		ExpiresAt:  fromNullMicros(expires),
		Reason:     reason.String,
		ReceivedAt: fromNullMicros(received),
	}
	if eta.Valid {
		v := int(eta.Int64)
		a.ETASeconds = &v
	}
	return e, a, nil
}

// CancelRFQ moves an open RFQ to cancelled: each pending provider becomes
// withdrawn with a provider_withdrawn event (answered, failed and withdrawn
// ones stay as they are), then the RFQ becomes cancelled with a cancelled
// event. ENOTFOUND as for GetRFQ; ECONFLICT if the RFQ is already final.
func (s *Store) CancelRFQ(ctx context.Context, p store.CancelRFQParams) (store.CancelRFQResult, error) {
	if p.Now.IsZero() {
		return store.CancelRFQResult{}, errors.New("cancel rfq: Now is required")
	}
	now := utc(p.Now)
	var res store.CancelRFQResult
	err := s.write(ctx, "cancel rfq", func(tx *txn) error {
		var (
			customer string
			status   rydes.Status
			seq      int64
		)
		err := tx.QueryRowContext(ctx, `SELECT customer, status, event_seq FROM rfqs WHERE id = ?`, p.ID).Scan(&customer, &status, &seq)
		if errors.Is(err, sql.ErrNoRows) || err == nil && p.Customer != "" && customer != p.Customer {
			return rfqNotFound(p.ID)
		}
		if err != nil {
			return err
		}
		if status.Final() {
			return rydes.Errorf(rydes.ECONFLICT, "the RFQ is already %s", status)
		}
		pending, err := pendingProviders(ctx, tx, p.ID)
		if err != nil {
			return err
		}
		events := make([]rydes.Event, 0, len(pending)+1)
		if len(pending) > 0 {
			if _, err := tx.ExecContext(ctx, `
				UPDATE roster SET state = 'withdrawn', changed_at = ?
				WHERE rfq_id = ? AND state = 'pending'`, micros(now), p.ID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE rfqs SET pending = 0 WHERE id = ?`, p.ID); err != nil {
				return err
			}
			for _, provider := range pending {
				seq++
				events = append(events, rydes.Event{
					RFQID: p.ID, Seq: seq, Type: rydes.EventProviderWithdrawn, At: now,
					Customer: customer, Provider: provider, Status: rydes.StatusOpen,
				})
			}
		}
		ev := rydes.Event{
			RFQID: p.ID, Seq: seq + 1, Type: rydes.EventCancelled, At: now,
			Customer: customer, Status: rydes.StatusCancelled,
		}
		events = append(events, ev)
		if err := closeRFQ(ctx, tx, p.ID, rydes.StatusCancelled, now, ev.Seq); err != nil {
			return err
		}
		if err := insertEvents(ctx, tx, events...); err != nil {
			return err
		}
		r, err := loadRFQ(ctx, tx, p.ID, "")
		if err != nil {
			return err
		}
		res = store.CancelRFQResult{RFQ: r, Event: ev}
		return nil
	})
	if err != nil {
		return store.CancelRFQResult{}, err
	}
	return res, nil
}

// closeRFQ moves the open RFQ id to the final status at now, with seq its
// last event's. It fails if the RFQ is not open: the callers checked that in
// the same transaction.
func closeRFQ(ctx context.Context, tx *txn, id string, status rydes.Status, now time.Time, seq int64) error {
	res, err := tx.ExecContext(ctx, `
		UPDATE rfqs SET status = ?, closed_at = ?, event_seq = ?
		WHERE id = ? AND status = 'open'`, status, micros(now), seq, id)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("close RFQ %s: not open (%d rows, %v)", id, n, err)
	}
	return nil
}

// ExpireDue expires the open RFQs whose deadline is at or before p.Now, at
// most p.Limit (0 for 100) of them, earliest deadline first: each pending
// provider becomes timed_out with a provider_timed_out event (failed and
// withdrawn ones stay as they are), then the RFQ becomes expired with an
// expired event. It returns the ids expired.
func (s *Store) ExpireDue(ctx context.Context, p store.ExpireDueParams) ([]string, error) {
	if p.Now.IsZero() {
		return nil, errors.New("expire due: Now is required")
	}
	now := utc(p.Now)
	cutoff := now
	if !p.Before.IsZero() && p.Before.Before(now) {
		cutoff = utc(p.Before)
	}
	ids := []string{}
	err := s.write(ctx, "expire due", func(tx *txn) error {
		type due struct {
			id, customer string
			seq          int64
		}
		var dues []due
		rows, err := tx.QueryContext(ctx, `
			SELECT id, customer, event_seq FROM rfqs
			WHERE status = 'open' AND deadline <= ?
			ORDER BY deadline, id LIMIT ?`, micros(cutoff), queryLimit(p.Limit))
		if err != nil {
			return err
		}
		for rows.Next() {
			var d due
			if err := rows.Scan(&d.id, &d.customer, &d.seq); err != nil {
				rows.Close()
				return err
			}
			dues = append(dues, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}

		for _, d := range dues {
			pending, err := pendingProviders(ctx, tx, d.id)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `
				UPDATE roster SET state = 'timed_out', changed_at = ?
				WHERE rfq_id = ? AND state = 'pending'`, micros(now), d.id); err != nil {
				return err
			}
			events := make([]rydes.Event, 0, len(pending)+1)
			seq := d.seq
			for _, provider := range pending {
				seq++
				events = append(events, rydes.Event{
					RFQID: d.id, Seq: seq, Type: rydes.EventProviderTimedOut, At: now,
					Customer: d.customer, Provider: provider, Status: rydes.StatusOpen,
				})
			}
			seq++
			events = append(events, rydes.Event{
				RFQID: d.id, Seq: seq, Type: rydes.EventExpired, At: now,
				Customer: d.customer, Status: rydes.StatusExpired,
			})
			if _, err := tx.ExecContext(ctx, `UPDATE rfqs SET pending = 0 WHERE id = ?`, d.id); err != nil {
				return err
			}
			if err := closeRFQ(ctx, tx, d.id, rydes.StatusExpired, now, seq); err != nil {
				return err
			}
			if err := insertEvents(ctx, tx, events...); err != nil {
				return err
			}
			ids = append(ids, d.id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(ids) > 0 {
		s.logger.Debug("expired RFQs", "count", len(ids))
	}
	return ids, nil
}

// pendingProviders returns the providers of RFQ id still pending, in the
// order asked.
func pendingProviders(ctx context.Context, tx *txn, id string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `
		SELECT provider FROM roster WHERE rfq_id = ? AND state = 'pending' ORDER BY position`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// NextDeadline returns the earliest deadline of an open RFQ, and false if no
// RFQ is open.
func (s *Store) NextDeadline(ctx context.Context) (time.Time, bool, error) {
	var (
		deadline int64
		found    bool
	)
	err := s.read(ctx, "next deadline", func(tx *txn) error {
		err := tx.QueryRowContext(ctx, sqlSelectNextDeadline).Scan(&deadline)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil || !found {
		return time.Time{}, false, err
	}
	return fromMicros(deadline), true, nil
}
