package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
)

// auditStub serves GET /v1/audit from three fixed entries (ids 3, 2, 1),
// paging and filtering like rydes, to the admin key only.
type auditStub struct {
	URL     string
	mu      sync.Mutex
	queries []string
}

func newAuditStub(t *testing.T) *auditStub {
	t.Helper()
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	entries := []rydes.AuditEntry{
		{ID: 3, At: at.Add(2 * time.Second), Actor: "admin:0123456789ab", Action: rydes.AuditProviderUpdate, Target: "acme", RemoteAddr: "10.0.0.7:51234", Details: json.RawMessage(`{"status":"paused"}`)},
		{ID: 2, At: at.Add(time.Second), Actor: "admin:0123456789ab", Action: rydes.AuditCustomerRotate, Target: "cmr", RemoteAddr: "10.0.0.7:51230"},
		{ID: 1, At: at, Actor: "config", Action: rydes.AuditAdminKeySet, Details: json.RawMessage(`{"source":"generated"}`)},
	}
	s := &auditStub{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.queries = append(s.queries, r.URL.RawQuery)
		s.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+testAdminKey {
			problem(w, http.StatusUnauthorized, "unauthorized", "unknown admin key", nil)
			return
		}
		if r.Method != http.MethodGet || r.URL.Path != "/v1/audit" {
			problem(w, http.StatusNotFound, "not_found", "no such route", nil)
			return
		}
		q := r.URL.Query()
		before, _ := strconv.ParseInt(q.Get("before"), 10, 64)
		limit, _ := strconv.Atoi(q.Get("limit"))
		if limit == 0 {
			limit = 100
		}
		page := map[string]any{"entries": []rydes.AuditEntry{}}
		var out []rydes.AuditEntry
		for _, e := range entries {
			if (before == 0 || e.ID < before) && (q.Get("action") == "" || string(e.Action) == q.Get("action")) {
				out = append(out, e)
			}
		}
		if len(out) > limit {
			out = out[:limit]
			page["next_before"] = out[limit-1].ID
		}
		if out != nil {
			page["entries"] = out
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(page)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *auditStub) lastQuery() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[len(s.queries)-1]
}

func TestAuditList(t *testing.T) {
	stub := newAuditStub(t)
	args := func(a ...string) []string {
		return append(append([]string{"audit", "list"}, a...), "--server", stub.URL, "--admin-key", testAdminKey)
	}
	out, _, err := rydesCLI(t, nil, args()...)
	require.NoError(t, err)
	require.Equal(t, `ID  AT                    ACTOR               ACTION           TARGET  FROM            DETAILS
3   2026-05-01T12:00:02Z  admin:0123456789ab  provider.update  acme    10.0.0.7:51234  {"status":"paused"}
2   2026-05-01T12:00:01Z  admin:0123456789ab  customer.rotate  cmr     10.0.0.7:51230  -
1   2026-05-01T12:00:00Z  config              admin_key.set    -       -               {"source":"generated"}
`, out)
	require.Empty(t, stub.lastQuery())

	out, _, err = rydesCLI(t, nil, args("--limit", "2")...)
	require.NoError(t, err)
	require.Contains(t, out, "older ones: rydes audit list --before 2 --limit 2\n")
	require.Equal(t, "limit=2", stub.lastQuery())

	out, _, err = rydesCLI(t, nil, args("--before", "2", "--json")...)
	require.NoError(t, err)
	var page struct {
		Entries []rydes.AuditEntry `json:"entries"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &page))
	require.Len(t, page.Entries, 1)
	require.Equal(t, rydes.AuditAdminKeySet, page.Entries[0].Action)
	require.Equal(t, "before=2", stub.lastQuery())

	out, _, err = rydesCLI(t, nil, args("--action", "customer.delete")...)
	require.NoError(t, err)
	require.Equal(t, "no audit entries\n", out)
	require.Equal(t, "action=customer.delete", stub.lastQuery())

	_, _, err = rydesCLI(t, nil, "audit", "list", "--server", stub.URL, "--admin-key", "wrong")
	require.Error(t, err)
	_, _, err = rydesCLI(t, nil, args("--limit", "-1")...)
	require.ErrorContains(t, err, "negative")
	_, _, err = rydesCLI(t, nil, args("extra")...)
	require.ErrorContains(t, err, "no arguments")
	_, _, err = rydesCLI(t, nil, "audit", "purge")
	require.ErrorContains(t, err, "unknown command")
}
