package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes/internal/rydestest"
)

// TestServeAndCLI runs the binary's own run function as `rydes serve --demo`
// and drives it with `rydes rfq create --wait`, then stops it the way
// SIGTERM does (cancelling run's context).
func TestServeAndCLI(t *testing.T) {
	addr := rydestest.FreeAddr(t)
	env := map[string]string{
		"RYDES_DATA":           t.TempDir(),
		"RYDES_SIM_MAX_DELAY":  "20ms",
		"RYDES_SIM_QUOTE_RATE": "1",
		"RYDES_ALLOW_TMPFS":    "true",
	}
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(rydestest.Context(t))
	defer cancel()
	var serverOut, serverErr rydestest.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"rydes", "serve", "--demo", "--http", addr, "--sim-providers", "5"}, getenv, &serverOut, &serverErr)
	}()
	base := "http://" + addr
	rydestest.WaitFor(t, "rydes to be healthy", func() bool {
		select {
		case err := <-done:
			t.Fatalf("serve stopped early: %v\n%s", err, serverErr.String())
		default:
		}
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	require.Contains(t, serverOut.String(), "rydes listening on "+base)

	var out, errOut bytes.Buffer
	err := run(ctx, []string{"rydes", "rfq", "create", "--server", base, "--from", "Frankfurt", "--to", "Las Vegas", "--customer", "cmr", "--wait", "--poll", "10ms"}, func(string) string { return "" }, &out, &errOut)
	require.NoError(t, err, "stderr: %s", errOut.String())
	require.Contains(t, out.String(), "complete: 5 quotes")
	require.Equal(t, 5, strings.Count(out.String(), "UnicornManagementResource")-strings.Count(out.String(), "best "), "one line per quote: %s", out.String())

	cancel()
	require.NoError(t, <-done)
	require.Contains(t, serverErr.String(), "rydes stopped")
}

func TestRunUsageAndVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"rydes", "version"}, func(string) string { return "" }, &out, &errOut))
	require.Contains(t, out.String(), "rydes ")

	err := run(context.Background(), []string{"rydes", "fly"}, func(string) string { return "" }, &out, &errOut)
	require.Error(t, err)
	require.Equal(t, 2, exitCode(err, &errOut))
	require.Contains(t, errOut.String(), "Usage:")

	err = run(context.Background(), []string{"rydes", "serve", "--sim-quote-rate", "often"}, func(string) string { return "" }, &out, &errOut)
	require.Error(t, err)

	err = run(context.Background(), []string{"rydes", "serve"}, func(k string) string {
		if k == "RYDES_RFQ_TIMEOUT" {
			return "forever"
		}
		return ""
	}, &out, &errOut)
	require.ErrorContains(t, err, "RYDES_RFQ_TIMEOUT")
}
