// Package apitest checks real HTTP traffic against rydes's OpenAPI document,
// docs/openapi.yaml, so that the document and the server cannot drift apart
// unnoticed. Any test that talks to a rydes server over HTTP can use it:
//
//	v := apitest.NewValidator(t, apitest.SpecPath(t))
//	resp, body := v.Do(t, srv.Client(), req)
//
// or, with a request and response it already has, v.Check(t, req, reqBody,
// resp, respBody).
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// SpecFile is the OpenAPI document's path relative to the module root.
const SpecFile = "docs/openapi.yaml"

// SpecPath returns the path of docs/openapi.yaml, found by walking up from
// the test's working directory to the module root (the directory holding
// go.mod). It fails the test if there is none.
func SpecPath(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("apitest: working directory: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, filepath.FromSlash(SpecFile))
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("apitest: no go.mod above the working directory; cannot find %s", SpecFile)
		}
		dir = parent
	}
}

// Validator checks requests and responses against an OpenAPI document. It is
// safe for concurrent use.
type Validator struct {
	router  routers.Router
	problem *openapi3.Schema
	opts    []openapi3.SchemaValidationOption
}

// NewValidator loads and validates the OpenAPI document at specPath, failing
// the test if it cannot be loaded or is not a valid document. The document's
// servers are ignored: requests are matched on their path alone, so that
// servers on any address can be checked.
func NewValidator(t testing.TB, specPath string) *Validator {
	t.Helper()
	v, err := newValidator(specPath)
	if err != nil {
		t.Fatalf("apitest: %v", err)
	}
	return v
}

func newValidator(specPath string) (*Validator, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(specPath)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", specPath, err)
	}
	ctx := context.Background()
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("%s is not a valid OpenAPI document: %w", specPath, err)
	}
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route %s: %w", specPath, err)
	}
	ref := doc.Components.Schemas["Problem"]
	if ref == nil || ref.Value == nil {
		return nil, fmt.Errorf("%s has no components.schemas.Problem", specPath)
	}
	return &Validator{
		router:  router,
		problem: ref.Value,
		opts: []openapi3.SchemaValidationOption{
			openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562)),
		},
	}, nil
}

// Do sends req with client, reads the whole response, checks the pair with
// Check and returns the response (its Body replaced by the bytes read, so
// it can be read again) and its body. The request's body, if any, must be
// re-readable through req.GetBody, as http.NewRequest arranges for bytes,
// strings and bytes.Buffer readers.
func (v *Validator) Do(t testing.TB, client *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			t.Fatalf("apitest: %s %s: request body is not re-readable (no GetBody)", req.Method, req.URL.Path)
		}
		rc, err := req.GetBody()
		if err != nil {
			t.Fatalf("apitest: %s %s: get request body: %v", req.Method, req.URL.Path, err)
		}
		reqBody, err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("apitest: %s %s: read request body: %v", req.Method, req.URL.Path, err)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("apitest: %s %s: %v", req.Method, req.URL.Path, err)
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("apitest: %s %s: read response body: %v", req.Method, req.URL.Path, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	v.Check(t, req, reqBody, resp, respBody)
	return resp, respBody
}

// Check validates a request and the response the server gave to it, failing
// the test (with t.Errorf) on any mismatch with the document:
//
//   - A request to a route the document does not describe must have been
//     answered 404 (unknown path) or 405 (known path, other method, with an
//     Allow header) with a problem+json body matching the Problem schema.
//   - A request the document says is invalid must have been refused with a
//     4xx status; the server may refuse more than the document does (a
//     value may be well-formed yet out of range), never less.
//   - The response's status must be documented for the operation, and its
//     headers, content type and body must match what is documented.
func (v *Validator) Check(t testing.TB, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	t.Helper()
	if err := v.check(req, reqBody, resp, respBody); err != nil {
		t.Errorf("apitest: %s %s → %d: %v\nrequest body: %s\nresponse body: %s",
			req.Method, req.URL.Path, resp.StatusCode, err, clip(reqBody), clip(respBody))
	}
}

func (v *Validator) check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) error {
	ctx := context.Background()
	route, pathParams, err := v.findRoute(req)
	if err != nil && req.Method == http.MethodHead {
		// net/http serves HEAD wherever it serves GET, without a body.
		get := req.Clone(ctx)
		get.Method = http.MethodGet
		if _, _, gerr := v.findRoute(get); gerr == nil {
			return nil
		}
	}
	if err != nil {
		return v.checkUnrouted(err, req, resp, respBody)
	}

	r := req.Clone(ctx)
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	r.ContentLength = int64(len(reqBody))
	reqInput := &openapi3filter.RequestValidationInput{
		Request:    r,
		PathParams: pathParams,
		Route:      route,
		Options: &openapi3filter.Options{
			AuthenticationFunc:                openapi3filter.NoopAuthenticationFunc,
			RejectWhenRequestBodyNotSpecified: true,
			SkipSettingDefaults:               true,
			SchemaValidationOptions:           v.opts,
		},
	}
	if reqErr := openapi3filter.ValidateRequest(ctx, reqInput); reqErr != nil {
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			return fmt.Errorf("the document says the request is invalid, yet the server answered %d: %w", resp.StatusCode, reqErr)
		}
	}

	// A 304 is documented like any status, carries no body, and is
	// otherwise skipped by the library.
	if resp.StatusCode == http.StatusNotModified {
		if err := checkNotModified(route, resp, respBody); err != nil {
			return err
		}
	}
	// An event stream's body is no JSON document: its status, headers and
	// content type are checked, its framing is the tests' to check.
	stream := isEventStream(resp.Header.Get("Content-Type"))
	if stream {
		if err := checkStreamDocumented(route, resp.StatusCode); err != nil {
			return err
		}
	}
	respInput := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: reqInput,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(respBody)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus:   true,
			ExcludeResponseBody:     stream,
			SchemaValidationOptions: v.opts,
		},
	}
	if err := openapi3filter.ValidateResponse(ctx, respInput); err != nil {
		return fmt.Errorf("response does not match %s %s in the document: %w", route.Method, route.Path, err)
	}
	return nil
}

// EventStreamContentType is the media type of server-sent events.
const EventStreamContentType = "text/event-stream"

func isEventStream(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == EventStreamContentType
}

// checkStreamDocumented checks that the operation documents an event
// stream for status.
func checkStreamDocumented(route *routers.Route, status int) error {
	ref := route.Operation.Responses.Status(status)
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("event stream with status %d, which the document does not describe for %s %s", status, route.Method, route.Path)
	}
	if ref.Value.Content.Get(EventStreamContentType) == nil {
		return fmt.Errorf("event stream with status %d, for which %s %s documents no %s", status, route.Method, route.Path, EventStreamContentType)
	}
	return nil
}

// checkNotModified checks a 304: documented for the operation, without a
// body, with every header the document requires of it.
func checkNotModified(route *routers.Route, resp *http.Response, respBody []byte) error {
	ref := route.Operation.Responses.Status(http.StatusNotModified)
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("status 304, which the document does not describe for %s %s", route.Method, route.Path)
	}
	if len(respBody) > 0 {
		return fmt.Errorf("a 304 with a body of %d bytes", len(respBody))
	}
	for name, h := range ref.Value.Headers {
		if h.Value != nil && h.Value.Required && resp.Header.Get(name) == "" {
			return fmt.Errorf("a 304 without the required header %s", name)
		}
	}
	return nil
}

// findRoute finds the document's operation for req, on its path as sent
// (escaped). It guards against the
// router matching a path with fewer segments than the operation's template
// (it matches "/v1/rfqs" to "/v1/rfqs/{id}" with an empty id).
func (v *Validator) findRoute(req *http.Request) (*routers.Route, map[string]string, error) {
	if req.URL.RawPath != "" {
		// An escaped slash (%2F) is part of a segment, as the server's mux
		// sees it, not a separator: route on the escaped path.
		req = req.Clone(context.Background())
		req.URL.Path, req.URL.RawPath = req.URL.RawPath, ""
	}
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		return nil, nil, err
	}
	segments := func(p string) int { return strings.Count(strings.TrimSuffix(p, "/"), "/") }
	if segments(route.Path) != segments(req.URL.Path) {
		return nil, nil, routers.ErrPathNotFound
	}
	for name, value := range params {
		if value == "" {
			return nil, nil, fmt.Errorf("%w: empty path parameter %s", routers.ErrPathNotFound, name)
		}
	}
	return route, params, nil
}

// checkUnrouted checks the answer to a request the document has no
// operation for: it must be a 405 problem, with an Allow header naming every
// documented method, if the document has the path with other methods, and a
// 404 problem otherwise.
func (v *Validator) checkUnrouted(routeErr error, req *http.Request, resp *http.Response, respBody []byte) error {
	if _, ok := errors.AsType[*routers.RouteError](routeErr); !ok {
		return fmt.Errorf("cannot route the request in the document: %w", routeErr)
	}
	var allowed []string
	for _, m := range methods {
		if m == req.Method {
			continue
		}
		probe := req.Clone(context.Background())
		probe.Method = m
		if _, _, err := v.findRoute(probe); err == nil {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) == 0 {
		if resp.StatusCode != http.StatusNotFound {
			return fmt.Errorf("undocumented route: the document has no path %s, yet the server answered %d; want 404 with a problem", req.URL.Path, resp.StatusCode)
		}
		return v.checkProblem(resp, respBody)
	}
	if resp.StatusCode != http.StatusMethodNotAllowed {
		return fmt.Errorf("undocumented route: the document has %s only for %v, yet the server answered %d; want 405 with a problem", req.URL.Path, allowed, resp.StatusCode)
	}
	allow := map[string]bool{}
	for _, m := range strings.Split(resp.Header.Get("Allow"), ",") {
		allow[strings.TrimSpace(m)] = true
	}
	for _, m := range allowed {
		if !allow[m] {
			return fmt.Errorf("405 with Allow %q, which lacks the documented method %s", resp.Header.Get("Allow"), m)
		}
	}
	return v.checkProblem(resp, respBody)
}

// methods are the HTTP methods an OpenAPI 3.0 path item can describe.
var methods = []string{
	http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete,
	http.MethodOptions, http.MethodHead, http.MethodPatch, http.MethodTrace,
}

// checkProblem checks that resp is a problem+json body matching the
// document's Problem schema.
func (v *Validator) checkProblem(resp *http.Response, respBody []byte) error {
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "application/problem+json" {
		return fmt.Errorf("content type %q; want application/problem+json", resp.Header.Get("Content-Type"))
	}
	value, err := decodeJSON(respBody)
	if err != nil {
		return fmt.Errorf("problem body: %w", err)
	}
	if err := v.problem.VisitJSON(value, append(v.opts, openapi3.VisitAsResponse())...); err != nil {
		return fmt.Errorf("problem body does not match the Problem schema: %w", err)
	}
	return nil
}

func decodeJSON(b []byte) (any, error) {
	var value any
	if err := json.Unmarshal(b, &value); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	return value, nil
}

func clip(b []byte) string {
	const max = 2048
	if len(b) > max {
		return string(b[:max]) + fmt.Sprintf("… (%d bytes)", len(b))
	}
	return string(b)
}
