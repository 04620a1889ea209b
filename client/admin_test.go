package client_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
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

// Keys the admin stub accepts.
const (
	adminKey    = "admin-k3y"
	providerKey = "rk_provider"
)

// adminRequest is what the admin stub saw of one request.
type adminRequest struct {
	Method, Path, Query, Auth, ContentType string
	Body                                   map[string]any // nil when there was none
}

// adminStub is a tiny in-memory stand-in for rydes's admin routes and the
// provider answer routes, checking keys the way the server does.
type adminStub struct {
	mu        sync.Mutex
	providers map[string]rydes.Provider
	requests  []adminRequest
	rotations int
}

func newAdminStub(t *testing.T) (*adminStub, *httptest.Server) {
	t.Helper()
	s := &adminStub{providers: map[string]rydes.Provider{}}
	admin := http.NewServeMux()
	admin.HandleFunc("POST /v1/providers", s.create)
	admin.HandleFunc("GET /v1/providers", s.list)
	admin.HandleFunc("GET /v1/providers/{id}", s.get)
	admin.HandleFunc("PATCH /v1/providers/{id}", s.update)
	admin.HandleFunc("DELETE /v1/providers/{id}", s.delete)
	admin.HandleFunc("POST /v1/providers/{id}/rotate", s.rotate)
	admin.HandleFunc("GET /v1/providers/{id}/stats", s.stats)
	admin.HandleFunc("GET /v1/dead-letters", s.deadLetters)
	admin.HandleFunc("POST /v1/dead-letters/{id}/replay", s.replay)
	answers := http.NewServeMux()
	answers.HandleFunc("POST /v1/rfqs/{id}/quotes", s.answer)
	answers.HandleFunc("POST /v1/rfqs/{id}/declines", s.answer)

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := adminRequest{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
			Auth: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type")}
		b, _ := io.ReadAll(r.Body)
		if len(b) > 0 {
			_ = json.Unmarshal(b, &req.Body)
		}
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		s.mu.Lock()
		s.requests = append(s.requests, req)
		s.mu.Unlock()

		mux, key := admin, adminKey
		if strings.HasPrefix(r.URL.Path, "/v1/rfqs/") {
			mux, key = answers, providerKey
		}
		if req.Auth != "Bearer "+key {
			writeProblem(w, http.StatusUnauthorized, "unauthorized", "a valid key is required (Authorization: Bearer)", nil)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *adminStub) last(t *testing.T) adminRequest {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.NotEmpty(t, s.requests)
	return s.requests[len(s.requests)-1]
}

func (s *adminStub) all() []adminRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]adminRequest(nil), s.requests...)
}

func (s *adminStub) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// credentials returns the n-th set of credentials of provider id.
func credentials(id string, kind rydes.ProviderKind, n int) rydes.ProviderCredentials {
	c := rydes.ProviderCredentials{APIKey: "rk_" + id + strconv.Itoa(n), NATSUser: id, NATSPassword: "np_" + id + strconv.Itoa(n)}
	if kind == rydes.ProviderKindWebhook {
		c.WebhookSecret = "whsec_" + id + strconv.Itoa(n)
	}
	return c
}

func (s *adminStub) create(w http.ResponseWriter, r *http.Request) {
	var req client.CreateProviderRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeProblem(w, http.StatusBadRequest, "invalid", err.Error(), nil)
		return
	}
	p := rydes.Provider{ID: req.ID, Name: req.Name, Kind: req.Kind, Status: req.Status, WebhookURL: req.WebhookURL,
		Filter: req.Filter, CreatedAt: now, UpdatedAt: now}
	if p.Name == "" {
		p.Name = p.ID
	}
	if p.Status == "" {
		p.Status = rydes.ProviderActive
	}
	if err := p.Validate(); err != nil {
		writeProblem(w, http.StatusBadRequest, "invalid", "the provider is invalid",
			[]client.FieldError{{Field: rydes.ErrorFieldOf(err), Reason: rydes.ErrorMessageOf(err)}})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.providers[p.ID]; dup {
		writeProblem(w, http.StatusConflict, "conflict", "provider "+p.ID+" exists", nil)
		return
	}
	s.providers[p.ID] = p
	writeJSON(w, http.StatusCreated, map[string]any{"provider": p, "credentials": credentials(p.ID, p.Kind, 0)})
}

func (s *adminStub) list(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := []rydes.Provider{}
	for _, p := range s.providers {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].ID < ps[j].ID })
	writeJSON(w, http.StatusOK, map[string]any{"providers": ps})
}

// lookup returns the provider the path names, or answers 404.
func (s *adminStub) lookup(w http.ResponseWriter, r *http.Request) (rydes.Provider, bool) {
	p, ok := s.providers[r.PathValue("id")]
	if !ok {
		writeProblem(w, http.StatusNotFound, "not_found", "provider "+r.PathValue("id")+" not found", nil)
	}
	return p, ok
}

func (s *adminStub) get(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.lookup(w, r); ok {
		writeJSON(w, http.StatusOK, p)
	}
}

func (s *adminStub) update(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.lookup(w, r)
	if !ok {
		return
	}
	var req client.UpdateProviderRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeProblem(w, http.StatusBadRequest, "invalid", err.Error(), nil)
		return
	}
	if req.Name != nil {
		p.Name = *req.Name
	}
	if req.Status != nil {
		p.Status = *req.Status
	}
	if req.WebhookURL != nil {
		p.WebhookURL = *req.WebhookURL
	}
	if req.Filter != nil {
		p.Filter = *req.Filter
	}
	p.UpdatedAt = now.Add(time.Minute)
	s.providers[p.ID] = p
	writeJSON(w, http.StatusOK, p)
}

func (s *adminStub) delete(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.lookup(w, r); ok {
		delete(s.providers, p.ID)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *adminStub) rotate(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.lookup(w, r); ok {
		s.rotations++
		writeJSON(w, http.StatusOK, map[string]any{"provider": p, "credentials": credentials(p.ID, p.Kind, s.rotations)})
	}
}

func (s *adminStub) stats(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.lookup(w, r); ok {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"provider":"`+p.ID+`","asked":10,"pending":1,"quoted":5,"declined":2,"timed_out":1,"failed":1,`+
			`"withdrawn":0,"response_p50":"1.5s","response_p99":"4.25s","queue_depth":3,"in_flight":1,"oldest_pending_age":"2m0s"}`)
	}
}

// deadLetter returns the dead letter id of provider acme as the stub shows it.
func deadLetter(id int64) rydes.DeadLetter {
	return rydes.DeadLetter{ID: id, Provider: "acme", RFQID: "8b095f9e-cffc-4790-91a6-28353fa30e42", Attempts: 8,
		LastError: "HTTP 503", LastStatus: 503, CreatedAt: now}
}

func (s *adminStub) deadLetters(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("before") == "41" {
		writeJSON(w, http.StatusOK, map[string]any{"dead_letters": []rydes.DeadLetter{deadLetter(40)}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": []rydes.DeadLetter{deadLetter(42), deadLetter(41)}, "next_before": 41})
}

func (s *adminStub) replay(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id != 42 {
		writeProblem(w, http.StatusNotFound, "not_found", "dead letter "+r.PathValue("id")+" not found", nil)
		return
	}
	dl := deadLetter(id)
	dl.ReplayedAt = now.Add(time.Hour)
	writeJSON(w, http.StatusOK, dl)
}

func (s *adminStub) answer(w http.ResponseWriter, r *http.Request) {
	outcome := rydes.OutcomeStaged
	if r.PathValue("id") == "00000000-0000-4000-8000-000000000000" {
		outcome = rydes.OutcomeDuplicate
	}
	writeJSON(w, http.StatusCreated, map[string]any{"outcome": outcome, "rfq_status": rydes.StatusOpen})
}

func TestAdminCreateProvider(t *testing.T) {
	stub, srv := newAdminStub(t)
	c := newClient(t, srv, client.WithAPIKey(adminKey))
	ctx := rydestest.Context(t)

	p, creds, err := c.CreateProvider(ctx, client.CreateProviderRequest{
		ID: "acme", Name: "Acme Taxis", Kind: rydes.ProviderKindWebhook, WebhookURL: "https://acme.example/rydes",
		Filter: rydes.Filter{From: []string{"Lisbon*"}, To: []string{"Porto"}, MaxPassengers: 4,
			Attributes: map[string][]string{"color": {"pink", "red"}}},
		Status: rydes.ProviderPaused,
	})
	require.NoError(t, err)
	require.Equal(t, rydes.Provider{ID: "acme", Name: "Acme Taxis", Kind: rydes.ProviderKindWebhook, Status: rydes.ProviderPaused,
		WebhookURL: "https://acme.example/rydes", Filter: rydes.Filter{From: []string{"Lisbon*"}, To: []string{"Porto"}, MaxPassengers: 4,
			Attributes: map[string][]string{"color": {"pink", "red"}}}, CreatedAt: now, UpdatedAt: now}, p)
	require.Equal(t, credentials("acme", rydes.ProviderKindWebhook, 0), creds)

	req := stub.last(t)
	require.Equal(t, http.MethodPost, req.Method)
	require.Equal(t, "/v1/providers", req.Path)
	require.Equal(t, "Bearer "+adminKey, req.Auth)
	require.Equal(t, "application/json", req.ContentType)
	require.Equal(t, map[string]any{
		"id": "acme", "name": "Acme Taxis", "kind": "webhook", "webhook_url": "https://acme.example/rydes", "status": "paused",
		"filter": map[string]any{"from": []any{"Lisbon*"}, "to": []any{"Porto"}, "max_passengers": float64(4),
			"attributes": map[string]any{"color": []any{"pink", "red"}}},
	}, req.Body)
}

func TestAdminCreateProviderOmitsUnsetFields(t *testing.T) {
	stub, srv := newAdminStub(t)
	c := newClient(t, srv, client.WithAPIKey(adminKey))

	p, creds, err := c.CreateProvider(rydestest.Context(t), client.CreateProviderRequest{ID: "bolt", Kind: rydes.ProviderKindNATS})
	require.NoError(t, err)
	require.Equal(t, "bolt", p.Name, "the server's default")
	require.Equal(t, rydes.ProviderActive, p.Status)
	require.Empty(t, creds.WebhookSecret)
	require.Equal(t, map[string]any{"id": "bolt", "kind": "nats"}, stub.last(t).Body)
}

func TestAdminCreateProviderProblems(t *testing.T) {
	_, srv := newAdminStub(t)
	ctx := rydestest.Context(t)
	c := newClient(t, srv, client.WithAPIKey(adminKey))

	_, _, err := c.CreateProvider(ctx, client.CreateProviderRequest{ID: "acme", Kind: "carrier-pigeon"})
	require.EqualError(t, err, `400 invalid: kind: must be "nats" or "webhook"`)

	_, _, err = c.CreateProvider(ctx, client.CreateProviderRequest{ID: "acme", Kind: rydes.ProviderKindNATS})
	require.NoError(t, err)
	_, _, err = c.CreateProvider(ctx, client.CreateProviderRequest{ID: "acme", Kind: rydes.ProviderKindNATS})
	p, ok := errors.AsType[*client.Problem](err)
	require.True(t, ok, "got %T: %v", err, err)
	require.Equal(t, http.StatusConflict, p.Status)
}

func TestAdminCallsNeedTheAdminKey(t *testing.T) {
	stub, srv := newAdminStub(t)
	ctx := rydestest.Context(t)
	for name, c := range map[string]*client.Client{
		"no key":       newClient(t, srv),
		"provider key": newClient(t, srv, client.WithAPIKey(providerKey)),
	} {
		_, err := c.ListProviders(ctx)
		p, ok := errors.AsType[*client.Problem](err)
		require.True(t, ok, "%s: got %T: %v", name, err, err)
		require.Equal(t, http.StatusUnauthorized, p.Status, name)
		require.Equal(t, rydes.EUNAUTHORIZED, p.Code(), name)
	}
	reqs := stub.all()
	require.Len(t, reqs, 2)
	auths := []string{reqs[0].Auth, reqs[1].Auth}
	require.ElementsMatch(t, []string{"", "Bearer " + providerKey}, auths)
}

func TestAdminListAndGetProviders(t *testing.T) {
	stub, srv := newAdminStub(t)
	c := newClient(t, srv, client.WithAPIKey(adminKey))
	ctx := rydestest.Context(t)

	ps, err := c.ListProviders(ctx)
	require.NoError(t, err)
	require.Empty(t, ps)

	for _, id := range []string{"bolt", "acme"} {
		_, _, err := c.CreateProvider(ctx, client.CreateProviderRequest{ID: id, Kind: rydes.ProviderKindNATS})
		require.NoError(t, err)
	}
	ps, err = c.ListProviders(ctx)
	require.NoError(t, err)
	require.Len(t, ps, 2)
	require.Equal(t, "acme", ps[0].ID)
	require.Equal(t, adminRequest{Method: http.MethodGet, Path: "/v1/providers", Auth: "Bearer " + adminKey}, stub.last(t))

	p, err := c.GetProvider(ctx, "bolt")
	require.NoError(t, err)
	require.Equal(t, ps[1], p)
	require.Equal(t, "/v1/providers/bolt", stub.last(t).Path)

	_, err = c.GetProvider(ctx, "nobody")
	require.EqualError(t, err, "404 not_found: provider nobody not found")
}

func TestAdminUpdateProvider(t *testing.T) {
	stub, srv := newAdminStub(t)
	c := newClient(t, srv, client.WithAPIKey(adminKey))
	ctx := rydestest.Context(t)
	_, _, err := c.CreateProvider(ctx, client.CreateProviderRequest{ID: "acme", Kind: rydes.ProviderKindWebhook,
		WebhookURL: "https://acme.example/old", Filter: rydes.Filter{MaxPassengers: 2}})
	require.NoError(t, err)

	paused := rydes.ProviderPaused
	name, hook := "Acme", "https://acme.example/new"
	for _, tc := range []struct {
		name string
		req  client.UpdateProviderRequest
		body map[string]any
		want func(*rydes.Provider)
	}{
		{"status", client.UpdateProviderRequest{Status: &paused}, map[string]any{"status": "paused"},
			func(p *rydes.Provider) { p.Status = paused }},
		{"name and webhook", client.UpdateProviderRequest{Name: &name, WebhookURL: &hook},
			map[string]any{"name": "Acme", "webhook_url": hook},
			func(p *rydes.Provider) { p.Name, p.WebhookURL = name, hook }},
		{"filter", client.UpdateProviderRequest{Filter: &rydes.Filter{From: []string{"Faro"}}},
			map[string]any{"filter": map[string]any{"from": []any{"Faro"}}},
			func(p *rydes.Provider) { p.Filter = rydes.Filter{From: []string{"Faro"}} }},
		{"filter cleared", client.UpdateProviderRequest{Filter: &rydes.Filter{}}, map[string]any{"filter": map[string]any{}},
			func(p *rydes.Provider) { p.Filter = rydes.Filter{} }},
		{"nothing", client.UpdateProviderRequest{}, map[string]any{}, func(*rydes.Provider) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, err := c.GetProvider(ctx, "acme")
			require.NoError(t, err)
			got, err := c.UpdateProvider(ctx, "acme", tc.req)
			require.NoError(t, err)
			want := before
			tc.want(&want)
			want.UpdatedAt = now.Add(time.Minute)
			require.Equal(t, want, got)

			req := stub.last(t)
			require.Equal(t, http.MethodPatch, req.Method)
			require.Equal(t, "/v1/providers/acme", req.Path)
			require.Equal(t, tc.body, req.Body)
		})
	}
}

func TestAdminDeleteProvider(t *testing.T) {
	stub, srv := newAdminStub(t)
	c := newClient(t, srv, client.WithAPIKey(adminKey))
	ctx := rydestest.Context(t)
	_, _, err := c.CreateProvider(ctx, client.CreateProviderRequest{ID: "acme", Kind: rydes.ProviderKindNATS})
	require.NoError(t, err)

	require.NoError(t, c.DeleteProvider(ctx, "acme"), "a 204 without a body is a success")
	require.Equal(t, adminRequest{Method: http.MethodDelete, Path: "/v1/providers/acme", Auth: "Bearer " + adminKey}, stub.last(t))

	err = c.DeleteProvider(ctx, "acme")
	p, ok := errors.AsType[*client.Problem](err)
	require.True(t, ok, "got %T: %v", err, err)
	require.Equal(t, http.StatusNotFound, p.Status)
}

func TestAdminRotateProvider(t *testing.T) {
	stub, srv := newAdminStub(t)
	c := newClient(t, srv, client.WithAPIKey(adminKey))
	ctx := rydestest.Context(t)
	created, first, err := c.CreateProvider(ctx, client.CreateProviderRequest{ID: "acme", Kind: rydes.ProviderKindWebhook,
		WebhookURL: "https://acme.example/rydes"})
	require.NoError(t, err)

	p, creds, err := c.RotateProvider(ctx, "acme")
	require.NoError(t, err)
	require.Equal(t, created, p)
	require.Equal(t, credentials("acme", rydes.ProviderKindWebhook, 1), creds)
	require.NotEqual(t, first, creds)
	req := stub.last(t)
	require.Equal(t, http.MethodPost, req.Method)
	require.Equal(t, "/v1/providers/acme/rotate", req.Path)
	require.Nil(t, req.Body, "rotate sends no body")
	require.Empty(t, req.ContentType)
}

func TestAdminProviderStats(t *testing.T) {
	stub, srv := newAdminStub(t)
	c := newClient(t, srv, client.WithAPIKey(adminKey))
	ctx := rydestest.Context(t)
	_, _, err := c.CreateProvider(ctx, client.CreateProviderRequest{ID: "acme", Kind: rydes.ProviderKindNATS})
	require.NoError(t, err)

	st, err := c.ProviderStats(ctx, "acme")
	require.NoError(t, err)
	require.Equal(t, rydes.ProviderStats{Provider: "acme", Asked: 10, Pending: 1, Quoted: 5, Declined: 2, TimedOut: 1, Failed: 1,
		ResponseP50: rydes.Duration(1500 * time.Millisecond), ResponseP99: rydes.Duration(4250 * time.Millisecond),
		QueueDepth: 3, InFlight: 1, OldestPendingAge: rydes.Duration(2 * time.Minute)}, st)
	require.Equal(t, "/v1/providers/acme/stats", stub.last(t).Path)
}

func TestAdminInvalidProviderIDSendsNothing(t *testing.T) {
	stub, srv := newAdminStub(t)
	c := newClient(t, srv, client.WithAPIKey(adminKey))
	ctx := rydestest.Context(t)

	for _, id := range []string{"", "../dead-letters", "a/b", "a b", "acme?x=1", strings.Repeat("a", 65)} {
		calls := map[string]error{}
		_, calls["get"] = c.GetProvider(ctx, id)
		_, calls["update"] = c.UpdateProvider(ctx, id, client.UpdateProviderRequest{})
		calls["delete"] = c.DeleteProvider(ctx, id)
		_, _, calls["rotate"] = c.RotateProvider(ctx, id)
		_, calls["stats"] = c.ProviderStats(ctx, id)
		for call, err := range calls {
			require.ErrorContains(t, err, "invalid provider id", "%s %q", call, id)
		}
	}
	for _, id := range []int64{0, -1} {
		_, err := c.ReplayDeadLetter(ctx, id)
		require.ErrorContains(t, err, "invalid dead letter id")
	}
	require.Zero(t, stub.count())
}

func TestAdminListDeadLetters(t *testing.T) {
	stub, srv := newAdminStub(t)
	c := newClient(t, srv, client.WithAPIKey(adminKey))
	ctx := rydestest.Context(t)

	for _, tc := range []struct {
		name  string
		q     client.DeadLetterQuery
		query string
		want  client.DeadLetterPage
	}{
		{"newest", client.DeadLetterQuery{}, "",
			client.DeadLetterPage{DeadLetters: []rydes.DeadLetter{deadLetter(42), deadLetter(41)}, NextBefore: 41}},
		{"every parameter", client.DeadLetterQuery{Provider: "acme & co", Before: 41, Limit: 2}, "before=41&limit=2&provider=acme+%26+co",
			client.DeadLetterPage{DeadLetters: []rydes.DeadLetter{deadLetter(40)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page, err := c.ListDeadLetters(ctx, tc.q)
			require.NoError(t, err)
			require.Equal(t, tc.want, page)
			req := stub.last(t)
			require.Equal(t, http.MethodGet, req.Method)
			require.Equal(t, "/v1/dead-letters", req.Path)
			require.Equal(t, tc.query, req.Query)
			require.Equal(t, "Bearer "+adminKey, req.Auth)
		})
	}
}

func TestAdminReplayDeadLetter(t *testing.T) {
	stub, srv := newAdminStub(t)
	c := newClient(t, srv, client.WithAPIKey(adminKey))
	ctx := rydestest.Context(t)

	dl, err := c.ReplayDeadLetter(ctx, 42)
	require.NoError(t, err)
	want := deadLetter(42)
	want.ReplayedAt = now.Add(time.Hour)
	require.Equal(t, want, dl)
	require.Equal(t, adminRequest{Method: http.MethodPost, Path: "/v1/dead-letters/42/replay", Auth: "Bearer " + adminKey}, stub.last(t))

	_, err = c.ReplayDeadLetter(ctx, 7)
	require.EqualError(t, err, "404 not_found: dead letter 7 not found")
}

func TestAdminDeadLetterPageJSON(t *testing.T) {
	b, err := json.Marshal(client.DeadLetterPage{DeadLetters: []rydes.DeadLetter{}})
	require.NoError(t, err)
	require.JSONEq(t, `{"dead_letters":[]}`, string(b), "no next_before on the last page")
}

func TestProvidersSubmitQuote(t *testing.T) {
	stub, srv := newAdminStub(t)
	c := newClient(t, srv, client.WithAPIKey(providerKey))
	ctx := rydestest.Context(t)
	id := "8b095f9e-cffc-4790-91a6-28353fa30e42"
	price := rydes.Price{Amount: "45.50", Currency: "EUR"}
	expires := time.Date(2026, 5, 1, 13, 0, 0, 0, time.UTC)

	for _, tc := range []struct {
		name string
		opts []client.QuoteOption
		body map[string]any
	}{
		{"price only", nil, map[string]any{"price": map[string]any{"amount": "45.50", "currency": "EUR"}}},
		{"eta and expiry", []client.QuoteOption{client.WithETA(4*time.Minute + 400*time.Millisecond), client.WithExpiresAt(expires)},
			map[string]any{"price": map[string]any{"amount": "45.50", "currency": "EUR"}, "eta_seconds": float64(240),
				"expires_at": "2026-05-01T13:00:00Z"}},
		{"zero eta is sent", []client.QuoteOption{client.WithETA(0), client.WithExpiresAt(time.Time{})},
			map[string]any{"price": map[string]any{"amount": "45.50", "currency": "EUR"}, "eta_seconds": float64(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := c.SubmitQuote(ctx, id, price, tc.opts...)
			require.NoError(t, err)
			require.Equal(t, client.AnswerResult{Outcome: rydes.OutcomeStaged, RFQStatus: rydes.StatusOpen}, res)
			req := stub.last(t)
			require.Equal(t, http.MethodPost, req.Method)
			require.Equal(t, "/v1/rfqs/"+id+"/quotes", req.Path)
			require.Equal(t, "Bearer "+providerKey, req.Auth)
			require.Equal(t, tc.body, req.Body)
		})
	}

	res, err := c.SubmitQuote(ctx, "00000000-0000-4000-8000-000000000000", price)
	require.NoError(t, err)
	require.Equal(t, rydes.OutcomeDuplicate, res.Outcome)
}

func TestProvidersSubmitDecline(t *testing.T) {
	stub, srv := newAdminStub(t)
	c := newClient(t, srv, client.WithAPIKey(providerKey))
	ctx := rydestest.Context(t)
	id := "8b095f9e-cffc-4790-91a6-28353fa30e42"

	for reason, body := range map[string]map[string]any{"": {}, "no unicorns free": {"reason": "no unicorns free"}} {
		res, err := c.SubmitDecline(ctx, id, reason)
		require.NoError(t, err)
		require.Equal(t, client.AnswerResult{Outcome: rydes.OutcomeStaged, RFQStatus: rydes.StatusOpen}, res)
		req := stub.last(t)
		require.Equal(t, "/v1/rfqs/"+id+"/declines", req.Path)
		require.Equal(t, body, req.Body)
	}

	// With the admin key, the answer routes refuse.
	_, err := newClient(t, srv, client.WithAPIKey(adminKey)).SubmitDecline(ctx, id, "")
	require.ErrorContains(t, err, "401 unauthorized")

	n := stub.count()
	_, err = c.SubmitDecline(ctx, "../providers", "")
	require.ErrorContains(t, err, "invalid RFQ id")
	_, err = c.SubmitQuote(ctx, "", rydes.Price{Amount: "1", Currency: "EUR"})
	require.ErrorContains(t, err, "invalid RFQ id")
	require.Equal(t, n, stub.count(), "invalid RFQ ids send nothing")
}
