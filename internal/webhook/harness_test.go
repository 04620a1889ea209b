package webhook

import (
	"cmp"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/auth"
	"github.com/wildrydes/rydes/internal/bus"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
)

// fakeProviders is the registry, in memory.
type fakeProviders struct {
	mu      sync.Mutex
	ps      map[string]rydes.Provider
	secrets map[string]string
	paused  []pauseCall
	listErr error
}

type pauseCall struct{ id, reason string }

func newFakeProviders() *fakeProviders {
	return &fakeProviders{ps: map[string]rydes.Provider{}, secrets: map[string]string{}}
}

func (f *fakeProviders) List(context.Context) ([]rydes.Provider, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.listErr != nil {
		return nil, f.listErr
	}
	ps := make([]rydes.Provider, 0, len(f.ps))
	for _, p := range f.ps {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b rydes.Provider) int { return cmp.Compare(a.ID, b.ID) })
	return ps, nil
}

func (f *fakeProviders) Get(_ context.Context, id string) (rydes.Provider, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.ps[id]
	if !ok {
		return rydes.Provider{}, rydes.Errorf(rydes.ENOTFOUND, "provider %s not found", id)
	}
	return p, nil
}

func (f *fakeProviders) WebhookSecret(_ context.Context, id string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.secrets[id]
	if !ok {
		return "", rydes.Errorf(rydes.ENOTFOUND, "provider %s not found", id)
	}
	return s, nil
}

func (f *fakeProviders) PauseForGone(_ context.Context, id, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused = append(f.paused, pauseCall{id, reason})
	p := f.ps[id]
	p.Status, p.PausedReason = rydes.ProviderPaused, reason
	f.ps[id] = p
	return nil
}

// put registers p with secret.
func (f *fakeProviders) put(p rydes.Provider, secret string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ps[p.ID] = p
	f.secrets[p.ID] = secret
}

func (f *fakeProviders) remove(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ps, id)
	delete(f.secrets, id)
}

func (f *fakeProviders) secret(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.secrets[id]
}

func (f *fakeProviders) pauses() []pauseCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.paused)
}

// fakeFailures records failures; failed receives one value per
// MarkProviderFailed.
type fakeFailures struct {
	mu          sync.Mutex
	deadLetters []rydes.DeadLetter
	marks       []store.MarkProviderFailedParams
	failed      chan struct{}
}

func newFakeFailures() *fakeFailures { return &fakeFailures{failed: make(chan struct{}, 100)} }

func (f *fakeFailures) AddDeadLetter(_ context.Context, d rydes.DeadLetter) (rydes.DeadLetter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d.ID = int64(len(f.deadLetters) + 1)
	f.deadLetters = append(f.deadLetters, d)
	return d, nil
}

func (f *fakeFailures) MarkProviderFailed(_ context.Context, p store.MarkProviderFailedParams) ([]rydes.Event, error) {
	f.mu.Lock()
	f.marks = append(f.marks, p)
	f.mu.Unlock()
	f.failed <- struct{}{}
	return []rydes.Event{{RFQID: p.RFQID, Seq: 2, Type: rydes.EventProviderFailed, At: p.Now, Provider: p.Provider, Reason: p.Error, Status: rydes.StatusOpen}}, nil
}

func (f *fakeFailures) recorded() ([]rydes.DeadLetter, []store.MarkProviderFailedParams) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.deadLetters), slices.Clone(f.marks)
}

// sleepClock is a fake clock that reports every timer made with NewTimer
// (the backoff between attempts) on waits, after it exists, so that a test
// can advance the clock by exactly that wait.
type sleepClock struct {
	*clockwork.FakeClock
	waits chan time.Duration
}

func (c *sleepClock) NewTimer(d time.Duration) clockwork.Timer {
	t := c.FakeClock.NewTimer(d)
	c.waits <- d
	return t
}

// harness is rydes's side of deliveries: an embedded NATS with rydes's
// streams, a gatherer collecting the answers published, fake registry and
// failure store, and a fake clock.
type harness struct {
	nc        *nats.Conn
	bus       *bus.Bus
	clock     *sleepClock
	providers *fakeProviders
	failures  *fakeFailures
	answers   chan bus.Inbound
	received  atomic.Uint64 // answers the answer service received
	onFailed  atomic.Int32
	nextID    atomic.Int64
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx := rydestest.Context(t)
	emb, err := bus.StartEmbedded(ctx, bus.EmbeddedConfig{StoreDir: t.TempDir(), Logger: rydestest.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(emb.Shutdown)
	nc, err := emb.Connect()
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	b, err := bus.New(ctx, nc, bus.Config{Logger: rydestest.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(b.Close)

	h := &harness{
		nc:  nc,
		bus: b,
		// Whole seconds, so that an HTTP-date Retry-After is an exact wait.
		clock:     &sleepClock{FakeClock: clockwork.NewFakeClockAt(time.Now().Truncate(time.Second)), waits: make(chan time.Duration, 100)},
		providers: newFakeProviders(),
		failures:  newFakeFailures(),
		answers:   make(chan bus.Inbound, 100),
	}
	gctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		defer close(done)
		err := b.ServeAnswers(gctx, func(_ context.Context, in bus.Inbound) rydes.AnswerReceipt {
			h.received.Add(1)
			h.answers <- in
			return rydes.AnswerReceipt{Outcome: rydes.OutcomeStaged, RFQStatus: rydes.StatusOpen}
		}, bus.ServeOptions{Ready: func() { close(ready) }})
		if err != nil {
			t.Errorf("serve answers: %v", err)
		}
	}()
	select {
	case <-ready:
	case <-done:
	}
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// config returns a Config on the harness; deliveries may go to loopback.
func (h *harness) config(t *testing.T) Config {
	return Config{
		Conn:                 h.nc,
		Providers:            h.providers,
		Failures:             h.failures,
		OnFailed:             func() { h.onFailed.Add(1) },
		Clock:                h.clock,
		Logger:               rydestest.Logger(t),
		AllowPrivateNetworks: true,
	}
}

// addProvider registers webhook provider id at url with a fresh secret and
// creates its queue, as the registry does, and returns the secret.
func (h *harness) addProvider(t *testing.T, id, url string) string {
	t.Helper()
	secret := auth.NewWebhookSecret()
	require.NoError(t, h.bus.EnsureProviderQueue(rydestest.Context(t), id))
	h.providers.put(rydes.Provider{ID: id, Name: id, Kind: rydes.ProviderKindWebhook, Status: rydes.ProviderActive, WebhookURL: url}, secret)
	return secret
}

// run runs a Dispatcher for provider id with cfg until stop is called or
// the test ends; stop returns Run's error.
func (h *harness) run(t *testing.T, cfg Config, id string) (stop func() error) {
	t.Helper()
	d, err := NewDispatcher(cfg, id)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(rydestest.WaitTimeout):
				t.Errorf("Run did not return after its context was cancelled")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// dispatch scatters a request with deadline to provider id the way rydes
// does, through the outbox publisher, and returns it.
func (h *harness) dispatch(t *testing.T, id string, deadline time.Time) rydes.ProviderRequest {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	req := rydes.ProviderRequest{
		RFQID: rydes.NewID(), From: "Unicorn Stables", To: "Rainbow Bridge", Passengers: 2,
		Attributes: map[string]string{"wheelchair": "yes"},
		CreatedAt:  now, Deadline: deadline.UTC().Truncate(time.Microsecond),
	}
	msg := store.OutboxMessage{ID: h.nextID.Add(1), Kind: store.OutboxDispatch, CreatedAt: now, Dispatch: &store.Dispatch{Providers: []string{id}, Request: req}}
	_, err := h.bus.Publish(rydestest.Context(t), []store.OutboxMessage{msg})
	require.NoError(t, err)
	return req
}

// inAnHour is a deadline for tests that are not about deadlines: the SDK
// ends handlers at the request's deadline by the real clock.
func inAnHour() time.Time { return time.Now().Add(time.Hour) }

// nextAnswer returns the next answer gathered from the answers stream.
func (h *harness) nextAnswer(t *testing.T) bus.Inbound {
	t.Helper()
	select {
	case in := <-h.answers:
		require.NoError(t, in.Err, "rydes must accept what the dispatcher publishes")
		return in
	case <-time.After(rydestest.WaitTimeout):
		t.Fatal("timed out waiting for an answer")
		return bus.Inbound{}
	}
}

// nextFailure waits for the next MarkProviderFailed and returns the dead
// letter and the mark recorded last.
func (h *harness) nextFailure(t *testing.T) (rydes.DeadLetter, store.MarkProviderFailedParams) {
	t.Helper()
	select {
	case <-h.failures.failed:
	case <-time.After(rydestest.WaitTimeout):
		t.Fatal("timed out waiting for a failure to be recorded")
	}
	dls, marks := h.failures.recorded()
	require.NotEmpty(t, dls, "a dead letter is kept before the provider is marked failed")
	return dls[len(dls)-1], marks[len(marks)-1]
}

// advance waits for the dispatcher to start waiting before its next
// attempt, moves the clock past that wait and returns it.
func (h *harness) advance(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-h.clock.waits:
		h.clock.Advance(d)
		return d
	case <-time.After(rydestest.WaitTimeout):
		t.Fatal("timed out waiting for the dispatcher to wait for a retry")
		return 0
	}
}

// requireNoWaits checks that no wait for a retry was started.
func (h *harness) requireNoWaits(t *testing.T) {
	t.Helper()
	select {
	case d := <-h.clock.waits:
		t.Fatalf("a retry was scheduled in %s; none should have been", d)
	default:
	}
}

// waitQueueEmpty waits until every request dispatched was acked: the
// dispatch stream is a work queue, which drops what is acked.
func (h *harness) waitQueueEmpty(t *testing.T) {
	t.Helper()
	rydestest.WaitFor(t, "every request to be acked", func() bool {
		return h.streamState(t, bus.DispatchStream).Msgs == 0
	})
}

// answersPublished counts the answers the providers' SDK sent to rydes's
// answer service.
func (h *harness) answersPublished(t *testing.T) uint64 {
	t.Helper()
	return h.received.Load()
}

func (h *harness) streamState(t *testing.T, name string) jetstream.StreamState {
	t.Helper()
	s, err := h.bus.JetStream().Stream(rydestest.Context(t), name)
	require.NoError(t, err)
	info, err := s.Info(rydestest.Context(t))
	require.NoError(t, err)
	return info.State
}

// delivery is one request a hook received.
type delivery struct {
	header http.Header
	body   []byte
}

// hook is a provider's webhook endpoint: a real loopback HTTP server that
// records what it receives and answers with respond, called with the
// 1-based number of the delivery.
type hook struct {
	*httptest.Server
	mu      sync.Mutex
	got     []delivery
	arrived chan delivery
}

func newHook(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request, d delivery)) *hook {
	t.Helper()
	h := &hook{arrived: make(chan delivery, 100)}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		d := delivery{header: r.Header.Clone(), body: body}
		h.mu.Lock()
		h.got = append(h.got, d)
		n := len(h.got)
		h.mu.Unlock()
		h.arrived <- d
		respond(n, w, r, d)
	}))
	t.Cleanup(h.Close)
	return h
}

// deliveries returns what the hook received so far.
func (h *hook) deliveries() []delivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// reply writes status with a JSON body.
func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}
