// Package sim runs rydes's simulated providers: the workshop's "unicorn"
// providers (UnicornManagementResource1..N), each a real consumer of its own
// queue answering through the real answer path with the provider SDK.
package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/provider"
)

// NamePrefix is the prefix of the simulated providers' ids, as in the
// workshop's deployment template.
const NamePrefix = "UnicornManagementResource"

// Config sets how the simulated fleet behaves.
type Config struct {
	Count     int           // number of providers
	MinDelay  time.Duration // shortest think time before answering
	MaxDelay  time.Duration // longest think time before answering
	QuoteRate float64       // chance, 0..1, that a provider quotes
	// Silent makes a provider that does not quote stay silent, as the
	// workshop's do; otherwise it declines.
	Silent   bool
	Currency string // ISO 4217 code of the quotes (default USD)
	Seed     uint64 // random seed; 0 picks one
	Logger   *slog.Logger
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Count < 0 || c.Count > 1000:
		return fmt.Errorf("sim providers %d: must be between 0 and 1000", c.Count)
	case c.MinDelay < 0 || c.MaxDelay < c.MinDelay:
		return fmt.Errorf("sim delays [%s, %s]: need 0 <= min <= max", c.MinDelay, c.MaxDelay)
	case c.QuoteRate < 0 || c.QuoteRate > 1:
		return fmt.Errorf("sim quote rate %g: must be between 0 and 1", c.QuoteRate)
	}
	return nil
}

// Names returns the ids of n simulated providers.
func Names(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = NamePrefix + strconv.Itoa(i+1)
	}
	return names
}

// Run runs the fleet on nc until ctx is done. Each provider's queue must
// exist. It returns nil after a graceful stop, or the first provider's
// error.
func Run(ctx context.Context, nc *nats.Conn, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Currency == "" {
		cfg.Currency = "USD"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for i, id := range Names(cfg.Count) {
		p, err := provider.New(provider.Config{Conn: nc, ID: id, Logger: cfg.Logger.With("provider", id)})
		if err != nil {
			return fmt.Errorf("simulated provider %s: %w", id, err)
		}
		u := &unicorn{cfg: cfg, stop: ctx.Done(), rng: rand.New(rand.NewPCG(seed, uint64(i)))}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Run(ctx, u.answer); err != nil && !errors.Is(err, context.Canceled) {
				errOnce.Do(func() { firstErr = fmt.Errorf("simulated provider %s: %w", id, err); cancel() })
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// unicorn is one simulated provider's behaviour.
type unicorn struct {
	cfg Config
	// stop closes when the fleet stops. The SDK lets handlers finish on a
	// graceful stop; a unicorn still thinking gives up instead, and its
	// request is redelivered on the next start.
	stop <-chan struct{}
	mu   sync.Mutex
	rng  *rand.Rand
}

type roll struct {
	delay  time.Duration
	quotes bool
	price  int
	eta    time.Duration
}

func (u *unicorn) roll() roll {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := roll{delay: u.cfg.MinDelay}
	if span := u.cfg.MaxDelay - u.cfg.MinDelay; span > 0 {
		r.delay += time.Duration(u.rng.Int64N(int64(span) + 1))
	}
	r.quotes = u.rng.Float64() < u.cfg.QuoteRate
	r.price = 1 + u.rng.IntN(100) // the workshop quotes 0..100; a price of 0 is not sane
	r.eta = time.Duration(1+u.rng.IntN(30)) * time.Minute
	return r
}

func (u *unicorn) answer(ctx context.Context, _ rydes.ProviderRequest) (provider.Reply, error) {
	r := u.roll()
	if r.delay > 0 {
		t := time.NewTimer(r.delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return provider.Reply{}, ctx.Err()
		case <-u.stop:
			return provider.Reply{}, errors.New("simulated fleet stopping")
		case <-t.C:
		}
	}
	switch {
	case r.quotes:
		return provider.Quote(rydes.Price{Amount: strconv.Itoa(r.price), Currency: u.cfg.Currency}, provider.WithETA(r.eta)), nil
	case u.cfg.Silent:
		return provider.Silent(), nil
	default:
		return provider.Decline("no unicorn available"), nil
	}
}
