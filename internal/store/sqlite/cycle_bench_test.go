package sqlite

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/store"
)

// BenchmarkRequestCycle runs the store's share of whole requests the way
// the engine issues it under load, on disk with the default (power-loss)
// durability: rounds of 32 RFQs asking 10 providers each, created at once
// (group commit puts them in few transactions), their 320 answers staged
// in batches of 32 in the order they come (each RFQ's ten together, as the
// providers answer each request at about the same time), and the outbox
// emptied after each step, as the relay does. It reports whole requests a
// second: an upper bound of what rydes can close on one writer.
func BenchmarkRequestCycle(b *testing.B) {
	const perRound, providerCount, batch = 32, 10, 32
	ctx := context.Background()
	s := newBenchStore(b)
	providers := make([]string, providerCount)
	for i := range providers {
		providers[i] = fmt.Sprintf("provider-%02d", i)
	}
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		rfqs := make([]rydes.RFQ, perRound)
		for i := range rfqs {
			r, err := rydes.NewRFQ(rydes.NewID(), rydes.RFQRequest{Customer: "c", From: "a", To: "b"}, providers, now, limits)
			if err != nil {
				b.Fatal(err)
			}
			rfqs[i] = r
		}
		var wg sync.WaitGroup
		for _, r := range rfqs {
			wg.Go(func() {
				if err := s.CreateRFQ(ctx, store.CreateRFQParams{RFQ: r}); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		emptyOutbox(ctx, b, s)
		answers := make([]store.StageAnswer, 0, perRound*providerCount)
		for _, r := range rfqs {
			for i, p := range providers {
				answers = append(answers, store.StageAnswer{Answer: rydes.Answer{
					RFQID: r.ID, Provider: p, Kind: rydes.AnswerQuote,
					Price:      rydes.Price{Amount: fmt.Sprintf("%d.50", 10+i), Currency: "EUR"},
					ReceivedAt: now,
				}})
			}
		}
		for len(answers) > 0 {
			n := min(batch, len(answers))
			res, err := s.StageAnswers(ctx, store.StageAnswersParams{Answers: answers[:n], Now: now})
			if err != nil {
				b.Fatal(err)
			}
			if res[0].Decision.Outcome != rydes.OutcomeStaged {
				b.Fatalf("answer not staged: %+v", res[0])
			}
			answers = answers[n:]
			emptyOutbox(ctx, b, s)
		}
	}
	b.ReportMetric(float64(b.N*perRound)/b.Elapsed().Seconds(), "requests/s")
}

// emptyOutbox deletes what the outbox holds, as the relay does once it
// published it.
func emptyOutbox(ctx context.Context, b *testing.B, s *Store) {
	b.Helper()
	msgs, err := s.PendingOutbox(ctx, store.PendingOutboxParams{Limit: 1000})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]int64, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	if err := s.DeleteOutbox(ctx, store.DeleteOutboxParams{IDs: ids}); err != nil {
		b.Fatal(err)
	}
}
