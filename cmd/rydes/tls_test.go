package main

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes/internal/rydestest"
)

// TestServeTLSAndCLI runs `rydes serve` with --tls-cert and --tls-key and
// drives it with CLI commands that trust its CA with --ca or RYDES_CA.
func TestServeTLSAndCLI(t *testing.T) {
	caFile, certFile, keyFile := rydestest.Certs(t)
	addr := rydestest.FreeAddr(t)
	const key = "tls-admin-key-0123456789"
	env := map[string]string{
		"RYDES_DATA":           t.TempDir(),
		"RYDES_SIM_MAX_DELAY":  "20ms",
		"RYDES_SIM_QUOTE_RATE": "1",
		"RYDES_ALLOW_TMPFS":    "true",
		"RYDES_TLS_KEY":        keyFile, // flags and variables mix
	}
	ctx, cancel := context.WithCancel(rydestest.Context(t))
	defer cancel()
	var serverOut, serverErr rydestest.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"rydes", "serve", "--demo", "--http", addr, "--sim-providers", "3", "--admin-key", key, "--tls-cert", certFile},
			func(k string) string { return env[k] }, &serverOut, &serverErr)
	}()
	base := "https://" + addr
	hc := rydestest.HTTPSClient(t, caFile)
	rydestest.WaitFor(t, "rydes to be healthy over HTTPS", func() bool {
		select {
		case err := <-done:
			t.Fatalf("serve stopped early: %v\n%s", err, serverErr.String())
		default:
		}
		resp, err := hc.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	require.Contains(t, serverOut.String(), "rydes listening on "+base)

	noEnv := func(string) string { return "" }
	var out, errOut bytes.Buffer
	err := run(ctx, []string{"rydes", "rfq", "create", "--server", base, "--ca", caFile, "--from", "Frankfurt", "--to", "Las Vegas", "--customer", "cmr", "--wait", "--poll", "10ms"}, noEnv, &out, &errOut)
	require.NoError(t, err, "stderr: %s", errOut.String())
	require.Contains(t, out.String(), "complete: 3 quotes")

	// The admin commands read the CA from RYDES_CA.
	out.Reset()
	adminEnv := map[string]string{"RYDES_SERVER": base, "RYDES_ADMIN_KEY": key, "RYDES_CA": caFile}
	err = run(ctx, []string{"rydes", "providers", "list"}, func(k string) string { return adminEnv[k] }, &out, &errOut)
	require.NoError(t, err, "stderr: %s", errOut.String())
	require.Contains(t, out.String(), "UnicornManagementResource3")

	// Without the CA, the system's authorities do not vouch for the server.
	err = run(ctx, []string{"rydes", "rfq", "get", "--server", base, "00000000-0000-0000-0000-000000000000"}, noEnv, &out, &errOut)
	require.ErrorContains(t, err, "certificate signed by unknown authority")
	err = run(ctx, []string{"rydes", "providers", "list", "--server", base, "--admin-key", key}, noEnv, &out, &errOut)
	require.ErrorContains(t, err, "certificate signed by unknown authority")

	cancel()
	require.NoError(t, <-done)
}

func TestCAFlagErrors(t *testing.T) {
	_, _, keyFile := rydestest.Certs(t)
	noEnv := func(string) string { return "" }
	var out, errOut bytes.Buffer
	missing := filepath.Join(t.TempDir(), "missing.pem")
	err := run(context.Background(), []string{"rydes", "rfq", "get", "--server", "https://127.0.0.1:1", "--ca", missing, "x"}, noEnv, &out, &errOut)
	require.ErrorContains(t, err, "--ca: open "+missing)
	err = run(context.Background(), []string{"rydes", "providers", "list", "--server", "https://127.0.0.1:1", "--ca", keyFile}, noEnv, &out, &errOut)
	require.ErrorContains(t, err, "--ca: no PEM certificate in "+keyFile)

	err = run(context.Background(), []string{"rydes", "serve", "--data", t.TempDir(), "--tls-cert", keyFile}, noEnv, &out, &errOut)
	require.ErrorContains(t, err, "needs a key file to go with the certificate file")
}
