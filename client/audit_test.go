package client_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/client"
	"github.com/wildrydes/rydes/internal/rydestest"
)

func TestAdminAudit(t *testing.T) {
	var (
		mu   sync.Mutex
		last *http.Request
	)
	entry := func(id int64, action rydes.AuditAction) rydes.AuditEntry {
		return rydes.AuditEntry{ID: id, At: now, Actor: "admin:0123456789ab", Action: action, Target: "acme",
			RemoteAddr: "127.0.0.1:4000", Details: json.RawMessage(`{"status":"paused"}`)}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		last = r
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("before") == "" {
			_ = json.NewEncoder(w).Encode(map[string]any{"entries": []rydes.AuditEntry{entry(9, rydes.AuditProviderUpdate)}, "next_before": 9})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"entries": []rydes.AuditEntry{}})
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv, client.WithAPIKey(adminKey))
	ctx := rydestest.Context(t)

	page, err := c.Audit(ctx, client.AuditQuery{})
	require.NoError(t, err)
	require.Equal(t, client.AuditPage{Entries: []rydes.AuditEntry{entry(9, rydes.AuditProviderUpdate)}, NextBefore: 9}, page)
	mu.Lock()
	require.Equal(t, "/v1/audit", last.URL.Path)
	require.Empty(t, last.URL.RawQuery)
	require.Equal(t, "Bearer "+adminKey, last.Header.Get("Authorization"))
	mu.Unlock()

	page, err = c.Audit(ctx, client.AuditQuery{Action: rydes.AuditProviderUpdate, Before: 9, Limit: 5})
	require.NoError(t, err)
	require.Empty(t, page.Entries)
	require.Zero(t, page.NextBefore)
	mu.Lock()
	require.Equal(t, "action=provider.update&before=9&limit=5", last.URL.RawQuery)
	mu.Unlock()
}
