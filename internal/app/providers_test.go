package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/client"
	"github.com/wildrydes/rydes/internal/app"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/provider"
)

const adminKey = "test-admin-key-0123456789"

// partnerConfig runs rydes without simulated providers, with the broker
// reachable over TCP for partner processes and a known admin key.
func partnerConfig(t *testing.T) app.Config {
	t.Helper()
	cfg := config(t, t.TempDir(), fleet(0, 0, false))
	cfg.Demo = false
	cfg.NATSListen = "127.0.0.1:0"
	cfg.AdminKey = adminKey
	// The partners' endpoints are on loopback: the explicit allow-list lets
	// deliveries and notifications reach them, and nothing else non-public.
	cfg.WebhookAllowNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	return cfg
}

// webhookPartner is a partner's HTTP endpoint: it checks the Standard
// Webhooks signature of each delivery and answers with a quote.
func webhookPartner(t *testing.T, secret *atomic.Value, amount string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var delivered atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		wh, err := standardwebhooks.NewWebhook(secret.Load().(string))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := wh.Verify(body, r.Header); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var req rydes.ProviderRequest
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		delivered.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"quote","price":{"amount":"` + amount + `","currency":"EUR"},"eta_seconds":300}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &delivered
}

// runNATSPartner runs a NATS-native partner through the Go SDK with its own
// credentials, quoting every request; opts are added to its connection's.
func runNATSPartner(t *testing.T, url string, creds rydes.ProviderCredentials, amount string, opts ...nats.Option) {
	t.Helper()
	nc, err := provider.Connect(url, creds.NATSUser, creds.NATSPassword, opts...)
	require.NoError(t, err)
	p, err := provider.New(provider.Config{Conn: nc, ID: creds.NATSUser, Logger: rydestest.Logger(t)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- p.Run(ctx, func(context.Context, rydes.ProviderRequest) (provider.Reply, error) {
			return provider.Quote(rydes.Price{Amount: amount, Currency: "EUR"}), nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		nc.Close()
	})
}

func roster(rfq rydes.RFQ) map[string]rydes.ProviderState {
	m := map[string]rydes.ProviderState{}
	for _, p := range rfq.Providers {
		m[p.Provider] = p.State
	}
	return m
}

// TestPartnersJoinAnswerAndLeave is the walkthrough as a test: a
// webhook partner and a NATS partner join a running rydes, both answer a
// request, a third joins and is removed while asked, and the request still
// completes.
func TestPartnersJoinAnswerAndLeave(t *testing.T) {
	h := start(t, partnerConfig(t))
	h.key = adminKey // no --demo: requests are made with the admin key
	ctx := rydestest.Context(t)
	admin, err := client.New(h.app.URL(), client.WithAPIKey(adminKey))
	require.NoError(t, err)

	var secret atomic.Value
	hook, delivered := webhookPartner(t, &secret, "30")
	_, hookCreds, err := admin.CreateProvider(ctx, client.CreateProviderRequest{ID: "hooked", Kind: rydes.ProviderKindWebhook, WebhookURL: hook.URL})
	require.NoError(t, err)
	secret.Store(hookCreds.WebhookSecret)

	_, natsCreds, err := admin.CreateProvider(ctx, client.CreateProviderRequest{ID: "natsy", Kind: rydes.ProviderKindNATS})
	require.NoError(t, err)
	require.NotEmpty(t, natsCreds.NATSPassword)
	runNATSPartner(t, h.app.NATSURL(), natsCreds, "25.50")

	rfq := h.create(`{"customer":"cmr","from":"Frankfurt","to":"Las Vegas"}`)
	require.Equal(t, []string{"hooked", "natsy"}, rfq.Asked())
	got := h.waitStatus(rfq.ID, rydes.StatusComplete)
	require.Len(t, got.Quotes, 2)
	require.Equal(t, "natsy", got.Quotes[0].Provider)
	require.Equal(t, "hooked", got.Quotes[1].Provider)
	require.EqualValues(t, 1, delivered.Load())

	// A third partner joins but never runs; removing it mid-flight lets the
	// request complete.
	_, _, err = admin.CreateProvider(ctx, client.CreateProviderRequest{ID: "ghost", Kind: rydes.ProviderKindNATS})
	require.NoError(t, err)
	rfq = h.create(`{"customer":"cmr","from":"Frankfurt","to":"Las Vegas"}`)
	require.Equal(t, []string{"ghost", "hooked", "natsy"}, rfq.Asked())
	rydestest.WaitFor(t, "the running partners to answer", func() bool {
		r := roster(h.rfq(rfq.ID))
		return r["hooked"] == rydes.ProviderQuoted && r["natsy"] == rydes.ProviderQuoted
	})
	require.Equal(t, rydes.StatusOpen, h.rfq(rfq.ID).Status, "ghost holds it open")
	require.NoError(t, admin.DeleteProvider(ctx, "ghost"))
	got = h.waitStatus(rfq.ID, rydes.StatusComplete)
	require.Equal(t, rydes.ProviderWithdrawn, roster(got)["ghost"])
	require.Len(t, got.Quotes, 2)

	stats, err := admin.ProviderStats(ctx, "natsy")
	require.NoError(t, err)
	require.Equal(t, 2, stats.Asked)
	require.Equal(t, 2, stats.Quoted)
	require.Zero(t, stats.QueueDepth)

	// Pausing stops new requests; resuming brings them back.
	paused := rydes.ProviderPaused
	_, err = admin.UpdateProvider(ctx, "hooked", client.UpdateProviderRequest{Status: &paused})
	require.NoError(t, err)
	rfq = h.create(`{"customer":"cmr","from":"A","to":"B"}`)
	require.Equal(t, []string{"natsy"}, rfq.Asked())
	h.waitStatus(rfq.ID, rydes.StatusComplete)
}

// TestProviderAnswersOverHTTP checks the HTTP answer path and its
// isolation: a provider answers only requests it was asked in, as itself.
func TestProviderAnswersOverHTTP(t *testing.T) {
	h := start(t, partnerConfig(t))
	h.key = adminKey // no --demo: requests are made with the admin key
	ctx := rydestest.Context(t)
	admin, err := client.New(h.app.URL(), client.WithAPIKey(adminKey))
	require.NoError(t, err)

	// Two partners that answer over HTTP only: their webhooks say 202.
	accepted := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) }))
	t.Cleanup(accepted.Close)
	_, aCreds, err := admin.CreateProvider(ctx, client.CreateProviderRequest{ID: "alpha", Kind: rydes.ProviderKindWebhook, WebhookURL: accepted.URL,
		Filter: rydes.Filter{From: []string{"Lisbon"}}})
	require.NoError(t, err)
	_, bCreds, err := admin.CreateProvider(ctx, client.CreateProviderRequest{ID: "beta", Kind: rydes.ProviderKindWebhook, WebhookURL: accepted.URL})
	require.NoError(t, err)
	alpha, err := client.New(h.app.URL(), client.WithAPIKey(aCreds.APIKey))
	require.NoError(t, err)
	beta, err := client.New(h.app.URL(), client.WithAPIKey(bCreds.APIKey))
	require.NoError(t, err)

	onlyBeta := h.create(`{"customer":"cmr","from":"Porto","to":"Faro"}`)
	require.Equal(t, []string{"beta"}, onlyBeta.Asked(), "alpha's filter serves Lisbon only")
	_, err = alpha.SubmitQuote(ctx, onlyBeta.ID, rydes.Price{Amount: "1", Currency: "EUR"})
	var p *client.Problem
	require.ErrorAs(t, err, &p)
	require.Equal(t, http.StatusForbidden, p.Status, "alpha was not asked")
	require.Empty(t, h.rfq(onlyBeta.ID).Quotes, "and nothing changed")

	res, err := beta.SubmitQuote(ctx, onlyBeta.ID, rydes.Price{Amount: "12", Currency: "EUR"}, client.WithETA(5*time.Minute))
	require.NoError(t, err)
	require.Equal(t, rydes.OutcomeStaged, res.Outcome)
	require.Equal(t, rydes.StatusComplete, res.RFQStatus)

	both := h.create(`{"customer":"cmr","from":"Lisbon","to":"Faro"}`)
	require.Equal(t, []string{"alpha", "beta"}, both.Asked())
	_, err = alpha.SubmitDecline(ctx, both.ID, "no car")
	require.NoError(t, err)
	res, err = alpha.SubmitDecline(ctx, both.ID, "no car")
	require.NoError(t, err)
	require.Equal(t, rydes.OutcomeDuplicate, res.Outcome)

	// Identity comes from the key: a body naming another provider is refused.
	r := h.do(http.MethodPost, "/v1/rfqs/"+both.ID+"/quotes", "application/json", []byte(`{"provider":"beta","price":{"amount":"1","currency":"EUR"}}`))
	require.Equal(t, http.StatusUnauthorized, r.status, "the admin key is no provider key")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.app.URL()+"/v1/rfqs/"+both.ID+"/quotes",
		jsonBody(`{"provider":"beta","price":{"amount":"1","currency":"EUR"}}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+aCreds.APIKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Equal(t, rydes.ProviderPending, roster(h.rfq(both.ID))["beta"], "nothing staged for beta")

	// Rotation: the old key stops working at once.
	_, rotated, err := admin.RotateProvider(ctx, "beta")
	require.NoError(t, err)
	_, err = beta.SubmitQuote(ctx, both.ID, rydes.Price{Amount: "9", Currency: "EUR"})
	require.ErrorAs(t, err, &p)
	require.Equal(t, http.StatusUnauthorized, p.Status)
	beta, err = client.New(h.app.URL(), client.WithAPIKey(rotated.APIKey))
	require.NoError(t, err)
	_, err = beta.SubmitQuote(ctx, both.ID, rydes.Price{Amount: "9", Currency: "EUR"})
	require.NoError(t, err)
	h.waitStatus(both.ID, rydes.StatusComplete)

	// Admin routes need the admin key, not a provider's.
	_, err = beta.ListProviders(ctx)
	require.ErrorAs(t, err, &p)
	require.Equal(t, http.StatusUnauthorized, p.Status)
}

func jsonBody(s string) io.Reader { return strings.NewReader(s) }
