package app_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/api"
	"github.com/wildrydes/rydes/internal/store"
)

// TestAdminChangesAreAudited: the admin key set by configuration and admin
// requests land in the audit log, readable over GET /v1/audit, across
// restarts.
func TestAdminChangesAreAudited(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	const key1, key2 = "first-admin-key-0123456789", "second-admin-key-0123456789"
	cfg := config(t, dir, fleet(1, 1, false))
	cfg.AdminKey = key1
	h := start(t, cfg)
	h.key = key1

	resp := h.post("/v1/customers", `{"id":"cmr","name":"Cyber Mobility"}`)
	require.Equal(t, http.StatusCreated, resp.status, "body: %s", resp.body)
	var page struct {
		Entries []rydes.AuditEntry `json:"entries"`
	}
	resp = h.get("/v1/audit")
	require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
	resp.json(t, &page)
	require.Len(t, page.Entries, 2)
	require.Equal(t, rydes.AuditCustomerCreate, page.Entries[0].Action)
	require.Equal(t, "cmr", page.Entries[0].Target)
	require.Equal(t, api.AdminActor(key1), page.Entries[0].Actor)
	require.Equal(t, rydes.AuditAdminKeySet, page.Entries[1].Action)
	require.Equal(t, "config", page.Entries[1].Actor)
	var d map[string]any
	require.NoError(t, json.Unmarshal(page.Entries[1].Details, &d))
	require.Equal(t, map[string]any{"source": "configured", "fingerprint": api.AdminActor(key1)[len("admin:"):], "replaced": false}, d)
	h.stop()

	// The same key again: nothing changed, nothing recorded.
	h = start(t, cfg)
	list := func() []rydes.AuditEntry {
		es, err := h.app.Store().ListAudit(t.Context(), store.ListAuditParams{})
		require.NoError(t, err)
		return es
	}
	require.Len(t, list(), 2)
	h.stop()

	// Another key replaces it.
	cfg.AdminKey = key2
	h = start(t, cfg)
	es := list()
	require.Len(t, es, 3)
	require.Equal(t, rydes.AuditAdminKeySet, es[0].Action)
	require.JSONEq(t, `{"source":"configured","fingerprint":"`+api.AdminActor(key2)[len("admin:"):]+`","replaced":true}`, string(es[0].Details))
	raw, err := json.Marshal(es)
	require.NoError(t, err)
	require.NotContains(t, string(raw), key1)
	require.NotContains(t, string(raw), key2)
}
