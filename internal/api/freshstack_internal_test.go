package api

import (
	"errors"
	"net/http"
	"runtime"
	"strings"
	"testing"
)

func TestOnFreshStackRunsAndWaits(t *testing.T) {
	got := 0
	onFreshStack(func() { got = 42 })
	if got != 42 {
		t.Fatalf("after onFreshStack: got %d, want 42 (it must wait for f)", got)
	}
}

// panicker panics with v: a named function, to be found in the stack.
func panicker(v any) { panic(v) }

func TestOnFreshStackRaisesPanicAgain(t *testing.T) {
	errBoom := errors.New("boom")
	for _, tc := range []struct {
		name string
		v    any
		// check inspects what the caller recovered.
		check func(t *testing.T, got any)
	}{
		{"error, wrapped with its stack", errBoom, func(t *testing.T, got any) {
			err, ok := got.(error)
			if !ok || !errors.Is(err, errBoom) {
				t.Fatalf("recovered %#v, want an error that is errBoom", got)
			}
			if !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "api.panicker") {
				t.Errorf("recovered %q: want the value and the stack where it panicked", err.Error())
			}
		}},
		{"string", "bad state", func(t *testing.T, got any) {
			s, ok := got.(interface{ String() string })
			if !ok || !strings.HasPrefix(s.String(), "bad state\n") || !strings.Contains(s.String(), "api.panicker") {
				t.Fatalf("recovered %#v, want the value, then the stack where it panicked", got)
			}
		}},
		{"ErrAbortHandler as it is", http.ErrAbortHandler, func(t *testing.T, got any) {
			if got != http.ErrAbortHandler {
				t.Fatalf("recovered %#v, want http.ErrAbortHandler itself, which net/http looks for", got)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got any
			func() {
				defer func() { got = recover() }()
				onFreshStack(func() { panicker(tc.v) })
				t.Fatal("onFreshStack returned after f panicked")
			}()
			tc.check(t, got)
		})
	}
}

func TestOnFreshStackGoexitEndsTheCaller(t *testing.T) {
	done := make(chan bool)
	go func() {
		returned := false
		defer func() { done <- returned }()
		onFreshStack(runtime.Goexit) // as t.FailNow does
		returned = true
	}()
	if <-done {
		t.Fatal("onFreshStack returned after f called runtime.Goexit; the caller must end too")
	}
}
