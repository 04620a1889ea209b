package app_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/client"
	"github.com/wildrydes/rydes/internal/app"
	"github.com/wildrydes/rydes/internal/rydestest"
)

// tlsConfig is partnerConfig with HTTPS and a TLS-only broker listener,
// both serving the certificate of a throwaway CA, whose file it returns.
func tlsConfig(t *testing.T) (app.Config, string) {
	t.Helper()
	caFile, certFile, keyFile := rydestest.Certs(t)
	cfg := partnerConfig(t)
	cfg.TLSCertFile, cfg.TLSKeyFile = certFile, keyFile
	cfg.NATSTLSCertFile, cfg.NATSTLSKeyFile = certFile, keyFile
	return cfg, caFile
}

// TestTLSEndToEnd runs rydes with HTTPS and a TLS broker listener: the SDK
// talks to the API trusting the CA, a NATS partner connects over tls:// and
// answers a request that completes, and plaintext clients get nowhere.
func TestTLSEndToEnd(t *testing.T) {
	cfg, caFile := tlsConfig(t)
	h := start(t, cfg)
	ctx := rydestest.Context(t)
	base := h.app.URL()
	require.True(t, strings.HasPrefix(base, "https://127.0.0.1:"), base)
	require.True(t, strings.HasPrefix(h.app.NATSURL(), "tls://127.0.0.1:"), h.app.NATSURL())

	hc := rydestest.HTTPSClient(t, caFile)
	resp, err := hc.Get(base + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotNil(t, resp.TLS, "served over TLS")
	require.GreaterOrEqual(t, resp.TLS.Version, uint16(0x0303), "TLS 1.2 at least")

	// Plain HTTP on the same port is answered by the TLS layer, not the API.
	resp, err = http.Get("http://" + strings.TrimPrefix(base, "https://") + "/healthz")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, string(body), "HTTP request to an HTTPS server")

	// A client that does not trust the CA refuses the certificate.
	_, err = http.Get(base + "/healthz")
	require.ErrorContains(t, err, "certificate signed by unknown authority")

	admin, err := client.New(base, client.WithAPIKey(adminKey), client.WithHTTPClient(hc))
	require.NoError(t, err)
	_, creds, err := admin.CreateProvider(ctx, client.CreateProviderRequest{ID: "secure", Kind: rydes.ProviderKindNATS})
	require.NoError(t, err)

	// Plain NATS to the broker's listener gets no further than INFO.
	info, after := rydestest.PlainNATS(t, h.app.NATSURL(), creds.NATSUser, creds.NATSPassword)
	require.Contains(t, info, `"tls_required":true`)
	require.NotContains(t, after, "PONG")
	// Nor does TLS without trusting the CA.
	_, err = nats.Connect(h.app.NATSURL(), nats.UserInfo(creds.NATSUser, creds.NATSPassword))
	require.ErrorContains(t, err, "certificate signed by unknown authority")

	runNATSPartner(t, h.app.NATSURL(), creds, "42.00", nats.RootCAs(caFile))

	rfq, err := admin.CreateRFQ(ctx, client.CreateRFQRequest{Customer: "cmr", From: "Frankfurt", To: "Las Vegas"})
	require.NoError(t, err)
	require.Equal(t, []string{"secure"}, rfq.Asked())
	// The event stream over HTTPS follows it to the end.
	var kinds []string
	require.NoError(t, admin.Events(ctx, rfq.ID, 0, func(ev rydes.Event) error {
		kinds = append(kinds, string(ev.Type))
		return nil
	}))
	require.Equal(t, []string{"created", "quote", "complete"}, kinds)
	got, err := admin.GetRFQ(ctx, rfq.ID)
	require.NoError(t, err)
	require.Equal(t, rydes.StatusComplete, got.Status)
	require.Len(t, got.Quotes, 1)
	require.Equal(t, "secure", got.Quotes[0].Provider)
	require.Equal(t, "42.00", got.Quotes[0].Price.Amount)
}

// TestHTTPSCertificateReload replaces the certificate files of a running
// rydes: new connections get the new certificate, with no restart.
func TestHTTPSCertificateReload(t *testing.T) {
	caFile, certFile, keyFile := rydestest.Certs(t)
	newCA, newCert, newKey := rydestest.Certs(t)
	cfg := config(t, t.TempDir(), fleet(0, 0, false))
	cfg.TLSCertFile, cfg.TLSKeyFile = certFile, keyFile
	h := start(t, cfg)
	healthz := func(caFile string) error {
		resp, err := rydestest.HTTPSClient(t, caFile).Get(h.app.URL() + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		return nil
	}
	require.NoError(t, healthz(caFile))
	require.Error(t, healthz(newCA))

	later := time.Now().Add(time.Hour) // a modification time surely different
	for dst, src := range map[string]string{certFile: newCert, keyFile: newKey} {
		b, err := os.ReadFile(src)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(dst, b, 0o600))
		require.NoError(t, os.Chtimes(dst, later, later))
	}
	require.NoError(t, healthz(newCA), "the renewed certificate is served")
	require.ErrorContains(t, healthz(caFile), "certificate signed by unknown authority")
}

// TestExternalBrokerOverTLS runs a second instance on the first one's TLS
// broker: it trusts the broker with NATSCAFile, and refuses it without.
func TestExternalBrokerOverTLS(t *testing.T) {
	dir := t.TempDir()
	cfgA, caFile := tlsConfig(t)
	cfgA.DataDir = dir
	cfgA.NATSPassword = "instance-password-0123456789"
	a := start(t, cfgA)

	cfgB := config(t, dir, fleet(0, 0, false))
	cfgB.Demo = false
	cfgB.AdminKey = adminKey
	cfgB.NATSURL = a.app.NATSURL()
	cfgB.NATSPassword = cfgA.NATSPassword

	_, err := app.Start(rydestest.Context(t), cfgB)
	require.ErrorContains(t, err, "certificate signed by unknown authority", "the system's CAs do not know the test CA")
	require.ErrorContains(t, err, "connect to nats at "+a.app.NATSURL())

	cfgB.NATSCAFile = caFile
	b := start(t, cfgB)
	state, err := b.app.Conn().TLSConnectionState()
	require.NoError(t, err)
	require.True(t, state.HandshakeComplete)

	// What B's API creates, A's broker carries: a partner on A answers it.
	ctx := rydestest.Context(t)
	admin, err := client.New(a.app.URL(), client.WithAPIKey(adminKey), client.WithHTTPClient(rydestest.HTTPSClient(t, caFile)))
	require.NoError(t, err)
	_, creds, err := admin.CreateProvider(ctx, client.CreateProviderRequest{ID: "shared", Kind: rydes.ProviderKindNATS})
	require.NoError(t, err)
	runNATSPartner(t, a.app.NATSURL(), creds, "7.00", nats.RootCAs(caFile))
	onB, err := client.New(b.app.URL(), client.WithAPIKey(adminKey))
	require.NoError(t, err)
	rfq, err := onB.CreateRFQ(ctx, client.CreateRFQRequest{Customer: "cmr", From: "A", To: "B"})
	require.NoError(t, err)
	final, err := onB.Watch(ctx, rfq.ID, 10*time.Millisecond, nil)
	require.NoError(t, err)
	require.Equal(t, rydes.StatusComplete, final.Status)
}

// TestExternalBrokerClientCertificate runs rydes against a broker that
// requires a client certificate signed by its CA.
func TestExternalBrokerClientCertificate(t *testing.T) {
	caFile, certFile, keyFile := rydestest.Certs(t)
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: certFile, KeyFile: keyFile, CaFile: caFile, Verify: true})
	require.NoError(t, err)
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: t.TempDir(), TLSConfig: tc, TLSVerify: true, TLSTimeout: 5,
	})
	require.NoError(t, err)
	go srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	require.True(t, srv.ReadyForConnections(rydestest.WaitTimeout), "broker ready")

	cfg := config(t, t.TempDir(), fleet(1, 1, false))
	cfg.NATSURL = srv.ClientURL()
	cfg.NATSCAFile = caFile
	_, err = app.Start(rydestest.Context(t), cfg)
	require.ErrorContains(t, err, "connect to nats at", "no client certificate")

	cfg.NATSCertFile, cfg.NATSKeyFile = certFile, keyFile
	h := start(t, cfg)
	rfq := h.create(`{"customer":"cmr","from":"A","to":"B"}`)
	h.waitStatus(rfq.ID, rydes.StatusComplete)
}

// TestTLSConfigErrors checks that TLS settings that cannot work, or would
// be ignored, stop Start with an error that says what to fix.
func TestTLSConfigErrors(t *testing.T) {
	_, certFile, keyFile := rydestest.Certs(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tc := range []struct {
		name string
		set  func(*app.Config)
		want string
	}{
		{"cert without key", func(c *app.Config) { c.TLSCertFile = certFile }, "needs a key file to go with the certificate file"},
		{"key without cert", func(c *app.Config) { c.TLSKeyFile = keyFile }, "needs a certificate file to go with the key file"},
		{"unreadable cert", func(c *app.Config) { c.TLSCertFile, c.TLSKeyFile = missing, keyFile }, "missing.pem: no such file"},
		{"key that is no key", func(c *app.Config) { c.TLSCertFile, c.TLSKeyFile = certFile, certFile }, "load TLS certificate"},
		{"nats tls without listener", func(c *app.Config) { c.NATSTLSCertFile, c.NATSTLSKeyFile = certFile, keyFile },
			"set --nats-listen too"},
		{"nats tls cert without key", func(c *app.Config) { c.NATSListen, c.NATSTLSCertFile = "127.0.0.1:0", certFile },
			"needs both --nats-tls-cert and --nats-tls-key"},
		{"nats tls unreadable", func(c *app.Config) {
			c.NATSListen, c.NATSTLSCertFile, c.NATSTLSKeyFile = "127.0.0.1:0", certFile, missing
		}, "missing.pem"},
		{"nats tls with an external broker", func(c *app.Config) {
			c.NATSURL, c.NATSTLSCertFile, c.NATSTLSKeyFile = "nats://127.0.0.1:1", certFile, keyFile
		}, "does not run with --nats-url"},
		{"nats ca without an external broker", func(c *app.Config) { c.NATSCAFile = certFile }, "are for an external broker (--nats-url)"},
		{"nats client cert without key", func(c *app.Config) { c.NATSURL, c.NATSCertFile = "nats://127.0.0.1:1", certFile },
			"needs both --nats-cert and --nats-key"},
		{"unreadable nats ca", func(c *app.Config) { c.NATSURL, c.NATSCAFile = "tls://127.0.0.1:1", missing }, "missing.pem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(t, t.TempDir(), fleet(0, 0, false))
			tc.set(&cfg)
			a, err := app.Start(rydestest.Context(t), cfg)
			if err == nil {
				require.NoError(t, a.Shutdown(context.Background()))
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}
