package auth_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes/internal/auth"
)

type memSettings struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *memSettings) GetSetting(_ context.Context, name string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[name]
	return v, ok, nil
}

func (s *memSettings) InitSetting(_ context.Context, name, value string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[name]; ok {
		return v, nil
	}
	s.m[name] = value
	return value, nil
}

func (s *memSettings) PutSetting(_ context.Context, name, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[name] = value
	return nil
}

func TestTokensAndHashes(t *testing.T) {
	a, b := auth.NewToken(auth.PrefixAPIKey), auth.NewToken(auth.PrefixAPIKey)
	require.NotEqual(t, a, b)
	require.True(t, strings.HasPrefix(a, auth.PrefixAPIKey))
	require.GreaterOrEqual(t, len(a)-len(auth.PrefixAPIKey), 50, "256 bits in base32")
	require.True(t, auth.Matches(a, auth.Hash(a)))
	require.False(t, auth.Matches(b, auth.Hash(a)))
	require.False(t, auth.Matches(a, ""))
	require.False(t, auth.Matches(a, auth.Hash(a)[:10]))
	require.True(t, strings.HasPrefix(auth.NewWebhookSecret(), "whsec_"))
}

func TestBearerToken(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer abc":   "abc",
		"bearer  abc ": "abc",
		"Basic abc":    "",
		"Bearer":       "",
		"":             "",
	} {
		require.Equal(t, want, auth.BearerToken(header), header)
	}
}

func TestEnsureAdminKey(t *testing.T) {
	ctx := context.Background()
	s := &memSettings{m: map[string]string{}}

	hash, generated, err := auth.EnsureAdminKey(ctx, s, "")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(generated, auth.PrefixAdminKey), "first start makes a key")
	require.True(t, auth.Matches(generated, hash))
	require.NotContains(t, s.m[auth.AdminKeyHashSetting], generated, "only the hash is stored")

	again, generated2, err := auth.EnsureAdminKey(ctx, s, "")
	require.NoError(t, err)
	require.Empty(t, generated2, "shown once")
	require.Equal(t, hash, again)

	configured := "a-configured-admin-key"
	h3, _, err := auth.EnsureAdminKey(ctx, s, configured)
	require.NoError(t, err)
	require.True(t, auth.Matches(configured, h3))
	require.False(t, auth.Matches(generated, h3), "a configured key replaces the generated one")

	_, _, err = auth.EnsureAdminKey(ctx, s, "short")
	require.Error(t, err)
}
