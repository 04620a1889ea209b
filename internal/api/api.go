// Package api is rydes's HTTP adapter: the /v1 JSON API for requests for
// quotes, the workshop's seed routes (wire-compatible with the reference
// Wild Rydes lab 3) and a health check. It knows HTTP and nothing else: every
// decision about RFQs is the Service's.
//
// Every route is listed in routes.go; each handler is made by a function that
// takes its dependencies and returns an http.Handler. docs/openapi.yaml
// describes every route, and the package apitest checks real traffic
// against it.
//
// # Errors
//
// Every error, including an unknown route (404) and a wrong method (405), is
// an RFC 9457 application/problem+json body (see Problem). Domain errors are
// mapped to a status in one place, ErrorStatus:
//
//	invalid    400  malformed or out-of-range input, whether syntactic
//	                (bad JSON, wrong type, unknown field) or semantic
//	                (blank field, timeout out of range): one status, 400
//	forbidden  403
//	not_found  404
//	conflict   409  e.g. cancelling an RFQ that is already final
//	gone       410
//	too_large  413  the body is larger than Config.MaxBodyBytes
//	unmatched  422  a valid request that no active provider can serve
//	internal   500  detail "internal error"; the real error is logged
//	timeout    504
//
// The HTTP layer adds 404 for an unknown route, 405 for a wrong method (with
// Allow), 415 for a body that is not application/json and 503 from /healthz
// while the service is not ready.
package api

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/wildrydes/rydes"
)

// Service is what the API needs from the engine behind it. Its errors are
// *rydes.Error values (or wrap one); any other error is an internal error.
type Service interface {
	// CreateRFQ validates req, records the RFQ it asks for and scatters it to
	// the matching providers. It returns the RFQ as created.
	CreateRFQ(ctx context.Context, req rydes.RFQRequest) (rydes.RFQ, error)
	// GetRFQ returns the RFQ with the given id. A non-empty customer must
	// own it; "" skips the ownership check.
	GetRFQ(ctx context.Context, id, customer string) (rydes.RFQ, error)
	// CancelRFQ cancels the open RFQ with the given id and returns it; it
	// fails with rydes.ECONFLICT if the RFQ is already final. A non-empty
	// customer must own it; "" skips the ownership check.
	CancelRFQ(ctx context.Context, id, customer string) (rydes.RFQ, error)
}

// DefaultMaxBodyBytes is the largest request body accepted when
// Config.MaxBodyBytes is not set.
const DefaultMaxBodyBytes = 64 << 10

// Config holds the dependencies and settings of the API.
type Config struct {
	// Service serves the RFQ routes. Required.
	Service Service
	// Logger receives request logs and internal errors. Nil discards them.
	Logger *slog.Logger
	// Ready reports whether the process can serve requests; GET /healthz
	// answers 503 while it returns false. Nil means always ready.
	Ready func() bool
	// MaxBodyBytes bounds request bodies; larger ones get 413. Zero or less
	// means DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

// New returns the API's handler: every route of routes.go behind request
// logging, panic recovery and the X-Content-Type-Options header. It panics
// if cfg.Service is nil, which is a wiring bug.
func New(cfg Config) http.Handler {
	if cfg.Service == nil {
		panic("api.New: Config.Service is nil")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ready := cfg.Ready
	if ready == nil {
		ready = func() bool { return true }
	}
	maxBody := cfg.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}

	mux := http.NewServeMux()
	addRoutes(mux, logger, cfg.Service, ready, maxBody)

	var h http.Handler = muxProblems(mux, logger)
	h = recoverPanics(h, logger)
	h = noSniff(h)
	h = logRequests(h, logger)
	return h
}
