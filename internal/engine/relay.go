package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/wildrydes/rydes/internal/store"
)

// The outbox relay of a running engine (Run) is pipelined (FlushOutbox
// runs the same relay with the delete of each batch in line): it reads a
// batch, publishes it, hands the deletion of its rows to a background
// deleter and reads on past it (by id) without waiting for that commit.
// The deleter merges what waits into one DeleteOutbox call, which records
// the streams' acknowledged sequences with the delete, as FlushOutbox does.
// Nothing is lost if a delete fails or never happens: the rows stay, the
// relay reads from the start again and re-publishes them, and the broker
// drops what it already has (Nats-Msg-Id).

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
	wake      chan struct{}
}

func newRelay(e *Engine) *relay {
	return &relay{e: e, wake: make(chan struct{}, 1)}
}

// round publishes what the outbox holds past the cursor, batch by batch,
// and queues the rows' deletion. sweep reads from the start if no delete
// is in flight (or the last such read is long ago).
func (r *relay) round(ctx context.Context, sweep bool) (int, error) {
	now := r.e.clock.Now()
	r.mu.Lock()
	busy := r.deleting || len(r.pending.IDs) > 0
	if r.failed || (sweep && (!busy || now.Sub(r.lastReset) >= relayResetEvery)) {
		r.after, r.failed, r.lastReset = 0, false, now
	}
	after := r.after
	r.mu.Unlock()

	total := 0
	for {
		msgs, err := r.e.store.PendingOutbox(ctx, store.PendingOutboxParams{AfterID: after, Limit: r.e.outboxBatch})
		if err != nil {
			return total, fmt.Errorf("read outbox: %w", err)
		}
		if len(msgs) == 0 {
			return total, nil
		}
		acked, err := r.e.pub.Publish(ctx, msgs)
		if err != nil {
			// Read from the start next time: what failed is below the
			// cursor now.
			r.mu.Lock()
			r.failed = true
			r.mu.Unlock()
			return total, fmt.Errorf("publish %d outbox messages: %w", len(msgs), err)
		}
		after = msgs[len(msgs)-1].ID
		r.mu.Lock()
		for _, m := range msgs {
			r.pending.IDs = append(r.pending.IDs, m.ID)
		}
		if len(acked) > 0 && r.pending.Acked == nil {
			r.pending.Acked = make(map[string]uint64, len(acked))
		}
		for stream, seq := range acked {
			r.pending.Acked[stream] = max(r.pending.Acked[stream], seq)
		}
		r.after = max(r.after, after)
		r.mu.Unlock()
		if r.syncDeletes {
			if err := r.deleteQueued(ctx); err != nil {
				return total, err
			}
		} else {
			kick(r.wake)
		}
		total += len(msgs)
		if len(msgs) < r.e.outboxBatch {
			return total, nil
		}
	}
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
