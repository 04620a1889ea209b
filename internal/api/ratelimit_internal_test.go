package api

import (
	"fmt"
	"testing"
	"time"
)

// TestKeyLimiterBounded checks that a flood of distinct keys cannot grow
// the limiter beyond its bound, that the least recently used bucket is the
// one dropped, and that a recent key keeps its state.
func TestKeyLimiterBounded(t *testing.T) {
	now := time.Date(2030, 7, 1, 9, 30, 0, 0, time.UTC)
	l := newKeyLimiter(Rate{PerSecond: 1, Burst: 1}, 100)
	if d := l.take("kept", now); d != 0 {
		t.Fatalf("first request of a key waits %s", d)
	}
	for i := range 10_000 {
		if i%50 == 0 {
			// "kept" stays among the recently used.
			if d := l.take("kept", now); d != time.Second {
				t.Fatalf("a drained bucket says wait %s, want 1s", d)
			}
		}
		if d := l.take(fmt.Sprintf("ip:10.0.%d.%d", i/256, i%256), now); d != 0 {
			t.Fatalf("first request of key %d waits %s", i, d)
		}
		if n := l.len(); n > 100 {
			t.Fatalf("%d buckets after %d keys; the bound is 100", n, i+1)
		}
	}
	if n := l.len(); n != 100 {
		t.Fatalf("%d buckets; want the bound, 100", n)
	}
	// The first flood key was dropped long ago: it starts afresh.
	if d := l.take("ip:10.0.0.0", now); d != 0 {
		t.Fatalf("a dropped key's new bucket says wait %s", d)
	}
}

// TestKeyLimiterWait checks the wait reported for a drained bucket, that a
// refused request takes no token, and that a nil limiter allows all.
func TestKeyLimiterWait(t *testing.T) {
	now := time.Date(2030, 7, 1, 9, 30, 0, 0, time.UTC)
	l := newKeyLimiter(Rate{PerSecond: 4, Burst: 2}, 0)
	for i := range 2 {
		if d := l.take("k", now); d != 0 {
			t.Fatalf("request %d within the burst waits %s", i+1, d)
		}
	}
	for range 3 {
		if d := l.take("k", now); d != 250*time.Millisecond {
			t.Fatalf("drained bucket says wait %s, want 250ms (refusals take no token)", d)
		}
	}
	if d := l.take("k", now.Add(250*time.Millisecond)); d != 0 {
		t.Fatalf("after the wait, still %s to go", d)
	}
	if newKeyLimiter(Rate{}, 10) != nil {
		t.Fatal("a zero Rate makes a limiter")
	}
	var none *keyLimiter
	if d := none.take("k", now); d != 0 {
		t.Fatalf("nil limiter says wait %s", d)
	}
	if got := (Rate{PerSecond: 2.5}).burst(); got != 3 {
		t.Fatalf("default burst of 2.5/s is %d, want 3", got)
	}
}
