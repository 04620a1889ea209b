package api_test

import (
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/api"
)

// testClock is a clock the tests move by hand, for the rate limiter's
// buckets: nothing depends on the wall clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// limited returns a configure function that sets limits and a clock that
// the test controls.
func limited(limits api.RateLimits) (*testClock, func(*api.Config)) {
	clock := &testClock{now: testNow}
	return clock, func(cfg *api.Config) {
		cfg.RateLimits = limits
		cfg.Now = clock.Now
	}
}

// requireTooMany checks a 429: a too_many_requests problem with a
// Retry-After of want seconds.
func requireTooMany(t *testing.T, resp *http.Response, body []byte, want int) {
	t.Helper()
	p := requireProblem(t, resp, body, http.StatusTooManyRequests, "")
	assert.Equal(t, api.ProblemTypeBase+string(rydes.ETOOMANY), p.Type)
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After %q is whole seconds", resp.Header.Get("Retry-After"))
	assert.GreaterOrEqual(t, secs, 1)
	assert.Equal(t, want, secs, "Retry-After")
}

// TestRateLimitCustomerKey checks that the (burst+1)th request of a
// customer key gets 429 with Retry-After and creates nothing, that another
// customer is unaffected, and that the key is served again once its bucket
// refilled.
func TestRateLimitCustomerKey(t *testing.T) {
	clock, configure := limited(api.RateLimits{Customer: api.Rate{PerSecond: 0.5, Burst: 3}})
	h := newHarness(t, configure)
	alice, bob := h.customers.add(t, "alice"), h.customers.add(t, "bob")
	body := `{"from":"Frankfurt","to":"Las Vegas"}`

	for i := range 3 {
		resp, b := h.as(t, alice, http.MethodPost, "/v1/rfqs", body)
		require.Equal(t, http.StatusCreated, resp.StatusCode, "request %d: %s", i+1, b)
	}
	resp, b := h.as(t, alice, http.MethodPost, "/v1/rfqs", body)
	requireTooMany(t, resp, b, 2) // one token every 2 s
	assert.Equal(t, 3, h.fake.createdCount(), "a refused request creates nothing")

	// Every customer route shares the key's bucket.
	resp, b = h.as(t, alice, http.MethodGet, "/v1/rfqs/"+rydes.NewID(), "")
	requireTooMany(t, resp, b, 2)

	resp, b = h.as(t, bob, http.MethodPost, "/v1/rfqs", body)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "another key is unaffected: %s", b)

	clock.Advance(1500 * time.Millisecond)
	resp, b = h.as(t, alice, http.MethodPost, "/v1/rfqs", body)
	requireTooMany(t, resp, b, 1) // 0.5 s to go, rounded up to a whole second
	clock.Advance(500 * time.Millisecond)
	resp, b = h.as(t, alice, http.MethodPost, "/v1/rfqs", body)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "served again once a token came back: %s", b)
	assert.Equal(t, 5, h.fake.createdCount())
}

// TestRateLimitOpenCustomerPerAddress checks that the open demo customer,
// which has no key, is limited per remote address.
func TestRateLimitOpenCustomerPerAddress(t *testing.T) {
	_, configure := limited(api.RateLimits{Customer: api.Rate{PerSecond: 1, Burst: 2}})
	addr := "127.0.0.1:40000"
	h := newWrappedHarness(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.RemoteAddr = addr
			next.ServeHTTP(w, r)
		})
	}, configure)
	for range 2 {
		resp, b := h.postJSON(t, "/v1/rfqs", validBody)
		require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
	}
	resp, b := h.postJSON(t, "/v1/rfqs", validBody)
	requireTooMany(t, resp, b, 1)

	addr = "127.0.0.2:40000" // another loopback address, another bucket
	resp, b = h.postJSON(t, "/v1/rfqs", validBody)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
	assert.Equal(t, 3, h.fake.createdCount())
}

// TestRateLimitProviderKey checks the answer routes' per-provider limit:
// the refused answer never reaches the answer service, and another
// provider is unaffected.
func TestRateLimitProviderKey(t *testing.T) {
	_, configure := limited(api.RateLimits{Provider: api.Rate{PerSecond: 0.25, Burst: 1}})
	h := newHarness(t, configure)
	keyA := h.reg.addProvider(rydes.Provider{ID: "ProviderA", Kind: rydes.ProviderKindNATS})
	keyB := h.reg.addProvider(rydes.Provider{ID: "ProviderB", Kind: rydes.ProviderKindNATS})
	rfq := h.answers.addRFQ("ProviderA", "ProviderB")

	resp, b := h.as(t, keyA, http.MethodPost, "/v1/rfqs/"+rfq+"/quotes", quoteBody)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
	resp, b = h.as(t, keyA, http.MethodPost, "/v1/rfqs/"+rfq+"/declines", `{}`)
	requireTooMany(t, resp, b, 4)
	assert.Equal(t, 1, h.answers.callCount(), "the refused answer was not submitted")

	resp, b = h.as(t, keyB, http.MethodPost, "/v1/rfqs/"+rfq+"/declines", `{}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "another provider is unaffected: %s", b)
}

// TestRateLimitAdminKey checks that the admin key has one bucket, on the
// administration routes and the customer routes alike, and that
// unauthenticated requests take nothing from it.
func TestRateLimitAdminKey(t *testing.T) {
	_, configure := limited(api.RateLimits{Admin: api.Rate{PerSecond: 1, Burst: 2}})
	h := newHarness(t, configure)
	for range 5 {
		resp, b := h.as(t, "not-the-admin-key-0123456789", http.MethodGet, "/v1/providers", "")
		requireProblem(t, resp, b, http.StatusUnauthorized, "")
	}
	resp, b := h.admin(t, http.MethodGet, "/v1/providers", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	resp, b = h.admin(t, http.MethodPost, "/v1/rfqs", validBody)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
	resp, b = h.admin(t, http.MethodPost, "/v1/providers", natsBody)
	requireTooMany(t, resp, b, 1)
	assert.Zero(t, h.reg.changeCount(), "the refused request changed nothing")
}

// TestRateLimitZeroLimitsNothing checks that the zero RateLimits lets
// every request through, however many.
func TestRateLimitZeroLimitsNothing(t *testing.T) {
	h := newHarness(t)
	key := h.customers.add(t, "alice")
	for i := range 50 {
		resp, b := h.as(t, key, http.MethodPost, "/v1/rfqs", `{"from":"a","to":"b"}`)
		require.Equal(t, http.StatusCreated, resp.StatusCode, "request %d: %s", i+1, b)
	}
}

// TestRateLimitFailedAuthentications checks that an address that keeps
// presenting wrong keys is stopped with 429 once its bucket of failures is
// empty, before its keys are looked up (a right key too, until the bucket
// refills), and that requests without a key, and the keys of others, are
// not affected.
func TestRateLimitFailedAuthentications(t *testing.T) {
	clock, configure := limited(api.RateLimits{Failed: api.Rate{PerSecond: 0.5, Burst: 3}})
	h := newHarness(t, configure)
	alice := h.customers.add(t, "alice")
	providerKey := h.reg.addProvider(rydes.Provider{ID: "ProviderA", Kind: rydes.ProviderKindNATS})
	rfq := h.answers.addRFQ("ProviderA")

	// Three wrong keys, on three kinds of route: each a 401.
	for _, path := range []string{"/v1/rfqs/" + rydes.NewID(), "/v1/providers", "/v1/customers"} {
		resp, b := h.as(t, "guess-0123456789abcdef", http.MethodGet, path, "")
		requireProblem(t, resp, b, http.StatusUnauthorized, "")
	}
	lookups := h.customers.callCount("Authenticate")
	resp, b := h.as(t, "guess-0123456789abcdef", http.MethodGet, "/v1/rfqs/"+rydes.NewID(), "")
	requireTooMany(t, resp, b, 2)
	assert.Equal(t, lookups, h.customers.callCount("Authenticate"), "the fourth guess was not looked up")
	resp, b = h.as(t, alice, http.MethodGet, "/v1/rfqs/"+rydes.NewID(), "")
	requireTooMany(t, resp, b, 2) // the address is stopped, whatever the key
	resp, b = h.as(t, providerKey, http.MethodPost, "/v1/rfqs/"+rfq+"/declines", `{}`)
	requireTooMany(t, resp, b, 2)
	resp, b = h.as(t, "", http.MethodGet, "/v1/providers", "")
	requireProblem(t, resp, b, http.StatusUnauthorized, "") // no key presented: no guess

	clock.Advance(2 * time.Second)
	resp, b = h.as(t, providerKey, http.MethodPost, "/v1/rfqs/"+rfq+"/declines", `{}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "served again once the bucket refilled: %s", b)
}
