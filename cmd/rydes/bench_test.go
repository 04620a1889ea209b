package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes/internal/bench"
	"github.com/wildrydes/rydes/internal/rydestest"
)

// TestBenchJSON runs a one-second `rydes bench --json` against the rydes it
// starts itself, with its reference measurements and a CPU profile.
func TestBenchJSON(t *testing.T) {
	dir := t.TempDir()
	profile, traceFile := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "window.trace")
	env := envOf(map[string]string{"RYDES_BENCH_DIR": dir, "RYDES_PROVIDERS": "3"})
	var out, errOut bytes.Buffer
	err := run(rydestest.Context(t), []string{"rydes", "bench", "--duration", "2s", "--warmup", "0s", "--concurrency", "4",
		"--allow-tmpfs", "--reference", "--reference-duration", "200ms", "--json", "--cpuprofile", profile, "--trace", traceFile}, env, &out, &errOut)
	require.NoError(t, err, "stderr: %s", errOut.String())

	var rep bench.Report
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep), "stdout: %s", out.String())
	require.Equal(t, "load", rep.Scenario)
	require.Equal(t, 3, rep.Providers, "RYDES_PROVIDERS sets --providers")
	require.Positive(t, rep.Created)
	require.Zero(t, rep.Errors.Total, "errors: %+v", rep.Errors)
	require.Equal(t, rep.Created, rep.Latency.CreateComplete.Count, "every request started in the window completed")
	require.NotNil(t, rep.Reference)
	require.NotNil(t, rep.Ratios)
	require.Contains(t, errOut.String(), "measure", "a progress line each second")

	// The raw JSON names the fields the docs promise.
	var raw map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &raw))
	lat := raw["latency"].(map[string]any)
	for _, k := range []string{"create_to_complete", "answer_to_staged", "staged_to_sse"} {
		p := lat[k].(map[string]any)
		for _, f := range []string{"p50_ms", "p90_ms", "p99_ms", "p99_9_ms"} {
			require.Contains(t, p, f)
		}
	}

	st, err := os.Stat(profile)
	require.NoError(t, err)
	require.Positive(t, st.Size(), "a CPU profile was written")
	tr, err := os.ReadFile(traceFile)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(tr, []byte("go 1.")), "an execution trace was written: %.20q", tr)
}

func TestBenchFlags(t *testing.T) {
	var errOut bytes.Buffer
	cfg, jsonOut, _, _, err := benchConfig([]string{"get", "--rate", "500", "--durability", "process-crash"}, envOf(map[string]string{"RYDES_JSON": "true"}), &errOut)
	require.NoError(t, err)
	require.Equal(t, bench.ScenarioGet, cfg.Scenario)
	require.InDelta(t, 500, cfg.Rate, 0)
	require.Equal(t, "process-crash", string(cfg.Durability))
	require.True(t, jsonOut)

	cfg, _, prof, _, err := benchConfig([]string{"get", "--get-open", "--cpuprofile", "cpu.out", "--memprofile", "heap.out", "--trace", "t.out"}, envOf(nil), &errOut)
	require.NoError(t, err)
	require.True(t, cfg.GetOpen)
	require.Equal(t, profilePaths{cpu: "cpu.out", heap: "heap.out", trace: "t.out"}, prof)

	_, _, _, _, err = benchConfig([]string{"soak"}, envOf(nil), &errOut)
	require.ErrorContains(t, err, `unknown bench scenario "soak"`)
	_, _, _, _, err = benchConfig([]string{"--durability", "maybe"}, envOf(nil), &errOut)
	require.ErrorContains(t, err, "--durability")
}
