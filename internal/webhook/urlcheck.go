package webhook

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/wildrydes/rydes"
)

// Resolver looks up the IP addresses of a host name. *net.Resolver
// satisfies it; tests use a fake.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// URLPolicy decides, when a URL is registered (a provider's webhook_url, an
// RFQ's notify_url), whether rydes may POST to it. It applies the same rule
// as the send-time check of NewHTTPClient's dialer (publicAddr): unless
// AllowPrivate, every address the URL's host resolves to must be a public
// internet address, not loopback, private, link-local (cloud metadata
// endpoints among them), unspecified, multicast or otherwise reserved. The
// send-time check still runs on the address actually dialled, since what a
// name resolves to may change.
type URLPolicy struct {
	// AllowPrivate lets URLs reach loopback and private addresses, as
	// Config.AllowPrivateNetworks does at send time.
	AllowPrivate bool
	// AllowedNetworks are non-public networks URLs may point at even
	// without AllowPrivate, as Config.AllowedNetworks at send time.
	AllowedNetworks []netip.Prefix
	// Resolver resolves host names; nil means net.DefaultResolver.
	Resolver Resolver
	// Timeout bounds the resolution; zero or less means
	// DefaultResolveTimeout.
	Timeout time.Duration
}

// DefaultResolveTimeout bounds the name resolution of URLPolicy.Check.
const DefaultResolveTimeout = 5 * time.Second

// Check returns nil if rydes may POST to rawURL, and otherwise an EINVALID
// *rydes.Error (without a field: the caller names it) that says why: not an
// http or https URL, a host that is not a public address or resolves to
// one that is not, or a host that does not resolve.
func (p URLPolicy) Check(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return rydes.Errorf(rydes.EINVALID, "must be an absolute http or https URL")
	}
	if p.AllowPrivate {
		return nil
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if !publicAddr(ip) && !inNetworks(ip, p.AllowedNetworks) {
			return rydes.Errorf(rydes.EINVALID, "must not point at a %s address (%s): rydes delivers only to public internet addresses and allowed networks", addrClass(ip), ip)
		}
		return nil
	}
	if looksNumeric(host) {
		// 127.1, 0x7f000001 and 2130706433 are loopback to some resolvers
		// and names to others: not worth the guess.
		return rydes.Errorf(rydes.EINVALID, "has host %q, which is neither a name nor an IP address in standard form", truncate(host, 80))
	}
	resolver := p.Resolver
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultResolveTimeout
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addrs, err := resolver.LookupNetIP(rctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		why := "no address"
		if err != nil {
			why = resolveError(err)
		}
		return rydes.Errorf(rydes.EINVALID, "has host %q, which could not be resolved (%s): rydes cannot check where it leads", truncate(host, 80), why)
	}
	for _, ip := range addrs {
		if !publicAddr(ip) && !inNetworks(ip, p.AllowedNetworks) {
			return rydes.Errorf(rydes.EINVALID, "has host %q, which resolves to a %s address (%s): rydes delivers only to public internet addresses and allowed networks", truncate(host, 80), addrClass(ip), ip.Unmap())
		}
	}
	return nil
}

// cloudMetadata are the addresses of cloud instance metadata services,
// named as such in refusals.
var cloudMetadata = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, …
	netip.MustParseAddr("fd00:ec2::254"),   // AWS over IPv6
	netip.MustParseAddr("169.254.170.2"),   // AWS ECS task metadata
}

// addrClass names why ip is not a public address, for error messages.
func addrClass(ip netip.Addr) string {
	ip = ip.Unmap()
	for _, m := range cloudMetadata {
		if ip == m {
			return "cloud metadata"
		}
	}
	switch {
	case !ip.IsValid():
		return "invalid"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsLoopback():
		return "loopback"
	case ip.IsPrivate():
		return "private"
	case ip.IsLinkLocalUnicast():
		return "link-local"
	case ip.IsMulticast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast"
	case publicAddr(ip):
		return "public"
	}
	return "reserved (not public)"
}

// looksNumeric reports whether host, which is not a valid IP address, ends
// in a label that starts with a digit: no top-level domain does, but the
// loose IPv4 forms some resolvers accept (127.1, 0x7f.1, 2130706433) do.
func looksNumeric(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	return last != "" && last[0] >= '0' && last[0] <= '9' || strings.Contains(host, ":")
}

// resolveError says briefly why a resolution failed.
func resolveError(err error) string {
	if dnsErr, ok := errors.AsType[*net.DNSError](err); ok {
		switch {
		case dnsErr.IsNotFound:
			return "no such host"
		case dnsErr.IsTimeout:
			return "timed out"
		}
		return dnsErr.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return "lookup failed"
}

// truncate cuts s to at most n bytes of valid UTF-8, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
