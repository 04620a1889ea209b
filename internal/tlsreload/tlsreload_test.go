package tlsreload_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/tlsreload"
)

func TestLoadErrors(t *testing.T) {
	_, certFile, keyFile := rydestest.Certs(t)
	_, otherCert, _ := rydestest.Certs(t)

	_, err := tlsreload.Load(certFile, "", nil)
	require.ErrorContains(t, err, "needs a key file to go with the certificate file "+certFile)
	_, err = tlsreload.Load("", keyFile, nil)
	require.ErrorContains(t, err, "needs a certificate file to go with the key file "+keyFile)
	missing := filepath.Join(t.TempDir(), "nope.pem")
	_, err = tlsreload.Load(missing, keyFile, nil)
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, missing)
	_, err = tlsreload.Load(otherCert, keyFile, nil)
	require.ErrorContains(t, err, "load TLS certificate "+otherCert+" and key "+keyFile)
	_, err = tlsreload.Load(keyFile, certFile, nil)
	require.Error(t, err, "swapped files")
}

// replace writes src's content over dst and moves dst's modification time
// away from what it was, so that the change is seen whatever the file
// system's timestamp granularity.
func replace(t *testing.T, dst, src string, mtime time.Time) {
	t.Helper()
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(dst, b, 0o600))
	require.NoError(t, os.Chtimes(dst, mtime, mtime))
}

func TestReload(t *testing.T) {
	_, certFile, keyFile := rydestest.Certs(t)
	_, newCert, newKey := rydestest.Certs(t)
	k, err := tlsreload.Load(certFile, keyFile, rydestest.Logger(t))
	require.NoError(t, err)
	first := k.Certificate()
	require.Same(t, first, k.Certificate(), "unchanged files are not read again")

	// A renewal half written (the new certificate, the old key) keeps the
	// old certificate in use.
	later := time.Now().Add(time.Hour)
	replace(t, certFile, newCert, later)
	require.Same(t, first, k.Certificate())

	// Once the key follows, the new certificate is served.
	replace(t, keyFile, newKey, later)
	got := k.Certificate()
	require.NotSame(t, first, got)
	require.NotEqual(t, first.Certificate[0], got.Certificate[0])
	require.Equal(t, got.Leaf.SerialNumber, mustLoad(t, newCert, newKey).Certificate().Leaf.SerialNumber)

	// Files that disappear leave the loaded certificate in use.
	require.NoError(t, os.Remove(keyFile))
	require.Same(t, got, k.Certificate())

	cfg := k.ServerConfig()
	require.NotNil(t, cfg.GetCertificate)
	require.Empty(t, cfg.CipherSuites, "crypto/tls picks the cipher suites")
	require.EqualValues(t, tls.VersionTLS12, cfg.MinVersion, "TLS 1.2 at least")
}

func mustLoad(t *testing.T, certFile, keyFile string) *tlsreload.Keypair {
	t.Helper()
	k, err := tlsreload.Load(certFile, keyFile, nil)
	require.NoError(t, err)
	return k
}
