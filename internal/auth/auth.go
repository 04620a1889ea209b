// Package auth makes and checks rydes's secrets: API keys, NATS passwords
// and the admin key. rydes stores only SHA-256 hashes of them (they are
// random, high-entropy tokens, so a fast hash is the right one) and compares
// hashes in constant time.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// Prefixes of the secrets rydes makes, so that a leaked one is recognisable.
const (
	PrefixAdminKey      = "rydes_admin_"
	PrefixAPIKey        = "rydes_pk_"
	PrefixNATSPassword  = "rydes_np_"
	PrefixWebhookSecret = "whsec_" // Standard Webhooks
)

// NewToken returns prefix followed by 256 random bits, base32-encoded.
func NewToken(prefix string) string {
	return prefix + rand.Text() + rand.Text()
}

// NewWebhookSecret returns a Standard Webhooks signing secret: "whsec_"
// followed by 32 random bytes in base64.
func NewWebhookSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return PrefixWebhookSecret + base64.StdEncoding.EncodeToString(b)
}

// Hash returns the hex SHA-256 of a secret, as stored.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Matches reports, in constant time, whether secret hashes to hash.
func Matches(secret, hash string) bool {
	got := Hash(secret)
	return len(hash) == len(got) && subtle.ConstantTimeCompare([]byte(got), []byte(hash)) == 1
}

// BearerToken returns the token of an "Authorization: Bearer <token>"
// header value, or "".
func BearerToken(header string) string {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// Settings is the part of the store that keeps the admin key's hash.
type Settings interface {
	GetSetting(ctx context.Context, name string) (string, bool, error)
	InitSetting(ctx context.Context, name, value string) (string, error)
	PutSetting(ctx context.Context, name, value string) error
}

// AdminKeyHashSetting names the setting holding the admin key's hash.
const AdminKeyHashSetting = "admin_key_hash"

// MinAdminKeyLen is the shortest admin key accepted from configuration.
const MinAdminKeyLen = 16

// EnsureAdminKey makes sure an admin key is in force and returns its hash.
// A configured key replaces the stored one. Without one, the stored key is
// kept; if there is none, a new key is made and returned as generated, to
// be shown once: only its hash is kept.
func EnsureAdminKey(ctx context.Context, s Settings, configured string) (hash, generated string, err error) {
	if configured != "" {
		if len(configured) < MinAdminKeyLen {
			return "", "", fmt.Errorf("admin key: must be at least %d characters", MinAdminKeyLen)
		}
		hash = Hash(configured)
		if err := s.PutSetting(ctx, AdminKeyHashSetting, hash); err != nil {
			return "", "", fmt.Errorf("store admin key hash: %w", err)
		}
		return hash, "", nil
	}
	if h, ok, err := s.GetSetting(ctx, AdminKeyHashSetting); err != nil {
		return "", "", fmt.Errorf("read admin key hash: %w", err)
	} else if ok {
		return h, "", nil
	}
	key := NewToken(PrefixAdminKey)
	hash, err = s.InitSetting(ctx, AdminKeyHashSetting, Hash(key))
	if err != nil {
		return "", "", fmt.Errorf("store admin key hash: %w", err)
	}
	if hash != Hash(key) {
		return hash, "", nil // another process made one first
	}
	return hash, key, nil
}
