package bus

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
	"github.com/wildrydes/rydes/provider"
)

// TestEmbeddedTLS checks that the client listener requires TLS with the
// configured certificate while in-process connections keep working.
func TestEmbeddedTLS(t *testing.T) {
	ctx := rydestest.Context(t)
	caFile, certFile, keyFile := rydestest.Certs(t)
	fp := newFakeProviders(map[string]string{"A": "pass-a"})
	emb, err := StartEmbedded(ctx, EmbeddedConfig{
		StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Providers: fp, Logger: rydestest.Logger(t),
		TLSCertFile: certFile, TLSKeyFile: keyFile,
	})
	require.NoError(t, err)
	t.Cleanup(emb.Shutdown)
	url := emb.ClientURL()
	require.True(t, strings.HasPrefix(url, "tls://127.0.0.1:"), url)

	// rydes's own in-process connection needs no TLS options.
	own, err := emb.Connect()
	require.NoError(t, err)
	t.Cleanup(own.Close)
	b, err := New(ctx, own, Config{Logger: rydestest.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(b.Close)
	require.NoError(t, b.EnsureProviderQueue(ctx, "A"))
	_, err = b.Publish(ctx, []store.OutboxMessage{openDispatch(1, rfq1, "A")})
	require.NoError(t, err)

	// A provider that trusts the CA connects over TLS and reads its queue.
	nc, err := provider.Connect(url, "A", "pass-a", nats.RootCAs(caFile))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	state, err := nc.TLSConnectionState()
	require.NoError(t, err)
	require.True(t, state.HandshakeComplete)
	require.GreaterOrEqual(t, state.Version, uint16(0x0303), "TLS 1.2 at least")
	qi, err := b.QueueInfo(ctx, "A")
	require.NoError(t, err)
	require.EqualValues(t, 1, qi.Pending)

	// One that trusts another CA refuses the server's certificate.
	otherCA, _, _ := rydestest.Certs(t)
	_, err = provider.Connect(url, "A", "pass-a", nats.RootCAs(otherCA), nats.MaxReconnects(0))
	require.ErrorContains(t, err, "certificate signed by unknown authority")

	// A client speaking plain NATS gets no further than the INFO line.
	info, after := rydestest.PlainNATS(t, url, "A", "pass-a")
	require.Contains(t, info, `"tls_required":true`)
	require.NotContains(t, after, "PONG", "a plaintext client must not get in")
}

func TestEmbeddedTLSConfigErrors(t *testing.T) {
	ctx := rydestest.Context(t)
	_, certFile, keyFile := rydestest.Certs(t)
	for _, tc := range []struct {
		name string
		cfg  EmbeddedConfig
		want string
	}{
		{"no listener", EmbeddedConfig{TLSCertFile: certFile, TLSKeyFile: keyFile}, "none is configured"},
		{"no key", EmbeddedConfig{Listen: "127.0.0.1:0", TLSCertFile: certFile}, "needs a key file"},
		{"no certificate", EmbeddedConfig{Listen: "127.0.0.1:0", TLSKeyFile: keyFile}, "needs a certificate file"},
		{"missing file", EmbeddedConfig{Listen: "127.0.0.1:0", TLSCertFile: filepath.Join(t.TempDir(), "gone.pem"), TLSKeyFile: keyFile}, "gone.pem"},
		{"not a certificate", EmbeddedConfig{Listen: "127.0.0.1:0", TLSCertFile: keyFile, TLSKeyFile: keyFile}, "load TLS certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.StoreDir = t.TempDir()
			emb, err := StartEmbedded(ctx, tc.cfg)
			if err == nil {
				emb.Shutdown()
			}
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, "start embedded nats")
		})
	}
}
