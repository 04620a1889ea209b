package app_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes/internal/rydestest"
)

// getStatus GETs url and returns the status and the body.
func getStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(rydestest.Context(t), http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// Go's profiles are served on the debug listener only, and only when one
// is asked for.
func TestDebugListenerServesProfiles(t *testing.T) {
	cfg := config(t, t.TempDir(), fleet(1, 1, false))
	cfg.DebugAddr = "127.0.0.1:0"
	h := start(t, cfg)
	require.NotEmpty(t, h.app.DebugURL())

	status, body := getStatus(t, h.app.DebugURL()+"/debug/pprof/heap?debug=1")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "heap profile")
	status, _ = getStatus(t, h.app.DebugURL()+"/v1/rfqs")
	require.Equal(t, http.StatusNotFound, status, "the API is not on the debug listener")
	status, _ = getStatus(t, h.app.URL()+"/debug/pprof/")
	require.Equal(t, http.StatusNotFound, status, "the profiles are not on the API")

	off := start(t, config(t, t.TempDir(), fleet(1, 1, false)))
	require.Empty(t, off.app.DebugURL())
}
