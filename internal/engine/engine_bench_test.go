package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/engine"
	"github.com/wildrydes/rydes/internal/store"
	"github.com/wildrydes/rydes/internal/store/sqlite"
)

// discardPublisher stands in for the broker and keeps nothing.
type discardPublisher struct{}

func (discardPublisher) Publish(context.Context, []store.OutboxMessage) (map[string]uint64, error) {
	return nil, nil
}

// benchEngine returns an engine on a SQLite store in a temporary directory
// (fsync at every commit, as rydes runs) with n active providers.
func benchEngine(b *testing.B, n int) (*engine.Engine, []string) {
	b.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, b.TempDir()+"/rydes.db", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("p%02d", i+1)
		if _, err := st.UpsertProvider(ctx, store.UpsertProviderParams{ID: ids[i], Name: ids[i], Kind: rydes.ProviderKindNATS, Status: rydes.ProviderActive, Now: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
	e, err := engine.New(engine.Config{Store: st, Publisher: discardPublisher{}})
	if err != nil {
		b.Fatal(err)
	}
	return e, ids
}

// BenchmarkCreateRFQ is one request through the engine: validation, the
// asked set from the active providers, and the transaction that stores the
// request, its roster, its ten dispatches and its event.
func BenchmarkCreateRFQ(b *testing.B) {
	e, _ := benchEngine(b, 10)
	ctx := context.Background()
	req := rydes.RFQRequest{Customer: "cmr", From: "Frankfurt", To: "Las Vegas"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.CreateRFQ(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rfqs/s")
}

// BenchmarkSubmitAnswer stages answers one at a time, as a provider
// answering over HTTP does: one transaction each.
func BenchmarkSubmitAnswer(b *testing.B) {
	e, ids := benchEngine(b, 10)
	ctx := context.Background()
	answers := benchAnswers(b, e, ids, b.N)
	provs := make(map[string]rydes.Provider, len(ids))
	for _, id := range ids {
		provs[id] = rydes.Provider{ID: id}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		a := answers[i].Answer
		if _, err := e.SubmitAnswer(ctx, provs[a.Provider], a, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "answers/s")
}

// BenchmarkStageAnswers stages answers in batches, as the gatherer does
// (group commit): one transaction per batch.
func BenchmarkStageAnswers(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			e, ids := benchEngine(b, 10)
			ctx := context.Background()
			answers := benchAnswers(b, e, ids, b.N*n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := e.StageAnswers(ctx, answers[i*n:(i+1)*n], nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "answers/s")
		})
	}
}

// benchAnswers creates requests and returns total quotes to them, one per
// asked provider.
func benchAnswers(b *testing.B, e *engine.Engine, ids []string, total int) []store.StageAnswer {
	b.Helper()
	ctx := context.Background()
	answers := make([]store.StageAnswer, 0, total)
	for len(answers) < total {
		rfq, err := e.CreateRFQ(ctx, rydes.RFQRequest{Customer: "cmr", From: "Frankfurt", To: "Las Vegas", Timeout: 5 * time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range ids {
			answers = append(answers, store.StageAnswer{Answer: rydes.Answer{
				RFQID: rfq.ID, Provider: p, Kind: rydes.AnswerQuote,
				Price: rydes.Price{Amount: "12.50", Currency: "USD"}, ReceivedAt: time.Now().UTC().Truncate(time.Microsecond),
			}})
		}
	}
	return answers[:total]
}

// BenchmarkGatherer hands answers to a Gatherer from 64 goroutines at once,
// as the answer service does: each waits for its group commit.
func BenchmarkGatherer(b *testing.B) {
	e, ids := benchEngine(b, 10)
	answers := make(chan store.StageAnswer, b.N)
	for _, a := range benchAnswers(b, e, ids, b.N) {
		answers <- a
	}
	close(answers)
	g := engine.NewGatherer(e, engine.GathererConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	b.ReportAllocs()
	b.SetParallelism(32) // 64 goroutines on 2 CPUs
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a := <-answers
			if _, err := g.Submit(ctx, engine.Inbound{Answer: a.Answer}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "answers/s")
}
