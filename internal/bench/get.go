package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wildrydes/rydes/client"
)

// getRequests is how many requests the get scenario reads, round robin.
const getRequests = 100

// GetReport is the get scenario's: GET /v1/rfqs/{id} of complete requests,
// first in full (200 with the body), then conditional (If-None-Match with
// the ETag of the last answer: 304, no body).
type GetReport struct {
	Concurrency int       `json:"concurrency"`
	Requests    int       `json:"requests"`
	Open        bool      `json:"open"` // the requests read were open, not complete
	DurationSec float64   `json:"duration_s"`
	Full        GetResult `json:"full"`
	NotModified GetResult `json:"not_modified"`
}

// GetResult is one kind of GET's throughput and latency.
type GetResult struct {
	Count   int64       `json:"count"`
	PerSec  float64     `json:"per_s"`
	Latency Percentiles `json:"latency"`
	Errors  int64       `json:"errors"`
}

// runGet runs the get scenario and fills rep.
func runGet(ctx context.Context, cfg Config, tg *target, rep *Report) error {
	run := randomHex(4)
	c, err := tg.client()
	if err != nil {
		return err
	}
	fl, err := startFleet(ctx, fleetConfig{
		admin: c, natsURL: tg.natsURL, run: run, count: cfg.Providers, tracker: newTracker(), silent: cfg.GetOpen,
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
	ids := make([]string, getRequests)
	for i := range ids {
		rfq, err := c.CreateRFQ(ctx, client.CreateRFQRequest{
			Customer: "bench", From: "Frankfurt", To: "Las Vegas",
			Attributes: map[string]string{benchAttribute: run}, Timeout: cfg.RequestTimeout,
		})
		if err != nil {
			return fmt.Errorf("create request to read: %w", err)
		}
		ids[i] = rfq.ID
	}
	// Read complete requests (or, with GetOpen, open ones that nobody
	// answers): their ETag no longer changes. Polling is fine here: this
	// is set-up, not measurement.
	etags := make([]string, len(ids))
	for i, id := range ids {
		for {
			status, etag, err := getOnce(ctx, tg, id, "")
			if err != nil {
				return fmt.Errorf("read request %s: %w", id, err)
			}
			if status == "complete" || cfg.GetOpen && status == "open" {
				etags[i] = etag
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}

	g := &GetReport{Concurrency: cfg.Concurrency, Requests: len(ids), Open: cfg.GetOpen, DurationSec: cfg.Duration.Seconds()}
	m := newMeasurement(cfg, tg)
	fmt.Fprintf(cfg.Progress, "get: %d requests, %d in flight, warmup %s, then %s of full GETs and %s of conditional GETs\n",
		len(ids), cfg.Concurrency, cfg.Warmup, cfg.Duration, cfg.Duration)
	getLoop(ctx, cfg, tg, ids, nil, cfg.Warmup, nil)
	m.start()
	g.Full = getLoop(ctx, cfg, tg, ids, nil, cfg.Duration, cfg.Progress)
	g.NotModified = getLoop(ctx, cfg, tg, ids, etags, cfg.Duration, cfg.Progress)
	m.stop()
	rep.Get = g
	rep.Concurrency = cfg.Concurrency
	rep.fillProcess(tg, m, 2*cfg.Duration)
	return nil
}

// getOnce reads request id, conditionally if etag is set, and returns its
// status ("" for a 304) and ETag.
func getOnce(ctx context.Context, tg *target, id, etag string) (status, newETag string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tg.url+"/v1/rfqs/"+id, nil)
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Authorization", "Bearer "+tg.key)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := tg.http.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", "", err
	}
	switch {
	case etag != "" && resp.StatusCode == http.StatusNotModified:
		return "", resp.Header.Get("ETag"), nil
	case resp.StatusCode != http.StatusOK:
		return "", "", fmt.Errorf("GET %s: %s", id, resp.Status)
	}
	// Only the status is needed; a substring check spares a JSON decode
	// in the measured loop.
	for _, s := range []string{"complete", "open", "expired", "cancelled"} {
		if containsStatus(body, s) {
			return s, resp.Header.Get("ETag"), nil
		}
	}
	return "unknown", resp.Header.Get("ETag"), nil
}

func containsStatus(body []byte, status string) bool {
	return bytes.Contains(body, []byte(`"status":"`+status+`"`))
}

// getLoop reads ids round robin with cfg.Concurrency workers for d,
// conditionally with etags if given (expecting 304s), and reports.
func getLoop(ctx context.Context, cfg Config, tg *target, ids, etags []string, d time.Duration, progress io.Writer) GetResult {
	if d <= 0 {
		return GetResult{}
	}
	h := NewHistogram()
	var count, errs, next atomic.Int64
	// The end stops the workers between requests: a request cut short
	// would be an error of the bench's making on both sides.
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(end) {
				i := int(next.Add(1)) % len(ids)
				etag := ""
				if etags != nil {
					etag = etags[i]
				}
				t0 := time.Now()
				_, _, err := getOnce(ctx, tg, ids[i], etag)
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				h.Record(time.Since(t0))
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	r := GetResult{Count: count.Load(), Errors: errs.Load(), Latency: h.Percentiles()}
	r.PerSec = float64(r.Count) / el.Seconds()
	if progress != nil {
		kind := "full GET"
		if etags != nil {
			kind = "conditional GET"
		}
		fmt.Fprintf(progress, "get: %s %.0f/s, p50 %.3f ms, p99 %.3f ms, errors %d\n", kind, r.PerSec, r.Latency.P50, r.Latency.P99, r.Errors)
	}
	return r
}
