package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/wildrydes/rydes/internal/store"
)

// The outbox relay of a running engine (Run) is pipelined (FlushOutbox
// runs the same relay with the delete of each batch in line): it reads a
// batch, publishes it, hands the deletion of its rows to a background
// deleter and reads on past it (by id) without waiting for that commit.
// The deleter lets the rows wait a little (Config.OutboxDeleteDelay) and
// merges what waits into one DeleteOutbox call, which records the
// streams' acknowledged sequences with the delete, as FlushOutbox does.
// Nothing is lost if a delete fails or never happens: the rows stay, the
// relay reads from the start again and re-publishes them, and the broker
// drops what it still holds (see bus.Publish).

// Publishing from memory. A store that feeds the relay (store.OutboxFeed)
// hands it the messages each commit wrote to the outbox; the relay
// publishes those without reading them back, and reads the outbox table
// only at start, at each sweep, after a failure, and when it fell so far
// behind that the store's feed overflowed. The table stays the truth: what
// memory missed, a read finds. A message published and not yet deleted is
// in flight, and neither way publishes it again.

// freshOutboxBatches bounds the messages the feed holds, in relay batches.
const freshOutboxBatches = 4

// freshOutbox holds messages committed to the outbox and not yet taken by
// the relay.
type freshOutbox struct {
	mu      sync.Mutex
	max     int
	msgs    []store.OutboxMessage
	dropped bool // some were dropped: the table has them
}

// add keeps msgs unless that would exceed max: then it drops them, and
// the relay reads the table next.
func (f *freshOutbox) add(msgs []store.OutboxMessage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.msgs)+len(msgs) > f.max {
		f.dropped = true
		return
	}
	f.msgs = append(f.msgs, msgs...)
}

// take returns what is held, and whether some were dropped since the last
// take.
func (f *freshOutbox) take() ([]store.OutboxMessage, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	msgs, dropped := f.msgs, f.dropped
	f.msgs, f.dropped = nil, false
	return msgs, dropped
}

// relayResetEvery is how often, at most, the relay reads the outbox from
// the start while deletes are still in flight (it does at every sweep when
// none is): so that a row below the cursor that was never published (an
// id committed after a higher one, as a PostgreSQL sequence allows) is not
// left behind for long.
const relayResetEvery = 10 * time.Second

// relay is the pipelined outbox relay's state.
type relay struct {
	e *Engine
	// syncDeletes deletes each batch before the next is read, instead of
	// leaving it to runDeleter: FlushOutbox.
	syncDeletes bool

	mu        sync.Mutex
	after     int64 // the highest id published since the last reset
	lastReset time.Time
	pending   store.DeleteOutboxParams // published, to delete
	deleting  bool                     // a delete is in flight
	failed    bool                     // a delete failed: read from the start
	read      bool                     // the table must be read (see round)
	started   bool                     // a round read the table already
	inflight  map[int64]struct{}       // published, not yet deleted
	wake      chan struct{}
}

func newRelay(e *Engine) *relay {
	return &relay{e: e, wake: make(chan struct{}, 1), read: true, inflight: map[int64]struct{}{}}
}

// unpublished returns the messages of msgs not in flight: msgs itself if
// none is (the usual case), a copy without them otherwise.
func (r *relay) unpublished(msgs []store.OutboxMessage) []store.OutboxMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	first := slices.IndexFunc(msgs, func(m store.OutboxMessage) bool {
		_, ok := r.inflight[m.ID]
		return ok
	})
	if first < 0 {
		return msgs
	}
	out := slices.Clone(msgs[:first])
	for _, m := range msgs[first+1:] {
		if _, ok := r.inflight[m.ID]; !ok {
			out = append(out, m)
		}
	}
	return out
}

// publish publishes msgs and queues their deletion; they are in flight
// until deleted.
func (r *relay) publish(ctx context.Context, msgs []store.OutboxMessage) error {
	acked, err := r.e.pub.Publish(ctx, msgs)
	if err != nil {
		// Read from the start next time: what failed is below the
		// cursor now, or only in the table.
		r.mu.Lock()
		r.failed = true
		r.mu.Unlock()
		return fmt.Errorf("publish %d outbox messages: %w", len(msgs), err)
	}
	r.mu.Lock()
	for _, m := range msgs {
		r.pending.IDs = append(r.pending.IDs, m.ID)
		r.inflight[m.ID] = struct{}{}
	}
	if len(acked) > 0 && r.pending.Acked == nil {
		r.pending.Acked = make(map[string]uint64, len(acked))
	}
	for stream, seq := range acked {
		r.pending.Acked[stream] = max(r.pending.Acked[stream], seq)
	}
	r.mu.Unlock()
	if r.syncDeletes {
		return r.deleteQueued(ctx)
	}
	kick(r.wake)
	return nil
}

// publishFresh publishes what the store fed since the last round, in
// batches, and reports whether some was dropped (the table has it).
func (r *relay) publishFresh(ctx context.Context) (int, bool, error) {
	msgs, dropped := r.e.fresh.take()
	msgs = r.unpublished(msgs)
	total := 0
	for len(msgs) > 0 {
		n := min(len(msgs), r.e.outboxBatch)
		if err := r.publish(ctx, msgs[:n]); err != nil {
			return total, dropped, err
		}
		total += n
		msgs = msgs[n:]
	}
	return total, dropped, nil
}

// round publishes what the store fed from memory, then, if it must,
// what the outbox table holds past the cursor, batch by batch, and queues
// the rows' deletion. It reads the table when the store does not feed the
// relay, at its first round, after a failure, when the feed dropped
// messages, and at a sweep; a sweep reads from the start if no delete is
// in flight (or the last such read is long ago).
func (r *relay) round(ctx context.Context, sweep bool) (int, error) {
	total := 0
	dropped := false
	switch {
	case r.e.fresh == nil || r.syncDeletes:
	case !r.started:
		// The first round reads the whole table, in id order, and it
		// holds what the store fed before the relay ran (a start-up
		// write): published first, that would go ahead of older rows.
		r.e.fresh.take()
	default:
		n, d, err := r.publishFresh(ctx)
		total, dropped = n, d
		if err != nil {
			return total, err
		}
	}
	r.started = true
	now := r.e.clock.Now()
	r.mu.Lock()
	if !(r.e.fresh == nil || r.syncDeletes || sweep || dropped || r.read || r.failed) {
		r.mu.Unlock()
		return total, nil
	}
	busy := r.deleting || len(r.pending.IDs) > 0
	if r.failed || (sweep && (!busy || now.Sub(r.lastReset) >= relayResetEvery)) {
		r.after, r.failed, r.lastReset = 0, false, now
	}
	r.read = true // until a read got to the end
	after := r.after
	r.mu.Unlock()

	for {
		msgs, err := r.e.store.PendingOutbox(ctx, store.PendingOutboxParams{AfterID: after, Limit: r.e.outboxBatch})
		if err != nil {
			return total, fmt.Errorf("read outbox: %w", err)
		}
		if len(msgs) == 0 {
			break
		}
		read := len(msgs)
		after = msgs[len(msgs)-1].ID
		if msgs = r.unpublished(msgs); len(msgs) > 0 {
			if err := r.publish(ctx, msgs); err != nil {
				return total, err
			}
		}
		r.mu.Lock()
		r.after = max(r.after, after)
		r.mu.Unlock()
		total += len(msgs)
		if read < r.e.outboxBatch {
			break
		}
	}
	r.mu.Lock()
	r.read = false
	r.mu.Unlock()
	return total, nil
}

// runDeleter deletes what round queued, merging what waits into one
// DeleteOutbox call, until ctx ends; then it deletes what is still queued
// and returns.
func (r *relay) runDeleter(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			r.deleteQueued(context.WithoutCancel(ctx))
			return
		case <-r.wake:
		}
		if !r.lingerForDeletes(ctx) {
			r.deleteQueued(context.WithoutCancel(ctx))
			return
		}
		if err := r.deleteQueued(ctx); err != nil && ctx.Err() == nil {
			r.e.log.Warn("outbox relay: delete published messages; they are published again", "err", err)
			select {
			case <-ctx.Done():
			case <-r.e.clock.After(r.e.retryBackoff):
			}
			r.e.KickOutbox()
		}
	}
}

// lingerForDeletes lets what round queued for deletion wait up to the
// engine's delete delay, or until a batch waits, so that one commit
// deletes what many rounds published. It returns false if ctx ended.
func (r *relay) lingerForDeletes(ctx context.Context) bool {
	if r.e.deleteDelay <= 0 {
		return true
	}
	t := r.e.clock.NewTimer(r.e.deleteDelay)
	defer t.Stop()
	for {
		r.mu.Lock()
		queued := len(r.pending.IDs)
		r.mu.Unlock()
		if queued >= r.e.outboxBatch {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.Chan():
			return true
		case <-r.wake:
		}
	}
}

// deleteQueued deletes what is queued, in one call.
func (r *relay) deleteQueued(ctx context.Context) error {
	r.mu.Lock()
	p := r.pending
	r.pending = store.DeleteOutboxParams{}
	r.deleting = len(p.IDs) > 0
	r.mu.Unlock()
	if len(p.IDs) == 0 {
		return nil
	}
	err := r.e.store.DeleteOutbox(ctx, p)
	r.mu.Lock()
	r.deleting = false
	for _, id := range p.IDs {
		delete(r.inflight, id)
	}
	if err != nil {
		// The rows stay; read from the start and publish them again.
		r.failed = true
	}
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("delete %d published outbox messages: %w", len(p.IDs), err)
	}
	return nil
}
