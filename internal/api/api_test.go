package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/api"
)

const validBody = `{"customer":"cmr","from":"Frankfurt","to":"Las Vegas"}`

func TestCreateRFQ(t *testing.T) {
	h := newHarness(t)
	resp, body := h.postJSON(t, "/v1/rfqs", `{
		"customer": "cmr", "from": "Frankfurt", "to": "Las Vegas",
		"passengers": 2, "pickup_at": "2030-07-01T11:30:00+02:00",
		"attributes": {"fare": "economy", "luggage.count": "3"}, "timeout": "45s"}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", body)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))

	var rfq rfqJSON
	require.NoError(t, json.Unmarshal(body, &rfq))
	assert.Equal(t, "/v1/rfqs/"+rfq.ID, resp.Header.Get("Location"))
	assert.NoError(t, rydes.ValidateID(rfq.ID))
	assert.Equal(t, "open", rfq.Status)
	assert.Equal(t, "cmr", rfq.Customer)
	assert.Equal(t, "Frankfurt", rfq.From)
	assert.Equal(t, "Las Vegas", rfq.To)
	assert.Equal(t, 2, rfq.Passengers)
	assert.Equal(t, "2030-07-01T09:30:00Z", rfq.PickupAt)
	assert.Equal(t, map[string]string{"fare": "economy", "luggage.count": "3"}, rfq.Attributes)
	assert.Equal(t, "2030-07-01T09:30:00Z", rfq.CreatedAt)
	assert.Equal(t, "2030-07-01T09:30:45Z", rfq.Deadline)
	require.Len(t, rfq.Providers, 3)
	for _, p := range rfq.Providers {
		assert.Equal(t, "pending", p.State)
	}
	assert.NotNil(t, rfq.Quotes, "quotes is an array, not null")
	assert.Empty(t, rfq.Quotes)

	req := h.fake.lastRequest()
	require.NotNil(t, req)
	assert.Equal(t, 45*time.Second, req.Timeout)
	assert.True(t, req.PickupAt.Equal(time.Date(2030, 7, 1, 9, 30, 0, 0, time.UTC)), "pickup_at %v", req.PickupAt)
}

func TestCreateRFQContentTypeParameters(t *testing.T) {
	h := newHarness(t)
	resp, b := h.do(t, http.MethodPost, "/v1/rfqs", "application/json; charset=utf-8", []byte(validBody))
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
}

func TestCreateRFQMinimal(t *testing.T) {
	h := newHarness(t)
	rfq := h.createRFQ(t, validBody)
	assert.Equal(t, "open", rfq.Status)
	assert.Empty(t, rfq.PickupAt, "pickup_at is absent when not asked for")
	assert.Zero(t, rfq.Passengers)
	req := h.fake.lastRequest()
	require.NotNil(t, req)
	assert.Zero(t, req.Timeout, "no timeout asks for the engine's default")
	assert.Nil(t, req.Attributes)
}

// TestBadInput sends inputs the API must refuse: each gets the right status
// and a problem naming the offending field, and creates nothing.
func TestBadInput(t *testing.T) {
	const id = "8b095f9e-cffc-4790-91a6-28353fa30e42"
	huge := `{"customer":"cmr","from":"` + strings.Repeat("x", api.DefaultMaxBodyBytes) + `","to":"b"}`
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string // "" for application/json, "-" for none
		body        string
		status      int
		field       string
		// reachesService is true where only the engine can tell (the
		// maximum timeout is its limit): the fake is called and refuses.
		reachesService bool
	}{
		{name: "missing customer", body: `{"from":"a","to":"b"}`, status: 400, field: "customer"},
		{name: "missing from", body: `{"customer":"c","to":"b"}`, status: 400, field: "from"},
		{name: "missing to", body: `{"customer":"c","from":"a"}`, status: 400, field: "to"},
		{name: "blank from", body: `{"customer":"c","from":"  ","to":"b"}`, status: 400, field: "from"},
		{name: "control characters", body: `{"customer":"c","from":"a\u0000","to":"b"}`, status: 400, field: "from"},
		{name: "customer too long", body: `{"customer":"` + strings.Repeat("c", 129) + `","from":"a","to":"b"}`, status: 400, field: "customer"},
		{name: "wrong type customer", body: `{"customer":42,"from":"a","to":"b"}`, status: 400, field: "customer"},
		{name: "wrong type passengers", body: `{"customer":"c","from":"a","to":"b","passengers":"two"}`, status: 400, field: "passengers"},
		{name: "fractional passengers", body: `{"customer":"c","from":"a","to":"b","passengers":2.5}`, status: 400, field: "passengers"},
		{name: "zero passengers", body: `{"customer":"c","from":"a","to":"b","passengers":0}`, status: 400, field: "passengers"},
		{name: "too many passengers", body: `{"customer":"c","from":"a","to":"b","passengers":65}`, status: 400, field: "passengers"},
		{name: "wrong type attributes", body: `{"customer":"c","from":"a","to":"b","attributes":["x"]}`, status: 400, field: "attributes"},
		{name: "attribute not a string", body: `{"customer":"c","from":"a","to":"b","attributes":{"fare":12}}`, status: 400, field: "attributes.fare"},
		{name: "bad attribute key", body: `{"customer":"c","from":"a","to":"b","attributes":{"no spaces":"x"}}`, status: 400, field: "attributes"},
		{name: "bad pickup_at", body: `{"customer":"c","from":"a","to":"b","pickup_at":"tomorrow"}`, status: 400, field: "pickup_at"},
		{name: "unknown field", body: `{"customer":"c","from":"a","to":"b","colour":"pink"}`, status: 400, field: "colour"},
		{name: "bad timeout", body: `{"customer":"c","from":"a","to":"b","timeout":"soon"}`, status: 400, field: "timeout"},
		{name: "wrong type timeout", body: `{"customer":"c","from":"a","to":"b","timeout":45}`, status: 400, field: "timeout"},
		{name: "timeout below minimum", body: `{"customer":"c","from":"a","to":"b","timeout":"0s"}`, status: 400, field: "timeout"},
		{name: "negative timeout", body: `{"customer":"c","from":"a","to":"b","timeout":"-5s"}`, status: 400, field: "timeout"},
		{name: "timeout above maximum", body: `{"customer":"c","from":"a","to":"b","timeout":"1h"}`, status: 400, field: "timeout", reachesService: true},
		{name: "malformed JSON", body: `{"customer":"c",`, status: 400},
		{name: "syntax error", body: `{"customer" "c"}`, status: 400},
		{name: "empty body", body: ``, status: 400},
		{name: "array body", body: `[]`, status: 400},
		{name: "two JSON values", body: validBody + validBody, status: 400},
		{name: "trailing garbage", body: validBody + `x`, status: 400},
		{name: "oversized body", body: huge, status: 413},
		{name: "text content type", contentType: "text/plain", body: validBody, status: 415},
		{name: "form content type", contentType: "application/x-www-form-urlencoded", body: validBody, status: 415},
		{name: "no content type", contentType: "-", body: validBody, status: 415},

		{name: "seed missing from", path: "/submit-instant-ride-rfq", body: `{"to":"b","customer":"c"}`, status: 400, field: "from"},
		{name: "seed blank customer", path: "/submit-instant-ride-rfq", body: `{"from":"a","to":"b","customer":""}`, status: 400, field: "customer"},
		{name: "seed wrong type to", path: "/submit-instant-ride-rfq", body: `{"from":"a","to":7,"customer":"c"}`, status: 400, field: "to"},
		{name: "seed fare not scalar", path: "/submit-instant-ride-rfq", body: `{"from":"a","to":"b","customer":"c","fare":true}`, status: 400, field: "fare"},
		{name: "seed duration object", path: "/submit-instant-ride-rfq", body: `{"from":"a","to":"b","customer":"c","duration":{}}`, status: 400, field: "duration"},
		{name: "seed distance too long", path: "/submit-instant-ride-rfq", body: `{"from":"a","to":"b","customer":"c","distance":"` + strings.Repeat("9", 257) + `"}`, status: 400, field: "distance"},
		{name: "seed unknown field", path: "/submit-instant-ride-rfq", body: `{"from":"a","to":"b","customer":"c","rfq-id":"x"}`, status: 400, field: "rfq-id"},
		{name: "seed non-JSON", path: "/submit-instant-ride-rfq", contentType: "text/plain", body: `from=a`, status: 415},
		{name: "seed oversized", path: "/submit-instant-ride-rfq", body: huge, status: 413},

		{name: "malformed id get", method: "GET", path: "/v1/rfqs/not-a-uuid", status: 400, field: "id"},
		{name: "malformed id cancel", method: "DELETE", path: "/v1/rfqs/8b095f9e-cffc-4790-91a6", status: 400, field: "id"},
		{name: "braced id", method: "DELETE", path: "/v1/rfqs/%7B" + id + "%7D", status: 400, field: "id"},
		{name: "malformed id seed", method: "GET", path: "/query-instant-ride-rfq/42", status: 400, field: "id"},
		{name: "unknown route", method: "GET", path: "/v1/nope", status: 404},
		{name: "unknown seed-like route", method: "POST", path: "/submit-ride", body: validBody, status: 404},
		{name: "wrong method on collection", method: "GET", path: "/v1/rfqs", status: 405},
		{name: "wrong method on rfq", method: "PUT", path: "/v1/rfqs/" + id, body: validBody, status: 405},
		{name: "wrong method on seed", method: "GET", path: "/submit-instant-ride-rfq", status: 405},
		{name: "wrong method on healthz", method: "POST", path: "/healthz", body: `{}`, status: 405},
	}
	h := newHarness(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method, path, ct := tc.method, tc.path, tc.contentType
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = "/v1/rfqs"
			}
			switch ct {
			case "":
				ct = "application/json"
			case "-":
				ct = ""
			}
			var body []byte
			if tc.body != "" || method == http.MethodPost {
				body = []byte(tc.body)
			}
			calls := h.fake.callCount("CreateRFQ")
			cancels := h.fake.callCount("CancelRFQ")
			created := h.fake.createdCount()

			resp, b := h.do(t, method, path, ct, body)
			p := requireProblem(t, resp, b, tc.status, tc.field)

			assert.Equal(t, created, h.fake.createdCount(), "no RFQ is created")
			assert.Equal(t, cancels, h.fake.callCount("CancelRFQ"), "CancelRFQ is not called")
			if tc.reachesService {
				assert.Equal(t, calls+1, h.fake.callCount("CreateRFQ"))
			} else {
				assert.Equal(t, calls, h.fake.callCount("CreateRFQ"), "CreateRFQ is not called")
			}
			switch tc.status {
			case 405:
				assert.NotEmpty(t, resp.Header.Get("Allow"))
				assert.Equal(t, api.ProblemTypeBase+"method_not_allowed", p.Type)
			case 404:
				assert.Equal(t, api.ProblemTypeBase+"not_found", p.Type)
			case 413:
				assert.Equal(t, api.ProblemTypeBase+"too_large", p.Type)
			case 415:
				assert.Equal(t, api.ProblemTypeBase+"unsupported_media_type", p.Type)
			case 400:
				assert.Equal(t, api.ProblemTypeBase+"invalid", p.Type)
			}
		})
	}
}

func TestMethodNotAllowedListsMethods(t *testing.T) {
	h := newHarness(t)
	resp, b := h.do(t, http.MethodPatch, "/v1/rfqs/8b095f9e-cffc-4790-91a6-28353fa30e42", "", nil)
	p := requireProblem(t, resp, b, http.StatusMethodNotAllowed, "")
	allow := resp.Header.Get("Allow")
	assert.Contains(t, allow, "GET")
	assert.Contains(t, allow, "DELETE")
	assert.Contains(t, p.Detail, "PATCH")
}

func TestBodyLimitIsConfigurable(t *testing.T) {
	h := newHarness(t, func(c *api.Config) { c.MaxBodyBytes = 256 })
	// A valid first value followed by more than the limit of padding.
	resp, b := h.postJSON(t, "/v1/rfqs", validBody+strings.Repeat(" ", 512))
	p := requireProblem(t, resp, b, http.StatusRequestEntityTooLarge, "")
	assert.Contains(t, p.Detail, "256")
	assert.Zero(t, h.fake.callCount("CreateRFQ"))

	h.createRFQ(t, validBody) // under the limit
}

func TestCreateRFQUnmatched(t *testing.T) {
	h := newHarness(t)
	h.fake.setAsked() // no provider can serve it
	resp, b := h.postJSON(t, "/v1/rfqs", validBody)
	p := requireProblem(t, resp, b, http.StatusUnprocessableEntity, "")
	assert.Equal(t, api.ProblemTypeBase+"unmatched", p.Type)
}

func TestGetRFQ(t *testing.T) {
	h := newHarness(t)
	created := h.createRFQ(t, validBody)
	h.fake.addQuote(created.ID, "UnicornManagementResource2", "100")
	h.fake.addQuote(created.ID, "UnicornManagementResource10", "45")
	h.fake.addQuote(created.ID, "UnicornManagementResource1", "45.5")

	resp, b := h.do(t, http.MethodGet, "/v1/rfqs/"+created.ID, "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	var rfq rfqJSON
	require.NoError(t, json.Unmarshal(b, &rfq))
	assert.Equal(t, created.ID, rfq.ID)
	assert.Equal(t, "open", rfq.Status)
	require.Len(t, rfq.Quotes, 3)
	var order []string
	for _, q := range rfq.Quotes {
		order = append(order, q.Provider+"="+q.Price.Amount)
	}
	assert.Equal(t, []string{"UnicornManagementResource10=45", "UnicornManagementResource1=45.5", "UnicornManagementResource2=100"}, order, "best first")
}

// A final RFQ's body is encoded once and then served from memory: every
// response is the same JSON, one newline after it, its length declared,
// and serving it leaves the cached body as it was.
func TestGetFinalRFQBodyIsServedAlike(t *testing.T) {
	h := newHarness(t)
	created := h.createRFQ(t, validBody)
	h.fake.addQuote(created.ID, "UnicornManagementResource1", "45.5")
	h.fake.setStatus(created.ID, rydes.StatusComplete)

	var first []byte
	for i := range 3 {
		resp, b := h.do(t, http.MethodGet, "/v1/rfqs/"+created.ID, "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
		require.Equal(t, strconv.Itoa(len(b)), resp.Header.Get("Content-Length"))
		require.True(t, bytes.HasSuffix(b, []byte("}\n")), "one newline after the JSON: %q", b)
		var rfq rfqJSON
		require.NoError(t, json.Unmarshal(b, &rfq))
		require.Equal(t, "complete", rfq.Status)
		if i == 0 {
			first = b
			continue
		}
		require.Equal(t, string(first), string(b), "response %d", i+1)
	}
}

// A body longer than net/http's 2 KB response buffer goes out with its
// length declared, not in chunks.
func TestGetLongRFQBodyDeclaresItsLength(t *testing.T) {
	h := newHarness(t)
	created := h.createRFQ(t, validBody)
	for i := range 20 {
		h.fake.addQuote(created.ID, fmt.Sprintf("UnicornManagementResource%d", i+1), fmt.Sprintf("%d.50", 40+i))
	}
	for _, status := range []rydes.Status{rydes.StatusOpen, rydes.StatusComplete} {
		h.fake.setStatus(created.ID, status)
		resp, b := h.do(t, http.MethodGet, "/v1/rfqs/"+created.ID, "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
		require.Greater(t, len(b), 2048, "the body must outgrow net/http's buffer for this test to mean anything")
		assert.Empty(t, resp.TransferEncoding, "%s: not chunked", status)
		assert.Equal(t, strconv.Itoa(len(b)), resp.Header.Get("Content-Length"), status)
	}
}

func TestGetRFQCanonicalisesID(t *testing.T) {
	h := newHarness(t)
	created := h.createRFQ(t, validBody)
	resp, b := h.do(t, http.MethodGet, "/v1/rfqs/"+strings.ToUpper(created.ID), "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	assert.Equal(t, created.ID, h.fake.lastGetID())
}

func TestGetRFQNotFound(t *testing.T) {
	h := newHarness(t)
	resp, b := h.do(t, http.MethodGet, "/v1/rfqs/"+rydes.NewID(), "", nil)
	p := requireProblem(t, resp, b, http.StatusNotFound, "")
	assert.Equal(t, api.ProblemTypeBase+"not_found", p.Type)
}

func TestCancelRFQ(t *testing.T) {
	h := newHarness(t)
	created := h.createRFQ(t, validBody)

	resp, b := h.do(t, http.MethodDelete, "/v1/rfqs/"+created.ID, "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	var rfq rfqJSON
	require.NoError(t, json.Unmarshal(b, &rfq))
	assert.Equal(t, "cancelled", rfq.Status)
	assert.NotEmpty(t, rfq.ClosedAt)

	resp, b = h.do(t, http.MethodDelete, "/v1/rfqs/"+created.ID, "", nil)
	p := requireProblem(t, resp, b, http.StatusConflict, "")
	assert.Equal(t, api.ProblemTypeBase+"conflict", p.Type)

	resp, b = h.do(t, http.MethodDelete, "/v1/rfqs/"+rydes.NewID(), "", nil)
	requireProblem(t, resp, b, http.StatusNotFound, "")
}

func TestSeedSubmit(t *testing.T) {
	h := newHarness(t)
	resp, b := h.postJSON(t, "/submit-instant-ride-rfq", `{"from": "Frankfurt", "to": "Las Vegas", "customer": "cmr"}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
	assert.Equal(t, []string{"rfq-id"}, keysOf(t, b), "exactly the workshop's body")
	var got struct {
		RFQID string `json:"rfq-id"`
	}
	require.NoError(t, json.Unmarshal(b, &got))
	assert.NoError(t, rydes.ValidateID(got.RFQID))
	assert.Equal(t, "/query-instant-ride-rfq/"+got.RFQID, resp.Header.Get("Location"))

	req := h.fake.lastRequest()
	require.NotNil(t, req)
	assert.Equal(t, rydes.RFQRequest{Customer: "cmr", From: "Frankfurt", To: "Las Vegas"}, *req)
}

func TestSeedSubmitPictureFields(t *testing.T) {
	h := newHarness(t)
	resp, b := h.postJSON(t, "/submit-instant-ride-rfq",
		`{"from":"Frankfurt","to":"Las Vegas","customer":"cmr","duration":"10h","distance":9150.5,"fare":-1e2}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
	assert.Equal(t, []string{"rfq-id"}, keysOf(t, b))
	req := h.fake.lastRequest()
	require.NotNil(t, req)
	assert.Equal(t, map[string]string{"duration": "10h", "distance": "9150.5", "fare": "-1e2"}, req.Attributes)

	// null is as good as absent
	resp, b = h.postJSON(t, "/submit-instant-ride-rfq", `{"from":"a","to":"b","customer":"c","fare":null}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
	assert.Nil(t, h.fake.lastRequest().Attributes)
}

func TestSeedQuery(t *testing.T) {
	h := newHarness(t)
	created := h.createRFQ(t, validBody)

	// No quotes yet: an empty array, not null.
	resp, b := h.do(t, http.MethodGet, "/query-instant-ride-rfq/"+created.ID, "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	assert.Equal(t, []string{"customer", "from", "quotes", "rfq-id", "to"}, keysOf(t, b))
	assert.JSONEq(t, fmt.Sprintf(`{"quotes":[],"rfq-id":%q,"from":"Frankfurt","to":"Las Vegas","customer":"cmr"}`, created.ID), string(b))

	h.fake.addQuote(created.ID, "UnicornManagementResource2", "100")
	h.fake.addQuote(created.ID, "UnicornManagementResource10", "45")
	resp, b = h.do(t, http.MethodGet, "/query-instant-ride-rfq/"+created.ID, "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	assert.Equal(t, []string{"customer", "from", "quotes", "rfq-id", "to"}, keysOf(t, b))
	var got struct {
		Quotes []json.RawMessage `json:"quotes"`
	}
	require.NoError(t, json.Unmarshal(b, &got))
	for _, q := range got.Quotes {
		assert.Equal(t, []string{"quote", "responder"}, keysOf(t, q))
	}
	assert.JSONEq(t, fmt.Sprintf(`{
		"quotes": [{"responder": "UnicornManagementResource10", "quote": "45"},
		           {"responder": "UnicornManagementResource2", "quote": "100"}],
		"rfq-id": %q, "from": "Frankfurt", "to": "Las Vegas", "customer": "cmr"}`, created.ID), string(b))
}

func TestSeedQueryNotFound(t *testing.T) {
	h := newHarness(t)
	resp, b := h.do(t, http.MethodGet, "/query-instant-ride-rfq/"+rydes.NewID(), "", nil)
	requireProblem(t, resp, b, http.StatusNotFound, "")
}

// TestSeedRoundTrip is the workshop's flow: submit event.json, query it.
func TestSeedRoundTrip(t *testing.T) {
	h := newHarness(t)
	resp, b := h.postJSON(t, "/submit-instant-ride-rfq", "{\n    \"from\": \"Frankfurt\",\n    \"to\": \"Las Vegas\",\n    \"customer\": \"cmr\"\n}\n")
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
	var sub struct {
		RFQID string `json:"rfq-id"`
	}
	require.NoError(t, json.Unmarshal(b, &sub))
	resp, b = h.do(t, http.MethodGet, "/query-instant-ride-rfq/"+sub.RFQID, "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	var q struct {
		RFQID    string `json:"rfq-id"`
		Customer string `json:"customer"`
	}
	require.NoError(t, json.Unmarshal(b, &q))
	assert.Equal(t, sub.RFQID, q.RFQID)
	assert.Equal(t, "cmr", q.Customer)
}

func TestHealthz(t *testing.T) {
	var ready atomic.Bool
	h := newHarness(t, func(c *api.Config) { c.Ready = ready.Load })

	resp, b := h.do(t, http.MethodGet, "/healthz", "", nil)
	p := requireProblem(t, resp, b, http.StatusServiceUnavailable, "")
	assert.Equal(t, api.ProblemTypeBase+"unavailable", p.Type)

	ready.Store(true)
	resp, b = h.do(t, http.MethodGet, "/healthz", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"status":"ok"}`, string(b))
}

func TestHealthzDefaultsToReady(t *testing.T) {
	h := newHarness(t)
	resp, b := h.do(t, http.MethodGet, "/healthz", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
}

func TestInternalErrorIsHiddenAndLogged(t *testing.T) {
	h := newHarness(t)
	h.fake.setGetHook(func(string) (rydes.RFQ, error) {
		return rydes.RFQ{}, errors.New("query rides: password=hunter2 rejected")
	})
	resp, b := h.do(t, http.MethodGet, "/v1/rfqs/"+rydes.NewID(), "", nil)
	p := requireProblem(t, resp, b, http.StatusInternalServerError, "")
	assert.Equal(t, "internal error", p.Detail)
	assert.Equal(t, api.ProblemTypeBase+"internal", p.Type)
	assert.NotContains(t, string(b), "hunter2")

	h.srv.Close() // waits for the handlers, and so for their logs
	assert.Contains(t, h.logs.String(), "hunter2", "the real error is logged")
}

func TestPanicBecomesProblem(t *testing.T) {
	h := newHarness(t)
	h.fake.setGetHook(func(string) (rydes.RFQ, error) { panic("boom") })
	resp, b := h.do(t, http.MethodGet, "/v1/rfqs/"+rydes.NewID(), "", nil)
	p := requireProblem(t, resp, b, http.StatusInternalServerError, "")
	assert.Equal(t, "internal error", p.Detail)

	// The server survives.
	resp, _ = h.do(t, http.MethodGet, "/healthz", "", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	h.srv.Close()
	var panicked bool
	for _, rec := range logRecords(t, h.logs) {
		if rec["msg"] == "handler panicked" {
			panicked = true
			assert.Equal(t, "boom", rec["panic"])
			assert.NotEmpty(t, rec["stack"])
		}
	}
	assert.True(t, panicked, "the panic is logged")
}

func TestRequestsAreLogged(t *testing.T) {
	h := newHarness(t)
	created := h.createRFQ(t, validBody)
	h.do(t, http.MethodGet, "/v1/nope", "", nil)
	h.srv.Close()

	type line struct {
		method, path string
		status       float64
	}
	var got []line
	for _, rec := range logRecords(t, h.logs) {
		if rec["msg"] != "http request" {
			continue
		}
		got = append(got, line{rec["method"].(string), rec["path"].(string), rec["status"].(float64)})
		assert.Contains(t, rec, "duration")
		assert.Contains(t, rec, "bytes")
	}
	assert.ElementsMatch(t, []line{{"POST", "/v1/rfqs", 201}, {"GET", "/v1/nope", 404}}, got)
	assert.NotEmpty(t, created.ID)
}

func TestErrorStatus(t *testing.T) {
	for code, want := range map[rydes.ErrorCode]int{
		rydes.EINVALID:      400,
		rydes.EUNAUTHORIZED: 401,
		rydes.EFORBIDDEN:    403,
		rydes.ENOTFOUND:     404,
		rydes.ECONFLICT:     409,
		rydes.EGONE:         410,
		rydes.ETOOLARGE:     413,
		rydes.EUNMATCHED:    422,
		rydes.EINTERNAL:     500,
		rydes.ETIMEOUT:      504,
		"no_such_code":      500,
	} {
		assert.Equal(t, want, api.ErrorStatus(code), "code %q", code)
	}
}

func TestNewRequiresService(t *testing.T) {
	assert.Panics(t, func() { api.New(api.Config{}) })
}
