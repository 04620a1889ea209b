package api

import (
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
)

// onFreshStack runs f on a new goroutine and waits for it to return. A
// panic in f is raised again on the caller's goroutine, carrying f's stack
// trace; http.ErrAbortHandler is raised as it is.
//
// It keeps a long-lived goroutine's stack small. Go grows a goroutine's
// stack to fit its deepest call and shrinks it only when a garbage
// collection finds three quarters of it unused, which a parked handler's
// stack rarely is. An event stream's handler runs on net/http's connection
// goroutine, parked for as long as its client follows the RFQ; a database
// read, a broker request or a write to the socket made on it would double
// its stack (8 KB to 16 KB) for the stream's whole life, and the garbage
// collector's goal counts stacks. Made on a short-lived goroutine, that
// growth is returned to the runtime's stack pool when it exits, for the
// next one to reuse: with 2,000 streams held open (rydes bench hold), the
// stacks took 27 MB instead of 43.
func onFreshStack(f func()) {
	var (
		recovered any
		returned  bool
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if !returned {
				recovered = recover()
				if recovered != nil && recovered != http.ErrAbortHandler {
					recovered = &freshStackPanic{value: recovered, stack: debug.Stack()}
				}
			}
		}()
		f()
		returned = true
	}()
	<-done
	switch {
	case returned:
	case recovered != nil:
		panic(recovered)
	default: // f called runtime.Goexit
		runtime.Goexit()
	}
}

// freshStackPanic is a panic of a function run by onFreshStack, raised
// again on the caller's goroutine with the stack trace where it happened.
type freshStackPanic struct {
	value any
	stack []byte
}

func (p *freshStackPanic) String() string { return fmt.Sprintf("%v\n\n%s", p.value, p.stack) }

// Unwrap returns the panic's value if it is an error.
func (p *freshStackPanic) Unwrap() error {
	err, _ := p.value.(error)
	return err
}

func (p *freshStackPanic) Error() string { return p.String() }

// authenticateOnFreshStack serves r through authenticate (the customer
// routes' requireCustomer) to open, on a fresh stack, and returns what
// open returned: a held response to follow on the caller's goroutine, or
// nil if the request was answered (an error among others) or refused.
func authenticateOnFreshStack[T any](w http.ResponseWriter, r *http.Request, authenticate func(customerHandler) http.Handler, open func(w http.ResponseWriter, r *http.Request, customer string) *T) *T {
	var held *T
	onFreshStack(func() {
		authenticate(func(w http.ResponseWriter, r *http.Request, customer string) {
			held = open(w, r, customer)
		}).ServeHTTP(w, r)
	})
	return held
}
