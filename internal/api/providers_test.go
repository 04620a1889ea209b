package api_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/api"
	"github.com/wildrydes/rydes/internal/auth"
	"github.com/wildrydes/rydes/internal/registry"
)

const natsBody = `{"id":"AcmeUnicorns","kind":"nats"}`

// providerJSON is a provider as a client reads it.
type providerJSON struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Kind         string `json:"kind"`
	Status       string `json:"status"`
	WebhookURL   string `json:"webhook_url"`
	PausedReason string `json:"paused_reason"`
	Filter       struct {
		From          []string            `json:"from"`
		To            []string            `json:"to"`
		MaxPassengers int                 `json:"max_passengers"`
		Attributes    map[string][]string `json:"attributes"`
	} `json:"filter"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

// withCredentials is the body of create and rotate.
type withCredentials struct {
	Provider    providerJSON `json:"provider"`
	Credentials struct {
		APIKey        string `json:"api_key"`
		NATSUser      string `json:"nats_user"`
		NATSPassword  string `json:"nats_password"`
		WebhookSecret string `json:"webhook_secret"`
	} `json:"credentials"`
}

// createProvider creates a provider through the API and returns it with
// its credentials.
func (h *harness) createProvider(t *testing.T, body string) withCredentials {
	t.Helper()
	resp, b := h.admin(t, http.MethodPost, "/v1/providers", body)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
	var got withCredentials
	require.NoError(t, json.Unmarshal(b, &got))
	return got
}

// adminRoutes are a well-formed request to every administration route.
var adminRoutes = []struct{ method, path, body string }{
	{"POST", "/v1/providers", `{"id":"NewOne","kind":"nats"}`},
	{"GET", "/v1/providers", ""},
	{"GET", "/v1/providers/Existing", ""},
	{"PATCH", "/v1/providers/Existing", `{"status":"paused"}`},
	{"POST", "/v1/providers/Existing/rotate", ""},
	{"GET", "/v1/providers/Existing/stats", ""},
	{"GET", "/v1/dead-letters", ""},
	{"POST", "/v1/dead-letters/1/replay", ""},
	{"DELETE", "/v1/providers/Existing", ""},
}

// TestAdminAuth sends every administration route without the admin key, with
// a wrong one, with another scheme and with a provider's API key: each gets
// 401 with the Bearer challenge and changes nothing. Then the admin key
// gets through.
func TestAdminAuth(t *testing.T) {
	h := newHarness(t)
	providerKey := h.reg.addProvider(rydes.Provider{ID: "Existing", Kind: rydes.ProviderKindNATS})
	h.reg.addDeadLetter("Existing")

	for _, route := range adminRoutes {
		for _, authz := range []struct{ name, header string }{
			{"no key", ""},
			{"wrong key", "Bearer " + testAdminKey + "x"},
			{"admin key as Basic", "Basic " + testAdminKey},
			{"empty bearer", "Bearer "},
			{"provider key", "Bearer " + providerKey},
		} {
			t.Run(route.method+" "+route.path+" "+authz.name, func(t *testing.T) {
				changes := h.reg.changeCount()
				var body []byte
				ct := ""
				if route.body != "" {
					body, ct = []byte(route.body), "application/json"
				}
				resp, b := h.send(t, route.method, route.path, ct, authz.header, body)
				p := requireProblem(t, resp, b, http.StatusUnauthorized, "")
				assert.NotContains(t, p.Detail, testAdminKey)
				assert.Equal(t, changes, h.reg.changeCount(), "nothing changes")
			})
		}
	}
	assert.Zero(t, h.reg.callCount("Create")+h.reg.callCount("Update")+h.reg.callCount("Delete")+
		h.reg.callCount("Rotate")+h.reg.callCount("Replay")+h.reg.callCount("List")+h.reg.callCount("DeadLetters"),
		"the registry is not called without the admin key")

	// Two Authorization headers: which to believe would be a guess.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, h.srv.URL+"/v1/providers", nil)
	require.NoError(t, err)
	req.Header.Add("Authorization", "Bearer "+testAdminKey)
	req.Header.Add("Authorization", "Bearer "+testAdminKey)
	resp, b := h.v.Do(t, h.srv.Client(), req)
	requireProblem(t, resp, b, http.StatusUnauthorized, "")

	for _, route := range adminRoutes {
		t.Run(route.method+" "+route.path+" admin key", func(t *testing.T) {
			resp, b := h.admin(t, route.method, route.path, route.body)
			assert.Less(t, resp.StatusCode, 300, "body: %s", b)
		})
	}
}

func TestAdminKeyIsReadOnEveryRequest(t *testing.T) {
	var hash atomic.Value
	hash.Store(auth.Hash(testAdminKey))
	h := newHarness(t, func(c *api.Config) { c.AdminKeyHash = func() string { return hash.Load().(string) } })

	resp, b := h.admin(t, http.MethodGet, "/v1/providers", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)

	const next = "rydes_admin_the-next-key-9876543210"
	hash.Store(auth.Hash(next))
	resp, b = h.admin(t, http.MethodGet, "/v1/providers", "")
	requireProblem(t, resp, b, http.StatusUnauthorized, "")
	resp, b = h.as(t, next, http.MethodGet, "/v1/providers", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)

	hash.Store("") // no admin key in force: nothing gets in
	resp, b = h.as(t, next, http.MethodGet, "/v1/providers", "")
	requireProblem(t, resp, b, http.StatusUnauthorized, "")
	resp, b = h.as(t, "", http.MethodGet, "/v1/providers", "")
	requireProblem(t, resp, b, http.StatusUnauthorized, "")
}

// TestWithoutProviderWiring checks that a server without the provider
// registry refuses every administration and answer request.
func TestWithoutProviderWiring(t *testing.T) {
	h := newHarness(t, func(c *api.Config) { c.Providers, c.Answers, c.AdminKeyHash = nil, nil, nil })
	resp, b := h.admin(t, http.MethodGet, "/v1/providers", "")
	requireProblem(t, resp, b, http.StatusUnauthorized, "")
	resp, b = h.as(t, "rydes_pk_anything", http.MethodPost, "/v1/rfqs/"+rydes.NewID()+"/declines", `{}`)
	requireProblem(t, resp, b, http.StatusUnauthorized, "")
	h.createRFQ(t, validBody) // customers are served
}

func TestNewRequiresProviderWiringTogether(t *testing.T) {
	reg, answers := newFakeRegistry(testNow), newFakeAnswers(testNow)
	hash := func() string { return "" }
	for name, cfg := range map[string]api.Config{
		"providers only":      {Service: newFakeService(), Providers: reg},
		"answers only":        {Service: newFakeService(), Answers: answers},
		"admin key only":      {Service: newFakeService(), AdminKeyHash: hash},
		"no admin key":        {Service: newFakeService(), Providers: reg, Answers: answers},
		"no answer service":   {Service: newFakeService(), Providers: reg, AdminKeyHash: hash},
		"no provider service": {Service: newFakeService(), Answers: answers, AdminKeyHash: hash},
	} {
		assert.Panics(t, func() { api.New(cfg) }, name)
	}
	assert.NotPanics(t, func() {
		api.New(api.Config{Service: newFakeService(), Providers: reg, Answers: answers, AdminKeyHash: hash})
	})
}

func TestCreateProvider(t *testing.T) {
	h := newHarness(t)
	resp, b := h.admin(t, http.MethodPost, "/v1/providers", `{
		"id": "AcmeUnicorns", "kind": "nats",
		"filter": {"from": ["Frankfurt*", "* Airport"], "to": ["Las Vegas"], "max_passengers": 4,
		           "attributes": {"fare": ["economy", "premium"]}}}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
	assert.Equal(t, "/v1/providers/AcmeUnicorns", resp.Header.Get("Location"))
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"), "credentials are not cached")
	assert.Equal(t, []string{"credentials", "provider"}, keysOf(t, b))

	var got withCredentials
	require.NoError(t, json.Unmarshal(b, &got))
	p := got.Provider
	assert.Equal(t, "AcmeUnicorns", p.ID)
	assert.Equal(t, "AcmeUnicorns", p.Name, "the name defaults to the id")
	assert.Equal(t, "nats", p.Kind)
	assert.Equal(t, "active", p.Status, "the status defaults to active")
	assert.Equal(t, []string{"Frankfurt*", "* Airport"}, p.Filter.From)
	assert.Equal(t, []string{"Las Vegas"}, p.Filter.To)
	assert.Equal(t, 4, p.Filter.MaxPassengers)
	assert.Equal(t, map[string][]string{"fare": {"economy", "premium"}}, p.Filter.Attributes)
	assert.Equal(t, "2030-07-01T09:30:00Z", p.CreatedAt)

	c := got.Credentials
	assert.True(t, strings.HasPrefix(c.APIKey, auth.PrefixAPIKey), "api key %q", c.APIKey)
	assert.Equal(t, "AcmeUnicorns", c.NATSUser)
	assert.True(t, strings.HasPrefix(c.NATSPassword, auth.PrefixNATSPassword))
	assert.Empty(t, c.WebhookSecret, "only webhook providers sign")

	params := h.reg.lastCreateParams()
	require.NotNil(t, params)
	assert.Equal(t, registry.CreateParams{
		ID: "AcmeUnicorns", Name: "AcmeUnicorns", Kind: rydes.ProviderKindNATS, Status: rydes.ProviderActive,
		Filter: rydes.Filter{
			From: []string{"Frankfurt*", "* Airport"}, To: []string{"Las Vegas"}, MaxPassengers: 4,
			Attributes: map[string][]string{"fare": {"economy", "premium"}},
		},
	}, *params)

	// The API key it got answers for it.
	rfq := h.answers.addRFQ("AcmeUnicorns")
	resp, b = h.as(t, c.APIKey, http.MethodPost, "/v1/rfqs/"+rfq+"/declines", `{}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
}

func TestCreateWebhookProvider(t *testing.T) {
	h := newHarness(t)
	got := h.createProvider(t, `{"id":"hook_1","name":"Hook One","kind":"webhook",
		"webhook_url":"https://hooks.example/rydes","status":"paused","filter":null}`)
	assert.Equal(t, "webhook", got.Provider.Kind)
	assert.Equal(t, "Hook One", got.Provider.Name)
	assert.Equal(t, "paused", got.Provider.Status)
	assert.Equal(t, "https://hooks.example/rydes", got.Provider.WebhookURL)
	assert.True(t, strings.HasPrefix(got.Credentials.WebhookSecret, auth.PrefixWebhookSecret))
	assert.Equal(t, rydes.Filter{}, h.reg.lastCreateParams().Filter, "a null filter wants everything")
}

func TestCreateProviderConflict(t *testing.T) {
	h := newHarness(t)
	h.createProvider(t, natsBody)
	resp, b := h.admin(t, http.MethodPost, "/v1/providers", natsBody)
	p := requireProblem(t, resp, b, http.StatusConflict, "")
	assert.Equal(t, api.ProblemTypeBase+"conflict", p.Type)
	assert.Empty(t, resp.Header.Get("Location"))
}

// TestProviderBadInput sends inputs the administration routes must refuse:
// each gets the right status and a problem naming the offending field, and
// changes nothing.
func TestProviderBadInput(t *testing.T) {
	huge := `{"id":"x","kind":"nats","name":"` + strings.Repeat("n", api.DefaultMaxBodyBytes) + `"}`
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string // "" for application/json, "-" for none
		body        string
		status      int
		field       string
	}{
		{name: "missing id", body: `{"kind":"nats"}`, status: 400, field: "id"},
		{name: "blank id", body: `{"id":"","kind":"nats"}`, status: 400, field: "id"},
		{name: "id with a dot", body: `{"id":"acme.unicorns","kind":"nats"}`, status: 400, field: "id"},
		{name: "id with a space", body: `{"id":"acme unicorns","kind":"nats"}`, status: 400, field: "id"},
		{name: "id with a wildcard", body: `{"id":"acme*","kind":"nats"}`, status: 400, field: "id"},
		{name: "id too long", body: `{"id":"` + strings.Repeat("a", 65) + `","kind":"nats"}`, status: 400, field: "id"},
		{name: "wrong type id", body: `{"id":42,"kind":"nats"}`, status: 400, field: "id"},
		{name: "missing kind", body: `{"id":"acme"}`, status: 400, field: "kind"},
		{name: "unknown kind", body: `{"id":"acme","kind":"sqs"}`, status: 400, field: "kind"},
		{name: "simulated kind", body: `{"id":"acme","kind":"simulated"}`, status: 400, field: "kind"},
		{name: "wrong type kind", body: `{"id":"acme","kind":["nats"]}`, status: 400, field: "kind"},
		{name: "webhook without URL", body: `{"id":"acme","kind":"webhook"}`, status: 400, field: "webhook_url"},
		{name: "webhook with empty URL", body: `{"id":"acme","kind":"webhook","webhook_url":""}`, status: 400, field: "webhook_url"},
		{name: "webhook relative URL", body: `{"id":"acme","kind":"webhook","webhook_url":"/hooks"}`, status: 400, field: "webhook_url"},
		{name: "webhook ftp URL", body: `{"id":"acme","kind":"webhook","webhook_url":"ftp://hooks.example/x"}`, status: 400, field: "webhook_url"},
		{name: "webhook URL with user", body: `{"id":"acme","kind":"webhook","webhook_url":"https://u:p@hooks.example/x"}`, status: 400, field: "webhook_url"},
		{name: "webhook URL not a URL", body: `{"id":"acme","kind":"webhook","webhook_url":"http://[::1"}`, status: 400, field: "webhook_url"},
		{name: "webhook URL on nats", body: `{"id":"acme","kind":"nats","webhook_url":"https://hooks.example/x"}`, status: 400, field: "webhook_url"},
		{name: "blank name", body: `{"id":"acme","kind":"nats","name":"  "}`, status: 400, field: "name"},
		{name: "name too long", body: `{"id":"acme","kind":"nats","name":"` + strings.Repeat("n", 129) + `"}`, status: 400, field: "name"},
		{name: "wrong type name", body: `{"id":"acme","kind":"nats","name":7}`, status: 400, field: "name"},
		{name: "bad status", body: `{"id":"acme","kind":"nats","status":"sleeping"}`, status: 400, field: "status"},
		{name: "bad filter pattern", body: `{"id":"acme","kind":"nats","filter":{"from":["[Frankfurt"]}}`, status: 400, field: "filter.from"},
		{name: "blank filter pattern", body: `{"id":"acme","kind":"nats","filter":{"to":[""]}}`, status: 400, field: "filter.to"},
		{name: "filter not an object", body: `{"id":"acme","kind":"nats","filter":["Frankfurt"]}`, status: 400, field: "filter"},
		{name: "filter unknown field", body: `{"id":"acme","kind":"nats","filter":{"colour":["pink"]}}`, status: 400, field: "filter.colour"},
		{name: "filter wrong type", body: `{"id":"acme","kind":"nats","filter":{"max_passengers":"four"}}`, status: 400, field: "filter.max_passengers"},
		{name: "filter from not a list", body: `{"id":"acme","kind":"nats","filter":{"from":"Frankfurt"}}`, status: 400, field: "filter.from"},
		{name: "filter too many passengers", body: `{"id":"acme","kind":"nats","filter":{"max_passengers":65}}`, status: 400, field: "filter.max_passengers"},
		{name: "filter negative passengers", body: `{"id":"acme","kind":"nats","filter":{"max_passengers":-1}}`, status: 400, field: "filter.max_passengers"},
		{name: "filter attribute without values", body: `{"id":"acme","kind":"nats","filter":{"attributes":{"fare":[]}}}`, status: 400, field: "filter.attributes.fare"},
		{name: "filter bad attribute key", body: `{"id":"acme","kind":"nats","filter":{"attributes":{"no spaces":["x"]}}}`, status: 400, field: "filter.attributes"},
		{name: "unknown field", body: `{"id":"acme","kind":"nats","colour":"pink"}`, status: 400, field: "colour"},
		{name: "credentials in the body", body: `{"id":"acme","kind":"nats","api_key":"rydes_pk_mine"}`, status: 400, field: "api_key"},
		{name: "malformed JSON", body: `{"id":"acme",`, status: 400},
		{name: "array body", body: `[]`, status: 400},
		{name: "two JSON values", body: natsBody + natsBody, status: 400},
		{name: "oversized body", body: huge, status: 413},
		{name: "no content type", contentType: "-", body: natsBody, status: 415},
		{name: "text content type", contentType: "text/plain", body: natsBody, status: 415},

		{name: "patch unknown field", method: "PATCH", path: "/v1/providers/Existing", body: `{"kind":"webhook"}`, status: 400, field: "kind"},
		{name: "patch id", method: "PATCH", path: "/v1/providers/Existing", body: `{"id":"Other"}`, status: 400, field: "id"},
		{name: "patch bad status", method: "PATCH", path: "/v1/providers/Existing", body: `{"status":"sleeping"}`, status: 400, field: "status"},
		{name: "patch wrong type status", method: "PATCH", path: "/v1/providers/Existing", body: `{"status":true}`, status: 400, field: "status"},
		{name: "patch null status", method: "PATCH", path: "/v1/providers/Existing", body: `{"status":null}`, status: 400, field: "status"},
		{name: "patch null filter", method: "PATCH", path: "/v1/providers/Existing", body: `{"name":"x","filter":null}`, status: 400, field: "filter"},
		{name: "patch nothing", method: "PATCH", path: "/v1/providers/Existing", body: `{}`, status: 400},
		{name: "patch blank name", method: "PATCH", path: "/v1/providers/Existing", body: `{"name":""}`, status: 400, field: "name"},
		{name: "patch control characters in name", method: "PATCH", path: "/v1/providers/Existing", body: `{"name":"a\u0007"}`, status: 400, field: "name"},
		{name: "patch bad filter pattern", method: "PATCH", path: "/v1/providers/Existing", body: `{"filter":{"to":["Las [Vegas"]}}`, status: 400, field: "filter.to"},
		{name: "patch filter unknown field", method: "PATCH", path: "/v1/providers/Existing", body: `{"filter":{"via":["x"]}}`, status: 400, field: "filter.via"},
		{name: "patch filter wrong type", method: "PATCH", path: "/v1/providers/Existing", body: `{"filter":"Frankfurt"}`, status: 400, field: "filter"},
		{name: "patch bad URL", method: "PATCH", path: "/v1/providers/Hook", body: `{"webhook_url":"hooks.example"}`, status: 400, field: "webhook_url"},
		{name: "patch URL onto nats", method: "PATCH", path: "/v1/providers/Existing", body: `{"webhook_url":"https://hooks.example/x"}`, status: 400, field: "webhook_url"},
		{name: "patch malformed JSON", method: "PATCH", path: "/v1/providers/Existing", body: `{`, status: 400},
		{name: "patch no content type", method: "PATCH", path: "/v1/providers/Existing", contentType: "-", body: `{"status":"paused"}`, status: 415},
		{name: "patch oversized", method: "PATCH", path: "/v1/providers/Existing", body: `{"name":"` + strings.Repeat("n", api.DefaultMaxBodyBytes) + `"}`, status: 413},
		{name: "patch simulated", method: "PATCH", path: "/v1/providers/UnicornManagementResource1", body: `{"status":"paused"}`, status: 409},
		{name: "patch unknown provider", method: "PATCH", path: "/v1/providers/Nobody", body: `{"status":"paused"}`, status: 404},
		{name: "patch bad path id", method: "PATCH", path: "/v1/providers/a.b", body: `{"status":"paused"}`, status: 400, field: "id"},

		{name: "get bad path id", method: "GET", path: "/v1/providers/a.b", status: 400, field: "id"},
		{name: "get path id too long", method: "GET", path: "/v1/providers/" + strings.Repeat("a", 65), status: 400, field: "id"},
		{name: "get unknown", method: "GET", path: "/v1/providers/Nobody", status: 404},
		{name: "delete bad path id", method: "DELETE", path: "/v1/providers/a%20b", status: 400, field: "id"},
		{name: "delete unknown", method: "DELETE", path: "/v1/providers/Nobody", status: 404},
		{name: "delete simulated", method: "DELETE", path: "/v1/providers/UnicornManagementResource1", status: 409},
		{name: "delete with a body", method: "DELETE", path: "/v1/providers/Existing", body: `{"force":true}`, status: 400},
		{name: "rotate bad path id", method: "POST", path: "/v1/providers/a*b/rotate", status: 400, field: "id"},
		{name: "rotate unknown", method: "POST", path: "/v1/providers/Nobody/rotate", status: 404},
		{name: "rotate simulated", method: "POST", path: "/v1/providers/UnicornManagementResource1/rotate", status: 409},
		{name: "rotate with a body", method: "POST", path: "/v1/providers/Existing/rotate", body: `{"keep":"nats"}`, status: 400},
		{name: "stats bad path id", method: "GET", path: "/v1/providers/a.b/stats", status: 400, field: "id"},
		{name: "stats unknown", method: "GET", path: "/v1/providers/Nobody/stats", status: 404},

		{name: "wrong method on providers", method: "PUT", path: "/v1/providers", body: natsBody, status: 405},
		{name: "wrong method on provider", method: "POST", path: "/v1/providers/Existing", body: natsBody, status: 405},
		{name: "wrong method on rotate", method: "GET", path: "/v1/providers/Existing/rotate", status: 405},
		{name: "unknown provider route", method: "POST", path: "/v1/providers/Existing/pause", status: 404},
	}
	h := newHarness(t)
	h.reg.addProvider(rydes.Provider{ID: "Existing", Kind: rydes.ProviderKindNATS})
	h.reg.addProvider(rydes.Provider{ID: "Hook", Kind: rydes.ProviderKindWebhook, WebhookURL: "https://hooks.example/a"})
	h.reg.addProvider(rydes.Provider{ID: "UnicornManagementResource1", Kind: rydes.ProviderKindSimulated})
	before := map[string]rydes.Provider{}
	for _, id := range []string{"Existing", "Hook", "UnicornManagementResource1"} {
		before[id], _ = h.reg.provider(id)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method, path, ct := tc.method, tc.path, tc.contentType
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = "/v1/providers"
			}
			switch ct {
			case "":
				ct = "application/json"
			case "-":
				ct = ""
			}
			var body []byte
			if tc.body != "" || method == http.MethodPost || method == http.MethodPatch {
				body = []byte(tc.body)
			}
			if tc.body == "" && method != http.MethodPatch {
				ct = ""
			}
			changes := h.reg.changeCount()
			resp, b := h.send(t, method, path, ct, "Bearer "+testAdminKey, body)
			p := requireProblem(t, resp, b, tc.status, tc.field)

			assert.Equal(t, changes, h.reg.changeCount(), "nothing changes")
			for id, want := range before {
				got, ok := h.reg.provider(id)
				assert.True(t, ok, "provider %s is still there", id)
				assert.Equal(t, want, got, "provider %s is unchanged", id)
			}
			_, created := h.reg.provider("acme")
			assert.False(t, created, "no provider is created")
			switch tc.status {
			case 400:
				assert.Equal(t, api.ProblemTypeBase+"invalid", p.Type)
			case 404:
				assert.Equal(t, api.ProblemTypeBase+"not_found", p.Type)
			case 409:
				assert.Equal(t, api.ProblemTypeBase+"conflict", p.Type)
			}
		})
	}
	assert.Zero(t, h.reg.callCount("Create"), "no bad create reaches the registry")
}

func TestListProviders(t *testing.T) {
	h := newHarness(t)
	resp, b := h.admin(t, http.MethodGet, "/v1/providers", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	assert.JSONEq(t, `{"providers":[]}`, string(b), "an empty list, not null")

	h.createProvider(t, `{"id":"p10","kind":"nats","name":null,"status":null,"webhook_url":null,"filter":null}`)
	h.createProvider(t, `{"id":"p2","kind":"webhook","webhook_url":"https://hooks.example/p2"}`)
	resp, b = h.admin(t, http.MethodGet, "/v1/providers", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	var got struct {
		Providers []providerJSON `json:"providers"`
	}
	require.NoError(t, json.Unmarshal(b, &got))
	require.Len(t, got.Providers, 2)
	assert.Equal(t, "p2", got.Providers[0].ID)
	assert.Equal(t, "p10", got.Providers[1].ID)
	assert.Equal(t, "p10", got.Providers[1].Name, "null is as good as absent on create")
	assert.Equal(t, "active", got.Providers[1].Status)
	assert.NotContains(t, string(b), "api_key", "credentials are never listed")
}

func TestGetProvider(t *testing.T) {
	h := newHarness(t)
	h.createProvider(t, `{"id":"Acme-1","name":"Acme","kind":"nats","filter":{"to":["Las Vegas"]}}`)
	resp, b := h.admin(t, http.MethodGet, "/v1/providers/Acme-1", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	var p providerJSON
	require.NoError(t, json.Unmarshal(b, &p))
	assert.Equal(t, "Acme-1", p.ID)
	assert.Equal(t, "Acme", p.Name)
	assert.Equal(t, []string{"Las Vegas"}, p.Filter.To)
	assert.NotContains(t, string(b), "api_key")
}

func TestUpdateProvider(t *testing.T) {
	h := newHarness(t)
	h.createProvider(t, `{"id":"acme","kind":"webhook","webhook_url":"https://hooks.example/a",
		"filter":{"from":["Frankfurt"],"max_passengers":4}}`)

	// Pause: only the status is passed on.
	resp, b := h.admin(t, http.MethodPatch, "/v1/providers/acme", `{"status":"paused"}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	var p providerJSON
	require.NoError(t, json.Unmarshal(b, &p))
	assert.Equal(t, "paused", p.Status)
	paused := rydes.ProviderPaused
	assert.Equal(t, registry.UpdateParams{ID: "acme", Status: &paused}, *h.reg.lastUpdateParams())

	// Resume.
	resp, b = h.admin(t, http.MethodPatch, "/v1/providers/acme", `{"status":"active"}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	require.NoError(t, json.Unmarshal(b, &p))
	assert.Equal(t, "active", p.Status)

	// A filter replaces the whole filter.
	resp, b = h.admin(t, http.MethodPatch, "/v1/providers/acme", `{"name":"Acme Unicorns","webhook_url":"https://hooks.example/b","filter":{"to":["Las Vegas"]}}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	p = providerJSON{}
	require.NoError(t, json.Unmarshal(b, &p))
	assert.Equal(t, "Acme Unicorns", p.Name)
	assert.Equal(t, "https://hooks.example/b", p.WebhookURL)
	assert.Equal(t, []string{"Las Vegas"}, p.Filter.To)
	assert.Empty(t, p.Filter.From, "the old filter is gone")
	assert.Zero(t, p.Filter.MaxPassengers, "the old filter is gone")
	up := h.reg.lastUpdateParams()
	assert.Nil(t, up.Status)
	require.NotNil(t, up.Filter)
	assert.Equal(t, rydes.Filter{To: []string{"Las Vegas"}}, *up.Filter)

	// {} accepts every request.
	resp, b = h.admin(t, http.MethodPatch, "/v1/providers/acme", `{"filter":{}}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	got, _ := h.reg.provider("acme")
	assert.True(t, got.Filter.IsZero())
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(b, &m))
	assert.JSONEq(t, `{}`, string(m["filter"]), "an empty filter is {}")
}

func TestDeleteProvider(t *testing.T) {
	h := newHarness(t)
	got := h.createProvider(t, natsBody)
	rfq := h.answers.addRFQ("AcmeUnicorns")

	resp, b := h.admin(t, http.MethodDelete, "/v1/providers/AcmeUnicorns", "")
	require.Equal(t, http.StatusNoContent, resp.StatusCode, "body: %s", b)
	assert.Empty(t, b)

	resp, b = h.admin(t, http.MethodGet, "/v1/providers/AcmeUnicorns", "")
	requireProblem(t, resp, b, http.StatusNotFound, "")
	resp, b = h.admin(t, http.MethodDelete, "/v1/providers/AcmeUnicorns", "")
	requireProblem(t, resp, b, http.StatusNotFound, "")

	// Its key no longer answers.
	resp, b = h.as(t, got.Credentials.APIKey, http.MethodPost, "/v1/rfqs/"+rfq+"/declines", `{}`)
	requireProblem(t, resp, b, http.StatusUnauthorized, "")
}

func TestRotateProvider(t *testing.T) {
	h := newHarness(t)
	old := h.createProvider(t, `{"id":"hook","kind":"webhook","webhook_url":"https://hooks.example/a"}`)
	rfq := h.answers.addRFQ("hook")

	resp, b := h.admin(t, http.MethodPost, "/v1/providers/hook/rotate", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	var got withCredentials
	require.NoError(t, json.Unmarshal(b, &got))
	assert.Equal(t, "hook", got.Provider.ID)
	assert.Equal(t, "hook", got.Credentials.NATSUser)
	assert.NotEqual(t, old.Credentials.APIKey, got.Credentials.APIKey)
	assert.NotEqual(t, old.Credentials.NATSPassword, got.Credentials.NATSPassword)
	assert.NotEqual(t, old.Credentials.WebhookSecret, got.Credentials.WebhookSecret)
	assert.True(t, strings.HasPrefix(got.Credentials.WebhookSecret, auth.PrefixWebhookSecret))

	resp, b = h.as(t, old.Credentials.APIKey, http.MethodPost, "/v1/rfqs/"+rfq+"/declines", `{}`)
	requireProblem(t, resp, b, http.StatusUnauthorized, "")
	resp, b = h.as(t, got.Credentials.APIKey, http.MethodPost, "/v1/rfqs/"+rfq+"/declines", `{}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
}

// TestRotateKeepsCredentialsWhenTheRereadFails checks that new credentials
// are not lost to a failed read after the rotation.
func TestRotateKeepsCredentialsWhenTheRereadFails(t *testing.T) {
	h := newHarness(t)
	h.createProvider(t, natsBody)
	h.reg.failGetAfterRotate(errors.New("database is locked"))
	resp, b := h.admin(t, http.MethodPost, "/v1/providers/AcmeUnicorns/rotate", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	var got withCredentials
	require.NoError(t, json.Unmarshal(b, &got))
	assert.Equal(t, "AcmeUnicorns", got.Provider.ID)
	assert.NotEmpty(t, got.Credentials.APIKey)
}

func TestProviderStats(t *testing.T) {
	h := newHarness(t)
	h.createProvider(t, natsBody)
	resp, b := h.admin(t, http.MethodGet, "/v1/providers/AcmeUnicorns/stats", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	assert.JSONEq(t, `{"provider":"AcmeUnicorns","asked":10,"pending":1,"quoted":6,"declined":2,"timed_out":1,
		"failed":0,"withdrawn":0,"response_p50":"1.5s","response_p99":"4.25s","queue_depth":3,"in_flight":1,
		"oldest_pending_age":"2m3s"}`, string(b))
}
