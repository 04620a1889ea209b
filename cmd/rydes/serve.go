package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/api"
	"github.com/wildrydes/rydes/internal/app"
	"github.com/wildrydes/rydes/internal/bus"
	"github.com/wildrydes/rydes/internal/engine"
)

// shutdownTimeout bounds how long a stop waits for HTTP requests in flight.
const shutdownTimeout = 30 * time.Second

// serveConfig parses the serve flags (and their RYDES_* variables) into an
// app.Config.
func serveConfig(args []string, getenv func(string) string, stderr io.Writer) (app.Config, string, error) {
	fs := flag.NewFlagSet("rydes serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg app.Config
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&cfg.HTTPAddr, "http", "127.0.0.1:8080", "address the HTTP API listens on (port 0 picks a free one)")
	fs.StringVar(&cfg.DebugAddr, "debug-listen", "", "address that serves Go's profiles (/debug/pprof/), apart from the API, e.g. 127.0.0.1:6060; keep it on loopback. Empty: none")
	fs.StringVar(&cfg.DataDir, "data", "./rydes-data", "data directory: the broker's store and the database")
	fs.StringVar(&cfg.NATSListen, "nats-listen", "", "client address of the embedded broker for provider processes, e.g. 127.0.0.1:4223 (port 0 picks a free one); empty: in-process only")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "use this NATS broker (another rydes's --nats-listen, or a cluster) instead of the embedded one")
	fs.StringVar(&cfg.NATSUser, "nats-user", "", "rydes's own NATS user (default "+bus.DefaultInternalUser+")")
	fs.StringVar(&cfg.NATSPassword, "nats-password", "", "rydes's own NATS password: with --nats-url what it connects with; with the embedded broker what other instances connect with (random if empty)")
	fs.StringVar(&cfg.TLSCertFile, "tls-cert", "", "certificate `file` (PEM, leaf first) of the HTTP API: with --tls-key, it serves HTTPS only; re-read when it changes")
	fs.StringVar(&cfg.TLSKeyFile, "tls-key", "", "private key `file` (PEM) of --tls-cert")
	fs.StringVar(&cfg.NATSTLSCertFile, "nats-tls-cert", "", "certificate `file` (PEM) of the embedded broker's --nats-listen: with --nats-tls-key, providers must connect with TLS (tls://)")
	fs.StringVar(&cfg.NATSTLSKeyFile, "nats-tls-key", "", "private key `file` (PEM) of --nats-tls-cert")
	fs.StringVar(&cfg.NATSCAFile, "nats-ca", "", "with --nats-url: trust the certificate authorities of this PEM `file` for the broker's certificate (turns TLS on)")
	fs.StringVar(&cfg.NATSCertFile, "nats-cert", "", "with --nats-url: client certificate `file` (PEM) to present to a broker that asks for one")
	fs.StringVar(&cfg.NATSKeyFile, "nats-key", "", "private key `file` (PEM) of --nats-cert")
	fs.DurationVar(&cfg.RFQTimeout, "rfq-timeout", rydes.DefaultTimeout, "deadline of a request that names no timeout")
	fs.DurationVar(&cfg.RFQMaxTimeout, "rfq-max-timeout", rydes.DefaultMaxTimeout, "longest timeout a request may name")
	cfg.Retention = app.DefaultRetention
	fs.Var(longDuration{&cfg.Retention}, "retention", "how long finished requests, dead letters, refused answers and audit entries are kept, e.g. 7d or 36h; 0 keeps everything")
	fs.Int64Var(&cfg.DispatchLimits.MaxMsgs, "dispatch-max-msgs", bus.DefaultDispatchMaxMsgs, "most messages of requests (one per provider asked) the broker holds for providers that have not taken them; past it, new ones wait in the database")
	cfg.DispatchLimits.MaxBytes = bus.DefaultDispatchMaxBytes
	fs.Var(byteSize{&cfg.DispatchLimits.MaxBytes}, "dispatch-max-bytes", "most bytes of such requests the broker holds (and reserves on its disk), e.g. 512MiB")
	fs.Int64Var(&cfg.EventsLimits.MaxMsgs, "events-max-msgs", bus.DefaultEventsMaxMsgs, "most messages of events the broker keeps for watchers and notifications (the oldest go first; each costs the broker about 170 bytes of memory)")
	cfg.EventsLimits.MaxBytes = bus.DefaultEventsMaxBytes
	fs.Var(byteSize{&cfg.EventsLimits.MaxBytes}, "events-max-bytes", "most bytes of events the broker keeps (and reserves on its disk), e.g. 1GiB")
	cfg.EventsLimits.MaxAge = bus.MaxAge
	fs.Var(longDuration{&cfg.EventsLimits.MaxAge}, "events-max-age", "longest the broker keeps an event, e.g. 3h: at least --rfq-max-timeout, and longer than completion notifications are retried (about 2h15m) or the last ones of a failing receiver are lost")
	fs.BoolVar(&cfg.Demo, "demo", false, "run the simulated provider fleet (and, on loopback, let anyone act as a customer)")
	fs.IntVar(&cfg.Sim.Count, "sim-providers", 10, "number of simulated providers with --demo (UnicornManagementResource1..N)")
	fs.DurationVar(&cfg.Sim.MinDelay, "sim-min-delay", 0, "shortest time a simulated provider takes to answer")
	fs.DurationVar(&cfg.Sim.MaxDelay, "sim-max-delay", 5*time.Second, "longest time a simulated provider takes to answer")
	fs.Float64Var(&cfg.Sim.QuoteRate, "sim-quote-rate", 0.5, "chance (0 to 1) that a simulated provider quotes")
	fs.StringVar(&cfg.AdminKey, "admin-key", "", "key of the admin API (at least 16 characters); if unset, the stored one is kept, or one is made on first start and printed once")
	fs.DurationVar(&cfg.ReconcileInterval, "reconcile-interval", time.Minute, "time between two checks of the broker against the database, which re-publish what a broker lost; negative turns them off")
	answerLinger := fs.Duration("answer-linger", engine.DefaultLinger, "longest a batch of answers waits for the rest of its requests' answers before it commits, so that providers answering together take one commit; 0 commits every batch at once")
	durability := fs.String("durability", string(app.DurabilityPowerLoss), "what an acknowledged write survives: power-loss (fsync every write) or process-crash (the OS writes back; faster, a power loss may lose the last writes)")
	fs.BoolVar(&cfg.AllowTmpfs, "allow-tmpfs", false, "allow a data dir on a tmpfs (lost on reboot): for tests only")
	fs.BoolVar(&cfg.WebhookAllowPrivate, "webhook-allow-private", false, "let webhook deliveries go to loopback and private addresses (local partners); --demo implies it")
	fs.Var(prefixList{&cfg.WebhookAllowNetworks}, "webhook-allow", "comma-separated `networks` (CIDR prefixes or addresses, e.g. 10.1.2.0/24) that webhooks and notifications may go to although not public")
	cfg.RateLimits = api.DefaultRateLimits()
	fs.Float64Var(&cfg.RateLimits.Customer.PerSecond, "rate-limit", cfg.RateLimits.Customer.PerSecond, "requests a second each customer key (or, with --demo, each address) may send on average; 0: no limit")
	fs.IntVar(&cfg.RateLimits.Customer.Burst, "rate-burst", cfg.RateLimits.Customer.Burst, "requests each customer key may send at once, above --rate-limit")
	fs.Float64Var(&cfg.RateLimits.Provider.PerSecond, "provider-rate-limit", cfg.RateLimits.Provider.PerSecond, "requests a second each provider key may send on average; 0: no limit")
	fs.IntVar(&cfg.RateLimits.Provider.Burst, "provider-rate-burst", cfg.RateLimits.Provider.Burst, "requests each provider key may send at once, above --provider-rate-limit")
	fs.Float64Var(&cfg.RateLimits.Admin.PerSecond, "admin-rate-limit", cfg.RateLimits.Admin.PerSecond, "requests a second the admin key may send on average; 0: no limit")
	fs.IntVar(&cfg.RateLimits.Admin.Burst, "admin-rate-burst", cfg.RateLimits.Admin.Burst, "requests the admin key may send at once, above --admin-rate-limit")
	fs.Float64Var(&cfg.RateLimits.Failed.PerSecond, "failed-auth-limit", cfg.RateLimits.Failed.PerSecond, "failed authentications (wrong keys) a second each address may make on average before its requests get 429 unread; 0: no limit")
	fs.IntVar(&cfg.RateLimits.Failed.Burst, "failed-auth-burst", cfg.RateLimits.Failed.Burst, "failed authentications each address may make at once, above --failed-auth-limit")
	fs.BoolVar(&cfg.Sim.Silent, "sim-silent", false, "a simulated provider that does not quote stays silent, as in the workshop (otherwise it declines)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: rydes serve [flags]\n\nRuns the broker: embedded NATS JetStream, SQLite and the HTTP API.\nEach flag can also be set as RYDES_<FLAG_IN_UPPER_SNAKE>, e.g. RYDES_SIM_MAX_DELAY.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, getenv); err != nil {
		return app.Config{}, "", err
	}
	if fs.NArg() > 0 {
		return app.Config{}, "", exitError{code: 2, err: fmt.Errorf("serve takes no arguments, got %q", fs.Args())}
	}
	for name, n := range map[string]int64{"dispatch-max-msgs": cfg.DispatchLimits.MaxMsgs, "events-max-msgs": cfg.EventsLimits.MaxMsgs} {
		if n < 1 {
			return app.Config{}, "", exitError{code: 2, err: fmt.Errorf("--%s must be at least 1, got %d", name, n)}
		}
	}
	if cfg.EventsLimits.MaxAge <= 0 {
		return app.Config{}, "", exitError{code: 2, err: fmt.Errorf("--events-max-age must be positive, got %s", cfg.EventsLimits.MaxAge)}
	}
	cfg.Durability = app.Durability(*durability)
	cfg.AnswerLinger = *answerLinger
	if cfg.AnswerLinger <= 0 {
		cfg.AnswerLinger = -1 // off: the app's zero is the default
	}
	if err := cfg.Durability.Validate(); err != nil {
		return app.Config{}, "", exitError{code: 2, err: fmt.Errorf("--durability: %w", err)}
	}
	for _, r := range []struct {
		name string
		rate api.Rate
	}{{"rate", cfg.RateLimits.Customer}, {"provider-rate", cfg.RateLimits.Provider}, {"admin-rate", cfg.RateLimits.Admin}, {"failed-auth", cfg.RateLimits.Failed}} {
		if r.rate.PerSecond < 0 || math.IsNaN(r.rate.PerSecond) || math.IsInf(r.rate.PerSecond, 0) {
			return app.Config{}, "", exitError{code: 2, err: fmt.Errorf("--%s-limit must be a finite number of requests a second, 0 for no limit; got %v", r.name, r.rate.PerSecond)}
		}
		if r.rate.Burst < 1 && r.rate.PerSecond > 0 {
			return app.Config{}, "", exitError{code: 2, err: fmt.Errorf("--%s-burst must be at least 1, got %d", r.name, r.rate.Burst)}
		}
	}
	return cfg, *logLevel, nil
}

// runServe runs the broker until ctx is cancelled (SIGINT or SIGTERM), then
// drains and stops it.
func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, level, err := serveConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	if cfg.Logger, err = newLogger(level, stderr); err != nil {
		return err
	}
	if !cfg.Demo && cfg.Sim.Count != 10 {
		cfg.Logger.Warn("--sim-providers has no effect without --demo")
	}
	cfg.Sim.Count = max(cfg.Sim.Count, 0)
	a, err := app.Start(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rydes listening on %s (data in %s)\n", a.URL(), cfg.DataDir)
	if key := a.GeneratedAdminKey(); key != "" {
		fmt.Fprintf(stdout, "admin key (shown once, store it now; only its hash is kept): %s\n", key)
	}
	if u := a.NATSURL(); u != "" {
		fmt.Fprintf(stdout, "providers connect to NATS at %s\n", u)
	}
	var loopErr error
	select {
	case <-ctx.Done():
	case loopErr = <-a.Err():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	return loopErr
}

// newLogger returns a text logger to w at level, the --log-level flag's
// value; a level that does not parse is a usage error.
func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, exitError{code: 2, err: fmt.Errorf("--log-level %q: %w", level, err)}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})), nil
}
