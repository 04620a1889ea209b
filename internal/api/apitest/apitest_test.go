package apitest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes/internal/api/apitest"
)

// recordingT records the failures Check reports instead of failing the test.
type recordingT struct {
	testing.TB
	errs []string
}

func (r *recordingT) Helper() {}

func (r *recordingT) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

const (
	id      = "8b095f9e-cffc-4790-91a6-28353fa30e42"
	rfqBody = `{"id":"` + id + `","status":"open","customer":"cmr","from":"Frankfurt","to":"Las Vegas",
		"created_at":"2030-07-01T09:30:00Z","deadline":"2030-07-01T09:30:30Z","seq":2,
		"providers":[{"provider":"UnicornManagementResource1","state":"quoted","changed_at":"2030-07-01T09:30:05.123456Z"}],
		"quotes":[{"provider":"UnicornManagementResource1","price":{"amount":"45.50","currency":"EUR"},"received_at":"2030-07-01T09:30:05.123456Z"}]}`
	etag    = `"` + id + `.2"`
	problem = `{"type":"https://rydes.dev/problems/invalid","title":"Invalid request","status":400,
		"detail":"customer is required","instance":"/v1/rfqs","errors":[{"field":"customer","reason":"is required"}]}`
)

func TestCheck(t *testing.T) {
	v := apitest.NewValidator(t, apitest.SpecPath(t))
	getHeader := map[string]string{"Content-Type": "application/json", "ETag": etag, "Cache-Control": "no-cache"}
	stream := map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
	const frames = "id: 1\nevent: created\ndata: {\"not\":\"checked\"}\n\n: heartbeat\n\n"
	tests := []struct {
		name       string
		method     string
		path       string
		reqType    string
		reqBody    string
		status     int
		header     map[string]string
		body       string
		wantFailed string // "" if the pair matches the document
	}{
		{name: "healthz ok", method: "GET", path: "/healthz", status: 200,
			header: map[string]string{"Content-Type": "application/json"}, body: `{"status":"ok"}`},
		{name: "undocumented status", method: "GET", path: "/healthz", status: 418,
			header: map[string]string{"Content-Type": "application/json"}, body: `{"status":"ok"}`, wantFailed: "status is not supported"},
		{name: "value outside enum", method: "GET", path: "/healthz", status: 200,
			header: map[string]string{"Content-Type": "application/json"}, body: `{"status":"fine"}`, wantFailed: "doesn't match schema"},
		{name: "wrong content type", method: "GET", path: "/healthz", status: 200,
			header: map[string]string{"Content-Type": "text/plain"}, body: `{"status":"ok"}`, wantFailed: "text/plain"},

		{name: "rfq ok", method: "GET", path: "/v1/rfqs/" + id, status: 200,
			header: getHeader, body: rfqBody},
		{name: "rfq without etag", method: "GET", path: "/v1/rfqs/" + id, status: 200,
			header: map[string]string{"Content-Type": "application/json", "Cache-Control": "no-cache"}, body: rfqBody, wantFailed: "ETag"},
		{name: "rfq with weak etag", method: "GET", path: "/v1/rfqs/" + id, status: 200,
			header: map[string]string{"Content-Type": "application/json", "ETag": "W/" + etag, "Cache-Control": "no-cache"}, body: rfqBody, wantFailed: "ETag"},
		{name: "rfq not modified", method: "GET", path: "/v1/rfqs/" + id, status: 304,
			header: map[string]string{"ETag": etag, "Cache-Control": "no-cache"}},
		{name: "rfq not modified with body", method: "GET", path: "/v1/rfqs/" + id, status: 304,
			header: map[string]string{"ETag": etag, "Cache-Control": "no-cache"}, body: rfqBody, wantFailed: "304 with a body"},
		{name: "rfq not modified without etag", method: "GET", path: "/v1/rfqs/" + id, status: 304,
			header: map[string]string{"Cache-Control": "no-cache"}, wantFailed: "ETag"},
		{name: "undocumented 304", method: "GET", path: "/query-instant-ride-rfq/" + id, status: 304, wantFailed: "does not describe"},
		{name: "event stream", method: "GET", path: "/v1/rfqs/" + id + "/events", status: 200, header: stream, body: frames},
		{name: "event stream without buffering header", method: "GET", path: "/v1/rfqs/" + id + "/events", status: 200,
			header: map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}, body: frames, wantFailed: "X-Accel-Buffering"},
		{name: "event stream where JSON is documented", method: "GET", path: "/v1/rfqs/" + id, status: 200,
			header: map[string]string{"Content-Type": "text/event-stream", "ETag": etag, "Cache-Control": "no-cache"}, body: frames, wantFailed: "documents no text/event-stream"},
		{name: "event stream as JSON", method: "GET", path: "/v1/rfqs/" + id + "/events", status: 200,
			header: map[string]string{"Content-Type": "application/json", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}, body: `{}`, wantFailed: "application/json"},
		{name: "rfq without quotes", method: "GET", path: "/v1/rfqs/" + id, status: 200,
			header: getHeader, body: strings.Replace(rfqBody, `"quotes"`, `"quotez"`, 1), wantFailed: "quotes"},
		{name: "rfq with unknown status", method: "GET", path: "/v1/rfqs/" + id, status: 200,
			header: getHeader, body: strings.Replace(rfqBody, `"open"`, `"pending"`, 1), wantFailed: "status"},
		{name: "rfq with bad time", method: "GET", path: "/v1/rfqs/" + id, status: 200,
			header: getHeader, body: strings.Replace(rfqBody, `2030-07-01T09:30:30Z`, `tomorrow`, 1), wantFailed: "deadline"},
		{name: "rfq with null roster", method: "GET", path: "/v1/rfqs/" + id, status: 200,
			header: getHeader, body: strings.Replace(rfqBody, `"providers":[`, `"providers":null,"x":[`, 1), wantFailed: "providers"},

		{name: "seed query ok", method: "GET", path: "/query-instant-ride-rfq/" + id, status: 200,
			header: map[string]string{"Content-Type": "application/json"},
			body:   `{"quotes":[{"responder":"UnicornManagementResource10","quote":"45"}],"rfq-id":"` + id + `","from":"a","to":"b","customer":"c"}`},
		{name: "seed query extra key", method: "GET", path: "/query-instant-ride-rfq/" + id, status: 200,
			header:     map[string]string{"Content-Type": "application/json"},
			body:       `{"quotes":[],"rfq-id":"` + id + `","from":"a","to":"b","customer":"c","status":"open"}`,
			wantFailed: "status"},
		{name: "seed quote as number", method: "GET", path: "/query-instant-ride-rfq/" + id, status: 200,
			header:     map[string]string{"Content-Type": "application/json"},
			body:       `{"quotes":[{"responder":"U1","quote":45}],"rfq-id":"` + id + `","from":"a","to":"b","customer":"c"}`,
			wantFailed: "quote"},
		{name: "seed submit ok", method: "POST", path: "/submit-instant-ride-rfq", reqType: "application/json",
			reqBody: `{"from":"a","to":"b","customer":"c"}`, status: 201,
			header: map[string]string{"Content-Type": "application/json", "Location": "/query-instant-ride-rfq/" + id},
			body:   `{"rfq-id":"` + id + `"}`},
		{name: "seed submit without Location", method: "POST", path: "/submit-instant-ride-rfq", reqType: "application/json",
			reqBody: `{"from":"a","to":"b","customer":"c"}`, status: 201,
			header: map[string]string{"Content-Type": "application/json"}, body: `{"rfq-id":"` + id + `"}`, wantFailed: "Location"},
		{name: "seed submit id not a uuid", method: "POST", path: "/submit-instant-ride-rfq", reqType: "application/json",
			reqBody: `{"from":"a","to":"b","customer":"c"}`, status: 201,
			header: map[string]string{"Content-Type": "application/json", "Location": "/query-instant-ride-rfq/" + id},
			body:   `{"rfq-id":"42"}`, wantFailed: "rfq-id"},

		{name: "invalid request refused", method: "POST", path: "/v1/rfqs", reqType: "application/json",
			reqBody: `{"customer":"c","from":"a"}`, status: 400,
			header: map[string]string{"Content-Type": "application/problem+json"}, body: problem},
		{name: "invalid request accepted", method: "POST", path: "/v1/rfqs", reqType: "application/json",
			reqBody: `{"customer":"c","from":"a"}`, status: 201,
			header: map[string]string{"Content-Type": "application/json", "Location": "/v1/rfqs/" + id}, body: rfqBody,
			wantFailed: "the document says the request is invalid"},
		{name: "unknown field accepted", method: "POST", path: "/v1/rfqs", reqType: "application/json",
			reqBody: `{"customer":"c","from":"a","to":"b","colour":"pink"}`, status: 201,
			header: map[string]string{"Content-Type": "application/json", "Location": "/v1/rfqs/" + id}, body: rfqBody,
			wantFailed: "the document says the request is invalid"},
		{name: "valid request refused", method: "POST", path: "/v1/rfqs", reqType: "application/json",
			reqBody: `{"customer":"c","from":"a","to":"b","timeout":"1h"}`, status: 400,
			header: map[string]string{"Content-Type": "application/problem+json"}, body: problem},
		{name: "problem with foreign type", method: "POST", path: "/v1/rfqs", reqType: "application/json",
			reqBody: `{"from":"a","to":"b"}`, status: 400,
			header: map[string]string{"Content-Type": "application/problem+json"},
			body:   strings.Replace(problem, "https://rydes.dev/problems/invalid", "about:blank", 1), wantFailed: "type"},

		{name: "unknown route 404", method: "GET", path: "/nope", status: 404,
			header: map[string]string{"Content-Type": "application/problem+json"},
			body:   `{"type":"https://rydes.dev/problems/not_found","title":"Not found","status":404,"detail":"no route","instance":"/nope"}`},
		{name: "unknown route served", method: "GET", path: "/nope", status: 200,
			header: map[string]string{"Content-Type": "application/json"}, body: `{}`, wantFailed: "undocumented route"},
		{name: "unknown route plain 404", method: "GET", path: "/nope", status: 404,
			header: map[string]string{"Content-Type": "text/plain; charset=utf-8"}, body: "404 page not found\n", wantFailed: "problem+json"},
		{name: "wrong method 405", method: "PUT", path: "/v1/rfqs/" + id, status: 405,
			header: map[string]string{"Content-Type": "application/problem+json", "Allow": "DELETE, GET, HEAD"},
			body:   `{"type":"https://rydes.dev/problems/method_not_allowed","title":"Method not allowed","status":405,"detail":"no","instance":"/v1/rfqs/` + id + `"}`},
		{name: "wrong method on collection", method: "GET", path: "/v1/rfqs", status: 405,
			header: map[string]string{"Content-Type": "application/problem+json", "Allow": "POST"},
			body:   `{"type":"https://rydes.dev/problems/method_not_allowed","title":"Method not allowed","status":405,"detail":"no","instance":"/v1/rfqs"}`},
		{name: "405 without Allow", method: "PUT", path: "/v1/rfqs/" + id, status: 405,
			header:     map[string]string{"Content-Type": "application/problem+json"},
			body:       `{"type":"https://rydes.dev/problems/method_not_allowed","title":"Method not allowed","status":405,"detail":"no","instance":"/v1/rfqs/` + id + `"}`,
			wantFailed: "Allow"},
		{name: "405 answered 404", method: "PUT", path: "/v1/rfqs/" + id, status: 404,
			header:     map[string]string{"Content-Type": "application/problem+json"},
			body:       `{"type":"https://rydes.dev/problems/not_found","title":"Not found","status":404,"detail":"no","instance":"/v1/rfqs/` + id + `"}`,
			wantFailed: "want 405"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rd *strings.Reader
			req := httptest.NewRequest(tc.method, "http://127.0.0.1:8080"+tc.path, nil)
			if tc.reqBody != "" {
				rd = strings.NewReader(tc.reqBody)
				req = httptest.NewRequest(tc.method, "http://127.0.0.1:8080"+tc.path, rd)
			}
			if tc.reqType != "" {
				req.Header.Set("Content-Type", tc.reqType)
			}
			resp := &http.Response{StatusCode: tc.status, Header: http.Header{}, Request: req}
			for k, v := range tc.header {
				resp.Header.Set(k, v)
			}
			rec := &recordingT{TB: t}
			v.Check(rec, req, []byte(tc.reqBody), resp, []byte(tc.body))
			if tc.wantFailed == "" {
				assert.Empty(t, rec.errs)
				return
			}
			require.Len(t, rec.errs, 1, "Check must fail")
			t.Log(rec.errs[0])
			assert.Contains(t, rec.errs[0], tc.wantFailed)
		})
	}
}

func TestDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"ok"}`)
	}))
	defer srv.Close()
	v := apitest.NewValidator(t, apitest.SpecPath(t))

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/healthz", nil)
	require.NoError(t, err)
	resp, body := v.Do(t, srv.Client(), req)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"status":"ok"}`, string(body))

	// The same server is wrong for /query-instant-ride-rfq/{id}: Do reports it.
	req, err = http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/query-instant-ride-rfq/"+id, nil)
	require.NoError(t, err)
	rec := &recordingT{TB: t}
	v.Do(rec, srv.Client(), req)
	require.Len(t, rec.errs, 1)
	assert.Contains(t, rec.errs[0], "doesn't match schema")
}

func TestSpecPath(t *testing.T) {
	p := apitest.SpecPath(t)
	assert.True(t, strings.HasSuffix(p, apitest.SpecFile), "path %s", p)
	_, err := os.Stat(p)
	assert.NoError(t, err)
}
