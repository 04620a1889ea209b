// Package app wires rydes together in one process: the embedded NATS
// JetStream broker, the SQLite store, the engine, the gatherer, the
// simulated providers and the HTTP API. cmd/rydes parses flags into a Config
// and calls Start; end-to-end tests do the same on free ports.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/api"
	"github.com/wildrydes/rydes/internal/auth"
	"github.com/wildrydes/rydes/internal/bus"
	"github.com/wildrydes/rydes/internal/engine"
	"github.com/wildrydes/rydes/internal/fsinfo"
	"github.com/wildrydes/rydes/internal/notify"
	"github.com/wildrydes/rydes/internal/reconcile"
	"github.com/wildrydes/rydes/internal/registry"
	"github.com/wildrydes/rydes/internal/sim"
	"github.com/wildrydes/rydes/internal/store"
	"github.com/wildrydes/rydes/internal/store/sqlite"
	"github.com/wildrydes/rydes/internal/tlsreload"
	"github.com/wildrydes/rydes/internal/web"
	"github.com/wildrydes/rydes/internal/webhook"
)

// ControlProvidersSubject carries a note, on core NATS, that a provider was
// added, changed or removed, so that every rydes instance sharing the broker
// brings its webhook dispatchers up to date.
const ControlProvidersSubject = "rydes.control.providers"

// Durability says what a commit, and so every acknowledgement rydes gives
// (a 201 to a customer, an ack to a provider), survives.
type Durability string

const (
	// DurabilityPowerLoss, the default, survives a power loss or a crash
	// of the machine: every acknowledgement rydes gives (a 201, an answer's
	// receipt) follows a SQLite commit that synced its log
	// (synchronous=FULL), and answers are group-committed. The database
	// is the source of truth; the embedded broker fsyncs on its own
	// interval, and what a power loss takes from it (requests waiting in
	// providers' queues, events) reconciliation re-publishes from the
	// database, in a round at start and then every interval. With
	// reconciliation off, the broker fsyncs every write (sync_always).
	DurabilityPowerLoss Durability = "power-loss"
	// DurabilityProcessCrash survives a crash of the rydes process (kill
	// -9, a panic) but not of the machine: SQLite syncs only at
	// checkpoints (synchronous=NORMAL in WAL mode) and the broker on its
	// interval. Writes still reach the operating system before anything
	// is acknowledged; a power loss may lose the last ones.
	DurabilityProcessCrash Durability = "process-crash"
)

// Validate checks d; "" stands for DurabilityPowerLoss.
func (d Durability) Validate() error {
	switch d {
	case "", DurabilityPowerLoss, DurabilityProcessCrash:
		return nil
	}
	return fmt.Errorf("durability %q: must be %s or %s", string(d), DurabilityPowerLoss, DurabilityProcessCrash)
}

// syncAlways reports whether the embedded broker must fsync every write:
// only for power-loss durability without reconciliation, which otherwise
// heals what the broker loses.
func (d Durability) syncAlways(reconcile bool) bool {
	return d != DurabilityProcessCrash && !reconcile
}

// sqliteSynchronous is SQLite's synchronous setting for d.
func (d Durability) sqliteSynchronous() sqlite.Synchronous {
	if d == DurabilityProcessCrash {
		return sqlite.SynchronousNormal
	}
	return sqlite.SynchronousFull
}

// Config is the configuration of one rydes process.
type Config struct {
	HTTPAddr string // address the HTTP API listens on; port 0 picks a free one
	// DebugAddr, if set, is where Go's profiles are served
	// (/debug/pprof/), apart from the API; keep it on loopback.
	DebugAddr  string
	DataDir    string // holds the broker's store (nats/) and the database (rydes.db)
	NATSListen string // client address of the embedded broker for provider processes; "" for in-process only
	// NATSURL, when set, makes rydes use that broker (another rydes's
	// embedded broker, or a NATS cluster) instead of starting its own; the
	// data dir then holds only the database.
	NATSURL string
	// NATSUser and NATSPassword are rydes's own credentials on the broker:
	// with NATSURL, what it connects with; with the embedded broker, the
	// internal user's password other rydes instances connect with (random
	// per process when empty; the user is bus.DefaultInternalUser).
	NATSUser     string
	NATSPassword string

	// TLSCertFile and TLSKeyFile (PEM), when both set, make the HTTP API
	// serve HTTPS only, TLS 1.2 at least; URL then starts with https. The
	// files are read again when they change (internal/tlsreload), so a
	// renewed certificate needs no restart. Setting one without the other
	// is an error.
	TLSCertFile string
	TLSKeyFile  string
	// NATSTLSCertFile and NATSTLSKeyFile (PEM), when both set, make the
	// embedded broker's client listener (NATSListen, then required) accept
	// TLS connections only; NATSURL then starts with tls. rydes's own
	// connection is in-process and unaffected.
	NATSTLSCertFile string
	NATSTLSKeyFile  string
	// NATSCAFile, with NATSURL, is a PEM file of the certificate
	// authorities rydes trusts for the external broker's certificate
	// instead of the system's; setting it turns TLS on whatever the URL's
	// scheme (a tls:// URL turns it on with the system's authorities).
	NATSCAFile string
	// NATSCertFile and NATSKeyFile (PEM), with NATSURL, are the client
	// certificate rydes presents to an external broker that asks for one.
	NATSCertFile string
	NATSKeyFile  string

	RFQTimeout    time.Duration // default deadline of a request
	RFQMaxTimeout time.Duration // longest deadline a request may ask for

	// Retention is how long finished requests (from when they closed),
	// dead letters, refused answers and audit entries are kept; a loop
	// deletes what is older every RetentionInterval. Zero keeps everything
	// (rydes serve's default is DefaultRetention).
	Retention time.Duration
	// RetentionInterval is how often the retention loop runs; zero means
	// every minute.
	RetentionInterval time.Duration

	// DispatchLimits and EventsLimits bound the broker's streams of
	// requests and of events (bus.Config); zero fields take bus's
	// defaults. Applied to the streams at every start. EventsLimits.MaxAge
	// must be at least RFQMaxTimeout, so that a watcher of an open request
	// finds all its events; reconciliation re-publishes the final events
	// of the requests closed within it.
	DispatchLimits, EventsLimits bus.StreamLimits

	Demo bool       // run the simulated fleet
	Sim  sim.Config // the simulated fleet, when Demo is set

	// AdminKey is the key of the admin API. If empty, the stored key is
	// kept, or on first start one is made (GeneratedAdminKey shows it once).
	AdminKey string
	// Durability is what an acknowledged write survives; "" is
	// DurabilityPowerLoss. It applies to the embedded broker and to the
	// database; an external broker (NATSURL) keeps its own setting.
	Durability Durability
	// AllowTmpfs lets the data dir be on a tmpfs, whose contents do not
	// survive a reboot or power loss: for tests and throwaway runs only.
	AllowTmpfs bool
	// ReconcileInterval is the time between two checks of the broker
	// against the database (internal/reconcile); one more runs at start,
	// before the outbox relay. 0 for the default, 1 minute; negative turns
	// reconciliation off.
	ReconcileInterval time.Duration
	// AnswerLinger is how long a batch of answers waits for the answers
	// still due for its RFQs before it commits (engine.GathererConfig's
	// Linger): 0 for the default, engine.DefaultLinger; negative commits
	// every batch at once.
	AnswerLinger time.Duration
	// WebhookAllowPrivate lets webhook deliveries go to loopback and
	// private addresses (for local partners and tests); Demo implies it.
	WebhookAllowPrivate bool
	// WebhookAllowNetworks are non-public networks that webhook deliveries
	// and completion notifications may go to (and that registered URLs
	// may point at) even without WebhookAllowPrivate: an explicit
	// allow-list, e.g. a partner on 10.1.2.0/24.
	WebhookAllowNetworks []netip.Prefix
	// Resolver resolves the host names of webhook and notify URLs when
	// they are registered, to refuse those that lead to loopback or
	// private addresses (unless WebhookAllowPrivate or Demo); nil means
	// the system's resolver. Tests set a fake.
	Resolver webhook.Resolver
	// RateLimits bound how fast each authenticated HTTP caller may send
	// requests (429 with Retry-After beyond). The zero value limits
	// nothing; `rydes serve` defaults to api.DefaultRateLimits.
	RateLimits api.RateLimits

	Logger *slog.Logger
	Clock  clockwork.Clock // nil for the real clock
}

// DefaultRetention is rydes serve's --retention: a week.
const DefaultRetention = 7 * 24 * time.Hour

// App is a running rydes process.
type App struct {
	cfg      Config
	log      *slog.Logger
	ln       net.Listener
	srv      *http.Server
	debugLn  net.Listener // DebugAddr's; nil without one
	debugSrv *http.Server
	nats     *bus.Embedded
	nc       *nats.Conn
	bus      *bus.Bus
	store    *sqlite.Store
	engine   *engine.Engine
	gatherer *engine.Gatherer // stages answers in groups
	reg      *registry.Registry
	custs    *registry.Customers
	hooks    *webhook.Supervisor
	notif    *notify.Notifier

	httpsCert         *tlsreload.Keypair                // nil when the API serves plain HTTP
	authReg           atomic.Pointer[registry.Registry] // a.reg, for the broker's goroutines
	adminKeyHash      string
	generatedAdminKey string

	ready  atomic.Bool
	cancel context.CancelFunc // stops the background loops
	wg     sync.WaitGroup     // the background loops
	errc   chan error         // first fatal error of a background loop

	stopOnce sync.Once
	stopErr  error
}

// Start starts every part of rydes and returns once /healthz answers 200.
// Stop the App with Shutdown.
func Start(ctx context.Context, cfg Config) (_ *App, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	limits := rydes.Limits{DefaultTimeout: cfg.RFQTimeout, MaxTimeout: cfg.RFQMaxTimeout}
	if err := limits.Validate(); err != nil {
		return nil, fmt.Errorf("rfq timeouts: %w", err)
	}
	if cfg.Retention < 0 || cfg.RetentionInterval < 0 {
		return nil, fmt.Errorf("retention %s and its interval %s must not be negative", cfg.Retention, cfg.RetentionInterval)
	}
	if cfg.EventsLimits.MaxAge > 0 && cfg.EventsLimits.MaxAge < cfg.RFQMaxTimeout {
		return nil, fmt.Errorf("the events' max age %s is shorter than the longest request timeout %s", cfg.EventsLimits.MaxAge, cfg.RFQMaxTimeout)
	}
	if cfg.Retention > 0 && cfg.Retention < cfg.RFQMaxTimeout {
		// A request must be able to close before it can be purged, and its
		// watchers and notifier need some time after.
		return nil, fmt.Errorf("retention %s is shorter than the longest request timeout %s", cfg.Retention, cfg.RFQMaxTimeout)
	}
	if cfg.Demo {
		if err := cfg.Sim.Validate(); err != nil {
			return nil, err
		}
	}
	if err := cfg.Durability.Validate(); err != nil {
		return nil, err
	}
	if cfg.Durability == "" {
		cfg.Durability = DurabilityPowerLoss
	}
	if err := checkNATSTLS(cfg); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: cfg.Logger, errc: make(chan error, 8)}
	if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
		a.httpsCert, err = tlsreload.Load(cfg.TLSCertFile, cfg.TLSKeyFile, a.log.With("component", "https"))
		if err != nil {
			return nil, fmt.Errorf("https (--tls-cert, --tls-key): %w", err)
		}
	}
	defer func() {
		if err != nil {
			a.close()
		}
	}()

	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if tmpfs, err := fsinfo.OnTmpfs(cfg.DataDir); err != nil {
		return nil, err
	} else if tmpfs && !cfg.AllowTmpfs {
		return nil, fmt.Errorf("data dir %s is on a tmpfs: nothing there survives a reboot or power loss; use a disk, or --allow-tmpfs for a test", cfg.DataDir)
	}
	// The store first: the broker asks it whose NATS credentials are good.
	a.store, err = sqlite.Open(ctx, filepath.Join(cfg.DataDir, "rydes.db"), a.log.With("component", "store"),
		sqlite.WithSynchronous(cfg.Durability.sqliteSynchronous()))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	prevKeyHash, _, err := a.store.GetSetting(ctx, auth.AdminKeyHashSetting)
	if err != nil {
		return nil, fmt.Errorf("read admin key hash: %w", err)
	}
	a.adminKeyHash, a.generatedAdminKey, err = auth.EnsureAdminKey(ctx, a.store, cfg.AdminKey)
	if err != nil {
		return nil, err
	}
	if err := a.auditAdminKey(ctx, prevKeyHash); err != nil {
		return nil, err
	}
	if cfg.NATSURL != "" {
		opts := []nats.Option{nats.Name("rydes"), nats.MaxReconnects(-1)}
		if cfg.NATSUser != "" || cfg.NATSPassword != "" {
			user := cfg.NATSUser
			if user == "" {
				user = bus.DefaultInternalUser
			}
			opts = append(opts, nats.UserInfo(user, cfg.NATSPassword))
		}
		if cfg.NATSCAFile != "" {
			opts = append(opts, nats.RootCAs(cfg.NATSCAFile))
		}
		if cfg.NATSCertFile != "" {
			opts = append(opts, nats.ClientCert(cfg.NATSCertFile, cfg.NATSKeyFile))
		}
		a.nc, err = nats.Connect(cfg.NATSURL, opts...)
		if err != nil {
			return nil, fmt.Errorf("connect to nats at %s: %w", cfg.NATSURL, err)
		}
	} else {
		a.nats, err = bus.StartEmbedded(ctx, bus.EmbeddedConfig{
			StoreDir:         filepath.Join(cfg.DataDir, "nats"),
			Listen:           cfg.NATSListen,
			SyncAlways:       cfg.Durability.syncAlways(cfg.ReconcileInterval >= 0),
			Providers:        natsAuth{&a.authReg},
			InternalUser:     cfg.NATSUser,
			InternalPassword: cfg.NATSPassword,
			TLSCertFile:      cfg.NATSTLSCertFile,
			TLSKeyFile:       cfg.NATSTLSKeyFile,
			Logger:           a.log.With("component", "nats"),
		})
		if err != nil {
			return nil, err // it says "start embedded nats: ..." already
		}
		a.nc, err = a.nats.Connect(nats.Name("rydes"), nats.MaxReconnects(-1))
		if err != nil {
			return nil, fmt.Errorf("connect to embedded nats: %w", err)
		}
	}
	a.bus, err = bus.New(ctx, a.nc, bus.Config{
		Logger:   a.log.With("component", "bus"),
		Dispatch: cfg.DispatchLimits, Events: cfg.EventsLimits,
	})
	if err != nil {
		return nil, fmt.Errorf("set up streams: %w", err)
	}
	a.engine, err = engine.New(engine.Config{
		Store: a.store, Publisher: a.bus, Clock: cfg.Clock, Logger: a.log.With("component", "engine"), Limits: limits,
		Retention: cfg.Retention, RetentionInterval: cfg.RetentionInterval,
		// An RFQ does not expire while an answer received before its
		// deadline is still being staged.
		AnswersWatermark: func(ctx context.Context) (time.Time, bool, error) { return a.gatherer.Watermark(ctx) },
		ExpiryGrace:      gatherCommitTimeout,
	})
	if err != nil {
		return nil, err
	}
	a.gatherer = engine.NewGatherer(a.engine, engine.GathererConfig{CommitTimeout: gatherCommitTimeout, Linger: cfg.AnswerLinger})
	a.reg, err = registry.New(registry.Config{
		Store: a.store, Queues: queues{a.bus}, Clock: cfg.Clock, Logger: a.log.With("component", "registry"),
		Hooks: registry.Hooks{
			Changed:    a.providerChanged,
			Disconnect: a.disconnect,
			Emitted:    a.engine.KickOutbox,
		},
	})
	if err != nil {
		return nil, err
	}
	a.authReg.Store(a.reg)
	if err := a.registerSimulated(ctx); err != nil {
		return nil, err
	}
	// Every registered provider has its queue, and no deleted one is left
	// pending in an open RFQ, whatever a crash left.
	if _, err := a.reg.Reconcile(ctx); err != nil {
		return nil, fmt.Errorf("reconcile provider queues: %w", err)
	}
	if err := a.reg.FinishDeletes(ctx); err != nil {
		return nil, err
	}
	a.hooks = webhook.NewSupervisor(webhook.Config{
		Conn: a.nc, Providers: a.reg, Failures: a.store, OnFailed: a.engine.KickOutbox,
		Clock: cfg.Clock, Logger: a.log.With("component", "webhook"),
		AllowPrivateNetworks: cfg.WebhookAllowPrivate || cfg.Demo,
		AllowedNetworks:      cfg.WebhookAllowNetworks,
	})
	a.custs, err = registry.NewCustomers(a.store, cfg.Clock, a.log.With("component", "customers"))
	if err != nil {
		return nil, err
	}
	a.notif, err = notify.New(notify.Config{
		JS: a.bus.JetStream(), Store: a.store, Clock: cfg.Clock, Logger: a.log.With("component", "notify"),
		AllowPrivateNetworks: cfg.WebhookAllowPrivate || cfg.Demo,
		AllowedNetworks:      cfg.WebhookAllowNetworks,
	})
	if err != nil {
		return nil, fmt.Errorf("completion notifier: %w", err)
	}
	if _, err := a.nc.Subscribe(ControlProvidersSubject, func(*nats.Msg) { a.reconcileWebhooks() }); err != nil {
		return nil, fmt.Errorf("subscribe to provider changes: %w", err)
	}

	if err := a.listenDebug(cfg.DebugAddr); err != nil {
		return nil, err
	}
	a.ln, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	a.srv = &http.Server{
		Handler: api.New(api.Config{
			Service:               a.engine,
			Providers:             a.reg,
			Answers:               a.gatherer,
			AdminKeyHash:          func() string { return a.adminKeyHash },
			Customers:             a.custs,
			OpenLoopbackCustomers: cfg.Demo,
			Watcher:               busWatcher{b: a.bus, s: a.store},
			Notifications:         a.store,
			Audit:                 a.store,
			Web:                   web.Handler(),
			Now:                   cfg.Clock.Now,
			Logger:                a.log.With("component", "api"),
			Ready:                 a.ready.Load,
			RateLimits:            cfg.RateLimits,
			// The same policy as the deliveries' own, checked when a URL
			// is given: one rule for where rydes may POST.
			CheckURL: webhook.URLPolicy{AllowPrivate: cfg.WebhookAllowPrivate || cfg.Demo, AllowedNetworks: cfg.WebhookAllowNetworks, Resolver: cfg.Resolver}.Check,
		}),
		// Slow clients cannot hold connections: every phase is bounded
		// (event streams and long polls lift their own deadlines).
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	if a.httpsCert != nil {
		a.srv.TLSConfig = a.httpsCert.ServerConfig()
	}

	var rec *reconcile.Reconciler
	if cfg.ReconcileInterval >= 0 {
		rec, err = reconcile.New(reconcile.Config{
			Store: a.store, Broker: a.bus, Interval: cfg.ReconcileInterval, Clock: cfg.Clock,
			Logger: a.log.With("component", "reconcile"), EventsMaxAge: cfg.EventsLimits.MaxAge,
			EnsureQueues: func(ctx context.Context) error {
				_, err := a.reg.Reconcile(ctx)
				return err
			},
		})
		if err != nil {
			return nil, err
		}
		// One round before the engine's outbox relay publishes: a broker
		// that lost its tail (lazy fsync, a power loss) is detected by its
		// last sequence being below what the relay recorded as
		// acknowledged, which new publications would soon move past.
		if _, err := rec.Once(ctx); err != nil {
			a.log.Error("reconciliation round at start failed; trying again in the periodic rounds", "err", err)
		}
	}

	loops, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	// On the way down the answer service stops first (it replies to what
	// it received), then the gatherer (it commits what waits), then the
	// engine (its relay publishes what they committed).
	engineCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	gatherCtx, stopGatherer := context.WithCancel(context.WithoutCancel(ctx))
	a.goLoop("engine", func() error { return a.engine.Run(engineCtx) })
	a.goLoop("gatherer", func() error {
		defer stopEngine()
		return a.gatherer.Run(gatherCtx)
	})
	answering := make(chan struct{})
	a.goLoop("answer service", func() error {
		defer stopGatherer()
		return a.bus.ServeAnswers(loops, a.answer, bus.ServeOptions{Ready: func() { close(answering) }})
	})
	select {
	case <-answering:
	case err := <-a.errc:
		cancel()
		a.wg.Wait()
		return nil, err
	}
	a.goLoop("webhooks", func() error { return a.hooks.Run(loops) })
	a.goLoop("notifier", func() error { return a.notif.Run(loops) })
	if rec != nil {
		a.goLoop("reconciler", func() error { return rec.Continue(loops) })
	}
	if cfg.Demo {
		simCfg := cfg.Sim
		simCfg.Logger = a.log.With("component", "sim")
		a.goLoop("simulated providers", func() error { return sim.Run(loops, a.nc, simCfg) })
	}
	a.goLoop("http", func() error {
		serve := func() error { return a.srv.Serve(a.ln) }
		if a.httpsCert != nil {
			// The certificate comes from TLSConfig.GetCertificate.
			serve = func() error { return a.srv.ServeTLS(a.ln, "", "") }
		}
		if err := serve(); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	a.serveDebug()
	a.ready.Store(true)
	a.log.Info("rydes ready", "http", a.URL(), "data", cfg.DataDir, "nats", a.NATSURL(), "demo", cfg.Demo, "durability", cfg.Durability)
	return a, nil
}

// checkNATSTLS refuses TLS settings of the broker that the configuration
// would ignore: those of the embedded broker with an external one, and the
// other way round.
func checkNATSTLS(cfg Config) error {
	embedded := cfg.NATSTLSCertFile != "" || cfg.NATSTLSKeyFile != ""
	external := cfg.NATSCAFile != "" || cfg.NATSCertFile != "" || cfg.NATSKeyFile != ""
	switch {
	case embedded && cfg.NATSURL != "":
		return errors.New("--nats-tls-cert and --nats-tls-key configure the embedded broker, which does not run with --nats-url; use --nats-ca (and --nats-cert, --nats-key) for an external broker")
	case embedded && cfg.NATSListen == "":
		return errors.New("--nats-tls-cert and --nats-tls-key secure the embedded broker's client listener: set --nats-listen too")
	case embedded && (cfg.NATSTLSCertFile == "" || cfg.NATSTLSKeyFile == ""):
		return errors.New("the embedded broker's TLS needs both --nats-tls-cert and --nats-tls-key")
	case external && cfg.NATSURL == "":
		return errors.New("--nats-ca, --nats-cert and --nats-key are for an external broker (--nats-url); the embedded broker's TLS is --nats-tls-cert and --nats-tls-key")
	case (cfg.NATSCertFile == "") != (cfg.NATSKeyFile == ""):
		return errors.New("a NATS client certificate needs both --nats-cert and --nats-key")
	}
	return nil
}

// registerSimulated makes the simulated providers of this run active with
// their queues and, when this process owns the broker, pauses simulated
// providers that it does not run (a smaller fleet, or no --demo), so that no
// request waits on them.
func (a *App) registerSimulated(ctx context.Context) error {
	now := a.cfg.Clock.Now().UTC()
	running := map[string]bool{}
	if a.cfg.Demo {
		for _, id := range sim.Names(a.cfg.Sim.Count) {
			running[id] = true
			if err := a.bus.EnsureProviderQueue(ctx, id); err != nil {
				return fmt.Errorf("queue of simulated provider %s: %w", id, err)
			}
			if _, err := a.store.UpsertProvider(ctx, store.UpsertProviderParams{
				ID: id, Name: "Simulated unicorn provider " + id[len(sim.NamePrefix):],
				Kind: rydes.ProviderKindSimulated, Status: rydes.ProviderActive, Now: now,
			}); err != nil {
				return fmt.Errorf("register simulated provider %s: %w", id, err)
			}
		}
	}
	if a.cfg.NATSURL != "" {
		// Other instances share this broker and database and may run their
		// own fleets: pausing what this one does not run would stop theirs.
		return nil
	}
	all, err := a.store.ListProviders(ctx, store.ListProvidersParams{Status: rydes.ProviderActive})
	if err != nil {
		return fmt.Errorf("list providers: %w", err)
	}
	for _, p := range all {
		if p.Kind == rydes.ProviderKindSimulated && !running[p.ID] {
			if _, err := a.store.UpsertProvider(ctx, store.UpsertProviderParams{
				ID: p.ID, Name: p.Name, Kind: p.Kind, Status: rydes.ProviderPaused, Now: now,
			}); err != nil {
				return fmt.Errorf("pause simulated provider %s: %w", p.ID, err)
			}
		}
	}
	return nil
}

// auditAdminKey records, as an admin_key.set entry by "config", that this
// start set the admin key: made one on a first start, or took a configured
// key other than the one stored (prevHash). Details say which, and the new
// key's fingerprint, never the key.
func (a *App) auditAdminKey(ctx context.Context, prevHash string) error {
	if a.adminKeyHash == prevHash {
		return nil
	}
	how := "configured"
	if a.generatedAdminKey != "" {
		how = "generated"
	} else if a.cfg.AdminKey == "" {
		return nil // another process made the key first and recorded it
	}
	details, err := json.Marshal(map[string]any{"source": how, "fingerprint": a.adminKeyHash[:12], "replaced": prevHash != ""})
	if err != nil {
		return fmt.Errorf("audit admin key: %w", err)
	}
	if _, err := a.store.AddAudit(ctx, rydes.AuditEntry{
		At: a.cfg.Clock.Now().UTC(), Actor: "config", Action: rydes.AuditAdminKeySet, Details: details,
	}); err != nil {
		return fmt.Errorf("audit admin key: %w", err)
	}
	return nil
}

// providerChanged brings this instance's webhook dispatchers up to date and
// tells the other instances to do the same.
func (a *App) providerChanged(_ context.Context, p rydes.Provider, _ bool) {
	if p.Kind != rydes.ProviderKindWebhook {
		return
	}
	a.reconcileWebhooks()
	if err := a.nc.Publish(ControlProvidersSubject, []byte(p.ID)); err != nil {
		a.log.Warn("announce provider change; other instances resync within a minute", "provider", p.ID, "err", err)
	}
}

func (a *App) reconcileWebhooks() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.hooks.Reconcile(ctx); err != nil {
		a.log.Warn("reconcile webhook dispatchers; retried at the next resync", "err", err)
	}
}

// natsAuth checks provider credentials on the embedded broker against the
// registry; until the registry exists, nobody but rydes itself gets in.
type natsAuth struct {
	reg *atomic.Pointer[registry.Registry]
}

func (n natsAuth) CheckNATSPassword(ctx context.Context, user, password string) (bool, error) {
	reg := n.reg.Load()
	if reg == nil {
		return false, nil
	}
	return reg.CheckNATSPassword(ctx, user, password)
}

// queues adapts the bus to the registry's view of provider queues.
type queues struct{ b *bus.Bus }

func (q queues) EnsureProviderQueue(ctx context.Context, provider string) error {
	return q.b.EnsureProviderQueue(ctx, provider)
}

func (q queues) DeleteProviderQueue(ctx context.Context, provider string) error {
	return q.b.DeleteProviderQueue(ctx, provider)
}

func (q queues) QueueInfo(ctx context.Context, provider string) (registry.QueueInfo, error) {
	qi, err := q.b.QueueInfo(ctx, provider)
	return registry.QueueInfo{Pending: qi.Pending, InFlight: qi.InFlight, Oldest: qi.Oldest}, err
}

func (q queues) Redispatch(ctx context.Context, provider string, req rydes.ProviderRequest) error {
	return q.b.Redispatch(ctx, provider, req)
}

// disconnect closes a provider's connections to the embedded broker. On an
// external broker the provider's credentials are not rydes's to enforce.
func (a *App) disconnect(user string) {
	if a.nats != nil {
		a.nats.DisconnectUser(user)
	}
}

// GeneratedAdminKey returns the admin key this start made, to be shown once;
// "" if the key was configured or made by an earlier start.
func (a *App) GeneratedAdminKey() string { return a.generatedAdminKey }

// Customers returns the customer registry, for tests and tools in this module.
func (a *App) Customers() *registry.Customers { return a.custs }

// Registry returns the provider registry, for tests and tools in this module.
func (a *App) Registry() *registry.Registry { return a.reg }

// gatherCommitTimeout bounds one group commit of answers, and so how long
// an answer in flight holds the expiry of its RFQ back.
const gatherCommitTimeout = 30 * time.Second

// answer stages one answer a provider sent over NATS with the next group
// commit and returns the receipt it is sent once that committed.
func (a *App) answer(ctx context.Context, in bus.Inbound) rydes.AnswerReceipt {
	res, err := a.gatherer.Submit(ctx, engine.Inbound{Answer: in.Answer, Payload: in.Payload, Err: in.Err})
	if err != nil {
		a.log.Warn("answer not staged; its provider sends it again", "provider", in.Answer.Provider, "rfq", in.Answer.RFQID, "err", err)
		msg := "rydes could not stage the answer now; send it again"
		if errors.Is(err, engine.ErrGathererStopped) {
			msg = "rydes is stopping; send the answer again"
		}
		return rydes.AnswerReceipt{Error: msg}
	}
	return rydes.AnswerReceipt{
		Outcome: res.Decision.Outcome, RFQStatus: res.Status,
		Reason: res.Decision.Reason, Message: res.Decision.Message,
	}
}

// busWatcher serves the API's watches from the bus: its WatchRFQ returns
// the concrete *bus.Watch, which the API takes as an api.Watch.
type busWatcher struct {
	b *bus.Bus
	s store.Store
}

var _ api.Watch = (*bus.Watch)(nil)

// WatchRFQ implements api.Watcher.
func (w busWatcher) WatchRFQ(ctx context.Context, rfqID string, afterSeq int64) (api.Watch, error) {
	watch, err := w.b.WatchRFQ(ctx, rfqID, afterSeq)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return watch, nil
}

// PastEvents implements api.Watcher. The outbox is read first: what it
// no longer holds was stored by the broker before the read of the
// stream, which therefore has it unless the broker dropped it since.
func (w busWatcher) PastEvents(ctx context.Context, rfqID string, afterSeq int64) ([]rydes.Event, bool, error) {
	holds, err := w.s.OutboxHoldsEvents(ctx, rfqID)
	if err != nil || holds {
		return nil, false, err
	}
	events, err := w.b.StoredEvents(ctx, rfqID, afterSeq)
	if err != nil {
		return nil, false, err
	}
	return events, true, nil
}

func (a *App) goLoop(name string, f func() error) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := f(); err != nil {
			a.log.Error("background loop stopped", "loop", name, "err", err)
			select {
			case a.errc <- fmt.Errorf("%s: %w", name, err):
			default:
			}
		}
	}()
}

// URL returns the base URL of the HTTP API: https when it serves TLS.
func (a *App) URL() string {
	if a.httpsCert != nil {
		return "https://" + a.ln.Addr().String()
	}
	return "http://" + a.ln.Addr().String()
}

// NATSURL returns the embedded broker's client URL, or "" when it listens
// in-process only.
func (a *App) NATSURL() string {
	if a.nats == nil {
		return a.cfg.NATSURL
	}
	return a.nats.ClientURL()
}

// Engine returns the engine, for tests and tools in this module.
func (a *App) Engine() *engine.Engine { return a.engine }

// Store returns the store, for tests and tools in this module.
func (a *App) Store() store.Store { return a.store }

// Bus returns the bus, for tests and tools in this module.
func (a *App) Bus() *bus.Bus { return a.bus }

// Embedded returns the embedded broker, or nil when rydes uses an external
// one (Config.NATSURL).
func (a *App) Embedded() *bus.Embedded { return a.nats }

// SQLite returns the SQLite store, for tests and tools in this module.
func (a *App) SQLite() *sqlite.Store { return a.store }

// Conn returns the process's own connection to the broker.
func (a *App) Conn() *nats.Conn { return a.nc }

// Err returns a channel that receives the error of a background loop that
// stopped on its own, which leaves the process unable to do its job.
func (a *App) Err() <-chan error { return a.errc }

// Shutdown stops rydes gracefully: it stops taking requests and lets those in
// flight finish, stops the providers and the gatherer (unacknowledged
// answers are redelivered on the next start), publishes what the outbox
// holds, and closes the store and the broker. ctx bounds the HTTP drain.
func (a *App) Shutdown(ctx context.Context) error {
	a.stopOnce.Do(func() {
		a.ready.Store(false)
		// Event streams and long polls end when shutdown begins, so that
		// draining HTTP does not wait for them (clients resume elsewhere).
		if a.bus != nil {
			a.bus.EndWatches()
		}
		var errs []error
		if err := a.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("drain http: %w", err))
		}
		if a.debugSrv != nil {
			_ = a.debugSrv.Close() // a profile being taken is cut short
		}
		a.cancel()
		a.wg.Wait()
		errs = append(errs, a.close())
		a.stopErr = errors.Join(errs...)
		a.log.Info("rydes stopped")
	})
	return a.stopErr
}

// close releases what Start acquired, in reverse order.
func (a *App) close() error {
	var errs []error
	// Closed already if serving began; not if Start failed after listening.
	for _, ln := range []net.Listener{a.ln, a.debugLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	if a.bus != nil {
		a.bus.Close()
	}
	if a.nc != nil {
		// Every user of the connection has stopped; what it published was
		// acknowledged, so closing loses nothing.
		a.nc.Close()
	}
	if a.nats != nil {
		a.nats.Shutdown()
	}
	if a.store != nil {
		if err := a.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
	}
	return errors.Join(errs...)
}
