package provider

import (
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes/internal/rydestest"
)

// submit hands d to r as consume does: it takes a slot and dispatches.
func submit(t *testing.T, r *runner, d delivery) {
	t.Helper()
	require.True(t, r.take(nil), "the runner refused a request")
	r.dispatch(d)
}

// idleHandlers counts the goroutines waiting in a runner's handler for
// work, from a dump of every goroutine's stack.
func idleHandlers() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "[select") && strings.Contains(g, "provider.(*runner).handler(") {
			n++
		}
	}
	return n
}

func TestRunnerReusesItsHandlerGoroutines(t *testing.T) {
	var served atomic.Int32
	r := newRunner(8, func(delivery) { served.Add(1) })
	for i := range 20 {
		submit(t, r, delivery{})
		rydestest.WaitFor(t, "the request served and its goroutine idle", func() bool {
			return served.Load() == int32(i+1) && idleHandlers() == 1
		})
	}
	r.mu.Lock()
	workers := r.workers
	r.mu.Unlock()
	require.Equal(t, 1, workers, "one request at a time needs one goroutine")

	r.stop()
	require.Zero(t, idleHandlers(), "the handler goroutine outlived stop")
}

func TestRunnerStartsAtMostConcurrencyGoroutines(t *testing.T) {
	const concurrency = 3
	var (
		serving atomic.Int32
		served  atomic.Int32
	)
	release := make(chan struct{})
	r := newRunner(concurrency, func(delivery) {
		serving.Add(1)
		<-release
		serving.Add(-1)
		served.Add(1)
	})
	for range concurrency {
		submit(t, r, delivery{})
	}
	rydestest.WaitFor(t, "every slot's request in a handler", func() bool { return serving.Load() == concurrency })

	// More requests than slots: each waits for a slot, then for a
	// goroutine of the three.
	const more = 5
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range more {
			if !r.take(nil) {
				t.Error("the runner refused a request")
				return
			}
			r.dispatch(delivery{})
		}
	}()
	close(release)
	<-done
	r.stop()
	require.EqualValues(t, concurrency+more, served.Load())
	r.mu.Lock()
	workers := r.workers
	r.mu.Unlock()
	require.Equal(t, concurrency, workers)
	require.Zero(t, idleHandlers(), "handler goroutines outlived stop")
}

func TestRunnerRefusesRequestsOnceStopped(t *testing.T) {
	r := newRunner(2, func(delivery) { t.Error("a request ran after stop") })
	r.stop()
	require.False(t, r.take(nil))
	require.Empty(t, r.slots, "a refused request kept its slot")
}
