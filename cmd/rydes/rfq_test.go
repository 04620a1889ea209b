package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
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

const testID = "8b095f9e-cffc-4790-91a6-28353fa30e42"

var (
	t0     = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	roster = []string{"UnicornManagementResource1", "UnicornManagementResource2", "UnicornManagementResource3", "UnicornManagementResource4"}
)

// answer is one provider's answer in a fixture: a quote if price is set,
// else a decline or a time-out as state says.
type answer struct {
	provider int // index in roster
	state    rydes.ProviderState
	at       time.Duration // after t0
	price    string
	eta      int // seconds; 0 for none
	reason   string
}

func quoted(provider int, at time.Duration, price string, eta int) answer {
	return answer{provider: provider, state: rydes.ProviderQuoted, at: at, price: price, eta: eta}
}

func declined(provider int, at time.Duration, reason string) answer {
	return answer{provider: provider, state: rydes.ProviderDeclined, at: at, reason: reason}
}

func timedOut(provider int) answer {
	return answer{provider: provider, state: rydes.ProviderTimedOut, at: 45 * time.Second}
}

// fixture returns the RFQ testID with the given status and answers, its
// quotes best first, as the API shows it.
func fixture(status rydes.Status, answers ...answer) rydes.RFQ {
	r := rydes.RFQ{
		ID: testID, Status: status, Customer: "alice", From: "Lisbon", To: "Porto",
		CreatedAt: t0, Deadline: t0.Add(45 * time.Second), Quotes: []rydes.Quote{},
	}
	for _, p := range roster {
		r.Providers = append(r.Providers, rydes.RosterEntry{Provider: p, State: rydes.ProviderPending, ChangedAt: t0})
	}
	for _, a := range answers {
		e := &r.Providers[a.provider]
		e.State, e.ChangedAt, e.Reason = a.state, t0.Add(a.at), a.reason
		if a.state == rydes.ProviderQuoted {
			q := rydes.Quote{Provider: e.Provider, Price: rydes.Price{Amount: a.price, Currency: "USD"}, ReceivedAt: e.ChangedAt}
			if a.eta != 0 {
				q.ETASeconds = &a.eta
			}
			r.Quotes = append(r.Quotes, q)
		}
	}
	rydes.SortQuotes(r.Quotes)
	if status.Final() {
		r.ClosedAt = t0.Add(50 * time.Second)
	}
	return r
}

// seen is what the stub saw of one request.
type seen struct {
	method, path, auth string
	body               map[string]any
}

// stubAPI stands in for rydes's /v1 RFQ routes. POST answers with created;
// the n-th GET with gets[n], the last one repeated, so that an RFQ moves on
// with each poll and not with time; DELETE with a cancelled copy of created,
// or 409 once it was cancelled.
type stubAPI struct {
	URL     string
	created rydes.RFQ
	gets    []rydes.RFQ

	mu        sync.Mutex
	seen      []seen
	nGets     int
	cancelled bool
	events    []rydes.Event // the event stream; nil: none (404), as on an older server
}

func newStub(t *testing.T, gets ...rydes.RFQ) *stubAPI {
	t.Helper()
	s := &stubAPI{created: fixture(rydes.StatusOpen), gets: gets}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/rfqs", s.create)
	mux.HandleFunc("GET /v1/rfqs/{id}", s.get)
	mux.HandleFunc("DELETE /v1/rfqs/{id}", s.cancel)
	mux.HandleFunc("GET /v1/rfqs/{id}/events", s.stream)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := seen{method: r.Method, path: r.URL.Path, auth: r.Header.Get("Authorization")}
		_ = json.Unmarshal(b, &req.body)
		s.mu.Lock()
		s.seen = append(s.seen, req)
		s.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *stubAPI) requests() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seen(nil), s.seen...)
}

func (s *stubAPI) create(w http.ResponseWriter, r *http.Request) {
	var body client.CreateRFQRequest
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		problem(w, http.StatusBadRequest, "invalid", err.Error(), nil)
		return
	}
	if strings.TrimSpace(body.From) == "" {
		reason := "is required and must not be blank"
		problem(w, http.StatusBadRequest, "invalid", "from "+reason, []client.FieldError{{Field: "from", Reason: reason}})
		return
	}
	w.Header().Set("Location", "/v1/rfqs/"+s.created.ID)
	reply(w, http.StatusCreated, s.created)
}

func (s *stubAPI) get(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	n := s.nGets
	s.nGets++
	s.mu.Unlock()
	if r.PathValue("id") != testID || len(s.gets) == 0 {
		problem(w, http.StatusNotFound, "not_found", "rfq "+r.PathValue("id")+" not found", nil)
		return
	}
	reply(w, http.StatusOK, s.gets[min(n, len(s.gets)-1)])
}

func (s *stubAPI) cancel(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancelled {
		problem(w, http.StatusConflict, "conflict", "rfq "+testID+" is already cancelled", nil)
		return
	}
	s.cancelled = true
	c := s.created
	c.Status, c.ClosedAt = rydes.StatusCancelled, t0.Add(10*time.Second)
	reply(w, http.StatusOK, c)
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// problem answers the way rydes's API does.
func problem(w http.ResponseWriter, status int, slug, detail string, errs []client.FieldError) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type": "https://rydes.dev/problems/" + slug, "title": http.StatusText(status),
		"status": status, "detail": detail, "instance": "/v1/rfqs", "errors": errs,
	})
}

// cli runs "rydes rfq args..." with env as its environment.
func cli(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = runRFQ(rydestest.Context(t), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

// exitCodeOf returns the code an exitError in err asks for, 0 for nil and 1
// for any other error, as main does.
func exitCodeOf(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := errors.AsType[exitError](err); ok {
		return ee.code
	}
	return 1
}

const createdOut = "rfq " + testID + " created: 4 providers asked, deadline 2026-05-01T12:00:45Z\n"

func TestRFQCreate(t *testing.T) {
	stub := newStub(t)
	out, _, err := cli(t, nil, "create", "--server", stub.URL, "--from", "Lisbon", "--to", "Porto", "--customer", "alice",
		"--passengers", "2", "--pickup", "2026-05-01T14:30:00+01:00", "--attr", "color=pink", "--attr", "note=a=b", "--timeout", "45s")
	require.NoError(t, err)
	require.Equal(t, createdOut, out)

	reqs := stub.requests()
	require.Len(t, reqs, 1, "no --wait: no polling")
	require.Equal(t, http.MethodPost, reqs[0].method)
	require.Equal(t, "/v1/rfqs", reqs[0].path)
	require.Empty(t, reqs[0].auth)
	require.Equal(t, map[string]any{
		"customer": "alice", "from": "Lisbon", "to": "Porto", "passengers": float64(2),
		"pickup_at": "2026-05-01T14:30:00+01:00", "attributes": map[string]any{"color": "pink", "note": "a=b"}, "timeout": "45s",
	}, reqs[0].body)
}

func TestRFQCreateJSON(t *testing.T) {
	stub := newStub(t)
	out, _, err := cli(t, nil, "create", "--server", stub.URL, "--from", "Lisbon", "--to", "Porto", "--customer", "alice", "--json")
	require.NoError(t, err)
	var got rydes.RFQ
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Equal(t, stub.created, got)
	require.Equal(t, map[string]any{"customer": "alice", "from": "Lisbon", "to": "Porto"}, stub.requests()[0].body)
}

func TestRFQCreateWait(t *testing.T) {
	for _, tc := range []struct {
		name string
		gets []rydes.RFQ
		out  string
		code int
	}{{
		name: "complete",
		gets: []rydes.RFQ{
			fixture(rydes.StatusOpen),
			fixture(rydes.StatusOpen, quoted(1, 2*time.Second, "20.00", 300)),
			fixture(rydes.StatusOpen, quoted(1, 2*time.Second, "20.00", 300)),
			// Answers that arrive between two polls are printed in the order they came.
			fixture(rydes.StatusOpen, quoted(1, 2*time.Second, "20.00", 300), quoted(0, 4*time.Second, "12.00", 0),
				declined(2, 3*time.Second, "no unicorns free")),
			fixture(rydes.StatusComplete, quoted(1, 2*time.Second, "20.00", 300), quoted(0, 4*time.Second, "12.00", 0),
				declined(2, 3*time.Second, "no unicorns free"), quoted(3, 5*time.Second, "15.50", 60)),
		},
		out: createdOut +
			"quote     UnicornManagementResource2  20.00 USD  eta 5m0s\n" +
			"declined  UnicornManagementResource3  no unicorns free\n" +
			"quote     UnicornManagementResource1  12.00 USD\n" +
			"quote     UnicornManagementResource4  15.50 USD  eta 1m0s\n" +
			"complete: 3 quotes, 1 declined, 0 timed out; best 12.00 USD from UnicornManagementResource1\n",
		code: 0,
	}, {
		name: "expired",
		gets: []rydes.RFQ{
			fixture(rydes.StatusOpen, quoted(2, time.Second, "30.00", 0)),
			fixture(rydes.StatusExpired, quoted(2, time.Second, "30.00", 0), declined(0, 2*time.Second, ""), timedOut(1), timedOut(3)),
		},
		out: createdOut +
			"quote     UnicornManagementResource3  30.00 USD\n" +
			"declined  UnicornManagementResource1\n" +
			"timed out UnicornManagementResource2\n" +
			"timed out UnicornManagementResource4\n" +
			"expired: 1 quote, 1 declined, 2 timed out; best 30.00 USD from UnicornManagementResource3\n",
		code: exitExpired,
	}, {
		name: "cancelled",
		gets: []rydes.RFQ{fixture(rydes.StatusCancelled)},
		out:  createdOut + "cancelled: 0 quotes, 0 declined, 0 timed out, 4 pending; no quotes\n",
		code: exitCancelled,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			stub := newStub(t, tc.gets...)
			out, _, err := cli(t, nil, "create", "--server", stub.URL, "--from", "Lisbon", "--to", "Porto", "--customer", "alice",
				"--wait", "--poll", "1ms")
			require.Equal(t, tc.out, out)
			require.Equal(t, tc.code, exitCodeOf(err), "err: %v", err)
			if tc.code != 0 {
				require.ErrorContains(t, err, "rfq "+testID+" "+map[int]string{exitExpired: "expired", exitCancelled: "was cancelled"}[tc.code])
			}
			require.Len(t, stub.requests(), 2+len(tc.gets), "one POST, the event stream (404: polling), then one GET per step until the final status")
		})
	}
}

func TestRFQCreateWaitJSON(t *testing.T) {
	final := fixture(rydes.StatusComplete, quoted(0, time.Second, "12.00", 0), declined(1, time.Second, ""),
		declined(2, 2*time.Second, ""), declined(3, 2*time.Second, ""))
	stub := newStub(t, fixture(rydes.StatusOpen), final)
	out, errOut, err := cli(t, nil, "create", "--server", stub.URL, "--from", "Lisbon", "--to", "Porto", "--customer", "alice",
		"--wait", "--poll", "1ms", "--json")
	require.NoError(t, err)
	var got rydes.RFQ
	require.NoError(t, json.Unmarshal([]byte(out), &got), "stdout holds the final RFQ alone: %s", out)
	require.Equal(t, final, got)
	require.Contains(t, errOut, createdOut)
	require.Contains(t, errOut, "quote     UnicornManagementResource1  12.00 USD\n")
	require.Contains(t, errOut, "complete: 1 quote, 3 declined, 0 timed out; best 12.00 USD from UnicornManagementResource1\n")
}

func TestRFQCreateWaitLosesRFQ(t *testing.T) {
	stub := newStub(t) // no GET script: every GET is a 404
	_, _, err := cli(t, nil, "create", "--server", stub.URL, "--from", "Lisbon", "--to", "Porto", "--customer", "alice",
		"--wait", "--poll", "1ms")
	require.EqualError(t, err, "wait for rfq "+testID+": 404 not_found: rfq "+testID+" not found")
	require.Equal(t, 1, exitCodeOf(err))
}

func TestRFQGet(t *testing.T) {
	r := fixture(rydes.StatusExpired, quoted(1, 2*time.Second, "20.00", 300), quoted(0, 4*time.Second, "12.00", 0),
		declined(2, 3*time.Second, "no unicorns free"), timedOut(3))
	r.Passengers = 2
	r.PickupAt = time.Date(2026, 5, 1, 14, 30, 0, 0, time.UTC)
	r.Attributes = map[string]string{"size": "xl", "color": "pink"}
	r.Quotes[1].ExpiresAt = t0.Add(time.Hour)
	stub := newStub(t, r)

	out, _, err := cli(t, nil, "get", testID, "--server", stub.URL)
	require.NoError(t, err)
	require.Equal(t, `rfq         `+testID+`
status      expired
customer    alice
route       Lisbon → Porto
passengers  2
pickup      2026-05-01T14:30:00Z
attributes  color=pink,size=xl
created     2026-05-01T12:00:00Z
deadline    2026-05-01T12:00:45Z
closed      2026-05-01T12:00:50Z

providers (4): 2 quoted, 1 declined, 1 timed out, 0 pending
  UnicornManagementResource1  quoted     2026-05-01T12:00:04Z
  UnicornManagementResource2  quoted     2026-05-01T12:00:02Z
  UnicornManagementResource3  declined   2026-05-01T12:00:03Z  no unicorns free
  UnicornManagementResource4  timed out  2026-05-01T12:00:45Z

quotes (2), best first:
  1.  12.00 USD  UnicornManagementResource1
  2.  20.00 USD  UnicornManagementResource2  eta 5m0s  expires 2026-05-01T13:00:00Z
`, out)
	require.Equal(t, "/v1/rfqs/"+testID, stub.requests()[0].path)
}

func TestRFQGetOpenWithoutQuotes(t *testing.T) {
	stub := newStub(t, fixture(rydes.StatusOpen))
	out, _, err := cli(t, nil, "get", "--server", stub.URL, testID)
	require.NoError(t, err)
	require.Contains(t, out, "status    open\n")
	require.Contains(t, out, "providers (4): 0 quoted, 0 declined, 0 timed out, 4 pending\n  UnicornManagementResource1  pending\n")
	require.True(t, strings.HasSuffix(out, "\nquotes: none\n"), out)
	require.NotContains(t, out, "closed")
	for _, line := range strings.Split(out, "\n") {
		require.Equal(t, strings.TrimRight(line, " "), line, "no trailing spaces")
	}
}

func TestRFQGetJSON(t *testing.T) {
	r := fixture(rydes.StatusComplete, quoted(0, time.Second, "12.00", 60), declined(1, time.Second, "busy"),
		quoted(2, 2*time.Second, "9.50", 0), declined(3, 3*time.Second, ""))
	stub := newStub(t, r)
	out, _, err := cli(t, nil, "get", testID, "--json", "--server", stub.URL)
	require.NoError(t, err)
	var got rydes.RFQ
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Equal(t, r, got)
}

func TestRFQCancel(t *testing.T) {
	stub := newStub(t)
	out, _, err := cli(t, nil, "cancel", testID, "--server", stub.URL)
	require.NoError(t, err)
	require.Equal(t, "cancelled: 0 quotes, 0 declined, 0 timed out, 4 pending; no quotes\n", out)
	require.Equal(t, http.MethodDelete, stub.requests()[0].method)
	require.Equal(t, "/v1/rfqs/"+testID, stub.requests()[0].path)

	_, _, err = cli(t, nil, "cancel", testID, "--server", stub.URL)
	require.EqualError(t, err, "409 conflict: rfq "+testID+" is already cancelled")
	p, ok := errors.AsType[*client.Problem](err)
	require.True(t, ok, "got %T", err)
	require.Equal(t, http.StatusConflict, p.Status)
}

func TestRFQProblemOutput(t *testing.T) {
	stub := newStub(t)
	_, _, err := cli(t, nil, "create", "--server", stub.URL, "--to", "Porto", "--customer", "alice", "--wait")
	require.EqualError(t, err, "400 invalid: from: is required and must not be blank")
	require.Equal(t, 1, exitCodeOf(err))
	require.Len(t, stub.requests(), 1, "no waiting on a request that was refused")
}

func TestRFQBadArgs(t *testing.T) {
	stub := newStub(t, fixture(rydes.StatusOpen))
	base := []string{"create", "--server", stub.URL, "--from", "a", "--to", "b", "--customer", "c"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "rfq: missing command (create, get, cancel or watch)"},
		{[]string{"fly"}, `rfq: unknown command "fly"`},
		{append(base, "--nope"), "flag provided but not defined: -nope"},
		{append(base, "--passengers", "two"), `invalid value "two" for flag -passengers`},
		{append(base, "--pickup", "tomorrow"), "not an RFC 3339 time"},
		{append(base, "--attr", "pink"), "want key=value"},
		{append(base, "--attr", "=pink"), "want key=value"},
		{append(base, "--attr", "c=pink", "--attr", "c=blue"), `attribute "c" given twice`},
		{append(base, "--timeout", "soon"), `invalid value "soon" for flag -timeout`},
		{append(base, "--wait", "--poll", "0s"), "--poll must be positive"},
		{append(base, "extra"), `rfq create takes no arguments, got ["extra"]`},
		{[]string{"create", "--server", "localhost:8080", "--from", "a", "--to", "b", "--customer", "c"}, "invalid base URL"},
		{[]string{"get", "--server", stub.URL}, "rfq get: missing the RFQ id"},
		{[]string{"get", "--server", stub.URL, testID, testID}, "rfq get takes one RFQ id, got 2 arguments"},
		{[]string{"get", "--server", stub.URL, "not-an-id"}, `invalid RFQ id "not-an-id"`},
		{[]string{"cancel", "--server", stub.URL}, "rfq cancel: missing the RFQ id"},
		{[]string{"cancel", "--server", stub.URL, "../v1/rfqs"}, "invalid RFQ id"},
	} {
		_, _, err := cli(t, nil, tc.args...)
		require.ErrorContains(t, err, tc.want, "args %q", tc.args)
		require.Equal(t, 1, exitCodeOf(err), "args %q", tc.args)
	}
	require.Empty(t, stub.requests(), "bad arguments send nothing")
}

func TestRFQHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"help"}, {"create", "-h"}, {"get", "--help"}, {"cancel", testID, "-h"}} {
		out, errOut, err := cli(t, nil, args...)
		require.ErrorIs(t, err, flag.ErrHelp, "args %q", args)
		require.Empty(t, out)
		require.Contains(t, errOut, "Usage: rydes rfq", "args %q", args)
	}
	_, errOut, _ := cli(t, nil, "create", "-h")
	for _, want := range []string{"-from", "-to", "-customer", "-passengers", "-pickup", "-attr key=value", "-timeout",
		"-wait", "-poll", "-json", "-server URL", "-api-key", "http://127.0.0.1:8080", "RYDES_SERVER",
		"2  expired", "3  cancelled"} {
		require.Contains(t, errOut, want)
	}
}

func TestRFQEnv(t *testing.T) {
	stub := newStub(t, fixture(rydes.StatusOpen))
	other := newStub(t, fixture(rydes.StatusOpen))
	env := map[string]string{"RYDES_SERVER": stub.URL, "RYDES_API_KEY": "k3y", "RYDES_CUSTOMER": "bob"}

	out, _, err := cli(t, env, "create", "--from", "Lisbon", "--to", "Porto")
	require.NoError(t, err)
	require.Equal(t, createdOut, out)
	reqs := stub.requests()
	require.Len(t, reqs, 1, "RYDES_SERVER names the server")
	require.Equal(t, "Bearer k3y", reqs[0].auth)
	require.Equal(t, "bob", reqs[0].body["customer"])

	// The command line wins.
	_, _, err = cli(t, env, "get", testID, "--server", other.URL, "--api-key", "other")
	require.NoError(t, err)
	require.Len(t, stub.requests(), 1)
	require.Len(t, other.requests(), 1)
	require.Equal(t, "Bearer other", other.requests()[0].auth)

	// An invalid variable is named.
	env["RYDES_POLL"] = "often"
	_, _, err = cli(t, env, "create", "--from", "Lisbon", "--to", "Porto", "--wait")
	require.ErrorContains(t, err, `invalid value "often" for environment variable RYDES_POLL`)
	require.Len(t, stub.requests(), 1)
}
