package bus

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
)

// BenchmarkDispatchCycle is the broker's share of scattering one request to
// ten providers: the relay publishes the request to each provider's queue,
// and each provider takes it from its queue and acknowledges it (which
// removes it from the work queue).
func BenchmarkDispatchCycle(b *testing.B) {
	bb := setup(b, false)
	ctx := rydestest.Context(b)
	const providers = 10
	names := make([]string, providers)
	for i := range names {
		names[i] = fmt.Sprintf("p%d", i)
		if err := bb.bus.EnsureProviderQueue(ctx, names[i]); err != nil {
			b.Fatal(err)
		}
	}
	const batch = 64 // requests per Publish
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		msgs := make([]store.OutboxMessage, n)
		for j := range msgs {
			msgs[j] = dispatchMsg(int64(i+j), rydes.NewID(), names[0])
			msgs[j].Dispatch.Providers = names
		}
		if _, err := bb.bus.Publish(ctx, msgs); err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, providers)
		for _, p := range names {
			wg.Go(func() { errs <- takeAll(ctx, bb.js, p, n) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
}

// takeAll takes n requests from provider's queue and acknowledges each.
func takeAll(ctx context.Context, js jetstream.JetStream, provider string, n int) error {
	cons, err := js.Consumer(ctx, DispatchStream, ProviderQueue(provider))
	if err != nil {
		return err
	}
	for n > 0 {
		batch, err := cons.Fetch(n, jetstream.FetchContext(ctx))
		if err != nil {
			return err
		}
		for m := range batch.Messages() {
			if err := m.Ack(); err != nil {
				return err
			}
			n--
		}
		if err := batch.Error(); err != nil {
			return err
		}
	}
	return nil
}
