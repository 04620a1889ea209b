// Package webhook delivers requests for quotes to webhook providers: the
// partners that rydes POSTs requests to instead of them consuming their
// queue over NATS.
//
// A webhook provider still has its own durable queue. For each one, a
// Dispatcher runs the provider SDK (package provider) on rydes's own NATS
// connection and consumes that queue; its handler POSTs each request to the
// provider's URL, signed the Standard Webhooks way, and turns the response
// into the provider's answer, which the SDK publishes through the same path
// as any NATS provider's answer. Deliveries that fail are retried with
// backoff until the request's deadline; one that cannot be delivered is kept
// as a dead letter and its provider marked failed in the RFQ's roster, so
// that the RFQ does not wait for it. The Supervisor runs one Dispatcher per
// registered webhook provider and follows the registry as providers come and
// go.
//
// A delivery is
//
//	POST <webhook_url>
//	Content-Type: application/json
//	User-Agent: rydes-webhook/1
//	webhook-id: msg_<rfq id>_<provider id>     (the same on every attempt)
//	webhook-timestamp: <unix seconds>
//	webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">
//
//	<rydes.ProviderRequest as JSON>
//
// and the provider answers with one of
//
//	200 or 201 with a quote or decline as the body (see wire.DecodeReply)
//	202 or 204: it will answer later, over HTTP
//	410: it is gone for good; rydes pauses it
//	429, 5xx (and 408): try again later, after Retry-After if given
//
// Any other status, a redirect (never followed) or an unreadable answer is a
// permanent failure.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/store"
)

// Providers is what the webhook dispatchers need of the provider registry.
// *registry.Registry satisfies it.
type Providers interface {
	// List returns every registered provider.
	List(ctx context.Context) ([]rydes.Provider, error)
	// Get returns one provider; an ENOTFOUND *rydes.Error if it is not
	// registered (any more). It is read before every delivery attempt, so
	// that a changed URL takes effect at once.
	Get(ctx context.Context, id string) (rydes.Provider, error)
	// WebhookSecret returns a webhook provider's signing secret ("whsec_"
	// and base64). It is read before every delivery attempt, so that a
	// rotated secret takes effect at once.
	WebhookSecret(ctx context.Context, id string) (string, error)
	// PauseForGone pauses a provider whose endpoint answered 410 Gone.
	PauseForGone(ctx context.Context, id, reason string) error
}

// Failures records deliveries that failed. store.Store satisfies it.
type Failures interface {
	// MarkProviderFailed marks the provider failed in the RFQ's roster if it
	// is still pending there, and returns the events that emitted.
	MarkProviderFailed(ctx context.Context, p store.MarkProviderFailedParams) ([]rydes.Event, error)
	// AddDeadLetter keeps a delivery that failed for good.
	AddDeadLetter(ctx context.Context, d rydes.DeadLetter) (rydes.DeadLetter, error)
}

// Defaults of Config's fields.
const (
	DefaultMaxAttempts     = 8
	DefaultAttemptTimeout  = 10 * time.Second
	DefaultInitialBackoff  = 500 * time.Millisecond
	DefaultMaxBackoff      = 30 * time.Second
	DefaultConcurrency     = 16
	DefaultMaxResponseSize = 64 << 10
	DefaultResyncInterval  = time.Minute
	DefaultRestartDelay    = 5 * time.Second
)

// UserAgent is the User-Agent of every delivery.
const UserAgent = "rydes-webhook/1"

// The Standard Webhooks headers of a delivery.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Config configures Dispatchers and the Supervisor. Conn, Providers and
// Failures are required; every other field has a default.
type Config struct {
	// Conn is rydes's own NATS connection, allowed to consume every
	// provider's queue and publish every provider's answers. The caller
	// keeps ownership of it.
	Conn *nats.Conn
	// Providers reads the registry: which webhook providers there are, their
	// URLs and signing secrets.
	Providers Providers
	// Failures records failed deliveries.
	Failures Failures
	// OnFailed, if set, is called after MarkProviderFailed emitted events,
	// to wake the outbox relay that publishes them.
	OnFailed func()

	// Clock tells the time of signatures and dead letters and paces the
	// backoff between attempts. Nil for the real clock.
	Clock clockwork.Clock
	// Logger receives the logs. Nil for slog.Default().
	Logger *slog.Logger

	// MaxAttempts bounds the attempts to deliver one request. Default 8.
	MaxAttempts int
	// AttemptTimeout bounds one attempt, from sending the request to having
	// read the response; the request's deadline bounds it too. Default 10s.
	AttemptTimeout time.Duration
	// InitialBackoff is the wait before the second attempt; each further
	// wait doubles, up to MaxBackoff, and is jittered down by up to half.
	// Defaults 500ms and 30s.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// Concurrency bounds the deliveries in flight to one provider. Default
	// 16.
	Concurrency int
	// MaxResponseSize bounds how much of a response body is read. Default
	// 64 KiB; an answer is at most wire.MaxReplyBytes anyway.
	MaxResponseSize int64
	// AllowPrivateNetworks lets deliveries go to loopback, private,
	// link-local and other non-public addresses. Off by default, so that a
	// registered URL cannot reach rydes's own network (cloud metadata
	// endpoints, admin ports); turn it on for development and for partners
	// on a private network.
	AllowPrivateNetworks bool
	// AllowedNetworks are non-public networks deliveries may go to even
	// without AllowPrivateNetworks: an explicit allow-list (a partner on
	// 10.1.2.0/24, loopback for tests).
	AllowedNetworks []netip.Prefix

	// ResyncInterval is how often the Supervisor reconciles with the
	// registry on its own, to notice providers added or removed by other
	// instances. Default 1m; negative disables it.
	ResyncInterval time.Duration
	// RestartDelay is how long the Supervisor waits before restarting a
	// dispatcher that stopped on its own (its queue was missing, say), or
	// retrying a reconcile that failed. Default 5s.
	RestartDelay time.Duration
}

// withDefaults checks cfg and fills in its defaults.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Conn == nil || cfg.Providers == nil || cfg.Failures == nil {
		return cfg, errors.New("webhook: Conn, Providers and Failures are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for _, f := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"AttemptTimeout", &cfg.AttemptTimeout, DefaultAttemptTimeout},
		{"InitialBackoff", &cfg.InitialBackoff, DefaultInitialBackoff},
		{"MaxBackoff", &cfg.MaxBackoff, DefaultMaxBackoff},
		{"RestartDelay", &cfg.RestartDelay, DefaultRestartDelay},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 0 {
			return cfg, fmt.Errorf("webhook: %s must be positive, got %s", f.name, *f.v)
		}
	}
	if cfg.ResyncInterval == 0 {
		cfg.ResyncInterval = DefaultResyncInterval
	}
	if cfg.MaxBackoff < cfg.InitialBackoff {
		return cfg, fmt.Errorf("webhook: MaxBackoff %s is below InitialBackoff %s", cfg.MaxBackoff, cfg.InitialBackoff)
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.MaxAttempts < 0 {
		return cfg, fmt.Errorf("webhook: MaxAttempts must be positive, got %d", cfg.MaxAttempts)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Concurrency < 0 {
		return cfg, fmt.Errorf("webhook: Concurrency must be positive, got %d", cfg.Concurrency)
	}
	if cfg.MaxResponseSize == 0 {
		cfg.MaxResponseSize = DefaultMaxResponseSize
	}
	if cfg.MaxResponseSize < 0 {
		return cfg, fmt.Errorf("webhook: MaxResponseSize must be positive, got %d", cfg.MaxResponseSize)
	}
	return cfg, nil
}

// errAddressNotAllowed is why a connection to a non-public address was
// refused.
var errAddressNotAllowed = errors.New("address not allowed: it is not a public internet address (Config.AllowPrivateNetworks is off)")

// newClient returns the HTTP client every delivery shares, so that
// connections to a provider are reused. It follows no redirect and uses no
// proxy: a delivery goes straight to the registered URL, and where it may go
// is decided on the address actually dialled, after name resolution.
func newClient(cfg Config) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !cfg.AllowPrivateNetworks {
		allowed := cfg.AllowedNetworks
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return fmt.Errorf("dial %s: %w", address, err)
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				return fmt.Errorf("dial %s: %w", address, errAddressNotAllowed)
			}
			if !publicAddr(ip) && !inNetworks(ip, allowed) {
				return fmt.Errorf("dial %s (a %s address): %w", address, addrClass(ip), errAddressNotAllowed)
			}
			return nil
		}
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   cfg.Concurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// inNetworks reports whether ip is in one of nets.
func inNetworks(ip netip.Addr, nets []netip.Prefix) bool {
	ip = ip.Unmap()
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// nonPublic are the address ranges that netip's predicates do not cover
// and that are not on the public internet.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network"
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

// publicAddr reports whether ip is an address on the public internet: the
// one policy of where deliveries may go, applied when a URL is registered
// (URLPolicy) and again on the address actually dialled (newClient).
func publicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsUnspecified() || ip.IsLoopback() || ip.IsPrivate() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}
