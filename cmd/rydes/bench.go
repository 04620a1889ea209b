package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/wildrydes/rydes/internal/app"
	"github.com/wildrydes/rydes/internal/bench"
)

// benchConfig parses the bench flags (and their RYDES_* variables).
// profilePaths are the files `rydes bench` writes profiles to ("" for none).
type profilePaths struct{ cpu, heap, trace string }

func benchConfig(args []string, getenv func(string) string, stderr io.Writer) (cfg bench.Config, jsonOut bool, profile profilePaths, level string, err error) {
	fs := flag.NewFlagSet("rydes bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.URL, "url", "", "base URL of a running rydes to load; empty: start one in this process on a data dir on disk")
	fs.StringVar(&cfg.AdminKey, "key", "", "admin key of the rydes at --url")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "with --url: that rydes's broker (its --nats-listen), which the bench's providers connect to")
	fs.StringVar(&cfg.NATSUser, "nats-user", "", "with --url: that rydes's own NATS user, to observe events on the broker (default rydes.internal)")
	fs.StringVar(&cfg.NATSPassword, "nats-password", "", "with --url: that rydes's own NATS password; without it every request is watched over SSE instead")
	fs.StringVar(&cfg.Dir, "bench-dir", "", "where to make the in-process rydes's data dir (removed after): on a disk, not a tmpfs (default: the temporary directory, or the current one if that is a tmpfs)")
	fs.BoolVar(&cfg.AllowTmpfs, "allow-tmpfs", false, "allow --bench-dir on a tmpfs (fsync there is free: the figures measure no disk): for tests only")
	durability := fs.String("durability", string(app.DurabilityPowerLoss), "durability of the in-process rydes and of the reference loop: power-loss or process-crash")
	fs.Float64Var(&cfg.Rate, "rate", 0, "offered requests per second (open loop); 0 keeps --concurrency requests in flight (closed loop)")
	fs.IntVar(&cfg.Concurrency, "concurrency", bench.DefaultConcurrency, "requests in flight in a closed loop (and workers of the get and hold scenarios)")
	fs.IntVar(&cfg.Providers, "providers", bench.DefaultProviders, "providers asked for every request, each on its own NATS connection")
	fs.DurationVar(&cfg.AnswerDelay, "answer-delay", 0, "how long each provider waits before answering (0: at once)")
	fs.DurationVar(&cfg.Duration, "duration", bench.DefaultDuration, "length of the measurement window")
	fs.DurationVar(&cfg.Warmup, "warmup", bench.DefaultWarmup, "load before the measurement window, not measured")
	fs.DurationVar(&cfg.Drain, "drain", bench.DefaultDrain, "longest wait for requests in flight after the window")
	fs.Float64Var(&cfg.SSESample, "sse-sample", bench.DefaultSSESample, "share of requests (0 to 1) also watched over SSE")
	fs.DurationVar(&cfg.RequestTimeout, "timeout", bench.DefaultRequestTimeout, "deadline of each request")
	fs.BoolVar(&cfg.GetOpen, "get-open", false, "get scenario: read open requests (providers that answer none) instead of complete ones; give a --timeout longer than the run")
	fs.IntVar(&cfg.Hold, "hold", bench.DefaultHold, "hold scenario: open requests held at once")
	fs.IntVar(&cfg.Watchers, "watchers", bench.DefaultWatchers, "hold scenario: SSE watchers held at once")
	fs.BoolVar(&cfg.HoldLongPoll, "long-poll", false, "hold scenario: the watchers long-poll (GET ?wait=30s, again and again) instead of following SSE")
	fs.DurationVar(&cfg.HoldFor, "hold-for", bench.DefaultHoldFor, "hold scenario: how long everything is held, rydes's memory sampled all along")
	fs.IntVar(&cfg.TargetPID, "pid", 0, "hold scenario with --url: the process id of that rydes, whose memory (VmRSS) is sampled while everything is held (Linux)")
	fs.BoolVar(&cfg.Reference, "reference", false, "also measure the disk's fsync rate and a bare JetStream scatter-gather loop, and print rydes's figures as ratios of them")
	fs.DurationVar(&cfg.ReferenceDuration, "reference-duration", bench.DefaultReferenceTime, "how long each reference measurement runs")
	fs.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	fs.StringVar(&profile.cpu, "cpuprofile", "", "write a CPU profile of the measurement window to this file (go tool pprof)")
	fs.StringVar(&profile.trace, "trace", "", "write an execution trace of the measurement window to this file (go tool trace): where latency goes; it slows the run")
	fs.StringVar(&profile.heap, "memprofile", "", "write a heap profile to this file (go tool pprof): in the hold scenario once everything is held, else at the end")
	fs.StringVar(&level, "log-level", "warn", "log level of the bench and the in-process rydes: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: rydes bench [load|get|hold] [flags]

Load-tests rydes through its real paths: customers over HTTP, providers
over NATS with their own credentials, watchers over SSE. Without --url it
starts rydes in this process on a data dir on disk, and removes it after.

  load  (default) create requests, open loop (--rate) or closed loop
        (--concurrency), answered by --providers providers
  get   GET /v1/rfqs/{id} of complete requests, plain and with If-None-Match
  hold  hold --hold open requests and --watchers SSE watchers; report memory

Progress goes to stderr each second; the report to stdout.
Each flag can also be set as RYDES_<FLAG_IN_UPPER_SNAKE>, e.g. RYDES_BENCH_DIR.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, getenv); err != nil {
		return cfg, false, profilePaths{}, "", err
	}
	switch fs.NArg() {
	case 0:
		cfg.Scenario = bench.ScenarioLoad
	case 1:
		cfg.Scenario = fs.Arg(0)
	default:
		return cfg, false, profilePaths{}, "", exitError{code: 2, err: fmt.Errorf("bench takes at most one scenario, got %q", fs.Args())}
	}
	switch cfg.Scenario {
	case bench.ScenarioLoad, bench.ScenarioGet, bench.ScenarioHold:
	default:
		return cfg, false, profilePaths{}, "", exitError{code: 2, err: fmt.Errorf("unknown bench scenario %q: load, get or hold", cfg.Scenario)}
	}
	cfg.Durability = app.Durability(*durability)
	if err := cfg.Durability.Validate(); err != nil {
		return cfg, false, profilePaths{}, "", exitError{code: 2, err: fmt.Errorf("--durability: %w", err)}
	}
	return cfg, jsonOut, profile, level, nil
}

// runBench runs `rydes bench`.
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, jsonOut, profile, level, err := benchConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	if cfg.Logger, err = newLogger(level, stderr); err != nil {
		return err
	}
	cfg.Progress = stderr
	for _, out := range []struct {
		path, what string
		into       *io.Writer
	}{
		{profile.cpu, "cpu profile", &cfg.CPUProfile},
		{profile.trace, "trace", &cfg.Trace},
		{profile.heap, "heap profile", &cfg.HeapProfile},
	} {
		if out.path == "" {
			continue
		}
		f, err := os.Create(out.path)
		if err != nil {
			return fmt.Errorf("%s: %w", out.what, err)
		}
		defer f.Close()
		*out.into = f
	}
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if jsonOut {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteTable(stdout)
}
