package webhook

import (
	"errors"
	"net/http"
	"net/netip"
	"time"
)

// NewHTTPClient returns an HTTP client that delivers the way webhook
// deliveries do: no proxy, no redirect followed (the 3xx response is
// returned), and, unless allowPrivate, no connection to a loopback, private,
// link-local or otherwise non-public address, checked on the address
// actually dialled, except to the allowed networks. Other packages that
// POST to URLs given by partners or customers (the completion notifier) use
// it.
func NewHTTPClient(allowPrivate bool, allowed ...netip.Prefix) *http.Client {
	return newClient(Config{AllowPrivateNetworks: allowPrivate, AllowedNetworks: allowed, Concurrency: DefaultConcurrency})
}

// IsAddressNotAllowed reports whether err comes from a client of
// NewHTTPClient refusing to connect to a non-public address.
func IsAddressNotAllowed(err error) bool { return errors.Is(err, errAddressNotAllowed) }

// ParseRetryAfter parses a Retry-After header value, in seconds or as an
// HTTP date, and returns the wait it asks for from now (at most 24h) and
// whether it was valid.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	return parseRetryAfter(v, now)
}
