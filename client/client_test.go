package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/client"
	"github.com/wildrydes/rydes/internal/rydestest"
)

// now is the stub server's clock: fixed, so that RFQs compare equal.
var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// asked is the roster of every RFQ the stub creates.
var asked = []string{"UnicornManagementResource1", "UnicornManagementResource2", "UnicornManagementResource3"}

// step is one scripted answer to a GET: an RFQ, or a status code for an
// error response.
type step struct {
	rfq    rydes.RFQ
	status int
}

// request is what the stub saw of one request.
type request struct {
	Method, Path, Auth, ContentType, UserAgent string
	Body                                       map[string]any
}

// stubAPI is a tiny in-memory stand-in for rydes's /v1 RFQ routes.
type stubAPI struct {
	mu       sync.Mutex
	rfqs     map[string]rydes.RFQ
	scripts  map[string][]step // GET answers by RFQ id, one per GET, the last repeated
	gets     map[string]int
	requests []request
}

func newStub(t *testing.T) (*stubAPI, *httptest.Server) {
	t.Helper()
	s := &stubAPI{rfqs: map[string]rydes.RFQ{}, scripts: map[string][]step{}, gets: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/rfqs", s.create)
	mux.HandleFunc("GET /v1/rfqs/{id}", s.get)
	mux.HandleFunc("DELETE /v1/rfqs/{id}", s.cancel)
	srv := httptest.NewServer(s.record(mux))
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *stubAPI) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := request{Method: r.Method, Path: r.URL.EscapedPath(), Auth: r.Header.Get("Authorization"),
			ContentType: r.Header.Get("Content-Type"), UserAgent: r.Header.Get("User-Agent")}
		if r.Body != nil {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(strings.NewReader(string(b)))
			if len(b) > 0 {
				_ = json.Unmarshal(b, &req.Body)
			}
		}
		s.mu.Lock()
		s.requests = append(s.requests, req)
		s.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

func (s *stubAPI) lastRequest(t *testing.T) request {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.NotEmpty(t, s.requests)
	return s.requests[len(s.requests)-1]
}

func (s *stubAPI) requestCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func (s *stubAPI) script(id string, steps ...step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scripts[id] = steps
}

func (s *stubAPI) create(w http.ResponseWriter, r *http.Request) {
	var body client.CreateRFQRequest
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeProblem(w, http.StatusBadRequest, "invalid", err.Error(), nil)
		return
	}
	rfq, err := rydes.NewRFQ(rydes.NewID(), rydes.RFQRequest{
		Customer: body.Customer, From: body.From, To: body.To, Passengers: body.Passengers,
		PickupAt: body.PickupAt, Attributes: body.Attributes, Timeout: body.Timeout,
	}, asked, now, rydes.Limits{DefaultTimeout: rydes.DefaultTimeout, MaxTimeout: rydes.DefaultMaxTimeout})
	if err != nil {
		var errs []client.FieldError
		if f := rydes.ErrorFieldOf(err); f != "" {
			errs = append(errs, client.FieldError{Field: f, Reason: rydes.ErrorMessageOf(err)})
		}
		writeProblem(w, http.StatusBadRequest, string(rydes.ErrorCodeOf(err)), "the request is invalid", errs)
		return
	}
	s.mu.Lock()
	s.rfqs[rfq.ID] = rfq
	s.mu.Unlock()
	w.Header().Set("Location", "/v1/rfqs/"+rfq.ID)
	writeJSON(w, http.StatusCreated, rfq)
}

func (s *stubAPI) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	steps, scripted := s.scripts[id]
	n := s.gets[id]
	s.gets[id]++
	rfq, ok := s.rfqs[id]
	s.mu.Unlock()
	if scripted {
		st := steps[min(n, len(steps)-1)]
		switch st.status {
		case 0:
			writeJSON(w, http.StatusOK, st.rfq)
		case http.StatusBadGateway:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(st.status)
			_, _ = io.WriteString(w, "<html>\n<body>\x1b[31m502 Bad Gateway</body>\n</html>\n")
		default:
			writeProblem(w, st.status, "unavailable", "scripted failure", nil)
		}
		return
	}
	if !ok {
		writeProblem(w, http.StatusNotFound, "not_found", "no RFQ "+id, nil)
		return
	}
	writeJSON(w, http.StatusOK, rfq)
}

func (s *stubAPI) cancel(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rfq, ok := s.rfqs[r.PathValue("id")]
	switch {
	case !ok:
		writeProblem(w, http.StatusNotFound, "not_found", "no such RFQ", nil)
	case rfq.Status.Final():
		writeProblem(w, http.StatusConflict, "conflict", "the RFQ is already "+string(rfq.Status), nil)
	default:
		rfq.Status, rfq.ClosedAt = rydes.StatusCancelled, now.Add(time.Second)
		s.rfqs[rfq.ID] = rfq
		writeJSON(w, http.StatusOK, rfq)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeProblem answers with a problem the way rydes's API does: the slug
// (a rydes error code) ends the type; the title is for humans.
func writeProblem(w http.ResponseWriter, status int, slug, detail string, errs []client.FieldError) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type": "https://rydes.dev/problems/" + slug, "title": http.StatusText(status), "status": status,
		"detail": detail, "instance": "/v1/rfqs", "errors": errs,
	})
}

func newClient(t *testing.T, srv *httptest.Server, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(srv.URL, opts...)
	require.NoError(t, err)
	return c
}

func TestNew(t *testing.T) {
	for _, bad := range []string{"", "127.0.0.1:8080", "ftp://example.com", "http://", "http://h/?q=1", "http://h/#f", "http://u:p@h", "http://[::1"} {
		_, err := client.New(bad)
		require.Error(t, err, "base URL %q", bad)
		require.Contains(t, err.Error(), "invalid base URL")
	}
	for _, good := range []string{"http://127.0.0.1:8080", "https://example.com/", "http://example.com/rydes/"} {
		_, err := client.New(good)
		require.NoError(t, err, "base URL %q", good)
	}
}

func TestBaseURLWithPathPrefix(t *testing.T) {
	stub, srv := newStub(t)
	front := httptest.NewServer(http.StripPrefix("/rydes", srv.Config.Handler))
	t.Cleanup(front.Close)
	c, err := client.New(front.URL + "/rydes/")
	require.NoError(t, err)

	_, err = c.CreateRFQ(rydestest.Context(t), client.CreateRFQRequest{Customer: "alice", From: "Lisbon", To: "Porto"})
	require.NoError(t, err)
	require.Equal(t, "/v1/rfqs", stub.lastRequest(t).Path)
}

func TestCreateRFQ(t *testing.T) {
	stub, srv := newStub(t)
	c := newClient(t, srv, client.WithAPIKey("k3y"))
	pickup := time.Date(2026, 5, 1, 14, 30, 0, 0, time.UTC)

	rfq, err := c.CreateRFQ(rydestest.Context(t), client.CreateRFQRequest{
		Customer: "alice", From: "Lisbon", To: "Porto", Passengers: 2, PickupAt: pickup,
		Attributes: map[string]string{"color": "pink"}, Timeout: 45 * time.Second,
	})
	require.NoError(t, err)
	require.NoError(t, rydes.ValidateID(rfq.ID))
	require.Equal(t, rydes.StatusOpen, rfq.Status)
	require.Equal(t, "Lisbon", rfq.From)
	require.Equal(t, now.Add(45*time.Second), rfq.Deadline)
	require.Equal(t, asked, rfq.Asked())

	req := stub.lastRequest(t)
	require.Equal(t, http.MethodPost, req.Method)
	require.Equal(t, "Bearer k3y", req.Auth)
	require.Equal(t, "application/json", req.ContentType)
	require.NotEmpty(t, req.UserAgent)
	require.Equal(t, map[string]any{
		"customer": "alice", "from": "Lisbon", "to": "Porto", "passengers": float64(2),
		"pickup_at": "2026-05-01T14:30:00Z", "attributes": map[string]any{"color": "pink"}, "timeout": "45s",
	}, req.Body)
}

func TestCreateRFQOmitsUnsetFields(t *testing.T) {
	stub, srv := newStub(t)
	c := newClient(t, srv)

	rfq, err := c.CreateRFQ(rydestest.Context(t), client.CreateRFQRequest{Customer: "alice", From: "Lisbon", To: "Porto"})
	require.NoError(t, err)
	require.Equal(t, now.Add(rydes.DefaultTimeout), rfq.Deadline)

	req := stub.lastRequest(t)
	require.Empty(t, req.Auth, "no API key, no Authorization header")
	require.Equal(t, map[string]any{"customer": "alice", "from": "Lisbon", "to": "Porto"}, req.Body)
}

func TestCreateRFQRequestJSON(t *testing.T) {
	in := client.CreateRFQRequest{Customer: "c", From: "a", To: "b", Timeout: 90 * time.Second}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	require.JSONEq(t, `{"customer":"c","from":"a","to":"b","timeout":"1m30s"}`, string(b))

	var out client.CreateRFQRequest
	require.NoError(t, json.Unmarshal(b, &out))
	require.Equal(t, in, out)

	err = json.Unmarshal([]byte(`{"customer":"c","timeout":"soon"}`), &out)
	require.ErrorContains(t, err, `timeout: "soon" is not a duration`)
}

func TestCreateRFQProblem(t *testing.T) {
	_, srv := newStub(t)
	c := newClient(t, srv)

	_, err := c.CreateRFQ(rydestest.Context(t), client.CreateRFQRequest{Customer: "alice", To: "Porto"})
	p, ok := errors.AsType[*client.Problem](err)
	require.True(t, ok, "want a *client.Problem, got %T: %v", err, err)
	require.Equal(t, http.StatusBadRequest, p.Status)
	require.Equal(t, rydes.EINVALID, p.Code())
	require.Equal(t, "Bad Request", p.Title)
	require.Equal(t, "the request is invalid", p.Detail)
	require.Equal(t, "/v1/rfqs", p.Instance)
	require.Equal(t, []client.FieldError{{Field: "from", Reason: "is required and must not be blank"}}, p.Errors)
	require.Equal(t, "400 invalid: from: is required and must not be blank", err.Error())
}

func TestGetRFQ(t *testing.T) {
	_, srv := newStub(t)
	c := newClient(t, srv)
	ctx := rydestest.Context(t)

	created, err := c.CreateRFQ(ctx, client.CreateRFQRequest{Customer: "alice", From: "Lisbon", To: "Porto"})
	require.NoError(t, err)
	got, err := c.GetRFQ(ctx, created.ID)
	require.NoError(t, err)
	require.Equal(t, created, got)

	_, err = c.GetRFQ(ctx, rydes.NewID())
	p, ok := errors.AsType[*client.Problem](err)
	require.True(t, ok, "got %T: %v", err, err)
	require.Equal(t, http.StatusNotFound, p.Status)
	require.Equal(t, rydes.ENOTFOUND, p.Code())
	require.Contains(t, err.Error(), "404 not_found: no RFQ ")
}

func TestInvalidIDSendsNothing(t *testing.T) {
	stub, srv := newStub(t)
	c := newClient(t, srv)
	ctx := rydestest.Context(t)

	for _, id := range []string{"", "../admin", "8b095f9e-cffc-4790-91a6-28353fa30e4", "a/b"} {
		_, err := c.GetRFQ(ctx, id)
		require.ErrorContains(t, err, "invalid RFQ id", "id %q", id)
		_, err = c.CancelRFQ(ctx, id)
		require.ErrorContains(t, err, "invalid RFQ id", "id %q", id)
	}
	require.Zero(t, stub.requestCount())
}

func TestCancelRFQ(t *testing.T) {
	_, srv := newStub(t)
	c := newClient(t, srv)
	ctx := rydestest.Context(t)

	created, err := c.CreateRFQ(ctx, client.CreateRFQRequest{Customer: "alice", From: "Lisbon", To: "Porto"})
	require.NoError(t, err)
	cancelled, err := c.CancelRFQ(ctx, created.ID)
	require.NoError(t, err)
	require.Equal(t, rydes.StatusCancelled, cancelled.Status)
	require.Equal(t, created.ID, cancelled.ID)

	_, err = c.CancelRFQ(ctx, created.ID)
	p, ok := errors.AsType[*client.Problem](err)
	require.True(t, ok, "got %T: %v", err, err)
	require.Equal(t, http.StatusConflict, p.Status)
	require.Equal(t, "409 conflict: the RFQ is already cancelled", err.Error())
}

func TestNonProblemErrorBody(t *testing.T) {
	stub, srv := newStub(t)
	c := newClient(t, srv)
	id := rydes.NewID()
	stub.script(id, step{status: http.StatusBadGateway})

	_, err := c.GetRFQ(rydestest.Context(t), id)
	p, ok := errors.AsType[*client.Problem](err)
	require.True(t, ok, "got %T: %v", err, err)
	require.Equal(t, http.StatusBadGateway, p.Status)
	require.Equal(t, "Bad Gateway", p.Title)
	require.Empty(t, p.Code())
	require.Equal(t, "502 Bad Gateway: unexpected text/html response: <html> <body>\uFFFD[31m502 Bad Gateway</body> </html>", err.Error())
	require.NotContains(t, err.Error(), "\x1b", "control characters are not passed through")
}

func TestNonJSONSuccessBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "hello")
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv)

	_, err := c.GetRFQ(rydestest.Context(t), rydes.NewID())
	require.ErrorContains(t, err, `200 response is "text/plain", not JSON: hello`)
}

func TestResponseBodyIsBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodDelete {
			// An error body longer than MaxProblemBytes: the start still makes a Problem.
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, strings.Repeat("x", 2*client.MaxProblemBytes))
			return
		}
		_, _ = io.WriteString(w, `{"id":"`+strings.Repeat("x", client.MaxResponseBytes)+`"}`)
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv)
	ctx := rydestest.Context(t)

	_, err := c.GetRFQ(ctx, rydes.NewID())
	require.ErrorContains(t, err, fmt.Sprintf("response body exceeds %d bytes", client.MaxResponseBytes))

	_, err = c.CancelRFQ(ctx, rydes.NewID())
	p, ok := errors.AsType[*client.Problem](err)
	require.True(t, ok, "got %T: %v", err, err)
	require.Equal(t, http.StatusInternalServerError, p.Status)
	require.Less(t, len(err.Error()), 300)
}

func TestWithHTTPClient(t *testing.T) {
	_, srv := newStub(t)
	var calls int
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls++
		return http.DefaultTransport.RoundTrip(r)
	})}
	c := newClient(t, srv, client.WithHTTPClient(hc))

	_, err := c.CreateRFQ(rydestest.Context(t), client.CreateRFQRequest{Customer: "alice", From: "Lisbon", To: "Porto"})
	require.NoError(t, err)
	require.Equal(t, 1, calls)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestProblemError(t *testing.T) {
	for _, tc := range []struct {
		p    client.Problem
		want string
	}{
		{client.Problem{Status: 404}, "404 Not Found"},
		{client.Problem{Status: 404, Type: "about:blank", Title: "Nope"}, "404 Nope"},
		{client.Problem{Status: 409, Type: "https://rydes.dev/problems/conflict", Title: "Conflict with the current state", Detail: "already complete"},
			"409 conflict: already complete"},
		{client.Problem{Status: 400, Type: "urn:rydes:invalid", Detail: "2 fields are invalid", Errors: []client.FieldError{
			{Field: "from", Reason: "is required"}, {Reason: "something else"}}}, "400 invalid: from: is required; something else"},
		{client.Problem{Status: 500, Title: "internal\x1b[2J", Detail: "line\nbreak"}, "500 internal\uFFFD[2J: line break"},
	} {
		require.Equal(t, tc.want, tc.p.Error())
	}
}

// rfqAt returns the RFQ id as the stub would show it after the given
// answers: quotes maps providers to prices, declined lists decliners.
func rfqAt(id string, status rydes.Status, quotes map[string]string, declined ...string) rydes.RFQ {
	rfq := rydes.RFQ{ID: id, Status: status, Customer: "alice", From: "Lisbon", To: "Porto",
		CreatedAt: now, Deadline: now.Add(time.Minute), Quotes: []rydes.Quote{}}
	for i, p := range asked {
		e := rydes.RosterEntry{Provider: p, State: rydes.ProviderPending, ChangedAt: now}
		if price, ok := quotes[p]; ok {
			e.State, e.ChangedAt = rydes.ProviderQuoted, now.Add(time.Duration(i+1)*time.Second)
			rfq.Quotes = append(rfq.Quotes, rydes.Quote{Provider: p, Price: rydes.Price{Amount: price, Currency: "USD"}, ReceivedAt: e.ChangedAt})
		}
		for _, d := range declined {
			if d == p {
				e.State, e.ChangedAt = rydes.ProviderDeclined, now.Add(time.Duration(i+1)*time.Second)
			}
		}
		if status == rydes.StatusExpired && e.State == rydes.ProviderPending {
			e.State = rydes.ProviderTimedOut
		}
		rfq.Providers = append(rfq.Providers, e)
	}
	rydes.SortQuotes(rfq.Quotes)
	return rfq
}

func TestWatch(t *testing.T) {
	stub, srv := newStub(t)
	c := newClient(t, srv)
	id := rydes.NewID()
	p1, p2, p3 := asked[0], asked[1], asked[2]
	steps := []rydes.RFQ{
		rfqAt(id, rydes.StatusOpen, nil),
		rfqAt(id, rydes.StatusOpen, nil), // no change: fn is not called
		rfqAt(id, rydes.StatusOpen, map[string]string{p2: "20.00"}),
		rfqAt(id, rydes.StatusOpen, map[string]string{p2: "20.00"}, p3),
		rfqAt(id, rydes.StatusComplete, map[string]string{p1: "12.00", p2: "20.00"}, p3),
	}
	var script []step
	for _, s := range steps {
		script = append(script, step{rfq: s})
	}
	stub.script(id, script...)

	var seen []rydes.RFQ
	final, err := c.Watch(rydestest.Context(t), id, time.Millisecond, func(r rydes.RFQ) error {
		seen = append(seen, r)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, steps[4], final)
	require.Equal(t, []rydes.RFQ{steps[0], steps[2], steps[3], steps[4]}, seen)
	require.Equal(t, len(steps), stub.requestCount(), "Watch stops polling at the final status")
}

func TestWatchRidesOutTransientFailures(t *testing.T) {
	stub, srv := newStub(t)
	c := newClient(t, srv)
	id := rydes.NewID()
	stub.script(id,
		step{rfq: rfqAt(id, rydes.StatusOpen, nil)},
		step{status: http.StatusServiceUnavailable},
		step{status: http.StatusBadGateway},
		step{rfq: rfqAt(id, rydes.StatusExpired, nil)},
	)

	final, err := c.Watch(rydestest.Context(t), id, time.Millisecond, nil)
	require.NoError(t, err)
	require.Equal(t, rydes.StatusExpired, final.Status)
}

func TestWatchGivesUpAfterRepeatedFailures(t *testing.T) {
	stub, srv := newStub(t)
	c := newClient(t, srv)
	id := rydes.NewID()
	open := rfqAt(id, rydes.StatusOpen, nil)
	stub.script(id, step{rfq: open}, step{status: http.StatusServiceUnavailable})

	last, err := c.Watch(rydestest.Context(t), id, time.Millisecond, nil)
	p, ok := errors.AsType[*client.Problem](err)
	require.True(t, ok, "got %T: %v", err, err)
	require.Equal(t, http.StatusServiceUnavailable, p.Status)
	require.Equal(t, open, last, "the last RFQ read is returned with the error")
	require.Equal(t, 1+6, stub.requestCount(), "one success, five failures ridden out, the sixth returned")
}

func TestWatchStops(t *testing.T) {
	stub, srv := newStub(t)
	c := newClient(t, srv)

	t.Run("not found", func(t *testing.T) {
		_, err := c.Watch(rydestest.Context(t), rydes.NewID(), time.Millisecond, nil)
		p, ok := errors.AsType[*client.Problem](err)
		require.True(t, ok, "got %T: %v", err, err)
		require.Equal(t, http.StatusNotFound, p.Status)
	})

	t.Run("fn error", func(t *testing.T) {
		id := rydes.NewID()
		stub.script(id, step{rfq: rfqAt(id, rydes.StatusOpen, nil)})
		boom := errors.New("boom")
		_, err := c.Watch(rydestest.Context(t), id, time.Millisecond, func(rydes.RFQ) error { return boom })
		require.ErrorIs(t, err, boom)
	})

	t.Run("context cancelled", func(t *testing.T) {
		id := rydes.NewID()
		open := rfqAt(id, rydes.StatusOpen, nil)
		stub.script(id, step{rfq: open})
		ctx, cancel := context.WithCancel(rydestest.Context(t))
		last, err := c.Watch(ctx, id, time.Millisecond, func(rydes.RFQ) error {
			cancel()
			return nil
		})
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, open, last)
	})
}
