package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wildrydes/rydes/internal/store/sqlite"
)

// Report is what a run measured. Its JSON form is what `rydes bench
// --json` prints.
type Report struct {
	Scenario string `json:"scenario"`
	// Target is "in-process" or the URL of the rydes under load.
	Target     string `json:"target"`
	Durability string `json:"durability"`
	// Loop is "open" (offered Rate) or "closed" (Concurrency).
	Loop          string  `json:"loop,omitempty"`
	Rate          float64 `json:"offered_rate,omitempty"`
	Concurrency   int     `json:"concurrency,omitempty"`
	Providers     int     `json:"providers"`
	AnswerDelayMS float64 `json:"answer_delay_ms"`
	SSESample     float64 `json:"sse_sample,omitempty"`
	WarmupSec     float64 `json:"warmup_s"`
	DurationSec   float64 `json:"duration_s"`
	// DataDir is where the in-process rydes kept its data (removed since).
	DataDir string `json:"data_dir,omitempty"`
	Machine string `json:"machine"`

	Created   int64 `json:"created"`
	Completed int64 `json:"completed"`
	// Staged is answers whose event was seen in the window.
	Staged          int64   `json:"answers_staged"`
	CreatedPerSec   float64 `json:"created_per_s"`
	CompletedPerSec float64 `json:"completed_per_s"`
	StagedPerSec    float64 `json:"answers_staged_per_s"`

	Latency Latency `json:"latency"`
	Errors  Errors  `json:"errors"`
	Process Process `json:"process"`
	// Store is what the in-process rydes's database committed in the
	// window of the load scenario; nil against a rydes at --url.
	Store *StoreFigures `json:"store,omitempty"`

	Get       *GetReport  `json:"get,omitempty"`
	Hold      *HoldReport `json:"hold,omitempty"`
	Reference *Reference  `json:"reference,omitempty"`
	Ratios    *Ratios     `json:"ratios,omitempty"`

	Notes []string `json:"notes,omitempty"`
}

// Latency holds the latency percentiles of the load scenario.
type Latency struct {
	CreateComplete Percentiles `json:"create_to_complete"`
	AnswerStaged   Percentiles `json:"answer_to_staged"`
	StagedSSE      Percentiles `json:"staged_to_sse"`
}

// Errors counts what went wrong.
type Errors struct {
	Total int64 `json:"total"`
	// Create is requests the server refused or did not answer.
	Create int64 `json:"create"`
	// SSE is event streams that failed before their final event.
	SSE int64 `json:"sse"`
	// Incomplete is requests still open after the drain.
	Incomplete int64 `json:"incomplete"`
	// Expired is requests that expired (or were cancelled) instead of
	// completing.
	Expired int64 `json:"expired"`
	// Overload is requests an open loop did not send because too many
	// were waiting for the server already.
	Overload int64 `json:"overload"`
	// BadEvents is messages on the events subjects that did not decode.
	BadEvents int64 `json:"bad_events"`
	// Providers is bench providers that stopped with an error.
	Providers int64 `json:"providers"`
	// First is the first error's text.
	First string `json:"first,omitempty"`
}

// Process is what the measuring process used.
type Process struct {
	// Measured says whose figures these are: "rydes+bench" when rydes
	// runs in this process (its load generator, providers and watchers
	// included), "bench" when rydes runs elsewhere.
	Measured   string  `json:"measured"`
	CPUSeconds float64 `json:"cpu_s"`
	// CPUCores is CPU seconds per second of the window.
	CPUCores float64 `json:"cpu_cores"`
	// CPUPerRequestMS is CPU time per completed request.
	CPUPerRequestMS float64 `json:"cpu_per_request_ms,omitempty"`
	RSSMiB          float64 `json:"rss_mib"`
	PeakRSSMiB      float64 `json:"peak_rss_mib"`
	Error           string  `json:"error,omitempty"`
}

// StoreFigures counts the database's commits over the window: with the
// default durability each is an fsync, and at moderate load their number,
// not the rows, is what the store costs.
type StoreFigures struct {
	Commits int64 `json:"commits"`
	// Writes is the writes those commits held (creates, staged batches of
	// answers, outbox deletes...).
	Writes int64 `json:"writes"`
	// CommitsPerRequest is Commits over the requests completed.
	CommitsPerRequest float64 `json:"commits_per_request,omitempty"`
	// CommitMeanMS is the mean time of a COMMIT statement: writing the
	// log, and its fsync with the default durability.
	CommitMeanMS float64 `json:"commit_mean_ms"`
	// SlowCommits counts the COMMITs that took sqlite.SlowCommit (50 ms)
	// or longer: a disk that stalled, which every write behind it waited
	// out. A window with a p99 far above its p50 and slow commits met the
	// disk's stall, not rydes's.
	SlowCommits int64 `json:"slow_commits"`
}

// Ratios are rydes's figures over the reference's.
type Ratios struct {
	// CompletedVsBareLoop is rydes's completed requests/s over the bare
	// JetStream loop's.
	CompletedVsBareLoop float64 `json:"completed_vs_bare_loop"`
	// CompletedPerFsync is rydes's completed requests/s over the disk's
	// fsyncs/s: how many requests one fsync pays for.
	CompletedPerFsync float64 `json:"completed_per_fsync"`
	// BareLoopPerFsync is the same for the bare loop.
	BareLoopPerFsync float64 `json:"bare_loop_per_fsync"`
}

// gcSettings describes this process's garbage collector settings, which
// move the figures (see docs/performance.md): GOGC and the memory limit.
func gcSettings() string {
	gogc := os.Getenv("GOGC")
	if gogc == "" {
		gogc = "100"
	}
	limit := "none"
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		limit = fmt.Sprintf("%d MiB", l>>20)
	}
	return "GOGC " + gogc + ", memory limit " + limit
}

func newReport(cfg Config, tg *target) *Report {
	r := &Report{
		Scenario: cfg.Scenario, Target: cfg.URL, Durability: string(cfg.Durability),
		Providers: cfg.Providers, AnswerDelayMS: ms(cfg.AnswerDelay),
		WarmupSec: cfg.Warmup.Seconds(), DurationSec: cfg.Duration.Seconds(),
		DataDir: tg.dir,
		Machine: fmt.Sprintf("%s/%s, %d CPUs, GOMAXPROCS %d, %s, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), gcSettings()),
	}
	if tg.inProcess() {
		r.Target = "in-process"
	}
	if cfg.URL != "" {
		r.Durability = "as configured on the server"
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// fillLoad fills the report of a load run from what it measured over a
// window of the given length.
func (r *Report) fillLoad(l *load, fl *fleet, m *measurement, window time.Duration) {
	cfg := l.cfg
	if cfg.Rate > 0 {
		r.Loop, r.Rate = "open", cfg.Rate
	} else {
		r.Loop, r.Concurrency = "closed", cfg.Concurrency
	}
	r.SSESample = cfg.SSESample
	r.DurationSec = window.Seconds()
	tr := l.tr
	r.Created, r.Completed, r.Staged = tr.created.Load(), tr.completed.Load(), tr.stagedN.Load()
	if s := window.Seconds(); s > 0 {
		r.CreatedPerSec = float64(r.Created) / s
		r.CompletedPerSec = float64(r.Completed) / s
		r.StagedPerSec = float64(r.Staged) / s
	}
	r.Latency = Latency{
		CreateComplete: tr.createComplete.Percentiles(),
		AnswerStaged:   tr.answerStaged.Percentiles(),
		StagedSSE:      tr.stagedSSE.Percentiles(),
	}
	r.Errors = Errors{
		Create: l.createErr.Load(), SSE: l.sseErr.Load(), Incomplete: max(tr.inflight.Load(), 0),
		Expired: tr.expired.Load(), Overload: l.overload.Load(), BadEvents: l.badEvents.Load(),
		Providers: fl.errs.Load(),
	}
	if p := l.firstErr.Load(); p != nil {
		r.Errors.First = (*p).Error()
	}
	r.Errors.Total = r.Errors.Create + r.Errors.SSE + r.Errors.Incomplete + r.Errors.Expired +
		r.Errors.Overload + r.Errors.BadEvents + r.Errors.Providers
	r.fillProcess(l.tg, m, window)
	if r.Process.CPUSeconds > 0 && r.Completed > 0 {
		r.Process.CPUPerRequestMS = r.Process.CPUSeconds * 1000 / float64(r.Completed)
	}
	if m.commits != nil {
		d := m.commitEnd.Sub(m.commitStart)
		st := &StoreFigures{Commits: d.Commits, Writes: d.Writes, SlowCommits: d.SlowCommits}
		if d.Commits > 0 {
			st.CommitMeanMS = d.CommitTime.Seconds() * 1000 / float64(d.Commits)
		}
		if r.Completed > 0 {
			st.CommitsPerRequest = float64(st.Commits) / float64(r.Completed)
		}
		r.Store = st
	}
	if l.tg.events == nil {
		r.Notes = append(r.Notes, "no NATS credentials: completion and staging seen over SSE, every request watched; staged→SSE not measured")
	}
}

// fillProcess records the process's CPU time over the window and memory.
func (r *Report) fillProcess(tg *target, m *measurement, window time.Duration) {
	r.Process.Measured = "bench"
	if tg.inProcess() {
		r.Process.Measured = "rydes+bench"
	}
	var errs []string
	if m != nil {
		if m.cpuErr != nil {
			errs = append(errs, m.cpuErr.Error())
		} else {
			r.Process.CPUSeconds = (m.cpuEnd - m.cpuStart).Seconds()
			if window > 0 {
				r.Process.CPUCores = r.Process.CPUSeconds / window.Seconds()
			}
		}
	}
	rss, peak, err := memory()
	if err != nil {
		errs = append(errs, err.Error())
	}
	r.Process.RSSMiB, r.Process.PeakRSSMiB = mib(rss), mib(peak)
	r.Process.Error = strings.Join(errs, "; ")
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// setReference adds the reference measurements and the ratios to them.
func (r *Report) setReference(ref *Reference) {
	r.Reference = ref
	if r.Scenario != ScenarioLoad {
		return
	}
	ra := &Ratios{}
	if ref.BareLoop.CompletedPerSec > 0 {
		ra.CompletedVsBareLoop = r.CompletedPerSec / ref.BareLoop.CompletedPerSec
	}
	if ref.Fsync.PerSec > 0 {
		ra.CompletedPerFsync = r.CompletedPerSec / ref.Fsync.PerSec
		ra.BareLoopPerFsync = ref.BareLoop.CompletedPerSec / ref.Fsync.PerSec
	}
	r.Ratios = ra
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// WriteTable writes the report as text tables.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }
	p("rydes bench: %s, target %s, durability %s\n", r.Scenario, r.Target, r.Durability)
	p("machine: %s\n", r.Machine)
	if r.DataDir != "" {
		p("data dir: %s\n", r.DataDir)
	}
	if r.Scenario == ScenarioLoad {
		loop := fmt.Sprintf("closed loop, %d in flight", r.Concurrency)
		if r.Loop == "open" {
			loop = fmt.Sprintf("open loop, %.0f req/s offered", r.Rate)
		}
		p("%s; %d providers answering after %.0f ms; %.0f%% watched over SSE; warmup %.0fs, window %.1fs\n\n",
			loop, r.Providers, r.AnswerDelayMS, 100*r.SSESample, r.WarmupSec, r.DurationSec)
		p("throughput\tcount\tper second\n")
		p("requests created\t%d\t%.1f\n", r.Created, r.CreatedPerSec)
		p("requests completed\t%d\t%.1f\n", r.Completed, r.CompletedPerSec)
		p("answers staged\t%d\t%.1f\n\n", r.Staged, r.StagedPerSec)
		p("latency (ms)\tcount\tp50\tp90\tp99\tp99.9\tmax\n")
		for _, row := range []struct {
			name string
			p    Percentiles
		}{
			{"create→complete", r.Latency.CreateComplete},
			{"answer→staged", r.Latency.AnswerStaged},
			{"staged→SSE", r.Latency.StagedSSE},
		} {
			p("%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\n", row.name, row.p.Count, row.p.P50, row.p.P90, row.p.P99, row.p.P999, row.p.Max)
		}
		p("\n")
		e := r.Errors
		p("errors: %d (create %d, sse %d, incomplete %d, expired %d, overload %d, bad events %d, providers %d)\n",
			e.Total, e.Create, e.SSE, e.Incomplete, e.Expired, e.Overload, e.BadEvents, e.Providers)
		if e.First != "" {
			p("first error: %s\n", e.First)
		}
	}
	if g := r.Get; g != nil {
		state := "complete"
		if g.Open {
			state = "open"
		}
		p("GET /v1/rfqs/{id} of %d %s requests, %d in flight, window %.1fs each\n\n", g.Requests, state, g.Concurrency, g.DurationSec)
		p("\tcount\tper second\tp50 ms\tp99 ms\terrors\n")
		p("200 (full)\t%d\t%.0f\t%.3f\t%.3f\t%d\n", g.Full.Count, g.Full.PerSec, g.Full.Latency.P50, g.Full.Latency.P99, g.Full.Errors)
		p("304 (If-None-Match)\t%d\t%.0f\t%.3f\t%.3f\t%d\n", g.NotModified.Count, g.NotModified.PerSec, g.NotModified.Latency.P50, g.NotModified.Latency.P99, g.NotModified.Errors)
	}
	if h := r.Hold; h != nil {
		watchers := "SSE watchers open"
		if h.Watch == "long-poll" {
			watchers = fmt.Sprintf("long polls held (%d answered while held)", h.PollsAnswered)
		}
		p("hold: %d open requests (%d providers that never answer), %d %s\n", h.Requests, r.Providers, h.Watchers, watchers)
		p("created in %.1fs (%.0f/s), watchers opened in %.1fs; errors %d\n", h.CreateSec, h.CreatedPerSec, h.WatchSec, h.Errors)
		if h.FirstError != "" {
			p("first error: %s\n", h.FirstError)
		}
		if m := h.Held; m != nil {
			p("held for %.1fs: %s rss %.0f MiB at the end, %.0f MiB at most (%d samples)\n", m.Seconds, m.Measured, m.LastMiB, m.MaxMiB, m.Samples)
			if m.Error != "" {
				p("held memory: %s\n", m.Error)
			}
		}
	}
	pr := r.Process
	p("\nprocess (%s): cpu %.1fs (%.2f cores", pr.Measured, pr.CPUSeconds, pr.CPUCores)
	if pr.CPUPerRequestMS > 0 {
		p(", %.2f ms per request", pr.CPUPerRequestMS)
	}
	p("), rss %.0f MiB, peak rss %.0f MiB\n", pr.RSSMiB, pr.PeakRSSMiB)
	if pr.Error != "" {
		p("process figures: %s\n", pr.Error)
	}
	if st := r.Store; st != nil {
		p("store: %d commits of %d writes (%.2f per request), COMMIT %.2f ms on average, %d of %v or more\n",
			st.Commits, st.Writes, st.CommitsPerRequest, st.CommitMeanMS, st.SlowCommits, sqlite.SlowCommit)
	}
	if ref := r.Reference; ref != nil {
		p("\nreference, same disk (%s), durability %s\n", ref.Dir, ref.Durability)
		p("fsync (4 KiB append + fdatasync)\t%.0f/s\tp50 %.2f ms\tp99 %.2f ms\n", ref.Fsync.PerSec, ref.Fsync.Latency.P50, ref.Fsync.Latency.P99)
		p("bare JetStream loop (%d consumers, %d in flight, %s)\t%.0f req/s\tp50 %.2f ms\tp99 %.2f ms\n",
			ref.BareLoop.Consumers, ref.BareLoop.Concurrency, ref.BareLoop.Sync, ref.BareLoop.CompletedPerSec,
			ref.BareLoop.Latency.P50, ref.BareLoop.Latency.P99)
	}
	if ra := r.Ratios; ra != nil {
		p("rydes / bare loop: %.2fx   rydes requests per fsync: %.3f   bare loop requests per fsync: %.3f\n",
			ra.CompletedVsBareLoop, ra.CompletedPerFsync, ra.BareLoopPerFsync)
	}
	for _, n := range r.Notes {
		p("note: %s\n", n)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
