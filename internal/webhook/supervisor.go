package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/wildrydes/rydes"
)

// Supervisor runs one Dispatcher per registered webhook provider, active or
// paused (a paused provider is asked for nothing new, but what it was asked
// before is still delivered), and follows the registry: Reconcile starts
// the dispatchers of new webhook providers and stops those of removed ones.
// Its dispatchers share one HTTP client, so connections are reused.
//
// A dispatcher reads its provider's URL and signing secret before every
// delivery attempt, so a changed URL or a rotated secret needs no restart.
type Supervisor struct {
	cfg Config
	err error // a configuration error, returned by Run and Reconcile
	dl  *deliverer
	log *slog.Logger

	// reconcileMu serialises reconciliations, so that an older list of
	// providers is never applied after a newer one.
	reconcileMu sync.Mutex

	mu      sync.Mutex
	runCtx  context.Context // Run's, nil before Run
	stopped bool            // Run returned
	running map[string]*runner
	wg      sync.WaitGroup // the dispatchers' goroutines
}

// runner is one running dispatcher.
type runner struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the dispatcher stopped
}

// NewSupervisor returns a Supervisor for cfg. A configuration error is
// returned by Run.
func NewSupervisor(cfg Config) *Supervisor {
	cfg, err := cfg.withDefaults()
	s := &Supervisor{cfg: cfg, err: err, running: map[string]*runner{}}
	if err == nil {
		s.dl = newDeliverer(cfg)
		s.log = s.dl.log
	}
	return s
}

// Run runs the dispatchers until ctx is done, then stops them gracefully
// and returns nil once they stopped: attempts in flight finish, and
// deliveries that need another attempt go back to their queue for the next
// instance. It reconciles at start and then every Config.ResyncInterval
// (retrying after Config.RestartDelay when reconciling failed). It returns
// an error if cfg is invalid or Run was called before.
func (s *Supervisor) Run(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
	s.mu.Lock()
	if s.runCtx != nil {
		s.mu.Unlock()
		return errors.New("webhook supervisor: Run called twice")
	}
	s.runCtx = ctx
	s.mu.Unlock()
	defer s.stopAll()

	for {
		next := s.cfg.ResyncInterval
		if err := s.Reconcile(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn("reconcile webhook dispatchers; retrying", "retry_in", s.cfg.RestartDelay, "err", err)
			next = s.cfg.RestartDelay
		}
		if next < 0 {
			<-ctx.Done()
			return nil
		}
		timer := s.cfg.Clock.NewTimer(next)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.Chan():
		}
	}
}

// Reconcile makes the running dispatchers match the registry: one per
// webhook provider. Call it whenever the registry changed; it is safe to
// call concurrently and repeatedly, and before Run (it does nothing then:
// Run reconciles when it starts). It does not wait for removed dispatchers
// to stop.
func (s *Supervisor) Reconcile(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
	s.reconcileMu.Lock()
	defer s.reconcileMu.Unlock()
	if !s.active() {
		return nil
	}
	ps, err := s.cfg.Providers.List(ctx)
	if err != nil {
		return fmt.Errorf("webhook supervisor: reconcile: %w", err)
	}
	want := map[string]bool{}
	for _, p := range ps {
		if p.Kind == rydes.ProviderKindWebhook {
			want[p.ID] = true
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	for id, r := range s.running {
		if !want[id] {
			r.cancel()
			delete(s.running, id)
			s.log.Info("webhook dispatcher stopping: provider removed", "provider", id)
		}
	}
	for id := range want {
		if _, ok := s.running[id]; ok {
			continue
		}
		if err := s.start(id); err != nil {
			// Only an id the registry would not have taken gets here;
			// trying again would not help.
			s.log.Error("webhook dispatcher not started", "provider", id, "err", err)
		}
	}
	return nil
}

// Running returns the ids of the providers that have a dispatcher, in
// order.
func (s *Supervisor) Running() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.running))
	for id := range s.running {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, rydes.CompareProviderIDs)
	return ids
}

func (s *Supervisor) active() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runCtx != nil && !s.stopped
}

// start starts the dispatcher of provider id. s.mu is held.
func (s *Supervisor) start(id string) error {
	d, err := newDispatcher(s.dl, id)
	if err != nil {
		return fmt.Errorf("webhook supervisor: %w", err)
	}
	ctx, cancel := context.WithCancel(s.runCtx)
	r := &runner{cancel: cancel, done: make(chan struct{})}
	s.running[id] = r
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(r.done)
		defer cancel()
		s.runDispatcher(ctx, d)
	}()
	s.log.Info("webhook dispatcher started", "provider", id)
	return nil
}

// runDispatcher runs d until ctx is done, restarting it after
// Config.RestartDelay when it stops on its own (its queue does not exist
// yet, or was deleted ahead of the next reconcile).
func (s *Supervisor) runDispatcher(ctx context.Context, d *Dispatcher) {
	for {
		err := d.Run(ctx)
		if ctx.Err() != nil {
			if err != nil {
				s.log.Warn("webhook dispatcher stopped", "provider", d.ProviderID(), "err", err)
			}
			return
		}
		s.log.Warn("webhook dispatcher stopped on its own; restarting", "provider", d.ProviderID(), "restart_in", s.cfg.RestartDelay, "err", err)
		timer := s.cfg.Clock.NewTimer(s.cfg.RestartDelay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.Chan():
		}
	}
}

// stopAll stops every dispatcher and waits until they stopped.
func (s *Supervisor) stopAll() {
	s.mu.Lock()
	s.stopped = true
	for id, r := range s.running {
		r.cancel()
		delete(s.running, id)
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.log.Info("webhook dispatchers stopped")
}
