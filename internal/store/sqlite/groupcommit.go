package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Group commit. SQLite has one writer and, with synchronous=FULL, an fsync
// per commit, so one transaction per write caps the store at the disk's
// fsync rate. Instead, writes that arrive while a transaction commits wait,
// and the next transaction runs all of them, each in a savepoint of its
// own: a write that fails is rolled back to its savepoint alone, the others
// commit together, with one fsync. Each caller returns once its write is
// committed (or failed), so a commit still means durable, as before; alone,
// a write commits at once.

// maxGroup is the most writes one transaction takes.
const maxGroup = 128

// SlowCommit is how long a COMMIT takes to count in CommitStats.SlowCommits:
// far above an fsync of a working disk (0.1 to a few ms), the mark of a
// disk that stalled, which every write waiting behind it waits out. Slow
// commits are logged, at most once per slowCommitLogEvery.
const SlowCommit = 50 * time.Millisecond

// slowCommitLogEvery spaces the warnings about slow commits: a disk that
// stays slow is said once in a while, with how many commits were slow.
const slowCommitLogEvery = 10 * time.Second

// errClosed is returned by a write after Close.
var errClosed = errors.New("sqlite store closed")

// pendingWrite is one write waiting for its group.
type pendingWrite struct {
	ctx  context.Context
	op   string
	fn   func(tx *txn) error
	err  error
	done chan struct{}
}

// committer runs groups of writes on the store's one writing connection.
type committer struct {
	s       *Store
	queue   chan *pendingWrite
	quit    chan struct{}
	stopped chan struct{}
	once    sync.Once

	commits     atomic.Int64 // transactions committed
	writes      atomic.Int64 // writes committed in them
	commitNanos atomic.Int64 // time spent in their COMMITs
	slow        atomic.Int64 // COMMITs that took slowCommit or longer
	// slowCommit is SlowCommit; tests lower it.
	slowCommit time.Duration
	// Slow commits not yet logged and when the last warning was; the
	// committer's goroutine alone uses them. now is time.Now but in tests.
	slowUnlogged int
	slowLoggedAt time.Time
	now          func() time.Time
}

// CommitStats counts what the store committed since it opened.
type CommitStats struct {
	// Commits is the transactions committed: with synchronous=FULL, one
	// fsync each.
	Commits int64
	// Writes is the writes (CreateRFQ, StageAnswers, DeleteOutbox...)
	// those transactions committed: Writes/Commits is the group commit's
	// average group.
	Writes int64
	// CommitTime is the time spent in their COMMIT statements: writing the
	// log and, with synchronous=FULL, its fsync.
	CommitTime time.Duration
	// SlowCommits counts the COMMITs that took SlowCommit or longer.
	SlowCommits int64
}

// Sub returns what was committed between before and c.
func (c CommitStats) Sub(before CommitStats) CommitStats {
	return CommitStats{
		Commits: c.Commits - before.Commits, Writes: c.Writes - before.Writes,
		CommitTime: c.CommitTime - before.CommitTime, SlowCommits: c.SlowCommits - before.SlowCommits,
	}
}

// CommitStats returns what the store committed since it opened.
func (s *Store) CommitStats() CommitStats {
	c := s.commits
	return CommitStats{
		Commits: c.commits.Load(), Writes: c.writes.Load(),
		CommitTime: time.Duration(c.commitNanos.Load()), SlowCommits: c.slow.Load(),
	}
}

func newCommitter(s *Store) *committer {
	c := &committer{
		s:       s,
		queue:   make(chan *pendingWrite, maxGroup),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),

		slowCommit: SlowCommit,
		now:        time.Now,
	}
	go c.run()
	return c
}

// stop lets the writes already queued commit, refuses later ones with
// errClosed, and waits until the committer is done.
func (c *committer) stop() {
	c.once.Do(func() { close(c.quit) })
	<-c.stopped
}

// write queues fn and waits for its group to commit.
func (c *committer) write(ctx context.Context, op string, fn func(tx *txn) error) error {
	w := &pendingWrite{ctx: ctx, op: op, fn: fn, done: make(chan struct{})}
	select {
	case <-c.quit:
		return fmt.Errorf("%s: %w", op, errClosed)
	default:
	}
	select {
	case c.queue <- w:
	case <-c.quit:
		return fmt.Errorf("%s: %w", op, errClosed)
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	// Once queued, the write runs or is refused by the committer; wait for
	// it either way, so that fn never runs after write returned.
	select {
	case <-w.done:
		return w.err
	case <-c.stopped:
		select {
		case <-w.done:
			return w.err
		default:
			return fmt.Errorf("%s: %w", op, errClosed)
		}
	}
}

func (c *committer) run() {
	defer close(c.stopped)
	group := make([]*pendingWrite, 0, maxGroup)
	for {
		select {
		case w := <-c.queue:
			group = c.fill(append(group[:0], w))
			c.commit(group)
		case <-c.quit:
			for {
				group = c.fill(group[:0])
				if len(group) == 0 {
					return
				}
				c.commit(group)
			}
		}
	}
}

// fill adds what already waits to group, up to maxGroup, without waiting.
func (c *committer) fill(group []*pendingWrite) []*pendingWrite {
	for len(group) < maxGroup {
		select {
		case w := <-c.queue:
			group = append(group, w)
		default:
			return group
		}
	}
	return group
}

// commit runs group in one transaction, each write in a savepoint when
// there are several, and tells each its outcome.
func (c *committer) commit(group []*pendingWrite) {
	defer func() {
		for _, w := range group {
			close(w.done)
		}
	}()
	// The transaction outlives any one caller's context: a caller that
	// gives up only loses its own write.
	tx, err := c.s.w.BeginTx(context.Background(), nil)
	if err != nil {
		for _, w := range group {
			w.err = fmt.Errorf("%s: begin: %w", w.op, err)
		}
		return
	}
	listener := c.s.outboxListener.Load()
	t := &txn{tx: tx, stmts: c.s.ws, uncancelable: true, collect: listener != nil}
	savepoints := len(group) > 1
	committed := make([]*pendingWrite, 0, len(group))
	for _, w := range group {
		if err := w.ctx.Err(); err != nil {
			w.err = fmt.Errorf("%s: %w", w.op, err)
			continue
		}
		if !savepoints {
			if err := w.fn(t); err != nil {
				w.err = wrap(w.op, err)
				_ = tx.Rollback()
				return
			}
			committed = append(committed, w)
			continue
		}
		if _, err := tx.ExecContext(context.Background(), "SAVEPOINT w"); err != nil {
			w.err = fmt.Errorf("%s: savepoint: %w", w.op, err)
			continue
		}
		mark := len(t.outbox)
		if err := w.fn(t); err != nil {
			w.err = wrap(w.op, err)
			t.outbox = t.outbox[:mark] // rolled back with the write
			_, rerr := tx.ExecContext(context.Background(), "ROLLBACK TO w")
			if rerr == nil {
				_, rerr = tx.ExecContext(context.Background(), "RELEASE w")
			}
			if rerr != nil {
				// The transaction is in an unknown state: give up on all.
				_ = tx.Rollback()
				failRest(group, "roll back a failed write of the group", rerr)
				return
			}
			continue
		}
		if _, err := tx.ExecContext(context.Background(), "RELEASE w"); err != nil {
			_ = tx.Rollback()
			failRest(group, "release savepoint", err)
			return
		}
		committed = append(committed, w)
	}
	if len(committed) == 0 {
		_ = tx.Rollback()
		return
	}
	started := c.now()
	if err := tx.Commit(); err != nil {
		for _, w := range committed {
			w.err = fmt.Errorf("%s: commit: %w", w.op, err)
		}
		return
	}
	took := c.now().Sub(started)
	c.commitNanos.Add(int64(took))
	if took >= c.slowCommit {
		c.slow.Add(1)
		c.slowUnlogged++
		if now := c.now(); c.slowLoggedAt.IsZero() || now.Sub(c.slowLoggedAt) >= slowCommitLogEvery {
			c.s.logger.Warn("store: a commit was slow; the writes behind it waited (a disk that stalled?)",
				"took", took, "slow_commits", c.slowUnlogged, "since", c.sinceLogged(now))
			c.slowUnlogged, c.slowLoggedAt = 0, now
		}
	}
	c.commits.Add(1)
	c.writes.Add(int64(len(committed)))
	if listener != nil && len(t.outbox) > 0 {
		(*listener)(t.outbox)
	}
}

// sinceLogged is how long the slow commits counted in a warning took to
// happen: since the last warning, or 0 for the first.
func (c *committer) sinceLogged(now time.Time) time.Duration {
	if c.slowLoggedAt.IsZero() {
		return 0
	}
	return now.Sub(c.slowLoggedAt).Round(time.Second)
}

// failRest gives the writes of group that have no outcome yet err, as what
// happened while doing what.
func failRest(group []*pendingWrite, what string, err error) {
	for _, w := range group {
		if w.err == nil {
			w.err = fmt.Errorf("%s: %s: %w", w.op, what, err)
		}
	}
}
