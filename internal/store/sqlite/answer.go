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

// StageAnswers decides each answer with rydes.Decide against the RFQ as it
// is inside one write transaction, and applies the decisions in order, so
// that each answer sees what the ones before it did. A staged answer changes
// the provider's roster entry and emits its quote or decline event, and the
// one that leaves no provider pending completes the RFQ and emits complete;
// a rejected answer is recorded with its payload; a duplicate changes
// nothing. An answer for an RFQ that does not exist is rejected as invalid
// if its content is, and as unknown_rfq otherwise. Results are in input
// order.
func (s *Store) StageAnswers(ctx context.Context, p store.StageAnswersParams) ([]store.StageResult, error) {
	if p.Now.IsZero() {
		return nil, errors.New("stage answers: Now is required")
	}
	results := make([]store.StageResult, len(p.Answers))
	if len(p.Answers) == 0 {
		return results, nil
	}
	now := utc(p.Now)
	err := s.write(ctx, "stage answers", func(tx *txn) error {
		b := newBatchRFQs(p.Answers)
		for i, sa := range p.Answers {
			res, err := stageAnswer(ctx, tx, b, sa, now)
			if err != nil {
				return fmt.Errorf("answer %d: %w", i, err)
			}
			results[i] = res
		}
		return b.save(ctx, tx)
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// openRFQ is what changing a roster entry needs to know of its RFQ.
type openRFQ struct {
	id       string
	customer string
	status   rydes.Status
	deadline time.Time
	pending  int
	seq      int64
}

// batchRFQs holds, within one StageAnswers transaction, the RFQs its
// answers touched: each is read once, with the roster entries of the
// providers answering it in the batch, and written once at the end (save),
// however many of its providers answered. It also holds the events the
// batch emitted, which save writes to the outbox.
type batchRFQs struct {
	answering map[string][]string // the providers answering each RFQ in the batch
	m         map[string]*batchRFQ
	order     []*batchRFQ   // in first-touched order
	events    []rydes.Event // in the order emitted
}

// newBatchRFQs returns the batch of answers, none read yet.
func newBatchRFQs(answers []store.StageAnswer) *batchRFQs {
	b := &batchRFQs{answering: map[string][]string{}, m: map[string]*batchRFQ{}}
	for _, sa := range answers {
		b.answering[sa.Answer.RFQID] = append(b.answering[sa.Answer.RFQID], sa.Answer.Provider)
	}
	return b
}

// batchRFQ is one RFQ of a batch: as read, and as the batch's answers so
// far left it.
type batchRFQ struct {
	r           openRFQ
	readPending int
	closed      any // the closing time once the batch completed it
	dirty       bool
	// roster has the entries of the providers answering the RFQ in the
	// batch (those asked), each with its staged answer if any: as read,
	// then as the batch's answers so far left them.
	roster map[string]rydes.Prior
}

// get returns RFQ id as the batch's answers so far left it, reading it and
// its roster entries on first use; sql.ErrNoRows if it does not exist.
func (b *batchRFQs) get(ctx context.Context, tx *txn, id string) (*batchRFQ, error) {
	if e, ok := b.m[id]; ok {
		return e, nil
	}
	var (
		r        openRFQ
		deadline int64
	)
	if err := tx.QueryRowContext(ctx, sqlSelectRFQForAnswer, id).Scan(
		&r.customer, &r.status, &deadline, &r.pending, &r.seq); err != nil {
		return nil, err
	}
	r.id, r.deadline = id, fromMicros(deadline)
	roster, err := readRoster(ctx, tx, id, b.answering[id])
	if err != nil {
		return nil, fmt.Errorf("RFQ %s: roster: %w", id, err)
	}
	e := &batchRFQ{r: r, readPending: r.pending, roster: roster}
	b.m[id] = e
	b.order = append(b.order, e)
	return e, nil
}

// readRoster returns the roster entries of RFQ id of those of providers
// it asked, by provider, each with its answer if it has one.
func readRoster(ctx context.Context, tx *txn, id string, providers []string) (map[string]rydes.Prior, error) {
	// One provider is looked up directly: for one, the JSON array costs
	// more than it saves.
	query, args := sqlSelectRosterEntry, []any{id, providers[0]}
	if len(providers) > 1 {
		list, err := json.Marshal(providers)
		if err != nil {
			return nil, err
		}
		query, args = sqlSelectRosterEntries, []any{id, string(list)}
	}
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	roster := make(map[string]rydes.Prior, len(providers))
	for rows.Next() {
		e, a, err := scanRoster(rows, id)
		if err != nil {
			return nil, err
		}
		roster[e.Provider] = rydes.Prior{Entry: e, Answer: a}
	}
	return roster, rows.Err()
}

// save writes the batch's events to the outbox, in the order emitted, and
// what the batch changed of each RFQ.
func (b *batchRFQs) save(ctx context.Context, tx *txn) error {
	if err := insertEvents(ctx, tx, b.events...); err != nil {
		return fmt.Errorf("events: %w", err)
	}
	for _, e := range b.order {
		if !e.dirty {
			continue
		}
		res, err := tx.ExecContext(ctx, sqlAdvanceRFQ, e.readPending-e.r.pending, e.r.seq, e.r.status, e.closed, e.r.id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("RFQ %s: not open (%d rows, %v)", e.r.id, n, err)
		}
	}
	return nil
}

// stageAnswer decides and applies one answer.
func stageAnswer(ctx context.Context, tx *txn, b *batchRFQs, sa store.StageAnswer, now time.Time) (store.StageResult, error) {
	a := sa.Answer
	// The database keeps times to the microsecond; so that a redelivery
	// compares equal to what was staged, the answer is judged as kept.
	a.ReceivedAt = utc(a.ReceivedAt)
	if !a.ExpiresAt.IsZero() {
		a.ExpiresAt = utc(a.ExpiresAt)
	}

	br, err := b.get(ctx, tx, a.RFQID)
	if errors.Is(err, sql.ErrNoRows) {
		d := rydes.Decision{Outcome: rydes.OutcomeRejected, Reason: rydes.RejectUnknownRFQ, Message: "no RFQ has the id " + truncate(a.RFQID, maxRejectionID)}
		if err := a.Validate(); err != nil {
			d = rydes.Decision{Outcome: rydes.OutcomeRejected, Reason: rydes.RejectInvalid, Message: err.Error()}
		}
		return store.StageResult{Decision: d}, insertRejection(ctx, tx, rejection(a, d, sa.Payload, now))
	}
	if err != nil {
		return store.StageResult{}, err
	}
	r := br.r

	var prior *rydes.Prior
	if p, ok := br.roster[a.Provider]; ok {
		prior = &p
	}
	d := rydes.Decide(r.status, r.deadline, prior, a, now)
	switch d.Outcome {
	case rydes.OutcomeStaged:
		res, err := applyAnswer(ctx, tx, a, br, prior.Entry.State, now, d)
		if err != nil {
			return store.StageResult{}, err
		}
		b.events = append(b.events, res.Events...)
		return res, nil
	case rydes.OutcomeRejected:
		return store.StageResult{Decision: d, Status: r.status}, insertRejection(ctx, tx, rejection(a, d, sa.Payload, now))
	default:
		return store.StageResult{Decision: d, Status: r.status}, nil
	}
}

// applyAnswer stages answer a, which rydes.Decide accepted, for the open RFQ
// br from a provider in state from (pending or failed): it records the
// answer in the roster (the database's and br's) and advances br, which
// completes if that leaves no provider pending. It returns the answer's
// event, with complete after it if so; the caller has them written to the
// outbox. A failed provider no longer counted as pending, so its answer
// leaves the count as it is.
func applyAnswer(ctx context.Context, tx *txn, a rydes.Answer, br *batchRFQ, from rydes.ProviderState, now time.Time, d rydes.Decision) (store.StageResult, error) {
	r := br.r
	if from != rydes.ProviderPending && from != rydes.ProviderFailed {
		return store.StageResult{}, fmt.Errorf("RFQ %s: an answer staged from provider %s, which is %s", a.RFQID, a.Provider, from)
	}
	ev := rydes.Event{
		RFQID: a.RFQID, Seq: r.seq + 1, At: now, Customer: r.customer,
		Provider: a.Provider, Status: rydes.StatusOpen,
	}
	var (
		state                   rydes.ProviderState
		amount, units, currency any
		eta                     any
	)
	switch a.Kind {
	case rydes.AnswerQuote:
		state, ev.Type = rydes.ProviderQuoted, rydes.EventQuote
		q := a.Quote()
		ev.Quote = &q
		u, err := a.Price.Units()
		if err != nil {
			return store.StageResult{}, err
		}
		amount, units, currency = a.Price.Amount, u, a.Price.Currency
		if a.ETASeconds != nil {
			eta = *a.ETASeconds
		}
	case rydes.AnswerDecline:
		state, ev.Type = rydes.ProviderDeclined, rydes.EventDecline
		ev.Reason = a.Reason
	default:
		return store.StageResult{}, fmt.Errorf("stage answer of kind %q", a.Kind)
	}
	res, err := tx.ExecContext(ctx, sqlStageRosterAnswer,
		state, micros(now), nullString(a.Reason), a.Kind, amount,
		units, currency, eta, nullMicros(a.ExpiresAt), nullMicros(a.ReceivedAt),
		a.RFQID, a.Provider)
	if err != nil {
		return store.StageResult{}, err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return store.StageResult{}, fmt.Errorf("RFQ %s: provider %s is not pending or failed (%d rows, %v)", a.RFQID, a.Provider, n, err)
	}
	next, events, closed, err := nextState(r, from == rydes.ProviderPending, ev, now)
	if err != nil {
		return store.StageResult{}, err
	}
	// The entry as the database now has it, for the batch's later answers
	// of this provider: a passed Decide, so it is valid, and the roster
	// keeps every field of it as is.
	br.roster[a.Provider] = rydes.Prior{
		Entry:  rydes.RosterEntry{Provider: a.Provider, State: state, ChangedAt: now, Reason: a.Reason},
		Answer: &a,
	}
	br.r, br.dirty = next, true
	if closed != nil {
		br.closed = closed
	}
	return store.StageResult{Decision: d, Events: events, Status: next.status}, nil
}

// advanceRFQ records ev, the event of a change to one roster entry of the
// open RFQ r, numbered r.seq+1. If the entry was pending (wasPending), it no
// longer counts as pending, and when that leaves no entry pending the RFQ
// completes with a complete event after ev. It updates the RFQ's counters
// and status, writes the events to the outbox, and returns them with the
// RFQ's status after them.
func advanceRFQ(ctx context.Context, tx *txn, r openRFQ, wasPending bool, ev rydes.Event, now time.Time) ([]rydes.Event, rydes.Status, error) {
	next, events, closed, err := nextState(r, wasPending, ev, now)
	if err != nil {
		return nil, "", err
	}
	res, err := tx.ExecContext(ctx, sqlAdvanceRFQ, r.pending-next.pending, next.seq, next.status, closed, r.id)
	if err != nil {
		return nil, "", err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return nil, "", fmt.Errorf("RFQ %s: not open (%d rows, %v)", r.id, n, err)
	}
	if err := insertEvents(ctx, tx, events...); err != nil {
		return nil, "", err
	}
	return events, next.status, nil
}

// nextState returns the open RFQ r after ev, the event of a change to one
// of its roster entries, numbered r.seq+1: one pending fewer if the entry
// was pending, and complete, with a complete event after ev and its closing
// time, when that leaves none pending.
func nextState(r openRFQ, wasPending bool, ev rydes.Event, now time.Time) (openRFQ, []rydes.Event, any, error) {
	if r.status != rydes.StatusOpen {
		return r, nil, nil, fmt.Errorf("RFQ %s: a change to a %s RFQ", r.id, r.status)
	}
	if ev.Seq != r.seq+1 {
		return r, nil, nil, fmt.Errorf("RFQ %s: event %d follows event %d", r.id, ev.Seq, r.seq)
	}
	next := r
	if wasPending {
		if next.pending < 1 {
			return r, nil, nil, fmt.Errorf("RFQ %s: provider %s leaves pending, but the RFQ counts %d pending", r.id, ev.Provider, next.pending)
		}
		next.pending--
	}
	events := []rydes.Event{ev}
	next.seq = ev.Seq
	var closed any
	if next.pending == 0 {
		next.status, next.seq, closed = rydes.StatusComplete, next.seq+1, micros(now)
		events = append(events, rydes.Event{
			RFQID: r.id, Seq: next.seq, Type: rydes.EventComplete, At: now,
			Customer: r.customer, Status: rydes.StatusComplete,
		})
	}
	return next, events, closed, nil
}

// rejection is the audit record of answer a, refused by d.
func rejection(a rydes.Answer, d rydes.Decision, payload []byte, now time.Time) rydes.Rejection {
	received := a.ReceivedAt
	if received.IsZero() {
		received = now
	}
	return rydes.Rejection{
		RFQID: a.RFQID, Provider: a.Provider, Reason: d.Reason, Message: d.Message,
		ReceivedAt: received, Payload: payload,
	}
}

// insertRejection records r, cut to the bounds of what is kept.
func insertRejection(ctx context.Context, tx *txn, r rydes.Rejection) error {
	payload := r.Payload
	if len(payload) > MaxRejectionPayload {
		payload = payload[:MaxRejectionPayload]
	}
	if len(payload) == 0 {
		payload = nil
	}
	_, err := tx.ExecContext(ctx, sqlInsertRejection,
		truncate(r.RFQID, maxRejectionID), truncate(r.Provider, maxRejectionID), truncate(string(r.Reason), maxRejectionID),
		truncate(r.Message, maxRejectionMessage), nullMicros(utcOrZero(r.ReceivedAt)), payload)
	return err
}

// utcOrZero is utc, keeping the zero time zero.
func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return utc(t)
}

// RecordRejections keeps refused answers that never became an Answer for
// audit. Payloads longer than MaxRejectionPayload are cut.
func (s *Store) RecordRejections(ctx context.Context, rs []rydes.Rejection) error {
	if len(rs) == 0 {
		return nil
	}
	return s.write(ctx, "record rejections", func(tx *txn) error {
		for _, r := range rs {
			if err := insertRejection(ctx, tx, r); err != nil {
				return err
			}
		}
		return nil
	})
}

// ListRejections returns the refused answers for p.RFQID, or all of them
// when it is empty, oldest first, at most p.Limit (0 for 100).
func (s *Store) ListRejections(ctx context.Context, p store.ListRejectionsParams) ([]rydes.Rejection, error) {
	out := []rydes.Rejection{}
	err := s.read(ctx, "list rejections", func(tx *txn) error {
		const cols = `SELECT rfq_id, provider, reason, message, received_at, payload FROM rejections`
		var (
			rows *sql.Rows
			err  error
		)
		if p.RFQID == "" {
			rows, err = tx.QueryContext(ctx, cols+` ORDER BY id LIMIT ?`, queryLimit(p.Limit))
		} else {
			rows, err = tx.QueryContext(ctx, cols+` WHERE rfq_id = ? ORDER BY id LIMIT ?`, p.RFQID, queryLimit(p.Limit))
		}
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				r        rydes.Rejection
				received sql.NullInt64
			)
			if err := rows.Scan(&r.RFQID, &r.Provider, &r.Reason, &r.Message, &received, &r.Payload); err != nil {
				return err
			}
			r.ReceivedAt = fromNullMicros(received)
			if len(r.Payload) == 0 {
				r.Payload = nil
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
