package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"

	"github.com/wildrydes/rydes/client"
)

// caFlagUsage describes --ca, which every command that talks to a server
// has.
const caFlagUsage = "PEM `file` of the certificate authorities to trust, instead of the system's, for an https --server with a private CA"

// httpClient returns the HTTP client a command talks to the server with:
// nil, the client package's default, when caFile is empty; else one that
// trusts only the certificate authorities in caFile for https URLs.
func httpClient(caFile string) (*http.Client, error) {
	if caFile == "" {
		return nil, nil
	}
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("--ca: no PEM certificate in %s", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: client.DefaultTimeout}, nil
}
