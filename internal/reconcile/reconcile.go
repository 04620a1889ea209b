// Package reconcile checks, periodically, the broker against the database,
// which is rydes's source of truth, and heals a broker that lost data.
//
// The outbox makes publication reliable up to the broker's acknowledgement;
// a broker can still lose acknowledged messages afterwards (a crash under
// lazy fsync, corrupt or lost files, a stream deleted by hand). A stream's
// sequence never goes down and its creation time never changes unless that
// happened, so the reconciler keeps, per stream, a mark in the database:
// the stream's creation time, the highest sequence it was seen at, and how
// many messages the server reports lost (MarkSetting, saved every round).
//
// What the broker acknowledged since the last round is kept by the outbox
// relay itself: it records each stream's highest acknowledged sequence in
// the transaction that deletes the published rows (store.AckedSetting), so
// that mark is exact even when rydes and the broker lose power together and
// the broker, not syncing every write, loses its tail: the stream's last
// sequence is then below the relay's mark. A round compares the stream with
// the highest of its own mark, the relay's mark (unless it was written for
// an older incarnation of the stream) and the acks this process's bus noted
// since the last round; after a heal, and when the stream was created
// again, it sets the relay's mark back to the stream's new last sequence.
// Run a round at start, before the relay publishes: publications to a
// stream that lost its tail move its sequence past the mark again.
//
// A round that finds the stream missing, re-created, behind its mark or
// with more messages lost re-publishes, as the outbox relay does (so what
// the broker still holds is not stored twice: a request is refused on a
// subject that holds it, events by their original message id):
//
//   - from RYDES_DISPATCH's loss, the request of every open RFQ to every
//     provider still pending in it (providers may see a request twice, as
//     after any redelivery; rydes keeps one answer);
//   - from RYDES_EVENTS's loss, the final event of every RFQ closed within
//     the stream's retention, which completion webhooks and watchers wait
//     for.
//
// Intermediate events (quotes, declines) a broker lost are not re-published:
// the store holds the quotes, and a watcher that misses some still gets the
// final event (see bus.WatchRFQ). Answers never rest on the broker: rydes
// replies to a provider's answer only once it is staged in the database.
// That is what lets the embedded broker run without an fsync on every
// write under the default durability: nothing it could lose is lost.
package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/bus"
	"github.com/wildrydes/rydes/internal/store"
)

// Broker is what the reconciler needs of the bus.
type Broker interface {
	// StreamState returns a stream's incarnation, last sequence and lost
	// messages.
	StreamState(ctx context.Context, name string) (bus.StreamState, error)
	// TakeAckedSeq returns the highest sequence a stream acknowledged a
	// publication of this process with since the last call.
	TakeAckedSeq(name string) uint64
	// EnsureStreams creates the streams that are missing.
	EnsureStreams(ctx context.Context) error
	// Publish publishes messages as the outbox relay does and returns the
	// highest sequence each stream acknowledged them with.
	Publish(ctx context.Context, msgs []store.OutboxMessage) (map[string]uint64, error)
}

// Config configures a Reconciler.
type Config struct {
	Store  store.Store
	Broker Broker
	// EnsureQueues re-creates every provider's queue (a lost dispatch
	// stream takes its consumers with it). Optional.
	EnsureQueues func(ctx context.Context) error
	// Interval is the time between two rounds. Default 1 minute.
	Interval time.Duration
	// EventsMaxAge is how far back final events are re-published: the
	// events stream's retention. Default bus.MaxAge.
	EventsMaxAge time.Duration
	Clock        clockwork.Clock // nil for the real clock
	Logger       *slog.Logger    // nil discards
}

// Reconciler runs reconciliation rounds.
type Reconciler struct {
	cfg Config
	log *slog.Logger
}

// New returns a Reconciler.
func New(cfg Config) (*Reconciler, error) {
	if cfg.Store == nil || cfg.Broker == nil {
		return nil, errors.New("reconcile: a store and a broker are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.EventsMaxAge <= 0 {
		cfg.EventsMaxAge = bus.MaxAge
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{cfg: cfg, log: cfg.Logger}, nil
}

// Report is what one round found and did.
type Report struct {
	// Losses describes, per stream that lost data, how it was detected.
	Losses map[string]string
	// Dispatches and Events count the messages re-published.
	Dispatches int
	Events     int
}

// Mark is what the database remembers of a stream between rounds.
type Mark struct {
	Created time.Time `json:"created"`
	LastSeq uint64    `json:"last_seq"`
	Lost    int       `json:"lost"`
}

// MarkSetting is the name of the setting that holds a stream's Mark.
func MarkSetting(stream string) string { return "reconcile.stream." + stream }

// streams are the streams reconciled, in order.
var streams = []string{bus.DispatchStream, bus.EventsStream}

// Run runs a round now and then every Interval until ctx is done, and
// returns nil. A failed round is logged and tried again at the next.
func (r *Reconciler) Run(ctx context.Context) error { return r.run(ctx, true) }

// Continue is Run for a caller that just ran a round with Once: its first
// round is one Interval from now.
func (r *Reconciler) Continue(ctx context.Context) error { return r.run(ctx, false) }

func (r *Reconciler) run(ctx context.Context, now bool) error {
	for {
		if now {
			if _, err := r.Once(ctx); err != nil && ctx.Err() == nil {
				r.log.Error("reconciliation round failed; trying again at the next", "err", err, "interval", r.cfg.Interval)
			}
		}
		now = true
		select {
		case <-ctx.Done():
			return nil
		case <-r.cfg.Clock.After(r.cfg.Interval):
		}
	}
}

// Once runs one round: it compares each stream with its mark, heals the
// streams that lost data, and moves the marks on.
func (r *Reconciler) Once(ctx context.Context) (Report, error) {
	rep := Report{Losses: map[string]string{}}
	var errs []error
	for _, name := range streams {
		if err := r.stream(ctx, name, &rep); err != nil {
			errs = append(errs, fmt.Errorf("reconcile %s: %w", name, err))
		}
	}
	return rep, errors.Join(errs...)
}

func (r *Reconciler) stream(ctx context.Context, name string, rep *Report) error {
	// Take the acks, in memory and the relay's, before reading the state:
	// every ack taken is then for a message the state must include.
	acked := r.cfg.Broker.TakeAckedSeq(name)
	relayAcked, err := r.relayAcked(ctx, name)
	if err != nil {
		return err
	}
	st, err := r.cfg.Broker.StreamState(ctx, name)
	if err != nil {
		return err
	}
	mark, had, err := r.loadMark(ctx, name)
	if err != nil {
		return err
	}
	sameIncarnation := had && mark.Created.Equal(st.Created)
	high := acked
	if sameIncarnation {
		high = max(high, mark.LastSeq)
	}
	// The relay's mark is compared only with the incarnation it may have
	// been written for: with no mark yet, the stream's (at worst one
	// needless heal if it was an older one's).
	if sameIncarnation || !had {
		high = max(high, relayAcked)
	}
	why := ""
	switch {
	case st.Missing:
		why = "the stream is missing"
	case had && !mark.Created.Equal(st.Created):
		why = fmt.Sprintf("the stream was created again (at %s, was %s)", st.Created.Format(time.RFC3339Nano), mark.Created.Format(time.RFC3339Nano))
	case high > st.LastSeq:
		why = fmt.Sprintf("its last sequence went back from %d to %d", high, st.LastSeq)
	case had && st.Lost > mark.Lost:
		why = fmt.Sprintf("the server reports %d messages lost (was %d)", st.Lost, mark.Lost)
	}
	if why != "" {
		rep.Losses[name] = why
		r.log.Warn("the broker lost data; re-publishing from the database", "stream", name, "detected", why)
		if err := r.heal(ctx, name, rep); err != nil {
			// Keep the old mark (and what was acked), and the relay's, so
			// that the next round detects the loss again.
			if had {
				mark.LastSeq = max(mark.LastSeq, acked)
			} else {
				mark = Mark{LastSeq: acked}
			}
			if perr := r.saveMark(ctx, name, mark); perr != nil {
				err = errors.Join(err, perr)
			}
			return fmt.Errorf("heal: %w", err)
		}
		if st, err = r.cfg.Broker.StreamState(ctx, name); err != nil {
			return err
		}
		// The relay's mark counts sequences of the stream as it was (an
		// older incarnation, or a tail the broker lost): set it back to
		// where the healed stream is, or it would be above the stream's
		// sequence, a loss, at every round until new publications caught
		// up. The relay may race with this: recording after it an ack it
		// got before the heal can at worst make the next round heal once
		// more, which is harmless (re-published messages carry their
		// original ids), and that round sets the mark back again; an ack
		// of the healed stream recorded just before it is lowered to
		// st.LastSeq until the relay's next record (the bus's acks in
		// memory still count it at the next round).
		if err := r.cfg.Store.PutSetting(ctx, store.AckedSetting(name), strconv.FormatUint(st.LastSeq, 10)); err != nil {
			return fmt.Errorf("reset the relay's acked mark: %w", err)
		}
	}
	return r.saveMark(ctx, name, Mark{Created: st.Created, LastSeq: st.LastSeq, Lost: st.Lost})
}

// relayAcked returns the highest sequence the outbox relay recorded as
// acknowledged by the stream name (store.AckedSetting), 0 if none or if the
// value does not read.
func (r *Reconciler) relayAcked(ctx context.Context, name string) (uint64, error) {
	v, ok, err := r.cfg.Store.GetSetting(ctx, store.AckedSetting(name))
	if err != nil {
		return 0, fmt.Errorf("read the relay's acked mark: %w", err)
	}
	if !ok {
		return 0, nil
	}
	seq, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		r.log.Warn("unreadable acked mark of the outbox relay; counting it as 0", "stream", name, "value", v)
		return 0, nil
	}
	return seq, nil
}

// heal re-publishes what the stream name should hold.
func (r *Reconciler) heal(ctx context.Context, name string, rep *Report) error {
	if err := r.cfg.Broker.EnsureStreams(ctx); err != nil {
		return err
	}
	switch name {
	case bus.DispatchStream:
		if r.cfg.EnsureQueues != nil {
			if err := r.cfg.EnsureQueues(ctx); err != nil {
				return fmt.Errorf("ensure provider queues: %w", err)
			}
		}
		n, err := r.republish(ctx, store.ListRFQsParams{Open: true}, dispatchesOf(r.cfg.Clock.Now()))
		rep.Dispatches += n
		return err
	case bus.EventsStream:
		since := r.cfg.Clock.Now().Add(-r.cfg.EventsMaxAge)
		n, err := r.republish(ctx, store.ListRFQsParams{ClosedSince: since}, finalEventOf)
		rep.Events += n
		return err
	}
	return nil
}

// pageSize is how many RFQs a heal reads and re-publishes at a time.
const pageSize = 200

// republish pages through the RFQs p lists and publishes what msgs makes of
// each page. It returns how many messages it published.
func (r *Reconciler) republish(ctx context.Context, p store.ListRFQsParams, msgs func(rydes.RFQ) []store.OutboxMessage) (int, error) {
	p.Limit = pageSize
	total := 0
	for {
		rfqs, err := r.cfg.Store.ListRFQs(ctx, p)
		if err != nil {
			return total, fmt.Errorf("list rfqs: %w", err)
		}
		var batch []store.OutboxMessage
		for _, rfq := range rfqs {
			batch = append(batch, msgs(rfq)...)
		}
		if len(batch) > 0 {
			if _, err := r.cfg.Broker.Publish(ctx, batch); err != nil {
				return total, err
			}
			total += len(batch)
		}
		if len(rfqs) < p.Limit {
			return total, nil
		}
		p.AfterID = rfqs[len(rfqs)-1].ID
	}
}

// dispatchesOf returns a function making the requests of an open RFQ to the
// providers still pending in it, unless its deadline passed at now.
func dispatchesOf(now time.Time) func(rydes.RFQ) []store.OutboxMessage {
	return func(rfq rydes.RFQ) []store.OutboxMessage {
		if !now.Before(rfq.Deadline) {
			return nil // the deadline loop expires it
		}
		var out []store.OutboxMessage
		for _, e := range rfq.Providers {
			if e.State != rydes.ProviderPending {
				continue
			}
			out = append(out, store.OutboxMessage{
				Kind: store.OutboxDispatch, CreatedAt: rfq.CreatedAt,
				Dispatch: &store.Dispatch{Providers: []string{e.Provider}, Request: rfq.ProviderRequest()},
			})
		}
		return out
	}
}

// finalEventOf returns the final event of a final RFQ as the store emitted
// it: its last event, at its closing time.
func finalEventOf(rfq rydes.RFQ) []store.OutboxMessage {
	ev, ok := rfq.FinalEvent()
	if !ok {
		return nil
	}
	return []store.OutboxMessage{{Kind: store.OutboxEvent, CreatedAt: rfq.ClosedAt, Events: []rydes.Event{ev}}}
}

func (r *Reconciler) loadMark(ctx context.Context, name string) (Mark, bool, error) {
	v, ok, err := r.cfg.Store.GetSetting(ctx, MarkSetting(name))
	if err != nil || !ok {
		return Mark{}, false, err
	}
	var m Mark
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		// A mark that does not read is no mark: the next one replaces it.
		r.log.Warn("unreadable reconciliation mark; starting over", "stream", name, "err", err)
		return Mark{}, false, nil
	}
	return m, true, nil
}

func (r *Reconciler) saveMark(ctx context.Context, name string, m Mark) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode mark: %w", err)
	}
	if err := r.cfg.Store.PutSetting(ctx, MarkSetting(name), string(b)); err != nil {
		return fmt.Errorf("save mark: %w", err)
	}
	return nil
}
