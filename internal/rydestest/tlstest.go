package rydestest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Certs makes a throwaway certificate authority and a server certificate it
// signed for 127.0.0.1, ::1 and localhost, and writes them as PEM files to a
// new directory of t.TempDir(): the CA's certificate (what clients trust),
// the server's certificate and its private key (what the server serves).
// Each call makes a new CA, so a client that trusts one call's CA does not
// trust another's certificates.
func Certs(t testing.TB) (caFile, certFile, keyFile string) {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate CA key: %v", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "rydes test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("create CA certificate: %v", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("parse CA certificate: %v", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate server key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: "rydes test server"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatalf("create server certificate: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("encode server key: %v", err)
	}

	dir, err := os.MkdirTemp(t.TempDir(), "certs")
	if err != nil {
		t.Fatalf("make certificate dir: %v", err)
	}
	caFile = filepath.Join(dir, "ca.pem")
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	writePEM(t, caFile, "CERTIFICATE", caDER)
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return caFile, certFile, keyFile
}

// CertPool returns a pool holding the certificates of the PEM file caFile.
func CertPool(t testing.TB, caFile string) *x509.CertPool {
	t.Helper()
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatalf("read CA file: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("no certificate in CA file %s", caFile)
	}
	return pool
}

// HTTPSClient returns an HTTP client that trusts only the CA of caFile and
// opens a new connection for every request, so that each request sees the
// certificate the server serves at that moment.
func HTTPSClient(t testing.TB, caFile string) *http.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: CertPool(t, caFile), MinVersion: tls.VersionTLS12}
	tr.DisableKeepAlives = true
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: WaitTimeout}
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("make serial number: %v", err)
	}
	return n
}

func writePEM(t testing.TB, name, blockType string, der []byte) {
	t.Helper()
	if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
}

// PlainNATS talks plain NATS, without TLS, to the server at hostport (a
// "host:port", or a nats:// or tls:// URL): it reads the INFO line the
// server sends first, sends CONNECT with user and password and a PING, and
// returns the INFO line and everything the server sent afterwards until it
// closed the connection. A server that requires TLS sends no PONG.
func PlainNATS(t testing.TB, hostport, user, password string) (info, after string) {
	t.Helper()
	if u, err := url.Parse(hostport); err == nil && u.Host != "" {
		hostport = u.Host
	}
	conn, err := net.Dial("tcp", hostport)
	if err != nil {
		t.Fatalf("dial %s: %v", hostport, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(WaitTimeout)); err != nil {
		t.Fatalf("set deadline: %v", err)
	}
	r := bufio.NewReader(conn)
	info, err = r.ReadString('\n')
	if err != nil {
		t.Fatalf("read INFO from %s: %v", hostport, err)
	}
	connect, err := json.Marshal(map[string]any{"user": user, "pass": password, "verbose": false, "pedantic": false})
	if err != nil {
		t.Fatalf("encode CONNECT: %v", err)
	}
	if _, err := fmt.Fprintf(conn, "CONNECT %s\r\nPING\r\n", connect); err != nil {
		// The server may have closed the connection already.
		return info, ""
	}
	rest, err := io.ReadAll(r)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatalf("%s kept a plaintext connection open for %s", hostport, WaitTimeout)
	}
	return info, string(rest)
}
