package webhook_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/webhook"
)

// fakeResolver answers from a table and counts lookups; a name it does not
// know is not found.
type fakeResolver struct {
	mu      sync.Mutex
	hosts   map[string][]string
	err     map[string]error
	lookups int
}

func (f *fakeResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	if network != "ip" {
		return nil, errors.New("unexpected network " + network)
	}
	if err := f.err[host]; err != nil {
		return nil, err
	}
	addrs, ok := f.hosts[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []netip.Addr
	for _, a := range addrs {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{
		hosts: map[string][]string{
			"partner.example":   {"93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"},
			"localhost":         {"127.0.0.1", "::1"},
			"intranet.example":  {"10.1.2.3"},
			"mixed.example":     {"93.184.216.34", "192.168.0.10"},
			"metadata.example":  {"169.254.169.254"},
			"metadata6.example": {"fd00:ec2::254"},
			"mapped.example":    {"::ffff:127.0.0.1"},
			"empty.example":     {},
		},
		err: map[string]error{
			"slow.example": &net.DNSError{Err: "i/o timeout", Name: "slow.example", IsTimeout: true},
		},
	}
}

// TestURLPolicyRefusesNonPublicAddresses checks the registration-time
// check for every class of address that is not public, as IP literals and
// as names resolving to them, and that public ones pass.
func TestURLPolicyRefusesNonPublicAddresses(t *testing.T) {
	res := newFakeResolver()
	policy := webhook.URLPolicy{Resolver: res}
	for _, tc := range []struct {
		url  string
		want string // "" for allowed, else a part of the reason
	}{
		{"https://93.184.216.34/hook", ""},
		{"https://[2606:2800:220:1:248:1893:25c8:1946]:8443/hook", ""},
		{"https://partner.example/rydes?x=1", ""},
		{"http://partner.example:8080/", ""},

		{"http://127.0.0.1/hook", "loopback"},
		{"http://127.8.9.10:9090/", "loopback"},
		{"http://[::1]/", "loopback"},
		{"http://[::ffff:127.0.0.1]/", "loopback"},
		{"http://10.0.0.1/", "private"},
		{"http://172.16.5.4/", "private"},
		{"http://192.168.1.1/", "private"},
		{"http://[fd12:3456::1]/", "private"},
		{"http://169.254.169.254/latest/meta-data/", "cloud metadata"},
		{"http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata"},
		{"http://169.254.10.20/", "link-local"},
		{"http://[fe80::1]/", "link-local"},
		{"http://[fe80::1%25eth0]/", "link-local"},
		{"http://0.0.0.0/", "unspecified"},
		{"http://[::]/", "unspecified"},
		{"http://224.0.0.1/", "multicast"},
		{"http://[ff02::1]/", "multicast"},
		{"http://100.64.0.1/", "reserved"},
		{"http://198.18.0.1/", "reserved"},
		{"http://240.0.0.1/", "reserved"},
		{"http://255.255.255.255/", "reserved"},

		{"http://localhost:8080/", "resolves to a loopback address"},
		{"http://intranet.example/", "resolves to a private address"},
		{"http://mixed.example/", "resolves to a private address (192.168.0.10)"},
		{"http://metadata.example/", "resolves to a cloud metadata address"},
		{"http://metadata6.example/", "resolves to a cloud metadata address"},
		{"http://mapped.example/", "resolves to a loopback address (127.0.0.1)"},
		{"http://unknown.example/", "could not be resolved (no such host)"},
		{"http://empty.example/", "could not be resolved (no address)"},
		{"http://slow.example/", "could not be resolved (timed out)"},

		{"http://127.1/", "neither a name nor an IP address"},
		{"http://2130706433/", "neither a name nor an IP address"},
		{"http://0x7f.0.0.1/", "neither a name nor an IP address"},
		{"http://017700000001/", "neither a name nor an IP address"},

		{"ftp://partner.example/", "http or https"},
		{"file:///etc/passwd", "http or https"},
		{"gopher://partner.example/", "http or https"},
		{"partner.example/hook", "http or https"},
		{"http:///no-host", "http or https"},
		{"http://[::1/", "http or https"},
	} {
		err := policy.Check(t.Context(), tc.url)
		if tc.want == "" {
			assert.NoError(t, err, "%s", tc.url)
			continue
		}
		if !assert.Error(t, err, "%s must be refused", tc.url) {
			continue
		}
		assert.Equal(t, rydes.EINVALID, rydes.ErrorCodeOf(err), "%s: %v", tc.url, err)
		assert.Contains(t, rydes.ErrorMessageOf(err), tc.want, "%s", tc.url)
	}
}

// TestURLPolicyAllowPrivate checks that AllowPrivate lets loopback and
// private URLs through without resolving anything, but still refuses
// other schemes.
func TestURLPolicyAllowPrivate(t *testing.T) {
	res := newFakeResolver()
	policy := webhook.URLPolicy{AllowPrivate: true, Resolver: res}
	for _, u := range []string{"http://127.0.0.1:9090/hook", "http://localhost/", "http://10.0.0.1/", "http://[::1]:1/", "http://unknown.example/"} {
		require.NoError(t, policy.Check(t.Context(), u), u)
	}
	assert.Zero(t, res.lookups, "nothing needs resolving when everything is allowed")
	assert.Error(t, policy.Check(t.Context(), "ftp://127.0.0.1/"))
}

// TestSendTimeCheckMatchesRegistration checks that the dialer of
// NewHTTPClient refuses each IP literal that URLPolicy refuses, with the
// same class in its error: one policy, applied twice.
func TestSendTimeCheckMatchesRegistration(t *testing.T) {
	policy := webhook.URLPolicy{Resolver: newFakeResolver()}
	c := webhook.NewHTTPClient(false)
	for _, tc := range []struct{ host, class string }{
		{"127.0.0.1", "loopback"}, {"[::1]", "loopback"}, {"10.0.0.1", "private"},
		{"169.254.169.254", "cloud metadata"}, {"[fd00:ec2::254]", "cloud metadata"},
		{"[fe80::1]", "link-local"}, {"0.0.0.0", "unspecified"}, {"224.0.0.1", "multicast"},
		{"100.64.0.1", "reserved"},
	} {
		u := "http://" + tc.host + ":9/hook"
		err := policy.Check(t.Context(), u)
		require.Error(t, err, u)
		assert.Contains(t, err.Error(), tc.class, u)

		ctx, cancel := context.WithCancel(t.Context())
		req, rerr := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
		require.NoError(t, rerr)
		resp, derr := c.Do(req)
		cancel()
		if resp != nil {
			resp.Body.Close()
		}
		require.Error(t, derr, "%s was dialled", u)
		assert.True(t, webhook.IsAddressNotAllowed(derr), "%s: %v", u, derr)
		assert.True(t, strings.Contains(derr.Error(), tc.class), "%s: the send-time refusal names the class: %v", u, derr)
	}
}

// TestAllowedNetworks checks the explicit allow-list: a non-public network
// on it is allowed at registration and at send time, the rest of the
// non-public addresses are still refused, and so are names resolving to
// them.
func TestAllowedNetworks(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	policy := webhook.URLPolicy{AllowedNetworks: loopback, Resolver: newFakeResolver()}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(srv.Close)

	require.NoError(t, policy.Check(t.Context(), srv.URL+"/hook"), "loopback is on the list")
	for _, u := range []string{"http://10.0.0.1/hook", "http://[::1]/hook", "http://169.254.169.254/latest"} {
		require.Error(t, policy.Check(t.Context(), u), "%s is not on the list", u)
	}

	post := func(c *http.Client, u string) error {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, u, nil)
		require.NoError(t, err)
		resp, err := c.Do(req)
		if resp != nil {
			resp.Body.Close()
		}
		return err
	}
	require.NoError(t, post(webhook.NewHTTPClient(false, loopback...), srv.URL), "the send-time check lets the allowed network through")
	err := post(webhook.NewHTTPClient(false), srv.URL)
	require.Error(t, err)
	require.True(t, webhook.IsAddressNotAllowed(err), "without the list, loopback is refused: %v", err)
	err = post(webhook.NewHTTPClient(false, netip.MustParsePrefix("10.0.0.0/8")), srv.URL)
	require.True(t, webhook.IsAddressNotAllowed(err), "another network on the list does not let loopback through: %v", err)
}
