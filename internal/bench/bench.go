// Package bench is rydes's load generator: `rydes bench`. It drives a
// running rydes, or one it starts in this process on a data dir on disk,
// through the real paths: customers create requests over HTTP, providers
// registered through the admin API answer over NATS with the provider SDK
// and their own credentials, and watchers follow requests over server-sent
// events. It reports throughput, latency percentiles (HdrHistogram),
// errors, CPU time and memory, and with Config.Reference, the same disk's
// fsync rate and a bare JetStream scatter-gather loop to compare with
// (reference.go).
//
// Scenarios:
//
//	load  requests created open-loop (Config.Rate) or closed-loop
//	      (Config.Concurrency), answered by Config.Providers providers
//	get   GET /v1/rfqs/{id}, plain and conditional (If-None-Match → 304)
//	hold  Config.Hold open requests and Config.Watchers SSE watchers (or
//	      long polls, Config.HoldLongPoll) held
//	      at once, to measure memory
package bench

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wildrydes/rydes/client"
	"github.com/wildrydes/rydes/internal/app"
	"github.com/wildrydes/rydes/internal/bus"
	"github.com/wildrydes/rydes/internal/fsinfo"
	"github.com/wildrydes/rydes/internal/store/sqlite"
)

// Scenarios.
const (
	ScenarioLoad = "load"
	ScenarioGet  = "get"
	ScenarioHold = "hold"
)

// Config configures a run.
type Config struct {
	// Scenario is ScenarioLoad (""), ScenarioGet or ScenarioHold.
	Scenario string

	// URL is a running rydes's base URL; "" starts one in this process on
	// a new data dir under Dir.
	URL string
	// AdminKey is the running rydes's admin key; required with URL. The
	// bench registers its providers with it and acts as the customer
	// "bench" with it.
	AdminKey string
	// NATSURL is the running rydes's broker (its --nats-listen), which
	// the bench's providers connect to; required with URL for load.
	NATSURL string
	// NATSUser and NATSPassword are the running rydes's own broker
	// credentials (its --nats-user, --nats-password). With them the bench
	// observes every event on the broker; without them it watches every
	// request over SSE instead, and does not measure staged→SSE.
	NATSUser, NATSPassword string
	// Dir is where the in-process rydes's data dir is made (removed after
	// the run): "" for the system's temporary directory, or the current
	// directory if that is a tmpfs. It must be on a disk: a tmpfs makes
	// fsync free and the figures meaningless.
	Dir string
	// AllowTmpfs lets Dir be on a tmpfs: for tests of the bench itself,
	// whose figures then measure no disk.
	AllowTmpfs bool
	// Durability of the in-process rydes and of the reference loop.
	Durability app.Durability

	// Rate, if above 0, offers that many requests per second whatever
	// the latency (open loop); otherwise Concurrency requests are kept in
	// flight, each sent when the one before completed (closed loop).
	Rate        float64
	Concurrency int
	// Providers is how many providers answer every request; AnswerDelay is
	// how long each waits before answering.
	Providers   int
	AnswerDelay time.Duration
	// Warmup runs before the measurement window, Duration is its length;
	// afterwards the bench waits up to Drain for requests in flight.
	Warmup, Duration, Drain time.Duration
	// SSESample is the share of requests (0 to 1) also watched over SSE.
	SSESample float64
	// RequestTimeout is the deadline of each request (its "timeout").
	RequestTimeout time.Duration

	// GetOpen makes the get scenario read requests that stay open (its
	// providers take them and answer none) instead of complete ones: what
	// a customer polling for quotes reads.
	GetOpen bool

	// Hold and Watchers size the hold scenario: open requests and SSE
	// watchers held at once.
	Hold, Watchers int
	// HoldLongPoll makes the hold scenario's watchers long-poll (GET
	// /v1/rfqs/{id}?wait=, again and again) instead of following event
	// streams.
	HoldLongPoll bool
	// HoldFor is how long the hold scenario holds everything open, its
	// memory sampled all along (default DefaultHoldFor).
	HoldFor time.Duration
	// TargetPID is the process of the rydes at URL, whose memory the hold
	// scenario samples (Linux); 0 for none. With rydes in-process, the
	// bench samples its own.
	TargetPID int

	// Reference also measures the disk's fsync rate and a bare JetStream
	// scatter-gather loop, and reports rydes's figures as ratios of them.
	Reference bool
	// ReferenceDuration is how long each reference measurement runs.
	ReferenceDuration time.Duration

	// CPUProfile, if set, receives a CPU profile of the measurement window.
	CPUProfile io.Writer
	// Trace, if set, receives an execution trace of the measurement
	// window (go tool trace): where a request's latency goes.
	Trace io.Writer
	// HeapProfile, if set, receives a heap profile: in the hold scenario
	// once every request and watcher is held, otherwise at the end.
	HeapProfile io.Writer
	// Progress receives a line a second; nil for none.
	Progress io.Writer
	// Logger receives the in-process rydes's and the bench's logs.
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultProviders      = 10
	DefaultConcurrency    = 64
	DefaultDuration       = 10 * time.Second
	DefaultWarmup         = 2 * time.Second
	DefaultDrain          = 30 * time.Second
	DefaultSSESample      = 0.1
	DefaultRequestTimeout = 30 * time.Second
	DefaultHold           = 20_000
	DefaultWatchers       = 2_000
	DefaultHoldFor        = 5 * time.Second
	DefaultReferenceTime  = 3 * time.Second
)

func (c *Config) defaults() error {
	if c.Scenario == "" {
		c.Scenario = ScenarioLoad
	}
	switch c.Scenario {
	case ScenarioLoad, ScenarioGet, ScenarioHold:
	default:
		return fmt.Errorf("scenario %q: must be %s, %s or %s", c.Scenario, ScenarioLoad, ScenarioGet, ScenarioHold)
	}
	if err := c.Durability.Validate(); err != nil {
		return err
	}
	if c.Durability == "" {
		c.Durability = app.DurabilityPowerLoss
	}
	if c.URL != "" && c.AdminKey == "" {
		return errors.New("the admin key of the rydes at the URL is required")
	}
	if c.URL != "" && c.NATSURL == "" && c.Scenario != ScenarioHold {
		return errors.New("the NATS URL of the rydes at the URL (its --nats-listen) is required: the bench's providers connect to it")
	}
	c.Providers = cmp.Or(c.Providers, DefaultProviders)
	c.Concurrency = cmp.Or(c.Concurrency, DefaultConcurrency)
	c.Duration = cmp.Or(c.Duration, DefaultDuration)
	c.Drain = cmp.Or(c.Drain, DefaultDrain)
	c.RequestTimeout = cmp.Or(c.RequestTimeout, DefaultRequestTimeout)
	c.Hold = cmp.Or(c.Hold, DefaultHold)
	c.Watchers = cmp.Or(c.Watchers, DefaultWatchers)
	c.HoldFor = cmp.Or(c.HoldFor, DefaultHoldFor)
	c.ReferenceDuration = cmp.Or(c.ReferenceDuration, DefaultReferenceTime)
	switch {
	case c.Rate < 0:
		return fmt.Errorf("rate %g: must not be negative", c.Rate)
	case c.Concurrency < 0 || c.Providers < 0 || c.Hold < 0 || c.Watchers < 0:
		return errors.New("concurrency, providers, hold and watchers must not be negative")
	case c.Providers > 1000:
		return fmt.Errorf("providers %d: at most 1000", c.Providers)
	case c.Watchers > c.Hold:
		return fmt.Errorf("watchers %d: at most as many as held requests (%d)", c.Watchers, c.Hold)
	case c.SSESample < 0 || c.SSESample > 1:
		return fmt.Errorf("sse sample %g: must be between 0 and 1", c.SSESample)
	case c.TargetPID < 0:
		return fmt.Errorf("pid %d: must not be negative", c.TargetPID)
	case c.TargetPID != 0 && c.URL == "":
		return errors.New("pid: only with --url (in-process, the bench samples its own memory)")
	case c.Warmup < 0 || c.Duration < 0 || c.Drain < 0 || c.AnswerDelay < 0 || c.HoldFor < 0:
		return errors.New("durations must not be negative")
	case c.RequestTimeout < time.Second:
		return fmt.Errorf("request timeout %s: at least 1s", c.RequestTimeout)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return nil
}

// Run runs the configured scenario and returns its report. ctx ends it
// early (the report then covers what was measured).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	tg, err := startTarget(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer tg.close()
	rep := newReport(cfg, tg)
	switch cfg.Scenario {
	case ScenarioLoad:
		err = runLoad(ctx, cfg, tg, rep)
	case ScenarioGet:
		err = runGet(ctx, cfg, tg, rep)
	case ScenarioHold:
		err = runHold(ctx, cfg, tg, rep)
	}
	if err != nil {
		return nil, fmt.Errorf("bench %s: %w", cfg.Scenario, err)
	}
	if cfg.HeapProfile != nil && cfg.Scenario != ScenarioHold { // hold writes it while all is held
		if err := pprof.WriteHeapProfile(cfg.HeapProfile); err != nil {
			rep.Notes = append(rep.Notes, "heap profile: "+err.Error())
		}
	}
	// The reference runs on an idle machine: stop the in-process rydes.
	if err := tg.stopApp(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if cfg.Reference {
		ref, err := runReference(ctx, referenceConfig{
			dir: tg.base, durability: cfg.Durability, duration: cfg.ReferenceDuration,
			consumers: cfg.Providers, concurrency: cfg.Concurrency, progress: cfg.Progress,
		})
		if err != nil {
			return nil, fmt.Errorf("bench: reference: %w", err)
		}
		rep.setReference(ref)
	}
	return rep, nil
}

// target is the rydes under load.
type target struct {
	url, key, natsURL string
	// events is a connection that may read every event; nil if the bench
	// has none (a running rydes without its NATS credentials).
	events *nats.Conn
	app    *app.App // the in-process rydes, if any
	// base is where the data dir is (the reference measures that disk);
	// dir is the data dir made for this run, removed at the end.
	base, dir string
	http      *http.Client // bounded exchanges
	stream    *http.Client // event streams: the same connections, no timeout
	log       *slog.Logger
}

// client returns a client of the target's API acting with its key over
// its bounded HTTP client.
func (tg *target) client() (*client.Client, error) {
	return client.New(tg.url, client.WithAPIKey(tg.key), client.WithHTTPClient(tg.http))
}

// startTarget starts the in-process rydes, or connects to cfg.URL's.
func startTarget(ctx context.Context, cfg Config) (_ *target, err error) {
	tg := &target{log: cfg.Logger, http: newHTTPClient()}
	tg.stream = &http.Client{Transport: tg.http.Transport}
	defer func() {
		if err != nil {
			tg.close()
		}
	}()
	if cfg.URL != "" {
		tg.url, tg.key, tg.natsURL = cfg.URL, cfg.AdminKey, cfg.NATSURL
		if tg.base, err = benchBase(cfg.Dir, cfg.AllowTmpfs); err != nil {
			return nil, err
		}
		if cfg.NATSPassword != "" {
			user := cfg.NATSUser
			if user == "" {
				user = bus.DefaultInternalUser
			}
			tg.events, err = nats.Connect(cfg.NATSURL, nats.Name("rydes-bench-events"), nats.UserInfo(user, cfg.NATSPassword))
			if err != nil {
				return nil, fmt.Errorf("connect to %s to observe events: %w", cfg.NATSURL, err)
			}
		}
		return tg, nil
	}
	if tg.base, err = benchBase(cfg.Dir, cfg.AllowTmpfs); err != nil {
		return nil, err
	}
	if tg.dir, err = os.MkdirTemp(tg.base, "rydes-bench-*"); err != nil {
		return nil, fmt.Errorf("make data dir: %w", err)
	}
	tg.key = randomHex(16)
	tg.app, err = app.Start(ctx, app.Config{
		HTTPAddr:      "127.0.0.1:0",
		DataDir:       tg.dir,
		NATSListen:    "127.0.0.1:0",
		RFQTimeout:    DefaultRequestTimeout,
		RFQMaxTimeout: 2 * time.Hour,
		AdminKey:      tg.key,
		Durability:    cfg.Durability,
		AllowTmpfs:    cfg.AllowTmpfs,
		Logger:        cfg.Logger.With("component", "rydes"),
	})
	if err != nil {
		return nil, fmt.Errorf("start rydes in %s: %w", tg.dir, err)
	}
	tg.url, tg.natsURL = tg.app.URL(), tg.app.NATSURL()
	if tg.events, err = tg.app.Embedded().Connect(nats.Name("rydes-bench-events")); err != nil {
		return nil, fmt.Errorf("connect to observe events: %w", err)
	}
	return tg, nil
}

// newHTTPClient returns the bench's HTTP client: many connections to one
// host, kept open.
func newHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = 4096
	tr.DisableCompression = true
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

// inProcess reports whether rydes runs in this process.
func (tg *target) inProcess() bool { return tg.dir != "" }

// stopApp stops the in-process rydes, if any.
func (tg *target) stopApp() error {
	if tg.events != nil {
		tg.events.Close()
		tg.events = nil
	}
	if tg.app == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := tg.app.Shutdown(ctx)
	tg.app = nil
	if err != nil {
		return fmt.Errorf("stop rydes: %w", err)
	}
	return nil
}

// close stops the in-process rydes and removes its data dir.
func (tg *target) close() {
	if err := tg.stopApp(); err != nil {
		tg.log.Warn("stop rydes", "err", err)
	}
	tg.http.CloseIdleConnections()
	if tg.dir != "" {
		if err := os.RemoveAll(tg.dir); err != nil {
			tg.log.Warn("remove the bench's data dir", "dir", tg.dir, "err", err)
		}
	}
}

// benchBase returns the directory to make the data dir in: dir, or the
// system's temporary directory, or, if that is a tmpfs, the current one.
// dir may be on a tmpfs only if allowTmpfs.
func benchBase(dir string, allowTmpfs bool) (string, error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return "", fmt.Errorf("bench dir: %w", err)
		}
		tmpfs, err := fsinfo.OnTmpfs(dir)
		if err != nil {
			return "", err
		}
		if tmpfs && !allowTmpfs {
			return "", fmt.Errorf("bench dir %s is on a tmpfs, where fsync costs nothing: pick a directory on a disk", dir)
		}
		return filepath.Abs(dir)
	}
	dir = os.TempDir()
	tmpfs, err := fsinfo.OnTmpfs(dir)
	if err != nil {
		return "", err
	}
	if tmpfs {
		dir = "."
	}
	return filepath.Abs(dir)
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

// measurement reads the process's CPU time, and profiles the CPU and
// traces the execution, over the measurement window.
type measurement struct {
	cpuStart, cpuEnd time.Duration
	cpuErr           error
	profile          io.Writer
	profiling        bool
	trace            io.Writer
	tracing          bool

	// commits, if set, counts the in-process store's commits, read at
	// both ends of the window.
	commits                func() sqlite.CommitStats
	commitStart, commitEnd sqlite.CommitStats
}

// newMeasurement returns the measurement of a window of cfg's run on tg.
func newMeasurement(cfg Config, tg *target) *measurement {
	m := &measurement{profile: cfg.CPUProfile, trace: cfg.Trace}
	if tg.app != nil {
		m.commits = tg.app.SQLite().CommitStats
	}
	return m
}

func (m *measurement) start() {
	m.cpuStart, m.cpuErr = cpuTime()
	if m.commits != nil {
		m.commitStart = m.commits()
	}
	if m.profile != nil {
		if err := pprof.StartCPUProfile(m.profile); err == nil {
			m.profiling = true
		} else {
			m.cpuErr = errors.Join(m.cpuErr, fmt.Errorf("cpu profile: %w", err))
		}
	}
	if m.trace != nil {
		if err := trace.Start(m.trace); err == nil {
			m.tracing = true
		} else {
			m.cpuErr = errors.Join(m.cpuErr, fmt.Errorf("trace: %w", err))
		}
	}
}

func (m *measurement) stop() {
	if m.profiling {
		pprof.StopCPUProfile()
		m.profiling = false
	}
	if m.tracing {
		trace.Stop()
		m.tracing = false
	}
	var err error
	m.cpuEnd, err = cpuTime()
	m.cpuErr = errors.Join(m.cpuErr, err)
	if m.commits != nil {
		m.commitEnd = m.commits()
	}
}
