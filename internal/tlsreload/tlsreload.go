// Package tlsreload serves a TLS certificate from a certificate file and a
// key file, and picks up a renewed certificate without a restart: the files
// are looked at (stat, not read) at each new TLS handshake and read again
// when either of them changed (modification time, size or the file itself,
// as when a symbolic link is repointed).
//
// A renewal that cannot be loaded (a certificate written before its key, a
// key that does not match) leaves the previous certificate in use; it is
// logged once, and tried again when a file changes again.
package tlsreload

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
)

// Keypair is a certificate and its private key loaded from files, reloaded
// when the files change. It is safe for concurrent use.
type Keypair struct {
	certFile, keyFile string
	log               *slog.Logger

	mu   sync.Mutex
	cert *tls.Certificate
	// loaded is what the files looked like when cert was read from them.
	loaded [2]os.FileInfo
	// failed is what the files looked like when reading them last failed,
	// so that a broken renewal is neither retried nor logged at every
	// handshake.
	failed [2]os.FileInfo
	// lastErr is the last error logged, so that it is logged once.
	lastErr string
}

// Load reads the certificate (PEM, the leaf first, then any intermediates)
// and its private key (PEM) from certFile and keyFile. Both are required.
// log receives reloads and failed reloads; nil discards them.
func Load(certFile, keyFile string, log *slog.Logger) (*Keypair, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, errors.New("TLS needs a certificate file and a key file; neither was given")
	case certFile == "":
		return nil, fmt.Errorf("TLS needs a certificate file to go with the key file %s", keyFile)
	case keyFile == "":
		return nil, fmt.Errorf("TLS needs a key file to go with the certificate file %s", certFile)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	k := &Keypair{certFile: certFile, keyFile: keyFile, log: log}
	infos, err := k.stat()
	if err != nil {
		return nil, err
	}
	cert, err := k.read()
	if err != nil {
		return nil, err
	}
	k.cert, k.loaded = cert, infos
	return k, nil
}

// Certificate returns the certificate in use, reloading it first if its
// files changed.
func (k *Keypair) Certificate() *tls.Certificate {
	k.mu.Lock()
	defer k.mu.Unlock()
	infos, err := k.stat()
	if err != nil {
		k.warn("TLS certificate files unreadable; keeping the loaded certificate", err)
		return k.cert
	}
	if same(infos, k.loaded) || same(infos, k.failed) {
		return k.cert
	}
	cert, err := k.read()
	if err != nil {
		k.failed = infos
		k.warn("TLS certificate changed but cannot be loaded; keeping the loaded one until the files change again", err)
		return k.cert
	}
	k.cert, k.loaded, k.failed, k.lastErr = cert, infos, [2]os.FileInfo{}, ""
	if cert.Leaf != nil {
		k.log.Info("reloaded TLS certificate", "cert", k.certFile, "key", k.keyFile, "expires", cert.Leaf.NotAfter)
	}
	return k.cert
}

// GetCertificate is a tls.Config.GetCertificate that returns Certificate
// whatever the client asked for.
func (k *Keypair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return k.Certificate(), nil
}

// ServerConfig returns a TLS server configuration that serves the keypair,
// reloading it as its files change, with TLS 1.2 at least and crypto/tls's
// choice of cipher suites.
func (k *Keypair) ServerConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: k.GetCertificate}
}

func (k *Keypair) stat() ([2]os.FileInfo, error) {
	var infos [2]os.FileInfo
	for i, name := range []string{k.certFile, k.keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			return infos, fmt.Errorf("TLS file: %w", err)
		}
		infos[i] = fi
	}
	return infos, nil
}

func (k *Keypair) read() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate %s and key %s: %w", k.certFile, k.keyFile, err)
	}
	return &cert, nil
}

func (k *Keypair) warn(msg string, err error) {
	if err.Error() == k.lastErr {
		return
	}
	k.lastErr = err.Error()
	k.log.Warn(msg, "err", err)
}

// same reports whether two looks at the files show the same files,
// unchanged.
func same(a, b [2]os.FileInfo) bool {
	for i := range a {
		if a[i] == nil || b[i] == nil {
			return false
		}
		if !os.SameFile(a[i], b[i]) || !a[i].ModTime().Equal(b[i].ModTime()) || a[i].Size() != b[i].Size() {
			return false
		}
	}
	return true
}
