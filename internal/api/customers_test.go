package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/api"
)

// fromAddr makes every request look as if it came from addr.
func fromAddr(addr string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.RemoteAddr = addr
			next.ServeHTTP(w, r)
		})
	}
}

// customerKeyFixture is a harness with customers alice and bob and an RFQ
// of alice's.
type customerKeyFixture struct {
	*harness
	alice, bob string // keys
	rfq        rfqJSON
}

func newCustomerKeyFixture(t *testing.T) customerKeyFixture {
	t.Helper()
	h := newHarness(t)
	f := customerKeyFixture{harness: h, alice: h.customers.add(t, "alice"), bob: h.customers.add(t, "bob")}
	resp, b := h.as(t, f.alice, http.MethodPost, "/v1/rfqs", `{"from":"Frankfurt","to":"Las Vegas"}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
	require.NoError(t, json.Unmarshal(b, &f.rfq))
	return f
}

func TestCustomerKeyCreatesInItsName(t *testing.T) {
	f := newCustomerKeyFixture(t)
	assert.Equal(t, "alice", f.rfq.Customer, "the key names the customer")

	resp, b := f.as(t, f.alice, http.MethodPost, "/v1/rfqs", `{"customer":"alice","from":"a","to":"b"}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)

	created := f.fake.createdCount()
	resp, b = f.as(t, f.alice, http.MethodPost, "/v1/rfqs", `{"customer":"bob","from":"a","to":"b"}`)
	p := requireProblem(t, resp, b, http.StatusForbidden, "customer")
	assert.Equal(t, api.ProblemTypeBase+"forbidden", p.Type)
	resp, b = f.as(t, f.alice, http.MethodPost, "/submit-instant-ride-rfq", `{"customer":"bob","from":"a","to":"b"}`)
	requireProblem(t, resp, b, http.StatusForbidden, "customer")
	assert.Equal(t, created, f.fake.createdCount(), "nothing is created in another's name")

	resp, b = f.as(t, f.bob, http.MethodPost, "/submit-instant-ride-rfq", `{"from":"a","to":"b"}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
	assert.Equal(t, "bob", f.fake.lastRequest().Customer)
}

// TestCustomerIsolation: another customer's RFQ does not exist for a
// customer key, on every customer route.
func TestCustomerIsolation(t *testing.T) {
	f := newCustomerKeyFixture(t)
	f.watcher.setScript(f.rfq.ID, event(f.rfq.ID, 1, "created", "open"), event(f.rfq.ID, 2, "cancelled", "cancelled"))
	for _, path := range []string{
		"/v1/rfqs/" + f.rfq.ID,
		"/v1/rfqs/" + f.rfq.ID + "/events",
		"/v1/rfqs/" + f.rfq.ID + "/notifications",
		"/query-instant-ride-rfq/" + f.rfq.ID,
	} {
		resp, b := f.as(t, f.bob, http.MethodGet, path, "")
		requireProblem(t, resp, b, http.StatusNotFound, "")
		resp, b = f.as(t, f.alice, http.MethodGet, path, "")
		assert.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", path, b)
		resp, b = f.admin(t, http.MethodGet, path, "")
		assert.Equal(t, http.StatusOK, resp.StatusCode, "the admin key sees any RFQ: %s: %s", path, b)
	}
	assert.Equal(t, 2, f.notifications.callCount(), "the log is read only after the ownership check")

	resp, b := f.as(t, f.bob, http.MethodDelete, "/v1/rfqs/"+f.rfq.ID, "")
	requireProblem(t, resp, b, http.StatusNotFound, "")
	resp, b = f.as(t, f.alice, http.MethodDelete, "/v1/rfqs/"+f.rfq.ID, "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
}

func TestAdminKeyOnCustomerRoutes(t *testing.T) {
	h := newHarness(t)
	resp, b := h.admin(t, http.MethodPost, "/v1/rfqs", `{"from":"a","to":"b"}`)
	requireProblem(t, resp, b, http.StatusBadRequest, "customer")
	resp, b = h.admin(t, http.MethodPost, "/v1/rfqs", validBody)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
	assert.Equal(t, "cmr", h.fake.lastRequest().Customer)
}

func TestCustomerAuth(t *testing.T) {
	const id = "8b095f9e-cffc-4790-91a6-28353fa30e42"
	routes := []struct{ method, path, body string }{
		{http.MethodPost, "/v1/rfqs", validBody},
		{http.MethodGet, "/v1/rfqs/" + id, ""},
		{http.MethodDelete, "/v1/rfqs/" + id, ""},
		{http.MethodGet, "/v1/rfqs/" + id + "/events", ""},
		{http.MethodGet, "/v1/rfqs/" + id + "/notifications", ""},
		{http.MethodPost, "/submit-instant-ride-rfq", validBody},
		{http.MethodGet, "/query-instant-ride-rfq/" + id, ""},
	}
	t.Run("no key from elsewhere", func(t *testing.T) {
		h := newWrappedHarness(t, fromAddr("203.0.113.7:4242"))
		for _, rt := range routes {
			var b []byte
			ct := ""
			if rt.body != "" {
				b, ct = []byte(rt.body), "application/json"
			}
			resp, body := h.do(t, rt.method, rt.path, ct, b)
			requireProblem(t, resp, body, http.StatusUnauthorized, "")
		}
		assert.Zero(t, h.fake.createdCount())
		// A key still works from anywhere.
		key := h.customers.add(t, "alice")
		resp, b := h.as(t, key, http.MethodPost, "/v1/rfqs", `{"from":"a","to":"b"}`)
		assert.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
	})
	t.Run("no key from loopback, not open", func(t *testing.T) {
		h := newHarness(t, func(c *api.Config) { c.OpenLoopbackCustomers = false })
		resp, b := h.postJSON(t, "/v1/rfqs", validBody)
		requireProblem(t, resp, b, http.StatusUnauthorized, "")
	})
	t.Run("bad keys", func(t *testing.T) {
		h := newHarness(t)
		providerKey := h.reg.addProvider(rydes.Provider{ID: "AcmeUnicorns", Kind: rydes.ProviderKindNATS})
		for name, key := range map[string]string{"unknown": "rydes_ck_nobody", "provider key": providerKey} {
			resp, b := h.as(t, key, http.MethodPost, "/v1/rfqs", validBody)
			requireProblem(t, resp, b, http.StatusUnauthorized, "")
			assert.Zero(t, h.fake.createdCount(), name)
		}
		// Two Authorization headers are no key, and not "no header" either.
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.srv.URL+"/v1/rfqs", strings.NewReader(validBody))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Add("Authorization", "Bearer a")
		req.Header.Add("Authorization", "Bearer b")
		resp, b := h.v.Do(t, h.srv.Client(), req)
		requireProblem(t, resp, b, http.StatusUnauthorized, "")
		// Basic is not Bearer.
		resp, b = h.send(t, http.MethodPost, "/v1/rfqs", "application/json", "Basic YTpi", []byte(validBody))
		requireProblem(t, resp, b, http.StatusUnauthorized, "")
	})
	t.Run("no registry", func(t *testing.T) {
		h := newHarness(t, func(c *api.Config) { c.Customers = nil })
		resp, b := h.as(t, "rydes_ck_x", http.MethodPost, "/v1/rfqs", validBody)
		requireProblem(t, resp, b, http.StatusUnauthorized, "")
		resp, b = h.admin(t, http.MethodPost, "/v1/rfqs", validBody)
		assert.Equal(t, http.StatusCreated, resp.StatusCode, "the admin key needs no registry: %s", b)
	})
}

func TestOpenLoopbackAddresses(t *testing.T) {
	for addr, open := range map[string]bool{
		"127.0.0.1:5000":        true,
		"127.8.9.10:5000":       true,
		"[::1]:5000":            true,
		"[::ffff:127.0.0.1]:80": true,
		"10.0.0.1:5000":         false,
		"[2001:db8::1]:5000":    false,
		"192.168.1.2:5000":      false,
		"not an address":        false,
	} {
		t.Run(addr, func(t *testing.T) {
			h := newWrappedHarness(t, fromAddr(addr))
			resp, b := h.postJSON(t, "/v1/rfqs", validBody)
			if open {
				assert.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
				// The open customer names itself and reads unscoped.
				resp, b = h.postJSON(t, "/v1/rfqs", `{"from":"a","to":"b"}`)
				requireProblem(t, resp, b, http.StatusBadRequest, "customer")
				return
			}
			requireProblem(t, resp, b, http.StatusUnauthorized, "")
		})
	}
}

// customerWithKeyJSON is the answer of POST /v1/customers and rotate.
type customerWithKeyJSON struct {
	Customer struct {
		ID        string `json:"id"`
		Name      string `json:"name"`
		CreatedAt string `json:"created_at"`
	} `json:"customer"`
	APIKey string `json:"api_key"`
}

func TestCustomerAdministration(t *testing.T) {
	h := newHarness(t)
	resp, b := h.admin(t, http.MethodPost, "/v1/customers", `{"id":"alice","name":"Alice Rides"}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	var created customerWithKeyJSON
	require.NoError(t, json.Unmarshal(b, &created))
	assert.Equal(t, "alice", created.Customer.ID)
	assert.Equal(t, "Alice Rides", created.Customer.Name)
	require.NotEmpty(t, created.APIKey)

	resp, b = h.as(t, created.APIKey, http.MethodPost, "/v1/rfqs", `{"from":"a","to":"b"}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "the new key works: %s", b)
	var rfq rfqJSON
	require.NoError(t, json.Unmarshal(b, &rfq))

	resp, b = h.admin(t, http.MethodPost, "/v1/customers", `{"id":"bob"}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
	resp, b = h.admin(t, http.MethodPost, "/v1/customers", `{"id":"bob"}`)
	requireProblem(t, resp, b, http.StatusConflict, "")

	resp, b = h.admin(t, http.MethodGet, "/v1/customers", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	var list struct {
		Customers []struct{ ID, Name string } `json:"customers"`
	}
	require.NoError(t, json.Unmarshal(b, &list))
	require.Len(t, list.Customers, 2)
	assert.Equal(t, "alice", list.Customers[0].ID)
	assert.Equal(t, "bob", list.Customers[1].Name, "the name defaults to the id")

	resp, b = h.admin(t, http.MethodPost, "/v1/customers/alice/rotate", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	var rotated customerWithKeyJSON
	require.NoError(t, json.Unmarshal(b, &rotated))
	assert.Equal(t, "alice", rotated.Customer.ID)
	assert.NotEqual(t, created.APIKey, rotated.APIKey)
	resp, b = h.as(t, created.APIKey, http.MethodPost, "/v1/rfqs", `{"from":"a","to":"b"}`)
	requireProblem(t, resp, b, http.StatusUnauthorized, "")

	resp, b = h.admin(t, http.MethodDelete, "/v1/customers/alice", "")
	require.Equal(t, http.StatusNoContent, resp.StatusCode, "body: %s", b)
	resp, b = h.as(t, rotated.APIKey, http.MethodGet, "/v1/rfqs/"+rfq.ID, "")
	requireProblem(t, resp, b, http.StatusUnauthorized, "")

	for _, path := range []string{"/v1/customers/alice", "/v1/customers/alice/rotate"} {
		method := http.MethodDelete
		if strings.HasSuffix(path, "rotate") {
			method = http.MethodPost
		}
		resp, b = h.admin(t, method, path, "")
		requireProblem(t, resp, b, http.StatusNotFound, "")
	}
}

func TestCustomerAdministrationBadInput(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"bad id", http.MethodPost, "/v1/customers", `{"id":"no spaces"}`, 400, "id"},
		{"missing id", http.MethodPost, "/v1/customers", `{"name":"x"}`, 400, "id"},
		{"blank name", http.MethodPost, "/v1/customers", `{"id":"x","name":" "}`, 400, "name"},
		{"unknown field", http.MethodPost, "/v1/customers", `{"id":"x","key":"k"}`, 400, "key"},
		{"bad path id", http.MethodDelete, "/v1/customers/a.b", "", 400, "id"},
		{"rotate with body", http.MethodPost, "/v1/customers/alice/rotate", `{}`, 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := h.admin(t, tc.method, tc.path, tc.body)
			requireProblem(t, resp, b, tc.status, tc.field)
		})
	}
	assert.Zero(t, h.customers.callCount("Create"))
	assert.Zero(t, h.customers.callCount("Rotate"))
}

func TestCustomerAdministrationAuth(t *testing.T) {
	h := newHarness(t)
	key := h.customers.add(t, "alice")
	calls := h.customers.callCount("List")
	for _, rt := range []struct{ method, path, body string }{
		{http.MethodPost, "/v1/customers", `{"id":"x"}`},
		{http.MethodGet, "/v1/customers", ""},
		{http.MethodDelete, "/v1/customers/alice", ""},
		{http.MethodPost, "/v1/customers/alice/rotate", ""},
	} {
		resp, b := h.as(t, key, rt.method, rt.path, rt.body)
		requireProblem(t, resp, b, http.StatusUnauthorized, "")
		var body []byte
		ct := ""
		if rt.body != "" {
			body, ct = []byte(rt.body), "application/json"
		}
		resp, b = h.do(t, rt.method, rt.path, ct, body)
		requireProblem(t, resp, b, http.StatusUnauthorized, "")
	}
	assert.Equal(t, calls, h.customers.callCount("List"))
	assert.Equal(t, 1, h.customers.callCount("Create"), "only the fixture's")

	t.Run("no registry", func(t *testing.T) {
		h := newHarness(t, func(c *api.Config) { c.Customers = nil })
		resp, b := h.admin(t, http.MethodGet, "/v1/customers", "")
		p := requireProblem(t, resp, b, http.StatusServiceUnavailable, "")
		assert.Equal(t, api.ProblemTypeBase+"unavailable", p.Type)
	})
}
