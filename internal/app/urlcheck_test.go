package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes/internal/api"
)

// fakeResolver resolves names from a table; other names are not found.
type fakeResolver map[string]string

func (r fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	a, ok := r[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return []netip.Addr{netip.MustParseAddr(a)}, nil
}

// TestURLPolicyEndToEnd checks, on a real rydes, that webhook and notify
// URLs leading to non-public addresses are refused when given (unless
// private networks are allowed) and leave nothing behind.
func TestURLPolicyEndToEnd(t *testing.T) {
	cfg := partnerConfig(t)
	cfg.WebhookAllowPrivate = false
	cfg.WebhookAllowNetworks = nil
	cfg.Resolver = fakeResolver{"hooks.partner.example": "93.184.216.34", "hooks.corp.example": "192.168.7.7"}
	h := start(t, cfg)
	h.key = adminKey

	for _, u := range []string{"http://127.0.0.1:9/x", "http://hooks.corp.example/x", "http://169.254.169.254/", "http://[fd00:ec2::254]/", "http://unresolvable.example/"} {
		r := h.post("/v1/providers", `{"id":"hooks","kind":"webhook","webhook_url":"`+u+`"}`)
		requireFieldProblem(t, r, http.StatusBadRequest, "webhook_url")
	}
	r := h.get("/v1/providers")
	require.JSONEq(t, `{"providers":[]}`, string(r.body), "no provider was registered")

	r = h.post("/v1/providers", `{"id":"hooks","kind":"webhook","webhook_url":"https://hooks.partner.example/rides"}`)
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	r = h.do(http.MethodPatch, "/v1/providers/hooks", "application/json", []byte(`{"webhook_url":"http://hooks.corp.example/x"}`))
	requireFieldProblem(t, r, http.StatusBadRequest, "webhook_url")
	r = h.get("/v1/providers/hooks")
	require.Contains(t, string(r.body), `"webhook_url":"https://hooks.partner.example/rides"`, "the URL did not change")

	r = h.post("/v1/rfqs", `{"customer":"cmr","from":"A","to":"B","notify_url":"http://localhost.localdomain/"}`)
	requireFieldProblem(t, r, http.StatusBadRequest, "notify_url")
	r = h.post("/v1/rfqs", `{"customer":"cmr","from":"A","to":"B","notify_url":"http://10.1.1.1/"}`)
	requireFieldProblem(t, r, http.StatusBadRequest, "notify_url")

	// Allowing private networks lets loopback through.
	allowed := partnerConfig(t)
	allowed.Resolver = cfg.Resolver
	h2 := start(t, allowed)
	h2.key = adminKey
	r = h2.post("/v1/providers", `{"id":"local","kind":"webhook","webhook_url":"http://127.0.0.1:9/x"}`)
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
}

// requireFieldProblem checks that r is an RFC 9457 problem of status, and,
// if field is not "", that it names field with a reason.
func requireFieldProblem(t *testing.T, r response, status int, field string) api.Problem {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.body)
	require.Equal(t, api.ProblemContentType, r.header.Get("Content-Type"), "body: %s", r.body)
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	var p api.Problem
	require.NoError(t, dec.Decode(&p), "problem body: %s", r.body)
	require.Equal(t, status, p.Status)
	require.NotEmpty(t, p.Title)
	require.NotEmpty(t, p.Detail)
	require.True(t, strings.HasPrefix(p.Type, api.ProblemTypeBase), "type %q", p.Type)
	if field != "" {
		require.NotEmpty(t, p.Errors, "the problem names the field %s: %s", field, r.body)
		require.Equal(t, field, p.Errors[0].Field, "body: %s", r.body)
		require.NotEmpty(t, p.Errors[0].Reason)
	}
	return p
}
