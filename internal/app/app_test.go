package app_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/api/apitest"
	"github.com/wildrydes/rydes/internal/app"
	"github.com/wildrydes/rydes/internal/bus"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/sim"
	"github.com/wildrydes/rydes/internal/store"
	"github.com/wildrydes/rydes/internal/store/sqlite"
)

// fleet returns a simulated fleet of n providers that all answer at once,
// quoting (rate 1) or declining/staying silent (rate 0).
func fleet(n int, quoteRate float64, silent bool) sim.Config {
	return sim.Config{Count: n, QuoteRate: quoteRate, Silent: silent, Seed: 1}
}

func config(t *testing.T, dataDir string, s sim.Config) app.Config {
	t.Helper()
	return app.Config{
		HTTPAddr:      "127.0.0.1:0",
		DataDir:       dataDir,
		RFQTimeout:    30 * time.Second,
		RFQMaxTimeout: 10 * time.Minute,
		Demo:          true,
		Sim:           s,
		AllowTmpfs:    true, // t.TempDir may be a tmpfs; these tests need no durability across reboots
		Logger:        rydestest.Logger(t),
	}
}

// harness is a running rydes and an HTTP client that checks every exchange
// against docs/openapi.yaml.
type harness struct {
	t   *testing.T
	app *app.App
	val *apitest.Validator
	// key, if set, is sent as the bearer key of every request that has none
	// (the admin key acts for any customer named in the body).
	key string
}

func start(t *testing.T, cfg app.Config) *harness {
	t.Helper()
	a, err := app.Start(rydestest.Context(t), cfg)
	require.NoError(t, err)
	h := &harness{t: t, app: a, val: apitest.NewValidator(t, apitest.SpecPath(t))}
	t.Cleanup(func() { h.stop() })
	return h
}

func (h *harness) stop() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(h.t, h.app.Shutdown(ctx))
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), "body: %s", r.body)
}

func (h *harness) do(method, path, contentType string, body []byte) response {
	h.t.Helper()
	req, err := http.NewRequestWithContext(rydestest.Context(h.t), method, h.app.URL()+path, bytes.NewReader(body))
	require.NoError(h.t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if h.key != "" {
		req.Header.Set("Authorization", "Bearer "+h.key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	req.Body = io.NopCloser(bytes.NewReader(body))
	h.val.Check(h.t, req, body, resp, respBody)
	return response{status: resp.StatusCode, header: resp.Header, body: respBody}
}

func (h *harness) post(path, body string) response {
	return h.do(http.MethodPost, path, "application/json", []byte(body))
}

func (h *harness) get(path string) response { return h.do(http.MethodGet, path, "", nil) }

func (h *harness) rfq(id string) rydes.RFQ {
	h.t.Helper()
	r := h.get("/v1/rfqs/" + id)
	require.Equal(h.t, http.StatusOK, r.status, "body: %s", r.body)
	var rfq rydes.RFQ
	r.json(h.t, &rfq)
	return rfq
}

func (h *harness) waitStatus(id string, want rydes.Status) rydes.RFQ {
	h.t.Helper()
	var rfq rydes.RFQ
	rydestest.WaitFor(h.t, "RFQ "+id+" to be "+string(want), func() bool {
		rfq = h.rfq(id)
		require.True(h.t, rfq.Status == rydes.StatusOpen || rfq.Status == want, "status %s, want %s", rfq.Status, want)
		return rfq.Status == want
	})
	return rfq
}

func (h *harness) create(body string) rydes.RFQ {
	h.t.Helper()
	r := h.post("/v1/rfqs", body)
	require.Equal(h.t, http.StatusCreated, r.status, "body: %s", r.body)
	var rfq rydes.RFQ
	r.json(h.t, &rfq)
	require.Equal(h.t, "/v1/rfqs/"+rfq.ID, r.header.Get("Location"))
	return rfq
}

// events reads the RFQ's events from the broker, in order, until the final
// one, and checks they are numbered from 1 without gap or repeat.
func (h *harness) events(id string) []rydes.Event {
	h.t.Helper()
	ctx := rydestest.Context(h.t)
	cons, err := h.app.Bus().JetStream().OrderedConsumer(ctx, bus.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.EventSubjectPrefix + id + ".>"},
	})
	require.NoError(h.t, err)
	var evs []rydes.Event
	for len(evs) == 0 || !evs[len(evs)-1].Type.Final() {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		require.NoError(h.t, err, "events so far: %v", evs)
		got, err := bus.DecodeEvents(msg)
		require.NoError(h.t, err)
		for _, ev := range got {
			require.Equal(h.t, int64(len(evs)+1), ev.Seq, "events numbered from 1 without gap or repeat")
			evs = append(evs, ev)
		}
	}
	info, err := cons.Info(ctx)
	require.NoError(h.t, err)
	require.Zero(h.t, info.NumPending, "nothing follows the final event")
	return evs
}

func countEvents(evs []rydes.Event) map[rydes.EventType]int {
	n := map[rydes.EventType]int{}
	for _, e := range evs {
		n[e.Type]++
	}
	return n
}

func TestHealthz(t *testing.T) {
	h := start(t, config(t, t.TempDir(), fleet(1, 1, false)))
	r := h.get("/healthz")
	require.Equal(t, http.StatusOK, r.status)
}

// TestWorkshopFlow is the workshop's own walkthrough: the seed routes with
// event.json, every provider quoting.
func TestWorkshopFlow(t *testing.T) {
	h := start(t, config(t, t.TempDir(), fleet(10, 1, false)))
	event, err := os.ReadFile(filepath.Join(filepath.Dir(apitest.SpecPath(t)), "..", "..", "shared", "seed", "event.json"))
	if err != nil {
		event = []byte(`{"from": "Frankfurt", "to": "Las Vegas", "customer": "cmr"}`)
	}
	r := h.post("/submit-instant-ride-rfq", string(event))
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	var created map[string]string
	r.json(t, &created)
	require.Len(t, created, 1, "the reference answers exactly {\"rfq-id\": ...}")
	id := created["rfq-id"]
	require.NoError(t, rydes.ValidateID(id))

	rfq := h.waitStatus(id, rydes.StatusComplete)
	require.Len(t, rfq.Providers, 10)
	require.Len(t, rfq.Quotes, 10)
	for _, p := range rfq.Providers {
		require.Equal(t, rydes.ProviderQuoted, p.State)
	}
	require.Equal(t, sim.Names(10), rfq.Asked(), "asked in the workshop's order")
	evs := h.events(id)
	require.Equal(t, map[rydes.EventType]int{rydes.EventCreated: 1, rydes.EventQuote: 10, rydes.EventComplete: 1}, countEvents(evs))
	require.Equal(t, rydes.EventCreated, evs[0].Type)

	r = h.get("/query-instant-ride-rfq/" + id)
	require.Equal(t, http.StatusOK, r.status)
	var seed struct {
		Quotes []map[string]string `json:"quotes"`
		RFQID  string              `json:"rfq-id"`
		From   string              `json:"from"`
		To     string              `json:"to"`
		Cust   string              `json:"customer"`
	}
	r.json(t, &seed)
	var raw map[string]json.RawMessage
	r.json(t, &raw)
	require.Len(t, raw, 5, "exactly the reference's keys: %s", r.body)
	require.Equal(t, id, seed.RFQID)
	require.Equal(t, "Frankfurt", seed.From)
	require.Equal(t, "Las Vegas", seed.To)
	require.Equal(t, "cmr", seed.Cust)
	require.Len(t, seed.Quotes, 10)
	for i, q := range seed.Quotes {
		require.Len(t, q, 2)
		require.True(t, strings.HasPrefix(q["responder"], sim.NamePrefix))
		require.Equal(t, rfq.Quotes[i].Price.Amount, q["quote"], "best price first, as a string")
	}
}

func TestV1FlowWithDeclinesCompletes(t *testing.T) {
	h := start(t, config(t, t.TempDir(), fleet(4, 0, false)))
	rfq := h.create(`{"customer":"cmr","from":"Frankfurt","to":"Las Vegas","passengers":2,"attributes":{"class":"gold"},"timeout":"1m"}`)
	require.Equal(t, rydes.StatusOpen, rfq.Status)
	require.Equal(t, 2, rfq.Passengers)
	require.Equal(t, rfq.CreatedAt.Add(time.Minute), rfq.Deadline)
	got := h.waitStatus(rfq.ID, rydes.StatusComplete)
	require.Empty(t, got.Quotes)
	for _, p := range got.Providers {
		require.Equal(t, rydes.ProviderDeclined, p.State)
		require.Equal(t, "no unicorn available", p.Reason)
	}
	require.Equal(t, map[string]string{"class": "gold"}, got.Attributes)
}

func TestSilentProvidersExpire(t *testing.T) {
	h := start(t, config(t, t.TempDir(), fleet(3, 0, true)))
	rfq := h.create(`{"customer":"cmr","from":"A","to":"B","timeout":"1s"}`)
	got := h.waitStatus(rfq.ID, rydes.StatusExpired)
	for _, p := range got.Providers {
		require.Equal(t, rydes.ProviderTimedOut, p.State)
	}
	require.Equal(t, map[rydes.EventType]int{rydes.EventCreated: 1, rydes.EventProviderTimedOut: 3, rydes.EventExpired: 1}, countEvents(h.events(rfq.ID)))
	require.False(t, got.ClosedAt.Before(got.Deadline), "expired no earlier than its deadline")
}

func TestCancel(t *testing.T) {
	s := fleet(2, 1, false)
	s.MinDelay, s.MaxDelay = time.Hour, time.Hour // nobody answers during the test
	h := start(t, config(t, t.TempDir(), s))
	rfq := h.create(`{"customer":"cmr","from":"A","to":"B"}`)

	r := h.do(http.MethodDelete, "/v1/rfqs/"+rfq.ID, "", nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	var got rydes.RFQ
	r.json(t, &got)
	require.Equal(t, rydes.StatusCancelled, got.Status)
	require.Equal(t, rydes.StatusCancelled, h.rfq(rfq.ID).Status)
	require.NotEmpty(t, got.Providers)
	for _, p := range got.Providers {
		require.Equal(t, rydes.ProviderWithdrawn, p.State, "nobody answered: every provider is withdrawn")
	}
	require.Equal(t, map[rydes.EventType]int{rydes.EventCreated: 1, rydes.EventProviderWithdrawn: len(got.Providers), rydes.EventCancelled: 1}, countEvents(h.events(rfq.ID)))

	r = h.do(http.MethodDelete, "/v1/rfqs/"+rfq.ID, "", nil)
	require.Equal(t, http.StatusConflict, r.status)
}

// TestBadInputChangesNothing sends every kind of bad input and checks each
// gets a clear problem naming the field, and that no RFQ came of any.
func TestBadInputChangesNothing(t *testing.T) {
	h := start(t, config(t, t.TempDir(), fleet(2, 1, false)))
	long := strings.Repeat("x", 300)
	cases := []struct {
		name, method, path, contentType, body string
		status                                int
		field                                 string
	}{
		{"missing from", "POST", "/v1/rfqs", "application/json", `{"customer":"c","to":"B"}`, 400, "from"},
		{"empty to", "POST", "/v1/rfqs", "application/json", `{"customer":"c","from":"A","to":""}`, 400, "to"},
		{"blank customer", "POST", "/v1/rfqs", "application/json", `{"customer":"  ","from":"A","to":"B"}`, 400, "customer"},
		{"wrong type", "POST", "/v1/rfqs", "application/json", `{"customer":"c","from":"A","to":"B","passengers":"two"}`, 400, "passengers"},
		{"unknown field", "POST", "/v1/rfqs", "application/json", `{"customer":"c","from":"A","to":"B","colour":"pink"}`, 400, "colour"},
		{"too long", "POST", "/v1/rfqs", "application/json", `{"customer":"c","from":"` + long + `","to":"B"}`, 400, "from"},
		{"timeout too long", "POST", "/v1/rfqs", "application/json", `{"customer":"c","from":"A","to":"B","timeout":"11m"}`, 400, "timeout"},
		{"timeout too short", "POST", "/v1/rfqs", "application/json", `{"customer":"c","from":"A","to":"B","timeout":"10ms"}`, 400, "timeout"},
		{"timeout not a duration", "POST", "/v1/rfqs", "application/json", `{"customer":"c","from":"A","to":"B","timeout":"soon"}`, 400, "timeout"},
		{"not json", "POST", "/v1/rfqs", "application/json", `{"customer":`, 400, ""},
		{"two values", "POST", "/v1/rfqs", "application/json", `{"customer":"c","from":"A","to":"B"} {}`, 400, ""},
		{"oversized body", "POST", "/v1/rfqs", "application/json", `{"customer":"` + strings.Repeat("y", 70<<10) + `"}`, 413, ""},
		{"not json content type", "POST", "/v1/rfqs", "text/plain", `{"customer":"c","from":"A","to":"B"}`, 415, ""},
		{"seed missing customer", "POST", "/submit-instant-ride-rfq", "application/json", `{"from":"A","to":"B"}`, 400, "customer"},
		{"seed unknown field", "POST", "/submit-instant-ride-rfq", "application/json", `{"from":"A","to":"B","customer":"c","x":1}`, 400, "x"},
		{"malformed id", "GET", "/v1/rfqs/not-a-uuid", "", "", 400, "id"},
		{"malformed id on cancel", "DELETE", "/v1/rfqs/12345", "", "", 400, "id"},
		{"malformed seed id", "GET", "/query-instant-ride-rfq/xyz", "", "", 400, "id"},
		{"unknown id", "GET", "/v1/rfqs/" + rydes.NewID(), "", "", 404, ""},
		{"unknown route", "GET", "/v2/everything", "", "", 404, ""},
		{"wrong method", "PUT", "/v1/rfqs", "application/json", `{}`, 405, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(tc.method, tc.path, tc.contentType, []byte(tc.body))
			require.Equal(t, tc.status, r.status, "body: %s", r.body)
			require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
			var p struct {
				Status int    `json:"status"`
				Title  string `json:"title"`
				Detail string `json:"detail"`
				Errors []struct {
					Field  string `json:"field"`
					Reason string `json:"reason"`
				} `json:"errors"`
			}
			r.json(t, &p)
			require.Equal(t, tc.status, p.Status)
			require.NotEmpty(t, p.Title)
			if tc.field != "" {
				require.NotEmpty(t, p.Errors, "body: %s", r.body)
				require.Equal(t, tc.field, p.Errors[0].Field)
				require.NotEmpty(t, p.Errors[0].Reason)
			}
		})
	}
	_, open, err := h.app.Store().NextDeadline(rydestest.Context(t))
	require.NoError(t, err)
	require.False(t, open, "no bad input created an RFQ")
}

// TestRestartKeepsOpenRequests stops rydes while providers hold open
// requests unanswered and starts it again on the same data dir: the requests
// are redelivered and complete, or expire at their deadline when the
// providers stay silent.
func TestRestartKeepsOpenRequests(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout string
		after   sim.Config
		want    rydes.Status
	}{
		{"completes", "1m", fleet(3, 1, false), rydes.StatusComplete},
		{"expires", "3s", fleet(3, 0, true), rydes.StatusExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			slow := fleet(3, 1, false)
			slow.MinDelay, slow.MaxDelay = time.Hour, time.Hour
			h := start(t, config(t, dir, slow))
			rfq := h.create(`{"customer":"cmr","from":"A","to":"B","timeout":"` + tc.timeout + `"}`)
			// The providers have the request in hand, unacknowledged, when
			// rydes stops.
			rydestest.WaitFor(t, "the dispatches to be delivered", func() bool {
				for _, p := range sim.Names(3) {
					_, ackPending, err := h.app.Bus().QueueDepth(rydestest.Context(t), p)
					require.NoError(t, err)
					if ackPending != 1 {
						return false
					}
				}
				return true
			})
			h.stop()

			h2 := start(t, config(t, dir, tc.after))
			got := h2.waitStatus(rfq.ID, tc.want)
			require.Equal(t, rfq.Deadline, got.Deadline)
			require.Equal(t, 1, countEvents(h2.events(rfq.ID))[rydes.EventType(tc.want)], "one final event across the restart")
			if tc.want == rydes.StatusComplete {
				require.Len(t, got.Quotes, 3)
			} else {
				for _, p := range got.Providers {
					require.Equal(t, rydes.ProviderTimedOut, p.State)
				}
			}
		})
	}
}

// TestOutboxPublishesWhatACrashLeft commits an RFQ the way CreateRFQ does but
// never publishes it, as if the process died between commit and publish; the
// next start scatters it and it completes.
func TestOutboxPublishesWhatACrashLeft(t *testing.T) {
	dir := t.TempDir()
	h := start(t, config(t, dir, fleet(3, 1, false)))
	h.stop() // the first run registered the providers and made their queues

	ctx := rydestest.Context(t)
	st, err := sqlite.Open(ctx, filepath.Join(dir, "rydes.db"), rydestest.Logger(t))
	require.NoError(t, err)
	rfq, err := rydes.NewRFQ(rydes.NewID(), rydes.RFQRequest{Customer: "cmr", From: "A", To: "B"}, sim.Names(3), time.Now(), rydes.Limits{DefaultTimeout: time.Minute, MaxTimeout: time.Hour})
	require.NoError(t, err)
	require.NoError(t, st.CreateRFQ(ctx, store.CreateRFQParams{RFQ: rfq}))
	pending, err := st.PendingOutbox(ctx, store.PendingOutboxParams{})
	require.NoError(t, err)
	require.Len(t, pending, 2, "the dispatches to three providers and the created event, never published")
	require.NoError(t, st.Close())

	h2 := start(t, config(t, dir, fleet(3, 1, false)))
	got := h2.waitStatus(rfq.ID, rydes.StatusComplete)
	require.Len(t, got.Quotes, 3)
	require.Equal(t, map[rydes.EventType]int{rydes.EventCreated: 1, rydes.EventQuote: 3, rydes.EventComplete: 1}, countEvents(h2.events(rfq.ID)))
}

// The bounds of the broker's streams are rydes's configuration, applied at
// start.
func TestStreamLimits(t *testing.T) {
	cfg := config(t, t.TempDir(), fleet(1, 1, false))
	cfg.DispatchLimits = bus.StreamLimits{MaxMsgs: 5000}
	cfg.EventsLimits = bus.StreamLimits{MaxMsgs: 1_000_000, MaxBytes: 256 << 20, MaxAge: 3 * time.Hour}
	h := start(t, cfg)
	ctx := rydestest.Context(t)
	got := map[string][3]int64{}
	for _, name := range []string{bus.DispatchStream, bus.EventsStream} {
		s, err := h.app.Bus().JetStream().Stream(ctx, name)
		require.NoError(t, err)
		c := s.CachedInfo().Config
		got[name] = [3]int64{c.MaxMsgs, c.MaxBytes, int64(c.MaxAge)}
	}
	require.Equal(t, map[string][3]int64{
		bus.DispatchStream: {5000, bus.DefaultDispatchMaxBytes, int64(bus.MaxAge)},
		bus.EventsStream:   {1_000_000, 256 << 20, int64(3 * time.Hour)},
	}, got)

	// Events kept less long than a request may stay open: refused.
	bad := config(t, t.TempDir(), fleet(1, 1, false))
	bad.EventsLimits.MaxAge = bad.RFQMaxTimeout - time.Second
	_, err := app.Start(ctx, bad)
	require.ErrorContains(t, err, "shorter than the longest request timeout")
}

// TestStartFinishesAHalfDoneProviderDelete: a provider delete withdraws the
// provider from its open requests a chunk at a time, after deleting it; if
// rydes stopped in between, the next start withdraws it from the rest, and
// those requests complete with the providers that remain.
func TestStartFinishesAHalfDoneProviderDelete(t *testing.T) {
	dir := t.TempDir()
	h := start(t, config(t, dir, fleet(3, 1, false)))
	h.stop()

	ctx := rydestest.Context(t)
	path := filepath.Join(dir, "rydes.db")
	st, err := sqlite.Open(ctx, path, rydestest.Logger(t))
	require.NoError(t, err)
	_, err = st.CreateProvider(ctx, store.CreateProviderParams{Provider: rydes.Provider{
		ID: "gone", Name: "Gone", Kind: rydes.ProviderKindNATS, Status: rydes.ProviderActive,
	}, Now: time.Now()})
	require.NoError(t, err)
	rfq, err := rydes.NewRFQ(rydes.NewID(), rydes.RFQRequest{Customer: "cmr", From: "A", To: "B"}, append(sim.Names(3), "gone"), time.Now(), rydes.Limits{DefaultTimeout: time.Hour, MaxTimeout: time.Hour})
	require.NoError(t, err)
	require.NoError(t, st.CreateRFQ(ctx, store.CreateRFQParams{RFQ: rfq}))
	require.NoError(t, st.Close())
	// The delete's first transaction, and nothing after.
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `DELETE FROM providers WHERE id = 'gone'`)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	h2 := start(t, config(t, dir, fleet(3, 1, false)))
	got := h2.waitStatus(rfq.ID, rydes.StatusComplete)
	require.Len(t, got.Quotes, 3)
	require.Equal(t, rydes.ProviderWithdrawn, got.Providers[3].State)
	require.Equal(t, 1, countEvents(h2.events(rfq.ID))[rydes.EventProviderWithdrawn])
}
