package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes/internal/rydestest"
)

// testConfig is a short run against an in-process rydes on a temporary
// data dir. These tests check behaviour, not speed: with no warmup, every
// request is started in the window, and the drain waits for all of them,
// so each created request must have completed, however slow the machine.
func testConfig(t *testing.T) Config {
	t.Helper()
	return Config{
		Dir:               t.TempDir(),
		AllowTmpfs:        true,
		Providers:         3,
		Concurrency:       4,
		Duration:          2 * time.Second,
		Warmup:            0,
		SSESample:         0.5,
		ReferenceDuration: 200 * time.Millisecond,
		Logger:            rydestest.Logger(t),
	}
}

func TestRunLoadClosedLoopWithReference(t *testing.T) {
	cfg := testConfig(t)
	cfg.Reference = true
	var progress, heap bytes.Buffer
	cfg.Progress = &progress
	cfg.HeapProfile = &heap
	rep, err := Run(rydestest.Context(t), cfg)
	require.NoError(t, err)

	require.Positive(t, heap.Len(), "the heap profile is written at the end")
	require.Equal(t, []byte{0x1f, 0x8b}, heap.Bytes()[:2], "a profile: gzipped protocol buffers")
	require.Equal(t, "in-process", rep.Target)
	require.Contains(t, rep.Machine, "GOGC ", "the GC's settings move the figures")
	require.Equal(t, "closed", rep.Loop)
	require.Positive(t, rep.Created)
	require.Zero(t, rep.Errors.Total, "errors: %+v", rep.Errors)
	require.Equal(t, rep.Created, rep.Latency.CreateComplete.Count, "every request started in the window completed")
	require.Positive(t, rep.Latency.AnswerStaged.Count)
	require.GreaterOrEqual(t, rep.Latency.CreateComplete.P99, rep.Latency.CreateComplete.P50)
	require.Positive(t, rep.Process.CPUSeconds)
	require.Positive(t, rep.Process.PeakRSSMiB)
	require.NotNil(t, rep.Store, "the in-process store's commits")
	require.Positive(t, rep.Store.Commits)
	require.GreaterOrEqual(t, rep.Store.Writes, rep.Store.Commits)
	require.Positive(t, rep.Store.CommitsPerRequest)
	require.Positive(t, rep.Store.CommitMeanMS, "the COMMITs are timed")
	require.LessOrEqual(t, rep.Store.SlowCommits, rep.Store.Commits)
	require.Positive(t, rep.Reference.Fsync.PerSec)
	require.Positive(t, rep.Reference.BareLoop.Completed)
	require.Equal(t, "sync_always", rep.Reference.BareLoop.Sync)
	require.Positive(t, rep.Ratios.CompletedVsBareLoop)
	require.Contains(t, progress.String(), "reference: bare JetStream loop")

	// The data dir is gone, and so are the providers with the process.
	_, err = os.Stat(rep.DataDir)
	require.ErrorIs(t, err, os.ErrNotExist)

	var table bytes.Buffer
	require.NoError(t, rep.WriteTable(&table))
	require.Contains(t, table.String(), "create→complete")
	require.Contains(t, table.String(), "rydes / bare loop")
	require.Contains(t, table.String(), "COMMIT ")
}

func TestRunLoadOpenLoopRelaxed(t *testing.T) {
	cfg := testConfig(t)
	cfg.Rate = 40
	cfg.AnswerDelay = 5 * time.Millisecond
	cfg.Durability = "process-crash"
	rep, err := Run(rydestest.Context(t), cfg)
	require.NoError(t, err)
	require.Equal(t, "open", rep.Loop)
	require.Equal(t, "process-crash", rep.Durability)
	require.Positive(t, rep.Created)
	require.Zero(t, rep.Errors.Total, "errors: %+v", rep.Errors)
	require.Equal(t, rep.Created, rep.Latency.CreateComplete.Count, "every request started in the window completed")
	// Each request waited for answers given 5 ms after it was asked.
	require.GreaterOrEqual(t, rep.Latency.CreateComplete.Max, 5.0)

	var out bytes.Buffer
	require.NoError(t, rep.WriteJSON(&out))
	var m map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &m))
	for _, k := range []string{"completed_per_s", "answers_staged_per_s", "latency", "errors", "process"} {
		require.Contains(t, m, k)
	}
}

func TestRunGet(t *testing.T) {
	cfg := testConfig(t)
	cfg.Scenario = ScenarioGet
	cfg.Duration = 300 * time.Millisecond
	rep, err := Run(rydestest.Context(t), cfg)
	require.NoError(t, err)
	require.NotNil(t, rep.Get)
	require.Positive(t, rep.Get.Full.Count)
	require.Positive(t, rep.Get.NotModified.Count)
	require.Zero(t, rep.Get.Full.Errors)
	require.Zero(t, rep.Get.NotModified.Errors, "every conditional GET of a complete request is a 304")
}

func TestRunGetOpen(t *testing.T) {
	cfg := testConfig(t)
	cfg.Scenario = ScenarioGet
	cfg.GetOpen = true
	cfg.RequestTimeout = 5 * time.Minute
	cfg.Duration = 300 * time.Millisecond
	rep, err := Run(rydestest.Context(t), cfg)
	require.NoError(t, err)
	require.NotNil(t, rep.Get)
	require.True(t, rep.Get.Open)
	require.Positive(t, rep.Get.Full.Count)
	require.Positive(t, rep.Get.NotModified.Count)
	require.Zero(t, rep.Get.Full.Errors)
	require.Zero(t, rep.Get.NotModified.Errors, "every conditional GET of a request nobody answers is a 304")
}

func TestRunHold(t *testing.T) {
	cfg := testConfig(t)
	cfg.Scenario = ScenarioHold
	cfg.Hold, cfg.Watchers = 40, 10
	cfg.HoldFor = time.Millisecond // one sample
	rep, err := Run(rydestest.Context(t), cfg)
	require.NoError(t, err)
	require.NotNil(t, rep.Hold)
	require.Equal(t, "sse", rep.Hold.Watch)
	require.Equal(t, 40, rep.Hold.Requests)
	require.Equal(t, 10, rep.Hold.Watchers)
	require.Zero(t, rep.Hold.Errors, "first error: %s", rep.Hold.FirstError)
	require.Empty(t, rep.Notes, "every watcher opened")
	require.Positive(t, rep.Hold.RSSMiB)
	require.NotNil(t, rep.Hold.Held, "in-process, the bench samples its own memory while all is held")
	require.Empty(t, rep.Hold.Held.Error)
	require.Equal(t, "rydes+bench", rep.Hold.Held.Measured)
	require.GreaterOrEqual(t, rep.Hold.Held.Samples, 1)
	require.Positive(t, rep.Hold.Held.MaxMiB)
}

// TestRunHoldLongPoll: watchers that long-poll are held as event streams
// are, and none of their polls fails.
func TestRunHoldLongPoll(t *testing.T) {
	cfg := testConfig(t)
	cfg.Scenario = ScenarioHold
	cfg.Hold, cfg.Watchers = 40, 10
	cfg.HoldLongPoll = true
	cfg.HoldFor = time.Millisecond // one sample
	rep, err := Run(rydestest.Context(t), cfg)
	require.NoError(t, err)
	require.NotNil(t, rep.Hold)
	require.Equal(t, "long-poll", rep.Hold.Watch)
	require.Zero(t, rep.Hold.PollsAnswered, "nothing happens to the held requests, so no poll is answered")
	require.Equal(t, 10, rep.Hold.Watchers)
	require.Zero(t, rep.Hold.Errors, "first error: %s", rep.Hold.FirstError)
	require.Empty(t, rep.Notes, "every watcher opened")
	require.NotNil(t, rep.Hold.Held)
	require.GreaterOrEqual(t, rep.Hold.Held.Samples, 1)
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Scenario: "soak"}, `scenario "soak"`},
		{Config{URL: "http://127.0.0.1:1"}, "admin key"},
		{Config{URL: "http://127.0.0.1:1", AdminKey: "k"}, "NATS URL"},
		{Config{SSESample: 2}, "sse sample"},
		{Config{Hold: 5, Watchers: 6}, "watchers 6"},
		{Config{Scenario: ScenarioHold, TargetPID: 1}, "pid: only with --url"},
		{Config{TargetPID: -1}, "pid -1"},
		{Config{Durability: "never"}, `durability "never"`},
	} {
		_, err := Run(rydestest.Context(t), tc.cfg)
		require.ErrorContains(t, err, tc.want)
	}
}
