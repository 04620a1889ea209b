package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/client"
	"github.com/wildrydes/rydes/provider"
)

// benchAttribute is the request attribute that routes a run's requests to
// its own providers: each bench provider's filter asks for it.
const benchAttribute = "bench"

// providerConcurrency is how many requests a bench provider handles at
// once: enough for a thousand requests a second with answers a few
// hundred milliseconds late.
const providerConcurrency = 512

// fleet is the bench's providers: registered through the admin API, each
// with its own credentials, and (unless silent) consuming its queue with
// the provider SDK over its own NATS connection.
type fleet struct {
	admin  *client.Client
	ids    []string
	conns  []*nats.Conn
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   atomic.Int64
	log    *slog.Logger

	mu       sync.Mutex
	firstErr error
}

// fleetConfig says what providers to start.
type fleetConfig struct {
	admin   *client.Client
	natsURL string
	run     string // the run's id, in the providers' ids and filter
	count   int
	delay   time.Duration // each answer waits this long
	silent  bool          // take requests, answer none: they stay open
	tracker *tracker
	logger  *slog.Logger
}

// startFleet registers cfg.count providers and, unless silent, runs them.
// Stop it with stop, which also removes them.
func startFleet(ctx context.Context, cfg fleetConfig) (_ *fleet, err error) {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f := &fleet{admin: cfg.admin, cancel: cancel, log: cfg.logger}
	defer func() {
		if err != nil {
			f.stop(context.WithoutCancel(ctx))
		}
	}()
	for i := range cfg.count {
		id := "bench-" + cfg.run + "-" + strconv.Itoa(i+1)
		_, creds, err := cfg.admin.CreateProvider(ctx, client.CreateProviderRequest{
			ID: id, Name: "rydes bench provider " + strconv.Itoa(i+1), Kind: rydes.ProviderKindNATS,
			Filter: rydes.Filter{Attributes: map[string][]string{benchAttribute: {cfg.run}}},
		})
		if err != nil {
			return nil, fmt.Errorf("register bench provider %s: %w", id, err)
		}
		f.ids = append(f.ids, id)
		nc, err := provider.Connect(cfg.natsURL, id, creds.NATSPassword)
		if err != nil {
			return nil, fmt.Errorf("bench provider %s: %w", id, err)
		}
		f.conns = append(f.conns, nc)
		p, err := provider.New(provider.Config{Conn: nc, ID: id, Concurrency: providerConcurrency, Logger: cfg.logger})
		if err != nil {
			return nil, fmt.Errorf("bench provider %s: %w", id, err)
		}
		h := answerer(id, cfg.delay, cfg.tracker)
		if cfg.silent {
			h = func(context.Context, rydes.ProviderRequest) (provider.Reply, error) { return provider.Silent(), nil }
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			if err := p.Run(runCtx, h); err != nil {
				f.fail(fmt.Errorf("bench provider %s: %w", id, err))
			}
		}()
	}
	return f, nil
}

// answerer returns the handler of provider id: a quote after delay, its
// time recorded for answer→staged.
func answerer(id string, delay time.Duration, tr *tracker) provider.Handler {
	price := rydes.Price{Amount: "42", Currency: "USD"}
	return func(ctx context.Context, req rydes.ProviderRequest) (provider.Reply, error) {
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return provider.Reply{}, ctx.Err()
			case <-t.C:
			}
		}
		// The SDK publishes the answer as soon as this returns.
		tr.answered(req.RFQID, id, time.Now())
		return provider.Quote(price, provider.WithETA(5*time.Minute)), nil
	}
}

func (f *fleet) fail(err error) {
	f.errs.Add(1)
	f.mu.Lock()
	if f.firstErr == nil {
		f.firstErr = err
	}
	f.mu.Unlock()
	f.log.Error("bench provider stopped", "err", err)
}

// err returns the first error of a provider, if one stopped.
func (f *fleet) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.firstErr
}

// stop stops the providers and removes them from rydes.
func (f *fleet) stop(ctx context.Context) error {
	f.cancel()
	f.wg.Wait()
	for _, nc := range f.conns {
		nc.Close()
	}
	var errs []error
	for _, id := range f.ids {
		if err := f.admin.DeleteProvider(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("remove bench provider %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}
