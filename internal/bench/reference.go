package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wildrydes/rydes/internal/app"
	"github.com/wildrydes/rydes/internal/bus"
)

// Reference is what rydes is compared with, measured on the disk of its
// data dir in the same run.
type Reference struct {
	Dir        string     `json:"dir"`
	Durability string     `json:"durability"`
	Fsync      FsyncRate  `json:"fsync"`
	BareLoop   LoopResult `json:"bare_loop"`
}

// FsyncRate is the rate of 4 KiB appends each followed by fdatasync: the
// most durable writes a second the disk takes one after the other.
type FsyncRate struct {
	Count   int64       `json:"count"`
	PerSec  float64     `json:"per_s"`
	Latency Percentiles `json:"latency"`
}

// LoopResult is the bare JetStream scatter-gather loop's: a request is
// published to one stream that fans it out to Consumers durable consumers;
// each publishes an answer to a second stream (waiting for its ack) and
// acks the request; a gatherer on the answers stream counts them, and the
// request is complete when all Consumers answered. No database.
type LoopResult struct {
	Consumers   int `json:"consumers"`
	Concurrency int `json:"concurrency"`
	// Sync is the broker's setting: "sync_always" or "default interval".
	Sync            string      `json:"sync"`
	Completed       int64       `json:"completed"`
	CompletedPerSec float64     `json:"completed_per_s"`
	Latency         Percentiles `json:"latency"`
}

type referenceConfig struct {
	dir         string // made in, then removed
	durability  app.Durability
	duration    time.Duration
	consumers   int
	concurrency int
	progress    io.Writer
}

// runReference measures the fsync rate and the bare loop under cfg.dir.
func runReference(ctx context.Context, cfg referenceConfig) (*Reference, error) {
	dir, err := os.MkdirTemp(cfg.dir, "rydes-reference-*")
	if err != nil {
		return nil, fmt.Errorf("make reference dir: %w", err)
	}
	defer os.RemoveAll(dir)
	ref := &Reference{Dir: cfg.dir, Durability: string(cfg.durability)}
	fmt.Fprintf(cfg.progress, "reference: fsync rate for %s\n", cfg.duration)
	if ref.Fsync, err = measureFsync(ctx, dir, cfg.duration); err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.progress, "reference: bare JetStream loop for %s\n", cfg.duration)
	if ref.BareLoop, err = measureBareLoop(ctx, filepath.Join(dir, "nats"), cfg); err != nil {
		return nil, err
	}
	return ref, nil
}

// measureFsync appends 4 KiB and fdatasyncs, over and over, for d.
func measureFsync(ctx context.Context, dir string, d time.Duration) (FsyncRate, error) {
	f, err := os.OpenFile(filepath.Join(dir, "fsync.dat"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return FsyncRate{}, fmt.Errorf("fsync rate: %w", err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for i := range buf {
		buf[i] = byte(i)
	}
	h := NewHistogram()
	var n int64
	start := time.Now()
	end := start.Add(d)
	for now := start; now.Before(end) && ctx.Err() == nil; {
		if _, err := f.Write(buf); err != nil {
			return FsyncRate{}, fmt.Errorf("fsync rate: write: %w", err)
		}
		if err := fdatasync(f); err != nil {
			return FsyncRate{}, fmt.Errorf("fsync rate: fdatasync: %w", err)
		}
		after := time.Now()
		h.Record(after.Sub(now))
		now = after
		n++
	}
	el := time.Since(start)
	return FsyncRate{Count: n, PerSec: float64(n) / el.Seconds(), Latency: h.Percentiles()}, nil
}

// Names of the bare loop's streams and subjects.
const (
	refRequests       = "REF_REQUESTS"
	refAnswers        = "REF_ANSWERS"
	refRequestSubject = "ref.req"
	refAnswerPrefix   = "ref.ans."
)

// measureBareLoop runs the bare scatter-gather loop on an embedded
// nats-server with storeDir, syncing as cfg.durability asks: cfg.concurrency
// requests in flight, closed loop, for cfg.duration after a short warmup.
func measureBareLoop(ctx context.Context, storeDir string, cfg referenceConfig) (LoopResult, error) {
	syncAlways := cfg.durability != app.DurabilityProcessCrash
	res := LoopResult{Consumers: cfg.consumers, Concurrency: cfg.concurrency, Sync: "sync_always"}
	if !syncAlways {
		res.Sync = "default interval"
	}
	emb, err := bus.StartEmbedded(ctx, bus.EmbeddedConfig{StoreDir: storeDir, Listen: "127.0.0.1:0", SyncAlways: syncAlways})
	if err != nil {
		return res, fmt.Errorf("bare loop: %w", err)
	}
	defer emb.Shutdown()
	nc, err := emb.Connect(nats.Name("bare-loop"))
	if err != nil {
		return res, fmt.Errorf("bare loop: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return res, fmt.Errorf("bare loop: %w", err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: refRequests, Subjects: []string{refRequestSubject}, Retention: jetstream.InterestPolicy,
		Storage: jetstream.FileStorage, MaxAge: time.Hour,
	}); err != nil {
		return res, fmt.Errorf("bare loop: stream: %w", err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: refAnswers, Subjects: []string{refAnswerPrefix + ">"}, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.FileStorage, MaxAge: time.Hour,
	}); err != nil {
		return res, fmt.Errorf("bare loop: stream: %w", err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stops []func()
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()

	// The gatherer counts answers per request.
	g := &gatherer{want: cfg.consumers, waiting: make(map[string]chan struct{}), counts: make(map[string]int)}
	gc, err := js.CreateOrUpdateConsumer(ctx, refAnswers, jetstream.ConsumerConfig{
		Durable: "gatherer", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 10_000,
	})
	if err != nil {
		return res, fmt.Errorf("bare loop: gatherer: %w", err)
	}
	gcc, err := gc.Consume(g.take, jetstream.PullMaxMessages(512))
	if err != nil {
		return res, fmt.Errorf("bare loop: gatherer: %w", err)
	}
	stops = append(stops, gcc.Stop)

	// Each consumer answers over its own TCP connection, as a provider.
	for i := range cfg.consumers {
		name := "c" + strconv.Itoa(i+1)
		cons, err := js.CreateOrUpdateConsumer(ctx, refRequests, jetstream.ConsumerConfig{
			Durable: name, AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1000,
		})
		if err != nil {
			return res, fmt.Errorf("bare loop: consumer %s: %w", name, err)
		}
		pc, err := nats.Connect(emb.ClientURL(), nats.Name("bare-loop-"+name))
		if err != nil {
			return res, fmt.Errorf("bare loop: consumer %s: %w", name, err)
		}
		stops = append(stops, pc.Close)
		pjs, err := jetstream.New(pc)
		if err != nil {
			return res, fmt.Errorf("bare loop: consumer %s: %w", name, err)
		}
		// Look the consumer up on the provider's own connection.
		pcons, err := pjs.Consumer(ctx, refRequests, cons.CachedInfo().Name)
		if err != nil {
			return res, fmt.Errorf("bare loop: consumer %s: %w", name, err)
		}
		subject := refAnswerPrefix + name
		cc, err := pcons.Consume(func(m jetstream.Msg) {
			go func() {
				if _, err := pjs.Publish(runCtx, subject, m.Data()); err != nil {
					_ = m.Nak()
					return
				}
				_ = m.Ack()
			}()
		}, jetstream.PullMaxMessages(256))
		if err != nil {
			return res, fmt.Errorf("bare loop: consumer %s: %w", name, err)
		}
		stops = append([]func(){cc.Stop}, stops...)
	}

	// The closed loop.
	warmup := min(cfg.duration/4, time.Second)
	start := time.Now()
	from, to := start.Add(warmup), start.Add(warmup+cfg.duration)
	h := NewHistogram()
	var completed atomic.Int64
	var firstErr atomic.Pointer[error]
	var next atomic.Int64
	var wg sync.WaitGroup
	loopCtx, stopLoop := context.WithDeadline(runCtx, to)
	defer stopLoop()
	for range cfg.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for loopCtx.Err() == nil {
				id := strconv.FormatInt(next.Add(1), 10)
				done := g.expect(id)
				t0 := time.Now()
				if _, err := js.Publish(loopCtx, refRequestSubject, []byte(id)); err != nil {
					if loopCtx.Err() == nil {
						firstErr.CompareAndSwap(nil, &err)
					}
					return
				}
				select {
				case <-done:
				case <-loopCtx.Done():
					return
				}
				t1 := time.Now()
				if !t0.Before(from) && t1.Before(to) {
					h.Record(t1.Sub(t0))
					completed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return res, fmt.Errorf("bare loop: publish: %w", *p)
	}
	if ctx.Err() != nil {
		return res, errors.New("bare loop: stopped early")
	}
	res.Completed = completed.Load()
	res.CompletedPerSec = float64(res.Completed) / cfg.duration.Seconds()
	res.Latency = h.Percentiles()
	return res, nil
}

// gatherer counts the bare loop's answers.
type gatherer struct {
	want    int
	mu      sync.Mutex
	waiting map[string]chan struct{}
	counts  map[string]int
}

// expect registers request id and returns a channel closed once all its
// answers were gathered.
func (g *gatherer) expect(id string) <-chan struct{} {
	ch := make(chan struct{})
	g.mu.Lock()
	g.waiting[id] = ch
	g.mu.Unlock()
	return ch
}

// take counts one answer and acks it.
func (g *gatherer) take(m jetstream.Msg) {
	id := string(m.Data())
	g.mu.Lock()
	g.counts[id]++
	if g.counts[id] == g.want {
		delete(g.counts, id)
		if ch, ok := g.waiting[id]; ok {
			delete(g.waiting, id)
			close(ch)
		}
	}
	g.mu.Unlock()
	_ = m.Ack()
}
