package app

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// listenDebug listens on addr, if set, for serveDebug: a listener of its
// own, never the API's, for an operator on the machine or behind their own
// access control.
func (a *App) listenDebug(addr string) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("debug listener on %s: %w", addr, err)
	}
	a.debugLn = ln
	return nil
}

// serveDebug serves Go's profiles (/debug/pprof/) on the debug listener,
// if there is one, until Shutdown.
func (a *App) serveDebug() {
	if a.debugLn == nil {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	a.debugSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	a.goLoop("debug", func() error {
		if err := a.debugSrv.Serve(a.debugLn); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
}

// DebugURL returns the base URL of the debug listener, "" without one.
func (a *App) DebugURL() string {
	if a.debugLn == nil {
		return ""
	}
	return "http://" + a.debugLn.Addr().String()
}
