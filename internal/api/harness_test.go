package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes/internal/api"
	"github.com/wildrydes/rydes/internal/api/apitest"
	"github.com/wildrydes/rydes/internal/auth"
	"github.com/wildrydes/rydes/internal/rydestest"
)

// testAdminKey is the admin key of every harness.
const testAdminKey = "rydes_admin_test-key-0123456789"

// harness is a real API server on loopback in front of fakes of the
// service, the provider registry and the answer service, with every
// exchange checked against docs/openapi.yaml.
type harness struct {
	srv           *httptest.Server
	fake          *fakeService
	reg           *fakeRegistry
	answers       *fakeAnswers
	customers     *fakeCustomers
	watcher       *fakeWatcher
	notifications *fakeNotifications
	v             *apitest.Validator
	logs          *rydestest.SyncBuffer
}

// newHarness starts a harness whose customer routes are open to loopback
// callers without a key (as with --demo), as the tests' requests are.
func newHarness(t *testing.T, configure ...func(*api.Config)) *harness {
	t.Helper()
	return newWrappedHarness(t, nil, configure...)
}

// newWrappedHarness is newHarness with the API's handler behind wrap, if
// not nil: to make requests look as if they came from elsewhere, say.
func newWrappedHarness(t *testing.T, wrap func(http.Handler) http.Handler, configure ...func(*api.Config)) *harness {
	t.Helper()
	h := &harness{fake: newFakeService(), logs: &rydestest.SyncBuffer{}, v: apitest.NewValidator(t, apitest.SpecPath(t))}
	h.reg = newFakeRegistry(h.fake.now)
	h.answers = newFakeAnswers(h.fake.now)
	h.customers = newFakeCustomers(h.fake.now)
	h.watcher = newFakeWatcher()
	h.notifications = newFakeNotifications()
	cfg := api.Config{
		Service:               h.fake,
		Providers:             h.reg,
		Answers:               h.answers,
		Customers:             h.customers,
		OpenLoopbackCustomers: true,
		Watcher:               h.watcher,
		Notifications:         h.notifications,
		AdminKeyHash:          func() string { return auth.Hash(testAdminKey) },
		Now:                   func() time.Time { return h.fake.now },
		Logger:                slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, c := range configure {
		c(&cfg)
	}
	handler := api.New(cfg)
	if wrap != nil {
		handler = wrap(handler)
	}
	h.srv = httptest.NewServer(handler)
	t.Cleanup(func() {
		h.srv.Close()
		if t.Failed() {
			t.Logf("server logs:\n%s", h.logs.String())
		}
	})
	return h
}

// do sends a request and returns the response and its body, after checking
// the exchange against the OpenAPI document and the headers every response
// carries. A nil body sends none; contentType "" sends no Content-Type.
func (h *harness) do(t *testing.T, method, path, contentType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	return h.send(t, method, path, contentType, "", body)
}

// send is do with an Authorization header, unless authorization is "".
func (h *harness) send(t *testing.T, method, path, contentType, authorization string, body []byte) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, h.srv.URL+path, rd)
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, respBody := h.v.Do(t, h.srv.Client(), req)
	assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), "X-Content-Type-Options on %s %s", method, path)
	return resp, respBody
}

// postJSON sends body as application/json.
func (h *harness) postJSON(t *testing.T, path string, body string) (*http.Response, []byte) {
	t.Helper()
	return h.do(t, http.MethodPost, path, "application/json", []byte(body))
}

// admin sends a request with the admin key, and body, if not "", as
// application/json.
func (h *harness) admin(t *testing.T, method, path, body string) (*http.Response, []byte) {
	t.Helper()
	return h.as(t, testAdminKey, method, path, body)
}

// as sends a request with key as its bearer token, and body, if not "", as
// application/json.
func (h *harness) as(t *testing.T, key, method, path, body string) (*http.Response, []byte) {
	t.Helper()
	var b []byte
	ct := ""
	if body != "" {
		b, ct = []byte(body), "application/json"
	}
	return h.send(t, method, path, ct, "Bearer "+key, b)
}

// createRFQ creates an RFQ through the API and returns it.
func (h *harness) createRFQ(t *testing.T, body string) rfqJSON {
	t.Helper()
	resp, b := h.postJSON(t, "/v1/rfqs", body)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
	var rfq rfqJSON
	require.NoError(t, json.Unmarshal(b, &rfq))
	return rfq
}

// rfqJSON is an RFQ as a client reads it, with times as sent.
type rfqJSON struct {
	ID         string            `json:"id"`
	Status     string            `json:"status"`
	Customer   string            `json:"customer"`
	From       string            `json:"from"`
	To         string            `json:"to"`
	Passengers int               `json:"passengers"`
	PickupAt   string            `json:"pickup_at"`
	Attributes map[string]string `json:"attributes"`
	CreatedAt  string            `json:"created_at"`
	Deadline   string            `json:"deadline"`
	ClosedAt   string            `json:"closed_at"`
	Seq        int64             `json:"seq"`
	NotifyURL  string            `json:"notify_url"`
	Secret     string            `json:"notify_secret"`
	Providers  []struct {
		Provider string `json:"provider"`
		State    string `json:"state"`
	} `json:"providers"`
	Quotes []struct {
		Provider string `json:"provider"`
		Price    struct {
			Amount   string `json:"amount"`
			Currency string `json:"currency"`
		} `json:"price"`
	} `json:"quotes"`
}

// requireProblem checks that the response is a problem+json with the given
// status, for the request's path, naming field (none if field is "").
func requireProblem(t *testing.T, resp *http.Response, body []byte, status int, field string) api.Problem {
	t.Helper()
	require.Equal(t, status, resp.StatusCode, "body: %s", body)
	require.Equal(t, api.ProblemContentType, resp.Header.Get("Content-Type"))
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var p api.Problem
	require.NoError(t, dec.Decode(&p), "problem body: %s", body)
	assert.Equal(t, status, p.Status)
	assert.True(t, strings.HasPrefix(p.Type, api.ProblemTypeBase), "type %q", p.Type)
	assert.NotEmpty(t, p.Title)
	assert.NotEmpty(t, p.Detail)
	assert.Equal(t, resp.Request.URL.Path, p.Instance)
	if status == http.StatusUnauthorized {
		assert.Equal(t, "Bearer", resp.Header.Get("WWW-Authenticate"), "a 401 carries the Bearer challenge")
		assert.Equal(t, api.ProblemTypeBase+"unauthorized", p.Type)
	} else {
		assert.Empty(t, resp.Header.Get("WWW-Authenticate"), "only a 401 carries a challenge")
	}
	if field == "" {
		assert.Empty(t, p.Errors, "problem names no field")
	} else if assert.Len(t, p.Errors, 1, "problem names the field: %s", body) {
		assert.Equal(t, field, p.Errors[0].Field, "problem: %s", body)
		assert.NotEmpty(t, p.Errors[0].Reason)
	}
	return p
}

// keysOf returns the sorted keys of a JSON object.
func keysOf(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(b, &m), "JSON object: %s", b)
	return slices.Sorted(maps.Keys(m))
}

// logRecords returns the JSON log records written to b so far.
func logRecords(t *testing.T, b *rydestest.SyncBuffer) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for line := range strings.Lines(b.String()) {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "log line %q", line)
		recs = append(recs, rec)
	}
	return recs
}
