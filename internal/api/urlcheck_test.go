package api_test

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/api"
	"github.com/wildrydes/rydes/internal/webhook"
)

// tableResolver resolves names from a table; others are not found.
type tableResolver map[string]string

func (r tableResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	a, ok := r[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return []netip.Addr{netip.MustParseAddr(a)}, nil
}

// withURLPolicy makes the harness check URLs with the webhook policy
// (private addresses refused) and a fake resolver.
func withURLPolicy(cfg *api.Config) {
	cfg.CheckURL = webhook.URLPolicy{Resolver: tableResolver{
		"hooks.partner.example": "93.184.216.34",
		"hooks.intranet":        "10.20.30.40",
		"localhost":             "127.0.0.1",
	}}.Check
}

// TestWebhookURLCheckedAtRegistration checks that a provider's webhook_url
// that leads to a non-public address is refused with 400 naming the field,
// on create and on change, and that nothing changes.
func TestWebhookURLCheckedAtRegistration(t *testing.T) {
	h := newHarness(t, withURLPolicy)
	h.reg.addProvider(rydes.Provider{ID: "Hooked", Kind: rydes.ProviderKindWebhook, WebhookURL: "https://hooks.partner.example/a"})
	for _, tc := range []struct{ url, reason string }{
		{"http://10.0.0.1/rides", "private"},
		{"http://169.254.169.254/latest/meta-data/", "cloud metadata"},
		{"http://[::1]:9090/", "loopback"},
		{"https://hooks.intranet/rides", "resolves to a private address"},
		{"http://localhost:9090/", "resolves to a loopback address"},
		{"https://nowhere.invalid/", "could not be resolved"},
	} {
		resp, b := h.admin(t, http.MethodPost, "/v1/providers", `{"id":"acme","kind":"webhook","webhook_url":"`+tc.url+`"}`)
		p := requireProblem(t, resp, b, http.StatusBadRequest, "webhook_url")
		assert.Contains(t, p.Errors[0].Reason, tc.reason, tc.url)

		resp, b = h.admin(t, http.MethodPatch, "/v1/providers/Hooked", `{"webhook_url":"`+tc.url+`"}`)
		p = requireProblem(t, resp, b, http.StatusBadRequest, "webhook_url")
		assert.Contains(t, p.Errors[0].Reason, tc.reason, tc.url)
	}
	assert.Zero(t, h.reg.changeCount(), "no refused URL changed anything")

	resp, b := h.admin(t, http.MethodPost, "/v1/providers", `{"id":"acme","kind":"webhook","webhook_url":"https://hooks.partner.example/rides"}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "a public URL is accepted: %s", b)
	resp, b = h.admin(t, http.MethodPatch, "/v1/providers/Hooked", `{"webhook_url":"https://93.184.216.34/b"}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, "a public address is accepted: %s", b)
}

// TestNotifyURLCheckedAtCreation checks that an RFQ whose notify_url leads
// to a non-public address is refused with 400 naming notify_url, and not
// created.
func TestNotifyURLCheckedAtCreation(t *testing.T) {
	h := newHarness(t, withURLPolicy)
	for _, u := range []string{"http://127.0.0.1:8080/done", "http://[fd00:ec2::254]/", "https://hooks.intranet/done", "http://0.0.0.0/"} {
		resp, b := h.postJSON(t, "/v1/rfqs", `{"customer":"cmr","from":"a","to":"b","notify_url":"`+u+`"}`)
		requireProblem(t, resp, b, http.StatusBadRequest, "notify_url")
	}
	assert.Zero(t, h.fake.createdCount())
	rfq := h.createRFQ(t, `{"customer":"cmr","from":"a","to":"b","notify_url":"https://hooks.partner.example/done"}`)
	assert.Equal(t, "https://hooks.partner.example/done", rfq.NotifyURL)
}
