package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"

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
// that returns "", accepts no key. Requests over the admin rate limit get
// 429.
func requireAdmin(logger *slog.Logger, keyHash func() string, limits *limiters, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := bearerToken(r)
		if token == "" {
			writeError(w, r, logger, rydes.Errorf(rydes.EUNAUTHORIZED, "the admin key is required (Authorization: Bearer <admin key>)"))
			return
		}
		if limits.guessing(w, r, logger) {
			return
		}
		hash := ""
		if keyHash != nil {
			hash = keyHash()
		}
		if hash == "" || !auth.Matches(token, hash) {
			limits.failedAuth(w, r, logger, rydes.Errorf(rydes.EUNAUTHORIZED, "the key given is not the admin key"))
			return
		}
		if !limits.allow(w, r, logger, limits.admin, "admin") {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// providerHandler serves a request from an authenticated provider.
type providerHandler func(w http.ResponseWriter, r *http.Request, p rydes.Provider)

// requireProvider serves next only to requests that carry a provider's API
// key, passing it the provider the key belongs to; every other request gets
// 401. A nil providers accepts no key. Requests over the provider's rate
// limit get 429.
func requireProvider(logger *slog.Logger, providers ProviderRegistry, limits *limiters, next providerHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := bearerToken(r)
		if token == "" {
			writeError(w, r, logger, rydes.Errorf(rydes.EUNAUTHORIZED, "a provider API key is required (Authorization: Bearer <API key>)"))
			return
		}
		if limits.guessing(w, r, logger) {
			return
		}
		if providers == nil {
			limits.failedAuth(w, r, logger, rydes.Errorf(rydes.EUNAUTHORIZED, "unknown or revoked provider API key"))
			return
		}
		p, err := providers.Authenticate(r.Context(), token)
		if err != nil {
			err = fmt.Errorf("authenticate provider: %w", err)
			if rydes.ErrorCodeOf(err) == rydes.EUNAUTHORIZED {
				limits.failedAuth(w, r, logger, err)
			} else {
				writeError(w, r, logger, err)
			}
			return
		}
		if !limits.allow(w, r, logger, limits.provider, p.ID) {
			return
		}
		next(w, r, p)
	})
}

// customerHandler serves a request to a customer route. customer is the id
// of the customer whose key the request carries, to which the handler
// scopes what it does; "" for the admin key and the open demo customer,
// which act for no customer in particular (the body names it).
type customerHandler func(w http.ResponseWriter, r *http.Request, customer string)

// requireCustomer serves next to requests that carry a customer's API key
// (passing the customer's id) or the admin key (passing ""), and, if open,
// to requests without an Authorization header from a loopback address
// (passing ""); every other request gets 401. A nil customers accepts no
// customer key. Requests over their rate limit get 429: the customer's,
// the admin key's, or for the open demo customer the remote address's.
func requireCustomer(logger *slog.Logger, customers CustomerRegistry, adminKeyHash func() string, open bool, limits *limiters, next customerHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := bearerToken(r)
		if token == "" {
			// An Authorization header that is not one Bearer token is a
			// mistake to report, not an absent key.
			if len(r.Header.Values("Authorization")) == 0 && open && isLoopback(r.RemoteAddr) {
				if !limits.allow(w, r, logger, limits.customer, "ip:"+remoteIP(r.RemoteAddr)) {
					return
				}
				next(w, r, "")
				return
			}
			writeError(w, r, logger, rydes.Errorf(rydes.EUNAUTHORIZED, "a customer API key is required (Authorization: Bearer <API key>)"))
			return
		}
		if limits.guessing(w, r, logger) {
			return
		}
		if adminKeyHash != nil {
			if hash := adminKeyHash(); hash != "" && auth.Matches(token, hash) {
				if !limits.allow(w, r, logger, limits.admin, "admin") {
					return
				}
				next(w, r, "")
				return
			}
		}
		if customers == nil {
			limits.failedAuth(w, r, logger, rydes.Errorf(rydes.EUNAUTHORIZED, "unknown or revoked customer API key"))
			return
		}
		c, err := customers.Authenticate(r.Context(), token)
		if err != nil {
			err = fmt.Errorf("authenticate customer: %w", err)
			if rydes.ErrorCodeOf(err) == rydes.EUNAUTHORIZED {
				limits.failedAuth(w, r, logger, err)
			} else {
				writeError(w, r, logger, err)
			}
			return
		}
		if c.ID == "" { // a registry bug must not open every RFQ
			writeError(w, r, logger, errors.New("authenticate customer: the registry returned a customer without id"))
			return
		}
		if !limits.allow(w, r, logger, limits.customer, "customer:"+c.ID) {
			return
		}
		next(w, r, c.ID)
	})
}

// isLoopback reports whether addr, a RemoteAddr ("host:port"), is a
// loopback address: 127.0.0.0/8 or ::1 (also as an IPv4-mapped address).
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return ip.Unmap().IsLoopback()
}
