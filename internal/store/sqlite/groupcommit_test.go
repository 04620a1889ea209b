package sqlite

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes/internal/rydestest"
)

// putSetting is a write that records its transaction in txs.
func putSetting(name string, txs chan<- *txn, fail error) func(tx *txn) error {
	return func(tx *txn) error {
		if txs != nil {
			txs <- tx
		}
		if _, err := tx.ExecContext(context.Background(), "INSERT INTO settings (name, value) VALUES (?, 'x')", name); err != nil {
			return err
		}
		return fail
	}
}

// holdWriter starts a write that blocks until release is closed, and
// returns once it runs: writes queued meanwhile form the next group.
func holdWriter(t *testing.T, s *Store) (release chan struct{}, done <-chan error) {
	t.Helper()
	entered := make(chan struct{})
	release = make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- s.write(context.Background(), "hold", func(*txn) error {
			close(entered)
			<-release
			return nil
		})
	}()
	<-entered
	return release, errc
}

// waitQueued waits until n writes wait for the committer.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	rydestest.WaitFor(t, "writes to queue", func() bool { return len(s.commits.queue) == n })
}

func settingExists(t *testing.T, s *Store, name string) bool {
	t.Helper()
	_, ok, err := s.GetSetting(rydestest.Context(t), name)
	require.NoError(t, err)
	return ok
}

// Writes that arrive while a transaction commits run together in the next
// one; a write that fails is rolled back alone.
func TestGroupCommit(t *testing.T) {
	s := newTestStore(t)
	before := s.CommitStats()
	release, held := holdWriter(t, s)

	txs := make(chan *txn, 10)
	errs := make(map[string]chan error)
	var wg sync.WaitGroup
	for _, name := range []string{"a", "b", "c"} {
		var fail error
		if name == "b" {
			fail = errors.New("b changed its mind")
		}
		errc := make(chan error, 1)
		errs[name] = errc
		wg.Go(func() { errc <- s.write(context.Background(), "put "+name, putSetting(name, txs, fail)) })
		waitQueued(t, s, len(errs))
	}
	close(release)
	require.NoError(t, <-held)
	wg.Wait()

	require.NoError(t, <-errs["a"])
	require.ErrorContains(t, <-errs["b"], "b changed its mind")
	require.NoError(t, <-errs["c"])
	close(txs)
	var seen []*txn
	for tx := range txs {
		seen = append(seen, tx)
	}
	require.Len(t, seen, 3)
	require.Same(t, seen[0], seen[1], "one transaction for the group")
	require.Same(t, seen[0], seen[2], "one transaction for the group")
	require.True(t, settingExists(t, s, "a"))
	require.False(t, settingExists(t, s, "b"), "the failed write is rolled back")
	require.True(t, settingExists(t, s, "c"))
	got := s.CommitStats().Sub(before)
	require.Equal(t, CommitStats{Commits: 2, Writes: 3}, CommitStats{Commits: got.Commits, Writes: got.Writes},
		"the held write alone, then a and c together; b rolled back")
	require.Positive(t, got.CommitTime, "the COMMITs are timed")
}

// Each COMMIT is timed, and one that takes SlowCommit or longer counted
// slow; a rolled-back group commits nothing and counts nothing.
func TestGroupCommitCountsSlowCommits(t *testing.T) {
	ctx := rydestest.Context(t)
	s := newTestStore(t)
	before := s.CommitStats()
	require.NoError(t, s.write(ctx, "fast", putSetting("fast", nil, nil)))
	got := s.CommitStats().Sub(before)
	require.EqualValues(t, 1, got.Commits)
	require.Positive(t, got.CommitTime)
	require.Zero(t, got.SlowCommits, "a COMMIT under %v is not slow", SlowCommit)

	// Every COMMIT is slow past a threshold of zero.
	s.commits.slowCommit = 0
	before = s.CommitStats()
	require.NoError(t, s.write(ctx, "slow", putSetting("slow", nil, nil)))
	require.Error(t, s.write(ctx, "failed", putSetting("failed", nil, errors.New("no"))))
	got = s.CommitStats().Sub(before)
	require.EqualValues(t, 1, got.Commits, "the failed write committed nothing")
	require.EqualValues(t, 1, got.SlowCommits)
}

// A caller that gives up while its write waits gets its context's error,
// and its write does not happen; the others are unaffected.
func TestGroupCommitCallerGivesUp(t *testing.T) {
	s := newTestStore(t)
	release, held := holdWriter(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() { gaveUp <- s.write(ctx, "put gone", putSetting("gone", nil, nil)) }()
	waitQueued(t, s, 1)
	kept := make(chan error, 1)
	go func() { kept <- s.write(context.Background(), "put kept", putSetting("kept", nil, nil)) }()
	waitQueued(t, s, 2)
	cancel()
	close(release)
	require.NoError(t, <-held)
	require.ErrorIs(t, <-gaveUp, context.Canceled)
	require.NoError(t, <-kept)
	require.False(t, settingExists(t, s, "gone"))
	require.True(t, settingExists(t, s, "kept"))
}

// A caller whose context ends while its statement runs does not roll back
// the group's transaction: statements of a write ignore cancellation.
func TestGroupCommitStatementsIgnoreCancellation(t *testing.T) {
	s := newTestStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	err := s.write(ctx, "put", func(tx *txn) error {
		cancel()
		_, err := tx.ExecContext(ctx, "INSERT INTO settings (name, value) VALUES ('late', 'x')")
		return err
	})
	require.NoError(t, err)
	require.True(t, settingExists(t, s, "late"))
}

func TestGroupCommitAfterClose(t *testing.T) {
	s := openAt(t, t.TempDir()+"/rydes.db")
	require.NoError(t, s.Close())
	done := make(chan error, 1)
	go func() { done <- s.write(context.Background(), "put", putSetting("x", nil, nil)) }()
	select {
	case err := <-done:
		require.ErrorIs(t, err, errClosed)
	case <-time.After(rydestest.WaitTimeout):
		t.Fatal("write after Close did not return")
	}
}

// A slow commit is logged, and a disk that stays slow is logged once per
// slowCommitLogEvery, with the count of slow commits since.
func TestGroupCommitLogsSlowCommits(t *testing.T) {
	ctx := rydestest.Context(t)
	var logs rydestest.SyncBuffer
	s, err := Open(ctx, filepath.Join(t.TempDir(), "rydes.db"), slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	// A clock that moves 100 ms at each reading: every COMMIT takes 100 ms.
	clock := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	s.commits.now = func() time.Time {
		clock = clock.Add(100 * time.Millisecond)
		return clock
	}
	write := func(name string) {
		t.Helper()
		require.NoError(t, s.write(ctx, name, putSetting(name, nil, nil)))
	}
	warnings := func() int { return strings.Count(logs.String(), "a commit was slow") }

	write("a")
	require.Equal(t, 1, warnings(), "the first slow commit is logged: %s", logs.String())
	require.Contains(t, logs.String(), "took=100ms")
	write("b")
	write("c")
	require.Equal(t, 1, warnings(), "within %v of the warning, slow commits are counted, not logged", slowCommitLogEvery)

	clock = clock.Add(slowCommitLogEvery)
	write("d")
	require.Equal(t, 2, warnings())
	require.Contains(t, logs.String(), "slow_commits=3", "b, c and d")
	require.EqualValues(t, 4, s.CommitStats().SlowCommits)
}
