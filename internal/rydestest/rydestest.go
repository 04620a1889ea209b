// Package rydestest holds helpers shared by rydes's tests: a logger that
// writes through t.Log, free loopback ports, waiting for a condition with a
// timeout, the CI rule for integration dependencies, and a buffer safe for
// concurrent writers.
package rydestest

import (
	"context"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"
)

// Logger returns a logger that writes through t.Log, so output shows only
// for failing tests (or with -v).
func Logger(t testing.TB) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago. Prefer listening on port 0 where the code allows it.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("free port: %v", err)
	}
	return addr
}

// WaitTimeout is how long WaitFor waits before failing the test. It is a
// bound against hangs, not a timing assertion: generous on purpose.
const WaitTimeout = 30 * time.Second

// WaitFor calls cond until it returns true, failing the test if that has not
// happened within WaitTimeout. It polls; use it for conditions that have no
// channel to wait on, such as the state of a server seen over HTTP.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitForWithin(t, WaitTimeout, what, cond)
}

// WaitForWithin is WaitFor with a bound of its own, for what a test knows
// takes longer (an ack wait, say).
func WaitForWithin(t testing.TB, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", bound, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Context returns a context cancelled when the test ends or after
// WaitTimeout, whichever comes first.
func Context(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// RequireDependency skips the test with a clear message when a dependency it
// needs (PostgreSQL, an external NATS, a browser) is unavailable on this
// machine, except under CI (CI=true), where a missing dependency fails it.
func RequireDependency(t testing.TB, name string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI=true but unavailable: %v", name, err)
	}
	t.Skipf("skipping: %s unavailable (%v); CI=true makes this a failure", name, err)
}
