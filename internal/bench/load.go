package bench

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/client"
)

// maxPendingCreates bounds the create calls an open loop has waiting for
// their answer; past it, a request is not sent and counts as an overload
// error (the target cannot keep up with the offered rate).
const maxPendingCreates = 10_000

// load is one run of the load scenario.
type load struct {
	cfg    Config
	tg     *target
	tr     *tracker
	run    string
	client *client.Client

	pending   atomic.Int64 // create calls waiting for their answer
	sampled   atomic.Int64 // requests numbered for SSE sampling
	createErr atomic.Int64
	sseErr    atomic.Int64
	overload  atomic.Int64
	badEvents atomic.Int64
	watchers  sync.WaitGroup
	firstErr  atomic.Pointer[error]
}

// runLoad runs the load scenario and fills rep.
func runLoad(ctx context.Context, cfg Config, tg *target, rep *Report) error {
	l := &load{cfg: cfg, tg: tg, tr: newTracker(), run: randomHex(4)}
	var err error
	l.client, err = tg.client()
	if err != nil {
		return err
	}
	fl, err := startFleet(ctx, fleetConfig{
		admin: l.client, natsURL: tg.natsURL, run: l.run, count: cfg.Providers,
		delay: cfg.AnswerDelay, tracker: l.tr, logger: cfg.Logger.With("component", "bench-provider"),
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := fl.stop(context.WithoutCancel(ctx)); err != nil {
			cfg.Logger.Warn("remove bench providers", "err", err)
		}
	}()
	if tg.events != nil {
		sub, err := observeEvents(tg.events, l.tr, func() { l.badEvents.Add(1) })
		if err != nil {
			return err
		}
		defer func() { _ = sub.Unsubscribe() }()
	} else {
		l.cfg.SSESample = 1 // the streams are how the bench sees completion
	}

	start := time.Now()
	from := start.Add(cfg.Warmup)
	to := from.Add(cfg.Duration)
	l.tr.setWindow(from, to)
	m := newMeasurement(cfg, tg)
	stopProgress := l.progress(ctx, start, from, to, m)

	genCtx, cancel := context.WithDeadline(ctx, to)
	if cfg.Rate > 0 {
		l.openLoop(genCtx, start)
	} else {
		l.closedLoop(genCtx)
	}
	cancel()
	stopProgress()
	if m.cpuEnd == 0 { // stopped early: close the window now
		m.stop()
	}

	// Let the requests in flight finish, then the watchers.
	drainCtx, cancel := context.WithTimeout(ctx, cfg.Drain)
	defer cancel()
	for l.tr.inflight.Load() > 0 || l.pending.Load() > 0 {
		if drainCtx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	l.watchers.Wait()

	window := min(time.Since(from), cfg.Duration)
	rep.fillLoad(l, fl, m, window)
	if err := fl.err(); err != nil {
		rep.Notes = append(rep.Notes, "a provider stopped: "+err.Error())
	}
	return nil
}

// progress prints a line a second until the returned function is called,
// and starts and stops the measurement at from and to.
func (l *load) progress(ctx context.Context, start, from, to time.Time, m *measurement) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		startT := time.NewTimer(time.Until(from))
		defer startT.Stop()
		endT := time.NewTimer(time.Until(to))
		defer endT.Stop()
		var lastC, lastD, lastS int64
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-startT.C:
				m.start()
			case <-endT.C:
				m.stop()
			case now := <-tick.C:
				phase := "warmup"
				if !now.Before(from) {
					phase = "measure"
				}
				c, d, s := l.tr.totalCreated.Load(), l.tr.totalCompleted.Load(), l.tr.totalStaged.Load()
				fmt.Fprintf(l.cfg.Progress, "bench %4.0fs %-7s created %6d/s  complete %6d/s  staged %7d/s  in flight %5d  errors %d\n",
					now.Sub(start).Seconds(), phase, c-lastC, d-lastD, s-lastS, l.tr.inflight.Load(), l.errors())
				lastC, lastD, lastS = c, d, s
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

// errors counts the errors so far.
func (l *load) errors() int64 {
	return l.createErr.Load() + l.sseErr.Load() + l.overload.Load() + l.badEvents.Load()
}

// openLoop sends requests at cfg.Rate until ctx ends, each at its planned
// time whatever happened to the ones before; latency counts from the
// planned time, so a stall is not hidden (no coordinated omission).
func (l *load) openLoop(ctx context.Context, start time.Time) {
	interval := time.Duration(float64(time.Second) / l.cfg.Rate)
	next := start
	for ctx.Err() == nil {
		if d := time.Until(next); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		planned := next
		next = next.Add(interval)
		if l.pending.Load() >= maxPendingCreates {
			l.overload.Add(1)
			continue
		}
		l.pending.Add(1)
		go func() {
			defer l.pending.Add(-1)
			l.one(context.WithoutCancel(ctx), planned)
		}()
	}
}

// closedLoop keeps cfg.Concurrency requests in flight until ctx ends: each
// worker sends one, waits for it to be final, and sends the next.
func (l *load) closedLoop(ctx context.Context) {
	var wg sync.WaitGroup
	for range l.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				l.pending.Add(1)
				done := l.one(context.WithoutCancel(ctx), time.Now())
				l.pending.Add(-1)
				if done == nil {
					// Failed: do not spin against a failing server.
					select {
					case <-ctx.Done():
					case <-time.After(10 * time.Millisecond):
					}
					continue
				}
				select {
				case <-done:
				case <-ctx.Done():
					return // the drain waits for it
				case <-time.After(l.cfg.RequestTimeout + 10*time.Second):
					// Its final event never came; the drain counts it.
				}
			}
		}()
	}
	wg.Wait()
}

// one creates a request (meant to be) sent at planned and, if it is
// sampled, watches it over SSE. It returns a channel closed when the
// request is final, or nil if it could not be created.
func (l *load) one(ctx context.Context, planned time.Time) <-chan struct{} {
	rfq, err := l.client.CreateRFQ(ctx, client.CreateRFQRequest{
		Customer: "bench", From: "Frankfurt", To: "Las Vegas",
		Attributes: map[string]string{benchAttribute: l.run},
		Timeout:    l.cfg.RequestTimeout,
	})
	if err != nil {
		if l.createErr.Add(1) == 1 {
			l.cfg.Logger.Warn("create request", "err", err)
			l.firstErr.Store(&err)
		}
		return nil
	}
	watched := l.sample()
	done := l.tr.createdRFQ(rfq.ID, planned, watched)
	if watched {
		l.watchers.Add(1)
		go func() {
			defer l.watchers.Done()
			l.watch(ctx, rfq.ID)
		}()
	}
	return done
}

// sample reports whether the next request is watched over SSE: evenly
// spread, SSESample of them.
func (l *load) sample() bool {
	p := l.cfg.SSESample
	if p <= 0 {
		return false
	}
	n := float64(l.sampled.Add(1))
	return math.Floor(n*p) != math.Floor((n-1)*p)
}

// watch follows request id over SSE until its final event.
func (l *load) watch(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.RequestTimeout+l.cfg.Drain)
	defer cancel()
	observed := l.tg.events != nil
	err := watchSSE(ctx, l.tg.stream, l.tg.url, l.tg.key, id, func(ev rydes.Event, at, opened time.Time) {
		if observed {
			l.tr.pushed(ev, at, opened)
		} else {
			l.tr.event(ev, at)
		}
	})
	if err != nil {
		if l.sseErr.Add(1) == 1 {
			l.cfg.Logger.Warn("watch request", "err", err)
			l.firstErr.Store(&err)
		}
	}
}
