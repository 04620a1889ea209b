package webhook

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/rydestest"
)

// runSupervisor runs s until the returned stop is called or the test ends;
// stop returns Run's error.
func runSupervisor(t *testing.T, s *Supervisor) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(rydestest.WaitTimeout):
				t.Errorf("Run did not return after its context was cancelled")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func waitRunning(t *testing.T, s *Supervisor, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	rydestest.WaitFor(t, "dispatchers to run", func() bool {
		got := s.Running()
		if len(got) != len(want) {
			return false
		}
		for i := range got {
			if got[i] != want[i] {
				return false
			}
		}
		return true
	})
}

func TestSupervisorFollowsTheRegistry(t *testing.T) {
	h := newHarness(t)
	hk := newHook(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ delivery) { reply(w, http.StatusOK, quoteBody) })
	h.addProvider(t, "w1", hk.URL)
	h.addProvider(t, "w2", hk.URL)
	h.providers.mu.Lock()
	w2 := h.providers.ps["w2"]
	w2.Status = rydes.ProviderPaused
	h.providers.ps["w2"] = w2
	h.providers.ps["n1"] = rydes.Provider{ID: "n1", Kind: rydes.ProviderKindNATS, Status: rydes.ProviderActive}
	h.providers.ps["s1"] = rydes.Provider{ID: "s1", Kind: rydes.ProviderKindSimulated, Status: rydes.ProviderActive}
	h.providers.mu.Unlock()

	s := NewSupervisor(h.config(t))
	require.NoError(t, s.Reconcile(t.Context()), "reconciling before Run is harmless")
	require.Empty(t, s.Running())
	stop := runSupervisor(t, s)
	waitRunning(t, s, "w1", "w2")

	// A paused provider still gets what it was asked.
	req := h.dispatch(t, "w2", inAnHour())
	require.Equal(t, req.RFQID, h.nextAnswer(t).Answer.RFQID)

	// Added: started by the next reconcile.
	h.addProvider(t, "w3", hk.URL)
	require.NoError(t, s.Reconcile(t.Context()))
	require.Equal(t, []string{"w1", "w2", "w3"}, s.Running())
	req = h.dispatch(t, "w3", inAnHour())
	require.Equal(t, req.RFQID, h.nextAnswer(t).Answer.RFQID)

	// Concurrent and repeated reconciles start nothing twice.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { require.NoError(t, s.Reconcile(t.Context())) })
	}
	wg.Wait()
	require.Equal(t, []string{"w1", "w2", "w3"}, s.Running())

	// Removed: stopped by the next reconcile.
	s.mu.Lock()
	r := s.running["w3"]
	s.mu.Unlock()
	h.providers.remove("w3")
	require.NoError(t, s.Reconcile(t.Context()))
	require.Equal(t, []string{"w1", "w2"}, s.Running())
	select {
	case <-r.done:
	case <-time.After(rydestest.WaitTimeout):
		t.Fatal("the removed provider's dispatcher did not stop")
	}
	h.dispatch(t, "w3", inAnHour())
	// JetStream counts a stored message on the consumer a moment after the
	// PubAck, so wait for the count rather than read it once.
	var ackPending int
	rydestest.WaitFor(t, "the dispatch to be counted on w3's queue", func() bool {
		var pending int
		var err error
		pending, ackPending, err = h.bus.QueueDepth(t.Context(), "w3")
		require.NoError(t, err)
		return pending == 1
	})
	require.Zero(t, ackPending, "nobody consumes the removed provider's queue")

	// Stopping stops every dispatcher.
	require.NoError(t, stop())
	require.Empty(t, s.Running())
	require.NoError(t, s.Reconcile(t.Context()), "reconciling after Run is harmless")
	require.Empty(t, s.Running())
	require.Len(t, hk.deliveries(), 2)
}

func TestSupervisorResyncsOnItsOwn(t *testing.T) {
	h := newHarness(t)
	hk := newHook(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ delivery) { reply(w, http.StatusOK, quoteBody) })
	h.addProvider(t, "w1", hk.URL)
	clock := clockwork.NewFakeClock()
	cfg := h.config(t)
	cfg.Clock = clock
	s := NewSupervisor(cfg)
	runSupervisor(t, s)
	waitRunning(t, s, "w1")

	// Another instance adds a provider; this one hears nothing of it.
	h.addProvider(t, "w2", hk.URL)
	require.NoError(t, clock.BlockUntilContext(rydestest.Context(t), 1))
	clock.Advance(DefaultResyncInterval)
	waitRunning(t, s, "w1", "w2")

	// Reconciling fails: retried after RestartDelay.
	h.providers.mu.Lock()
	h.providers.listErr = errors.New("database on fire")
	h.providers.mu.Unlock()
	h.providers.remove("w1")
	require.NoError(t, clock.BlockUntilContext(rydestest.Context(t), 1))
	clock.Advance(DefaultResyncInterval)
	require.NoError(t, clock.BlockUntilContext(rydestest.Context(t), 1))
	require.Equal(t, []string{"w1", "w2"}, s.Running(), "a failed reconcile changes nothing")
	h.providers.mu.Lock()
	h.providers.listErr = nil
	h.providers.mu.Unlock()
	clock.Advance(DefaultRestartDelay)
	waitRunning(t, s, "w2")
}

func TestSupervisorRestartsADispatcherThatStopped(t *testing.T) {
	h := newHarness(t)
	hk := newHook(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ delivery) { reply(w, http.StatusOK, quoteBody) })
	// Registered, but its queue does not exist yet.
	h.providers.put(rydes.Provider{ID: "early", Kind: rydes.ProviderKindWebhook, Status: rydes.ProviderActive, WebhookURL: hk.URL}, "whsec_c2VjcmV0")
	clock := clockwork.NewFakeClock()
	cfg := h.config(t)
	cfg.Clock = clock
	cfg.ResyncInterval = -1
	s := NewSupervisor(cfg)
	runSupervisor(t, s)
	waitRunning(t, s, "early")

	require.NoError(t, clock.BlockUntilContext(rydestest.Context(t), 1), "the dispatcher waits to restart")
	require.NoError(t, h.bus.EnsureProviderQueue(t.Context(), "early"))
	clock.Advance(DefaultRestartDelay)
	req := h.dispatch(t, "early", inAnHour())
	require.Equal(t, req.RFQID, h.nextAnswer(t).Answer.RFQID)
}

func TestSupervisorConfig(t *testing.T) {
	s := NewSupervisor(Config{})
	require.Error(t, s.Run(t.Context()))
	require.Error(t, s.Reconcile(t.Context()))

	h := newHarness(t)
	for name, mutate := range map[string]func(*Config){
		"negative attempts":    func(c *Config) { c.MaxAttempts = -1 },
		"negative timeout":     func(c *Config) { c.AttemptTimeout = -time.Second },
		"max below initial":    func(c *Config) { c.InitialBackoff, c.MaxBackoff = time.Minute, time.Second },
		"negative concurrency": func(c *Config) { c.Concurrency = -1 },
		"negative body size":   func(c *Config) { c.MaxResponseSize = -1 },
	} {
		cfg := h.config(t)
		mutate(&cfg)
		require.Error(t, NewSupervisor(cfg).Run(t.Context()), name)
		_, err := NewDispatcher(cfg, "p1")
		require.Error(t, err, name)
	}
	_, err := NewDispatcher(h.config(t), "not.an.id")
	require.Error(t, err)

	s = NewSupervisor(h.config(t))
	stop := runSupervisor(t, s)
	rydestest.WaitFor(t, "Run to start", s.active)
	require.Error(t, s.Run(t.Context()), "Run twice")
	require.NoError(t, stop())
}
