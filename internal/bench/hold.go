package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wildrydes/rydes/client"
)

// holdTimeout is the deadline of the hold scenario's requests: long
// enough that none expires while held (rydes's default longest is 10m).
const holdTimeout = 10 * time.Minute

// holdOpeners is how many watchers are being opened at once.
const holdOpeners = 64

// HoldReport is the hold scenario's: how much memory Requests open
// requests and Watchers watchers on them (SSE, or long polls) take, held at
// once.
type HoldReport struct {
	Requests int `json:"requests"`
	Watchers int `json:"watchers"`
	// Watch is how the watchers follow their requests: "sse" (event
	// streams) or "long-poll" (GET ?wait=, again and again).
	Watch string `json:"watch"`
	// PollsAnswered counts the long polls answered while held: each an
	// event on a request; none if nothing happens to the held requests.
	PollsAnswered int64   `json:"polls_answered,omitempty"`
	CreateSec     float64 `json:"create_s"`
	CreatedPerSec float64 `json:"created_per_s"`
	WatchSec      float64 `json:"watch_s"`
	// RSSMiB is the resident set with everything held; PeakRSSMiB the
	// process's peak so far.
	RSSMiB     float64 `json:"rss_mib"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// Held is rydes's resident set sampled while everything is held
	// (Config.HoldFor): of the process Config.TargetPID, or of this one
	// with rydes in-process; nil if not measured.
	Held       *HeldMemory `json:"held,omitempty"`
	Errors     int64       `json:"errors"`
	FirstError string      `json:"first_error,omitempty"`
}

// HeldMemory is a process's resident set sampled while the hold scenario
// holds everything.
type HeldMemory struct {
	PID      int     `json:"pid"` // 0: the bench's own process
	Seconds  float64 `json:"seconds"`
	Samples  int     `json:"samples"`
	LastMiB  float64 `json:"last_rss_mib"`
	MaxMiB   float64 `json:"max_rss_mib"`
	Error    string  `json:"error,omitempty"`
	Measured string  `json:"measured"` // "rydes" or "rydes+bench"
}

// holdSample is how often the hold scenario samples memory.
const holdSample = 250 * time.Millisecond

// sampleHeld samples the resident set of process pid (0: this one) every
// holdSample for d, or until ctx ends.
func sampleHeld(ctx context.Context, pid int, d time.Duration) *HeldMemory {
	h := &HeldMemory{PID: pid, Measured: "rydes"}
	if pid == 0 {
		h.Measured = "rydes+bench"
	}
	start := time.Now()
	t := time.NewTicker(holdSample)
	defer t.Stop()
	for {
		rss, _, err := memoryOf(pid)
		if err != nil {
			h.Error = err.Error()
			return h
		}
		h.Samples++
		h.LastMiB = mib(rss)
		h.MaxMiB = max(h.MaxMiB, h.LastMiB)
		h.Seconds = time.Since(start).Seconds()
		if h.Seconds >= d.Seconds() {
			return h
		}
		select {
		case <-ctx.Done():
			return h
		case <-t.C:
		}
	}
}

// runHold runs the hold scenario and fills rep.
func runHold(ctx context.Context, cfg Config, tg *target, rep *Report) error {
	run := randomHex(4)
	c, err := tg.client()
	if err != nil {
		return err
	}
	// Providers that take every request and answer none: it stays open.
	fl, err := startFleet(ctx, fleetConfig{
		admin: c, natsURL: tg.natsURL, run: run, count: cfg.Providers, silent: true, tracker: newTracker(),
		logger: cfg.Logger.With("component", "bench-provider"),
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := fl.stop(context.WithoutCancel(ctx)); err != nil {
			cfg.Logger.Warn("remove bench providers", "err", err)
		}
	}()
	h := &HoldReport{Requests: cfg.Hold, Watchers: cfg.Watchers, Watch: "sse"}
	if cfg.HoldLongPoll {
		h.Watch = "long-poll"
	}
	var errs atomic.Int64
	var firstErr atomic.Pointer[error]
	fail := func(err error) {
		if errs.Add(1) == 1 {
			firstErr.Store(&err)
		}
	}

	// Open the requests, cfg.Concurrency at a time.
	ids := make([]string, cfg.Hold)
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	stopProgress := tickProgress(cfg, start, func() string {
		return fmt.Sprintf("hold: %d of %d requests open", min(next.Load(), int64(cfg.Hold)), cfg.Hold)
	})
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(ids) {
					return
				}
				rfq, err := c.CreateRFQ(ctx, client.CreateRFQRequest{
					Customer: "bench", From: "Frankfurt", To: "Las Vegas",
					Attributes: map[string]string{benchAttribute: run}, Timeout: holdTimeout,
				})
				if err != nil {
					fail(fmt.Errorf("create request: %w", err))
					continue
				}
				ids[i] = rfq.ID
			}
		}()
	}
	wg.Wait()
	stopProgress()
	h.CreateSec = time.Since(start).Seconds()
	h.CreatedPerSec = float64(cfg.Hold) / h.CreateSec

	// Open the watchers; each holds its stream until the scenario ends.
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	var opened, closed sync.WaitGroup
	var open, answered atomic.Int64
	start = time.Now()
	stopProgress = tickProgress(cfg, start, func() string {
		return fmt.Sprintf("hold: %d of %d watchers open", open.Load(), cfg.Watchers)
	})
	slots := make(chan struct{}, holdOpeners)
	for _, id := range ids[:cfg.Watchers] {
		if id == "" {
			continue
		}
		opened.Add(1)
		closed.Add(1)
		slots <- struct{}{}
		go func() {
			defer closed.Done()
			once := sync.OnceFunc(func() { <-slots; opened.Done() })
			defer once()
			opened := func() { open.Add(1); once() }
			var err error
			if cfg.HoldLongPoll {
				err = holdLongPoll(watchCtx, tg, id, opened, &answered)
			} else {
				err = holdStream(watchCtx, tg, id, opened)
			}
			if err != nil && watchCtx.Err() == nil {
				fail(err)
			}
		}()
	}
	opened.Wait()
	stopProgress()
	h.WatchSec = time.Since(start).Seconds()
	if tg.inProcess() || cfg.TargetPID != 0 {
		h.Held = sampleHeld(ctx, cfg.TargetPID, cfg.HoldFor)
	}

	rep.fillProcess(tg, nil, 0)
	h.RSSMiB, h.PeakRSSMiB = rep.Process.RSSMiB, rep.Process.PeakRSSMiB
	if cfg.HeapProfile != nil {
		runtime.GC()
		if err := pprof.WriteHeapProfile(cfg.HeapProfile); err != nil {
			rep.Notes = append(rep.Notes, "heap profile: "+err.Error())
		}
	}
	stopWatching()
	closed.Wait()
	h.Errors = errs.Load()
	h.PollsAnswered = answered.Load()
	if p := firstErr.Load(); p != nil {
		h.FirstError = (*p).Error()
	}
	if open.Load() < int64(cfg.Watchers) {
		rep.Notes = append(rep.Notes, fmt.Sprintf("only %d of %d watchers opened", open.Load(), cfg.Watchers))
	}
	rep.Hold = h
	rep.Concurrency = cfg.Concurrency
	rep.DurationSec = 0
	return nil
}

// holdStream opens the event stream of request id, calls opened once it
// is open, and reads it until ctx ends.
func holdStream(ctx context.Context, tg *target, id string, opened func()) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tg.url+"/v1/rfqs/"+id+"/events", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+tg.key)
	resp, err := tg.stream.Do(req)
	if err != nil {
		return fmt.Errorf("events of %s: %w", id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("events of %s: %s", id, resp.Status)
	}
	opened()
	buf := make([]byte, 4<<10)
	for {
		if _, err := resp.Body.Read(buf); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("events of %s: %w", id, err)
		}
	}
}

// holdPollWait is the ?wait= of the hold scenario's long polls: rydes's
// default longest.
const holdPollWait = "30s"

// holdLongPoll long-polls request id, GET ?wait= after GET ?wait= as a
// client that cannot take an event stream does, until ctx ends; it calls
// opened once the first poll is sent. Without If-None-Match, a poll of an
// open request is held until the request changes or the wait ends.
func holdLongPoll(ctx context.Context, tg *target, id string, opened func(), answered *atomic.Int64) error {
	first := sync.OnceFunc(opened)
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { first() }}
	for {
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet,
			tg.url+"/v1/rfqs/"+id+"?wait="+holdPollWait, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tg.key)
		resp, err := tg.stream.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("long poll of %s: %w", id, err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotModified {
			return fmt.Errorf("long poll of %s: %s", id, resp.Status)
		}
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("long poll of %s: %w", id, err)
		}
		if ctx.Err() != nil {
			return nil
		}
		answered.Add(1)
	}
}

// tickProgress prints line() every second until the returned function is
// called.
func tickProgress(cfg Config, start time.Time, line func() string) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				fmt.Fprintf(cfg.Progress, "bench %4.0fs %s\n", now.Sub(start).Seconds(), line())
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}
