package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/client"
	"github.com/wildrydes/rydes/internal/rydestest"
)

// testAdminKey is the admin key the admin stub accepts.
const testAdminKey = "adm1n"

// adminSeen is what the admin stub saw of one request.
type adminSeen struct {
	method, path, query, auth string
	body                      map[string]any // nil when there was none
}

// adminAPI stands in for rydes's admin routes: an in-memory registry of
// providers, fixed stats and two dead letters (42, replayable, and 41,
// whose request is closed). Every route wants the admin key.
type adminAPI struct {
	URL string

	mu        sync.Mutex
	providers map[string]rydes.Provider
	seen      []adminSeen
	rotations int
}

func newAdminAPI(t *testing.T, providers ...rydes.Provider) *adminAPI {
	t.Helper()
	s := &adminAPI{providers: map[string]rydes.Provider{}}
	for _, p := range providers {
		s.providers[p.ID] = p
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/providers", s.create)
	mux.HandleFunc("GET /v1/providers", s.list)
	mux.HandleFunc("GET /v1/providers/{id}", s.get)
	mux.HandleFunc("PATCH /v1/providers/{id}", s.update)
	mux.HandleFunc("DELETE /v1/providers/{id}", s.delete)
	mux.HandleFunc("POST /v1/providers/{id}/rotate", s.rotate)
	mux.HandleFunc("GET /v1/providers/{id}/stats", s.stats)
	mux.HandleFunc("GET /v1/dead-letters", s.deadLetters)
	mux.HandleFunc("POST /v1/dead-letters/{id}/replay", s.replay)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := adminSeen{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, auth: r.Header.Get("Authorization")}
		if len(b) > 0 {
			_ = json.Unmarshal(b, &req.body)
		}
		s.mu.Lock()
		s.seen = append(s.seen, req)
		s.mu.Unlock()
		switch req.auth {
		case "Bearer " + testAdminKey:
		case "":
			problem(w, http.StatusUnauthorized, "unauthorized", "the admin key is required (Authorization: Bearer)", nil)
			return
		default:
			problem(w, http.StatusUnauthorized, "unauthorized", "unknown admin key", nil)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *adminAPI) requests() []adminSeen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// provider returns the provider id as the stub holds it.
func (s *adminAPI) provider(id string) (rydes.Provider, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.providers[id]
	return p, ok
}

// testCredentials returns the n-th credentials of the provider id.
func testCredentials(id string, kind rydes.ProviderKind, n int) rydes.ProviderCredentials {
	c := rydes.ProviderCredentials{APIKey: "rk_" + id + "_" + strconv.Itoa(n), NATSUser: id, NATSPassword: "np_" + id + "_" + strconv.Itoa(n)}
	if kind == rydes.ProviderKindWebhook {
		c.WebhookSecret = "whsec_" + id + "_" + strconv.Itoa(n)
	}
	return c
}

func (s *adminAPI) create(w http.ResponseWriter, r *http.Request) {
	var req client.CreateProviderRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		problem(w, http.StatusBadRequest, "invalid", err.Error(), nil)
		return
	}
	p := rydes.Provider{ID: req.ID, Name: cmpOr(req.Name, req.ID), Kind: req.Kind, Status: cmpOr(req.Status, rydes.ProviderActive),
		WebhookURL: req.WebhookURL, Filter: req.Filter, CreatedAt: t0, UpdatedAt: t0}
	if err := p.Validate(); err != nil {
		problem(w, http.StatusBadRequest, "invalid", "the provider is invalid",
			[]client.FieldError{{Field: rydes.ErrorFieldOf(err), Reason: rydes.ErrorMessageOf(err)}})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.providers[p.ID]; dup {
		problem(w, http.StatusConflict, "conflict", "provider "+p.ID+" already exists", nil)
		return
	}
	s.providers[p.ID] = p
	reply(w, http.StatusCreated, providerWithCredentials{p, testCredentials(p.ID, p.Kind, 0)})
}

// cmpOr returns a, or b if a is empty.
func cmpOr[T ~string](a, b T) T {
	if a == "" {
		return b
	}
	return a
}

func (s *adminAPI) list(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := []rydes.Provider{}
	for _, p := range s.providers {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b rydes.Provider) int { return rydes.CompareProviderIDs(a.ID, b.ID) })
	reply(w, http.StatusOK, map[string]any{"providers": ps})
}

// lookup returns the provider the path names, or answers 404. s.mu is held.
func (s *adminAPI) lookup(w http.ResponseWriter, r *http.Request) (rydes.Provider, bool) {
	p, ok := s.providers[r.PathValue("id")]
	if !ok {
		problem(w, http.StatusNotFound, "not_found", "provider "+r.PathValue("id")+" not found", nil)
	}
	return p, ok
}

func (s *adminAPI) get(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.lookup(w, r); ok {
		reply(w, http.StatusOK, p)
	}
}

func (s *adminAPI) update(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.lookup(w, r)
	if !ok {
		return
	}
	var req client.UpdateProviderRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		problem(w, http.StatusBadRequest, "invalid", err.Error(), nil)
		return
	}
	if req.Status != nil {
		p.Status = *req.Status
		if p.Status == rydes.ProviderActive {
			p.PausedReason = ""
		}
	}
	p.UpdatedAt = t0.Add(time.Hour)
	s.providers[p.ID] = p
	reply(w, http.StatusOK, p)
}

func (s *adminAPI) delete(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.lookup(w, r); ok {
		delete(s.providers, p.ID)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *adminAPI) rotate(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.lookup(w, r); ok {
		s.rotations++
		reply(w, http.StatusOK, providerWithCredentials{p, testCredentials(p.ID, p.Kind, s.rotations)})
	}
}

// testStats are the stats the stub reports for every provider.
var testStats = rydes.ProviderStats{Asked: 120, Pending: 3, Quoted: 80, Declined: 25, TimedOut: 7, Failed: 4, Withdrawn: 1,
	ResponseP50: rydes.Duration(1234567 * time.Microsecond), ResponseP99: rydes.Duration(850 * time.Microsecond),
	QueueDepth: 2, InFlight: 1, OldestPendingAge: rydes.Duration(90 * time.Second)}

func (s *adminAPI) stats(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.lookup(w, r); ok {
		st := testStats
		st.Provider = p.ID
		reply(w, http.StatusOK, st)
	}
}

// testDeadLetter returns the dead letter id as the stub holds it.
func testDeadLetter(id int64) rydes.DeadLetter {
	dl := rydes.DeadLetter{ID: id, Provider: "acme", RFQID: testID, Attempts: 8, LastError: "HTTP 503", LastStatus: 503,
		CreatedAt: t0.Add(time.Duration(id) * time.Second)}
	if id == 41 {
		dl.Provider, dl.LastError, dl.LastStatus = "bolt", "dial tcp: connection refused", 0
		dl.ReplayedAt = t0.Add(time.Hour)
	}
	return dl
}

func (s *adminAPI) deadLetters(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Has("before") {
		reply(w, http.StatusOK, map[string]any{"dead_letters": []rydes.DeadLetter{}})
		return
	}
	reply(w, http.StatusOK, map[string]any{"dead_letters": []rydes.DeadLetter{testDeadLetter(42), testDeadLetter(41)}, "next_before": 41})
}

func (s *adminAPI) replay(w http.ResponseWriter, r *http.Request) {
	switch r.PathValue("id") {
	case "42":
		dl := testDeadLetter(42)
		dl.ReplayedAt = t0.Add(2 * time.Hour)
		reply(w, http.StatusOK, dl)
	case "41":
		problem(w, http.StatusConflict, "conflict", "rfq "+testID+" is expired: nothing to replay", nil)
	default:
		problem(w, http.StatusNotFound, "not_found", "dead letter "+r.PathValue("id")+" not found", nil)
	}
}

// rydesCLI runs "rydes args..." through run, with env as its environment.
func rydesCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(rydestest.Context(t), append([]string{"rydes"}, args...), func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

// adminArgs returns args followed by the flags that reach stub as admin.
func adminArgs(stub *adminAPI, args ...string) []string {
	return append(args, "--server", stub.URL, "--admin-key", testAdminKey)
}

// acme and bolt are providers the stub may start with.
var (
	acme = rydes.Provider{ID: "acme", Name: "Acme Taxis", Kind: rydes.ProviderKindWebhook, Status: rydes.ProviderPaused,
		WebhookURL: "https://acme.example/rydes", PausedReason: "webhook answered 410 Gone",
		Filter:    rydes.Filter{From: []string{"Lisbon*", "Porto"}, MaxPassengers: 4, Attributes: map[string][]string{"size": {"xl"}, "color": {"pink", "red"}}},
		CreatedAt: t0, UpdatedAt: t0.Add(time.Minute)}
	bolt = rydes.Provider{ID: "bolt", Name: "bolt", Kind: rydes.ProviderKindNATS, Status: rydes.ProviderActive, CreatedAt: t0, UpdatedAt: t0}
)

func TestProvidersAdd(t *testing.T) {
	stub := newAdminAPI(t)
	out, _, err := rydesCLI(t, nil, adminArgs(stub, "providers", "add", "acme", "--kind", "webhook", "--name", "Acme Taxis",
		"--webhook-url", "https://acme.example/rydes", "--from", "Lisbon*", "--from", "Porto", "--to", "* Airport",
		"--max-passengers", "4", "--attr", "color=pink,red", "--attr", "size=xl", "--paused")...)
	require.NoError(t, err)
	require.Equal(t, `provider     acme
name         Acme Taxis
kind         webhook
status       paused
webhook url  https://acme.example/rydes
filter       from Lisbon*,Porto; to * Airport; max 4 passengers; color=pink,red; size=xl
created      2026-05-01T12:00:00Z
updated      2026-05-01T12:00:00Z

Credentials, shown once — store them now: rydes cannot show them again
('rydes providers rotate' replaces them).
  api key         rk_acme_0
  nats user       acme
  nats password   np_acme_0
  webhook secret  whsec_acme_0
`, out)

	reqs := stub.requests()
	require.Len(t, reqs, 1)
	require.Equal(t, http.MethodPost, reqs[0].method)
	require.Equal(t, "/v1/providers", reqs[0].path)
	require.Equal(t, "Bearer "+testAdminKey, reqs[0].auth)
	require.Equal(t, map[string]any{
		"id": "acme", "name": "Acme Taxis", "kind": "webhook", "webhook_url": "https://acme.example/rydes", "status": "paused",
		"filter": map[string]any{"from": []any{"Lisbon*", "Porto"}, "to": []any{"* Airport"}, "max_passengers": float64(4),
			"attributes": map[string]any{"color": []any{"pink", "red"}, "size": []any{"xl"}}},
	}, reqs[0].body)
}

func TestProvidersAddNATS(t *testing.T) {
	stub := newAdminAPI(t)
	out, _, err := rydesCLI(t, nil, adminArgs(stub, "providers", "add", "--kind", "nats", "bolt")...)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"id": "bolt", "kind": "nats"}, stub.requests()[0].body, "unset flags are left out")
	require.Contains(t, out, "status    active\nfilter    any request\n")
	require.Contains(t, out, "shown once — store them now")
	require.Contains(t, out, "  nats password  np_bolt_0\n")
	require.NotContains(t, out, "webhook")
}

func TestProvidersAddRefused(t *testing.T) {
	stub := newAdminAPI(t, bolt)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bolt", "--kind", "nats"}, "409 conflict: provider bolt already exists"},
		{[]string{"acme", "--kind", "webhook"}, "400 invalid: webhook_url: is required for webhook providers"},
		{[]string{"acme", "--kind", "pigeon"}, `400 invalid: kind: must be "nats" or "webhook"`},
	} {
		out, _, err := rydesCLI(t, nil, adminArgs(stub, append([]string{"providers", "add"}, tc.args...)...)...)
		require.EqualError(t, err, tc.want, "args %q", tc.args)
		require.Empty(t, out, "no credentials without a provider")
	}
}

func TestProvidersList(t *testing.T) {
	stub := newAdminAPI(t, acme, bolt)
	out, _, err := rydesCLI(t, nil, adminArgs(stub, "providers", "list")...)
	require.NoError(t, err)
	require.Equal(t, `ID    KIND     STATUS                              NAME        FILTER
acme  webhook  paused (webhook answered 410 Gone)  Acme Taxis  from Lisbon*,Porto; max 4 passengers; color=pink,red; size=xl
bolt  nats     active                              bolt        any request
`, out)
	require.Equal(t, []adminSeen{{method: http.MethodGet, path: "/v1/providers", auth: "Bearer " + testAdminKey}}, stub.requests())

	empty := newAdminAPI(t)
	out, _, err = rydesCLI(t, nil, adminArgs(empty, "providers", "list")...)
	require.NoError(t, err)
	require.Equal(t, "no providers\n", out)
}

func TestProvidersGet(t *testing.T) {
	stub := newAdminAPI(t, acme)
	out, _, err := rydesCLI(t, nil, adminArgs(stub, "providers", "get", "acme")...)
	require.NoError(t, err)
	require.Equal(t, `provider     acme
name         Acme Taxis
kind         webhook
status       paused (webhook answered 410 Gone)
webhook url  https://acme.example/rydes
filter       from Lisbon*,Porto; max 4 passengers; color=pink,red; size=xl
created      2026-05-01T12:00:00Z
updated      2026-05-01T12:01:00Z
`, out)
	require.Equal(t, "/v1/providers/acme", stub.requests()[0].path)

	_, _, err = rydesCLI(t, nil, adminArgs(stub, "providers", "get", "nobody")...)
	require.EqualError(t, err, "404 not_found: provider nobody not found")
}

func TestProvidersPauseResume(t *testing.T) {
	stub := newAdminAPI(t, acme)
	for _, tc := range []struct {
		cmd, status, out string
	}{
		{"resume", "active", "provider acme is active\n"},
		{"pause", "paused", "provider acme is paused\n"},
	} {
		out, _, err := rydesCLI(t, nil, adminArgs(stub, "providers", tc.cmd, "acme")...)
		require.NoError(t, err)
		require.Equal(t, tc.out, out)
		reqs := stub.requests()
		require.Equal(t, adminSeen{method: http.MethodPatch, path: "/v1/providers/acme", auth: "Bearer " + testAdminKey,
			body: map[string]any{"status": tc.status}}, reqs[len(reqs)-1])
		p, _ := stub.provider("acme")
		require.Equal(t, rydes.ProviderStatus(tc.status), p.Status)
	}
}

func TestProvidersRm(t *testing.T) {
	stub := newAdminAPI(t, acme)
	out, _, err := rydesCLI(t, nil, adminArgs(stub, "providers", "rm", "acme")...)
	require.NoError(t, err)
	require.Equal(t, "provider acme removed\n", out)
	require.Equal(t, []adminSeen{{method: http.MethodDelete, path: "/v1/providers/acme", auth: "Bearer " + testAdminKey}}, stub.requests())
	_, ok := stub.provider("acme")
	require.False(t, ok)

	_, _, err = rydesCLI(t, nil, adminArgs(stub, "providers", "rm", "acme")...)
	require.EqualError(t, err, "404 not_found: provider acme not found")
}

func TestProvidersRotate(t *testing.T) {
	stub := newAdminAPI(t, bolt)
	out, _, err := rydesCLI(t, nil, adminArgs(stub, "providers", "rotate", "bolt")...)
	require.NoError(t, err)
	require.Equal(t, `credentials of provider bolt rotated: the old ones no longer work

Credentials, shown once — store them now: rydes cannot show them again
('rydes providers rotate' replaces them).
  api key        rk_bolt_1
  nats user      bolt
  nats password  np_bolt_1
`, out)
	require.Equal(t, []adminSeen{{method: http.MethodPost, path: "/v1/providers/bolt/rotate", auth: "Bearer " + testAdminKey}}, stub.requests())
}

func TestProvidersStats(t *testing.T) {
	stub := newAdminAPI(t, bolt)
	out, _, err := rydesCLI(t, nil, adminArgs(stub, "providers", "stats", "bolt")...)
	require.NoError(t, err)
	require.Equal(t, `provider            bolt
asked               120
pending             3
quoted              80
declined            25
timed out           7
failed              4
withdrawn           1
response p50        1.235s
response p99        850µs
queue depth         2
in flight           1
oldest pending age  1m30s
`, out)
	require.Equal(t, "/v1/providers/bolt/stats", stub.requests()[0].path)
}

func TestProvidersJSON(t *testing.T) {
	stub := newAdminAPI(t, acme, bolt)
	stats := testStats
	stats.Provider = "bolt"
	replayed := testDeadLetter(42)
	replayed.ReplayedAt = t0.Add(2 * time.Hour)
	for _, tc := range []struct {
		args []string
		into any
		want any
	}{
		{[]string{"providers", "get", "bolt"}, &rydes.Provider{}, &bolt},
		{[]string{"providers", "list"}, &map[string][]rydes.Provider{}, &map[string][]rydes.Provider{"providers": {acme, bolt}}},
		{[]string{"providers", "stats", "bolt"}, &rydes.ProviderStats{}, &stats},
		{[]string{"providers", "rotate", "bolt"}, &providerWithCredentials{}, &providerWithCredentials{bolt, testCredentials("bolt", rydes.ProviderKindNATS, 1)}},
		{[]string{"dead-letters", "list"}, &client.DeadLetterPage{},
			&client.DeadLetterPage{DeadLetters: []rydes.DeadLetter{testDeadLetter(42), testDeadLetter(41)}, NextBefore: 41}},
		{[]string{"dead-letters", "replay", "42"}, &rydes.DeadLetter{}, &replayed},
	} {
		out, _, err := rydesCLI(t, nil, adminArgs(stub, append(tc.args, "--json")...)...)
		require.NoError(t, err, "args %q", tc.args)
		require.NoError(t, json.Unmarshal([]byte(out), tc.into), "args %q: %s", tc.args, out)
		require.Equal(t, tc.want, tc.into, "args %q", tc.args)
	}

	out, _, err := rydesCLI(t, nil, adminArgs(stub, "providers", "add", "cab", "--kind", "nats", "--json")...)
	require.NoError(t, err)
	var created providerWithCredentials
	require.NoError(t, json.Unmarshal([]byte(out), &created))
	require.Equal(t, "cab", created.Provider.ID)
	require.Equal(t, testCredentials("cab", rydes.ProviderKindNATS, 0), created.Credentials)

	out, _, err = rydesCLI(t, nil, adminArgs(stub, "providers", "pause", "bolt", "--json")...)
	require.NoError(t, err)
	var paused rydes.Provider
	require.NoError(t, json.Unmarshal([]byte(out), &paused))
	require.Equal(t, rydes.ProviderPaused, paused.Status)
}

func TestProvidersMissingAdminKey(t *testing.T) {
	stub := newAdminAPI(t, bolt)
	for _, args := range [][]string{{"providers", "list"}, {"providers", "rm", "bolt"}, {"dead-letters", "list"}} {
		out, _, err := rydesCLI(t, nil, append(args, "--server", stub.URL)...)
		require.EqualError(t, err, "401 unauthorized: the admin key is required (Authorization: Bearer)"+
			" (no admin key was given: set RYDES_ADMIN_KEY or --admin-key)", "args %q", args)
		require.Empty(t, out)
		require.Equal(t, 1, exitCode(err, io.Discard))
		p, ok := errors.AsType[*client.Problem](err)
		require.True(t, ok, "the problem is kept in the chain, got %T", err)
		require.Equal(t, http.StatusUnauthorized, p.Status)
	}
	_, ok := stub.provider("bolt")
	require.True(t, ok)

	_, _, err := rydesCLI(t, nil, "providers", "list", "--server", stub.URL, "--admin-key", "guess")
	require.EqualError(t, err, "401 unauthorized: unknown admin key (the server refused the admin key from RYDES_ADMIN_KEY or --admin-key)")
}

func TestProvidersAdminKeyFromEnv(t *testing.T) {
	stub := newAdminAPI(t)
	other := newAdminAPI(t)
	env := map[string]string{
		"RYDES_SERVER": stub.URL, "RYDES_ADMIN_KEY": testAdminKey,
		// Meant for other commands, such as rfq create: never a provider's settings.
		"RYDES_FROM": "Lisbon", "RYDES_TO": "Porto", "RYDES_ATTR": "color=pink", "RYDES_NAME": "Env", "RYDES_KIND": "webhook",
		"RYDES_PAUSED": "true", "RYDES_MAX_PASSENGERS": "2", "RYDES_JSON": "true", "RYDES_LIMIT": "1", "RYDES_PROVIDER": "acme",
	}
	out, _, err := rydesCLI(t, env, "providers", "add", "cab", "--kind", "nats")
	require.NoError(t, err)
	require.Contains(t, out, "provider  cab\n", "RYDES_JSON is not read")
	reqs := stub.requests()
	require.Len(t, reqs, 1, "RYDES_SERVER names the server")
	require.Equal(t, "Bearer "+testAdminKey, reqs[0].auth, "RYDES_ADMIN_KEY is the admin key")
	require.Equal(t, map[string]any{"id": "cab", "kind": "nats"}, reqs[0].body)

	_, _, err = rydesCLI(t, env, "dead-letters", "list")
	require.NoError(t, err)
	require.Empty(t, stub.requests()[1].query, "RYDES_PROVIDER and RYDES_LIMIT are not read")

	// The command line wins.
	_, _, err = rydesCLI(t, env, "providers", "list", "--server", other.URL, "--admin-key", "guess")
	require.ErrorContains(t, err, "401 unauthorized: unknown admin key")
	require.Len(t, stub.requests(), 2)
	require.Equal(t, "Bearer guess", other.requests()[0].auth)
}

func TestDeadLettersList(t *testing.T) {
	stub := newAdminAPI(t)
	out, _, err := rydesCLI(t, nil, adminArgs(stub, "dead-letters", "list")...)
	require.NoError(t, err)
	require.Equal(t, `ID  PROVIDER  RFQ                                   ATTEMPTS  CREATED               REPLAYED              LAST ERROR
42  acme      8b095f9e-cffc-4790-91a6-28353fa30e42  8         2026-05-01T12:00:42Z  -                     HTTP 503
41  bolt      8b095f9e-cffc-4790-91a6-28353fa30e42  8         2026-05-01T12:00:41Z  2026-05-01T13:00:00Z  dial tcp: connection refused
older ones: rydes dead-letters list --before 41
`, out)
	require.Equal(t, []adminSeen{{method: http.MethodGet, path: "/v1/dead-letters", auth: "Bearer " + testAdminKey}}, stub.requests())

	out, _, err = rydesCLI(t, nil, adminArgs(stub, "dead-letters", "list", "--provider", "acme", "--limit", "2")...)
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(out, "older ones: rydes dead-letters list --before 41 --provider acme --limit 2\n"), out)
	require.Equal(t, "limit=2&provider=acme", stub.requests()[1].query)

	out, _, err = rydesCLI(t, nil, adminArgs(stub, "dead-letters", "list", "--before", "41")...)
	require.NoError(t, err)
	require.Equal(t, "no dead letters\n", out)
	require.Equal(t, "before=41", stub.requests()[2].query)
}

func TestDeadLettersReplay(t *testing.T) {
	stub := newAdminAPI(t)
	out, _, err := rydesCLI(t, nil, adminArgs(stub, "dead-letters", "replay", "42")...)
	require.NoError(t, err)
	require.Equal(t, "dead letter 42 replayed: rfq "+testID+" is on the queue of provider acme again\n", out)
	require.Equal(t, []adminSeen{{method: http.MethodPost, path: "/v1/dead-letters/42/replay", auth: "Bearer " + testAdminKey}}, stub.requests())

	_, _, err = rydesCLI(t, nil, adminArgs(stub, "dead-letters", "replay", "41")...)
	require.EqualError(t, err, "409 conflict: rfq "+testID+" is expired: nothing to replay")
}

func TestAdminBadArgs(t *testing.T) {
	stub := newAdminAPI(t, bolt)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"providers", "add", "cab"}, "providers add: --kind is required: nats or webhook"},
		{[]string{"providers", "add", "--kind", "nats"}, "providers add: missing the provider id"},
		{[]string{"providers", "add", "a", "b", "--kind", "nats"}, `providers add takes one provider id, got 2 arguments ["a" "b"]`},
		{[]string{"providers", "add", "cab", "--kind", "nats", "--attr", "color"}, "want key=value or key=v1,v2"},
		{[]string{"providers", "add", "cab", "--kind", "nats", "--attr", "color="}, "want key=value or key=v1,v2"},
		{[]string{"providers", "add", "cab", "--kind", "nats", "--attr", "color=pink,"}, `attribute "color" has an empty value`},
		{[]string{"providers", "add", "cab", "--kind", "nats", "--attr", "c=a", "--attr", "c=b"}, `attribute "c" given twice`},
		{[]string{"providers", "add", "cab", "--kind", "nats", "--from", " "}, "must not be blank"},
		{[]string{"providers", "add", "cab", "--kind", "nats", "--max-passengers", "four"}, `invalid value "four" for flag -max-passengers`},
		{[]string{"providers", "list", "extra"}, `providers list takes no arguments, got ["extra"]`},
		{[]string{"providers", "get"}, "providers get: missing the provider id"},
		{[]string{"providers", "get", "../dead-letters"}, `invalid provider id "../dead-letters"`},
		{[]string{"providers", "pause", "a b"}, `invalid provider id "a b"`},
		{[]string{"providers", "rm", "bolt", "--json"}, "flag provided but not defined: -json"},
		{[]string{"providers", "stats", "bolt", "bolt"}, "providers stats takes one provider id, got 2 arguments"},
		{[]string{"dead-letters", "list", "--limit", "-1"}, "--limit and --before must not be negative"},
		{[]string{"dead-letters", "replay"}, "dead-letters replay: missing the dead letter id"},
		{[]string{"dead-letters", "replay", "0"}, `invalid dead letter id "0": must be a positive number`},
		{[]string{"dead-letters", "replay", "x42"}, `invalid dead letter id "x42"`},
	} {
		_, _, err := rydesCLI(t, nil, adminArgs(stub, tc.args...)...)
		require.ErrorContains(t, err, tc.want, "args %q", tc.args)
		require.Equal(t, 1, exitCode(err, io.Discard), "args %q", tc.args)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"providers"}, "providers: missing command (add, list, get, pause, resume, rm, rotate or stats)"},
		{[]string{"providers", "fly"}, `providers: unknown command "fly"`},
		{[]string{"providers", "--server", stub.URL, "list"}, `providers: unknown command "--server"`},
		{[]string{"dead-letters"}, "dead-letters: missing command (list or replay)"},
		{[]string{"dead-letters", "rm"}, `dead-letters: unknown command "rm"`},
	} {
		_, errOut, err := rydesCLI(t, nil, tc.args...)
		require.EqualError(t, err, tc.want)
		require.Contains(t, errOut, "Usage: rydes "+tc.args[0])
	}
	_, _, err := rydesCLI(t, nil, "providers", "list", "--server", "localhost:8080")
	require.ErrorContains(t, err, "invalid base URL")
	require.Empty(t, stub.requests(), "bad arguments send nothing")
}

func TestAdminHelp(t *testing.T) {
	for _, args := range [][]string{
		{"providers", "-h"}, {"providers", "help"}, {"dead-letters", "--help"},
		{"providers", "add", "-h"}, {"providers", "rm", "acme", "-h"}, {"dead-letters", "list", "-h"},
	} {
		out, errOut, err := rydesCLI(t, nil, args...)
		require.ErrorIs(t, err, flag.ErrHelp, "args %q", args)
		require.Zero(t, exitCode(err, io.Discard))
		require.Empty(t, out)
		require.Contains(t, errOut, "Usage: rydes "+args[0], "args %q", args)
		require.Contains(t, errOut, "RYDES_ADMIN_KEY", "args %q", args)
	}
	_, errOut, _ := rydesCLI(t, nil, "providers", "add", "-h")
	for _, want := range []string{"-kind nats|webhook", "-name", "-webhook-url URL", "-from pattern", "-to pattern", "-max-passengers",
		"-attr key=v1,v2", "-paused", "-json", "-server URL", "-admin-key key", "http://127.0.0.1:8080", "store them now"} {
		require.Contains(t, errOut, want)
	}
	_, errOut, _ = rydesCLI(t, nil, "dead-letters", "list", "-h")
	for _, want := range []string{"-provider id", "-limit", "-before id"} {
		require.Contains(t, errOut, want)
	}

	out, _, err := rydesCLI(t, nil, "help")
	require.NoError(t, err)
	for _, want := range []string{"rydes providers add ID --kind nats|webhook", "rydes providers stats ID", "rydes dead-letters replay ID"} {
		require.Contains(t, out, want)
	}
}
