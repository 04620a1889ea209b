package api

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/auth"
)

// bearerToken returns the token of the request's one Authorization: Bearer
// header, or "" if there is none, it is of another scheme, or there are
// several (which one to believe would be a guess).
func bearerToken(r *http.Request) string {
	values := r.Header.Values("Authorization")
	if len(values) != 1 {
		return ""
	}
	return auth.BearerToken(values[0])
}

// requireAdmin serves next only to requests that carry the admin key, whose
// hash keyHash returns; every other request gets 401. A nil keyHash, or one
// that returns "", accepts no key.
func requireAdmin(logger *slog.Logger, keyHash func() string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := bearerToken(r)
		if token == "" {
			writeError(w, r, logger, rydes.Errorf(rydes.EUNAUTHORIZED, "the admin key is required (Authorization: Bearer <admin key>)"))
			return
		}
		hash := ""
		if keyHash != nil {
			hash = keyHash()
		}
		if hash == "" || !auth.Matches(token, hash) {
			writeError(w, r, logger, rydes.Errorf(rydes.EUNAUTHORIZED, "the key given is not the admin key"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// providerHandler serves a request from an authenticated provider.
type providerHandler func(w http.ResponseWriter, r *http.Request, p rydes.Provider)

// requireProvider serves next only to requests that carry a provider's API
// key, passing it the provider the key belongs to; every other request gets
// 401. A nil providers accepts no key.
func requireProvider(logger *slog.Logger, providers ProviderRegistry, next providerHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := bearerToken(r)
		if token == "" {
			writeError(w, r, logger, rydes.Errorf(rydes.EUNAUTHORIZED, "a provider API key is required (Authorization: Bearer <API key>)"))
			return
		}
		if providers == nil {
			writeError(w, r, logger, rydes.Errorf(rydes.EUNAUTHORIZED, "unknown or revoked provider API key"))
			return
		}
		p, err := providers.Authenticate(r.Context(), token)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("authenticate provider: %w", err))
			return
		}
		next(w, r, p)
	})
}
