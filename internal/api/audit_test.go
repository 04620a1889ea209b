package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/api"
	"github.com/wildrydes/rydes/internal/auth"
	"github.com/wildrydes/rydes/internal/store"
)

// fakeAudit is an in-memory audit log.
type fakeAudit struct {
	mu      sync.Mutex
	entries []rydes.AuditEntry
	fail    error
}

func (f *fakeAudit) AddAudit(_ context.Context, e rydes.AuditEntry) (rydes.AuditEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return rydes.AuditEntry{}, f.fail
	}
	if err := e.Validate(); err != nil {
		return rydes.AuditEntry{}, err
	}
	e.ID = int64(len(f.entries) + 1)
	f.entries = append(f.entries, e)
	return e, nil
}

func (f *fakeAudit) ListAudit(_ context.Context, p store.ListAuditParams) ([]rydes.AuditEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []rydes.AuditEntry{}
	for _, e := range slices.Backward(f.entries) {
		if (p.Action == "" || e.Action == p.Action) && (p.BeforeID == 0 || e.ID < p.BeforeID) && len(out) < p.Limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeAudit) all() []rydes.AuditEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.entries)
}

func newAuditHarness(t *testing.T) (*harness, *fakeAudit) {
	t.Helper()
	log := &fakeAudit{}
	return newHarness(t, func(c *api.Config) { c.Audit = log }), log
}

// TestEveryAdminChangeIsAuditedOnce makes each state-changing admin request
// and checks that it added exactly one entry, with its action, target,
// actor and address, and details that hold no secret.
func TestEveryAdminChangeIsAuditedOnce(t *testing.T) {
	h, log := newAuditHarness(t)
	dl := h.reg.addDeadLetter("hookA")
	var secrets []string // every secret a response showed
	keep := func(b []byte, paths ...string) {
		if len(paths) == 0 {
			return
		}
		var obj map[string]any
		require.NoError(t, json.Unmarshal(b, &obj))
		for _, p := range paths {
			var v any = obj
			for _, k := range strings.Split(p, ".") {
				v = v.(map[string]any)[k]
			}
			if s, _ := v.(string); s != "" {
				secrets = append(secrets, s)
			}
		}
	}
	creds := []string{"credentials.api_key", "credentials.nats_password", "credentials.webhook_secret"}

	steps := []struct {
		method, path, body string
		status             int
		action             rydes.AuditAction
		target             string
		details            string // JSON; "" for none
		secretPaths        []string
	}{
		{"POST", "/v1/providers", `{"id":"hooks","name":"Hooks Inc","kind":"webhook","webhook_url":"https://hooks.example/rides?token=s3cr3t-query"}`,
			201, rydes.AuditProviderCreate, "hooks", `{"name":"Hooks Inc","kind":"webhook","webhook_url":"https://hooks.example/rides?redacted"}`, creds},
		{"POST", "/v1/providers", `{"id":"natsy","kind":"nats","filter":{"from":["Frankfurt*"]}}`,
			201, rydes.AuditProviderCreate, "natsy", `{"kind":"nats","filter":{"from":["Frankfurt*"]}}`, creds},
		{"PATCH", "/v1/providers/hooks", `{"status":"paused"}`, 200, rydes.AuditProviderUpdate, "hooks", `{"status":"paused"}`, nil},
		{"POST", "/v1/providers/natsy/rotate", "", 200, rydes.AuditProviderRotate, "natsy", "", creds},
		{"DELETE", "/v1/providers/natsy", "", 204, rydes.AuditProviderDelete, "natsy", "", nil},
		{"POST", "/v1/customers", `{"id":"cmr","name":"Cyber Mobility"}`, 201, rydes.AuditCustomerCreate, "cmr", `{"name":"Cyber Mobility"}`, []string{"api_key"}},
		{"POST", "/v1/customers/cmr/rotate", "", 200, rydes.AuditCustomerRotate, "cmr", "", []string{"api_key"}},
		{"DELETE", "/v1/customers/cmr", "", 204, rydes.AuditCustomerDelete, "cmr", "", nil},
		{"POST", fmt.Sprintf("/v1/dead-letters/%d/replay", dl), "", 200, rydes.AuditDeadLetterReplay, fmt.Sprint(dl), "", nil},
	}
	for i, s := range steps {
		resp, b := h.admin(t, s.method, s.path, s.body)
		require.Equal(t, s.status, resp.StatusCode, "%s %s: %s", s.method, s.path, b)
		keep(b, s.secretPaths...)
		entries := log.all()
		require.Len(t, entries, i+1, "%s %s adds exactly one entry", s.method, s.path)
		e := entries[i]
		assert.Equal(t, s.action, e.Action, s.path)
		assert.Equal(t, s.target, e.Target, s.path)
		assert.Equal(t, api.AdminActor(testAdminKey), e.Actor)
		assert.Regexp(t, `^admin:[0-9a-f]{12}$`, e.Actor)
		assert.True(t, strings.HasPrefix(e.RemoteAddr, "127.0.0.1:"), "remote addr %q", e.RemoteAddr)
		assert.Equal(t, h.fake.now, e.At, "stamped by the API's clock")
		switch {
		case s.action == rydes.AuditDeadLetterReplay:
			var d map[string]string
			require.NoError(t, json.Unmarshal(e.Details, &d))
			assert.Equal(t, "hookA", d["provider"])
			assert.Len(t, d["rfq_id"], 36)
		case s.details == "":
			assert.Nil(t, e.Details, s.path)
		default:
			assert.JSONEq(t, s.details, string(e.Details), s.path)
		}
	}
	require.Len(t, secrets, 3+2+2+1+1, "the responses showed the secrets the test looks for")
	all, err := json.Marshal(log.all())
	require.NoError(t, err)
	for _, secret := range append(secrets, testAdminKey, auth.Hash(testAdminKey), "s3cr3t-query") {
		assert.NotContains(t, string(all), secret, "no secret in the audit log")
	}
}

// TestFailedAndReadOnlyAdminRequestsAreNotAudited: requests that change
// nothing add no entry.
func TestFailedAndReadOnlyAdminRequestsAreNotAudited(t *testing.T) {
	h, log := newAuditHarness(t)
	resp, b := h.admin(t, "POST", "/v1/providers", `{"id":"natsy","kind":"nats"}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
	require.Len(t, log.all(), 1)
	for _, s := range []struct {
		key, method, path, body string
		status                  int
	}{
		{testAdminKey, "POST", "/v1/providers", `{"id":"natsy","kind":"nats"}`, 409},
		{testAdminKey, "POST", "/v1/providers", `{"id":"bad id","kind":"nats"}`, 400},
		{testAdminKey, "PATCH", "/v1/providers/nobody", `{"status":"paused"}`, 404},
		{testAdminKey, "DELETE", "/v1/providers/nobody", "", 404},
		{testAdminKey, "POST", "/v1/customers/nobody/rotate", "", 404},
		{testAdminKey, "POST", "/v1/dead-letters/99/replay", "", 404},
		{"not-the-admin-key-at-all", "DELETE", "/v1/providers/natsy", "", 401},
		{testAdminKey, "GET", "/v1/providers", "", 200},
		{testAdminKey, "GET", "/v1/providers/natsy", "", 200},
		{testAdminKey, "GET", "/v1/customers", "", 200},
		{testAdminKey, "GET", "/v1/audit", "", 200},
	} {
		resp, b := h.as(t, s.key, s.method, s.path, s.body)
		require.Equal(t, s.status, resp.StatusCode, "%s %s: %s", s.method, s.path, b)
	}
	require.Len(t, log.all(), 1, "nothing more was recorded")
	_, ok := h.reg.provider("natsy")
	require.True(t, ok, "the unauthorised delete changed nothing")
}

// TestAuditLogFailureKeepsTheChange: the change is made; the response says
// so; the lost entry is logged.
func TestAuditLogFailureKeepsTheChange(t *testing.T) {
	h, log := newAuditHarness(t)
	log.fail = errors.New("disk on fire")
	resp, b := h.admin(t, "POST", "/v1/customers", `{"id":"cmr"}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
	require.Empty(t, log.all())
	require.Contains(t, h.logs.String(), "audit entry not recorded")
}

type auditPageJSON struct {
	Entries []struct {
		ID      int64           `json:"id"`
		Action  string          `json:"action"`
		Target  string          `json:"target"`
		Details json.RawMessage `json:"details"`
	} `json:"entries"`
	NextBefore *int64 `json:"next_before"`
}

func (h *harness) audit(t *testing.T, query string) auditPageJSON {
	t.Helper()
	resp, b := h.admin(t, http.MethodGet, "/v1/audit"+query, "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	var page auditPageJSON
	require.NoError(t, json.Unmarshal(b, &page))
	return page
}

func auditIDs(p auditPageJSON) []int64 {
	out := []int64{}
	for _, e := range p.Entries {
		out = append(out, e.ID)
	}
	return out
}

func TestListAudit(t *testing.T) {
	h, _ := newAuditHarness(t)
	resp, b := h.admin(t, http.MethodGet, "/v1/audit", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	assert.JSONEq(t, `{"entries":[]}`, string(b), "an empty list, not null, and no next page")

	for i := range 5 { // entries 1..10: create, rotate, create, rotate, ...
		id := fmt.Sprintf("c%d", i)
		resp, b := h.admin(t, "POST", "/v1/customers", `{"id":"`+id+`"}`)
		require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
		resp, b = h.admin(t, "POST", "/v1/customers/"+id+"/rotate", "")
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	}
	page := h.audit(t, "")
	assert.Equal(t, []int64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, auditIDs(page), "newest first")
	assert.Nil(t, page.NextBefore)

	page = h.audit(t, "?limit=4")
	assert.Equal(t, []int64{10, 9, 8, 7}, auditIDs(page))
	require.NotNil(t, page.NextBefore)
	page = h.audit(t, fmt.Sprintf("?limit=4&before=%d", *page.NextBefore))
	assert.Equal(t, []int64{6, 5, 4, 3}, auditIDs(page))
	require.NotNil(t, page.NextBefore)
	page = h.audit(t, fmt.Sprintf("?limit=4&before=%d", *page.NextBefore))
	assert.Equal(t, []int64{2, 1}, auditIDs(page))
	assert.Nil(t, page.NextBefore, "the last page")

	page = h.audit(t, "?action=customer.rotate&limit=3")
	assert.Equal(t, []int64{10, 8, 6}, auditIDs(page))
	for _, e := range page.Entries {
		assert.Equal(t, "customer.rotate", e.Action)
	}
	require.NotNil(t, page.NextBefore)
	page = h.audit(t, fmt.Sprintf("?action=customer.rotate&limit=3&before=%d", *page.NextBefore))
	assert.Equal(t, []int64{4, 2}, auditIDs(page))

	for q, field := range map[string]string{
		"?limit=0": "limit", "?limit=501": "limit", "?limit=x": "limit", "?before=0": "before", "?before=-1": "before",
		"?action=provider.explode": "action", "?limit=1&limit=2": "limit", "?provider=p1": "provider",
	} {
		resp, b := h.admin(t, http.MethodGet, "/v1/audit"+q, "")
		requireProblem(t, resp, b, http.StatusBadRequest, field)
	}
	resp, b = h.do(t, http.MethodGet, "/v1/audit", "", nil)
	requireProblem(t, resp, b, http.StatusUnauthorized, "")
}

func TestListAuditWithoutALog(t *testing.T) {
	h := newHarness(t)
	resp, b := h.admin(t, http.MethodGet, "/v1/audit", "")
	requireProblem(t, resp, b, http.StatusServiceUnavailable, "")
	resp, b = h.admin(t, "POST", "/v1/customers", `{"id":"cmr"}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "changes work without a log: body %s", b)
}
