// Package api is rydes's HTTP adapter: the /v1 JSON API for requests for
// quotes, the provider answer routes, the administration of providers and
// dead letters, the workshop's seed routes (wire-compatible with the
// reference Wild Rydes lab 3) and a health check. It knows HTTP and nothing
// else: every decision about RFQs is the Service's and the AnswerService's,
// every decision about providers the ProviderRegistry's.
//
// Every route is listed in routes.go; each handler is made by a function that
// takes its dependencies and returns an http.Handler. docs/openapi.yaml
// describes every route, and the package apitest checks real traffic
// against it.
//
// # Authentication
//
// Three kinds of caller use the API, each with its own routes:
//
//   - customers: the RFQ routes and the workshop's routes, open for now;
//   - providers: POST /v1/rfqs/{id}/quotes and /declines, with the
//     provider's API key (Authorization: Bearer rydes_pk_…), which alone
//     says who answers: no body names a provider;
//   - administrators: /v1/providers… and /v1/dead-letters…, with the admin
//     key (Authorization: Bearer …), compared by hash in constant time.
//
// A missing or wrong key gets 401 with WWW-Authenticate: Bearer, before the
// request is otherwise looked at. A provider key is not an admin key, nor
// the other way round.
//
// # Errors
//
// Every error, including an unknown route (404) and a wrong method (405), is
// an RFC 9457 application/problem+json body (see Problem). Domain errors are
// mapped to a status in one place, ErrorStatus:
//
//	invalid       400  malformed or out-of-range input, whether syntactic
//	                   (bad JSON, wrong type, unknown field) or semantic
//	                   (blank field, timeout out of range): one status, 400
//	unauthorized  401  no key, or a key that is not valid for the route
//	forbidden     403  e.g. a provider answering an RFQ it was not asked for
//	not_found     404
//	conflict      409  e.g. cancelling an RFQ that is already final, an
//	                   answer after the deadline, a provider id in use
//	gone          410  e.g. replaying a dead letter of a deleted provider
//	too_large     413  the body is larger than Config.MaxBodyBytes
//	unmatched     422  a valid request that no active provider can serve
//	internal      500  detail "internal error"; the real error is logged
//	timeout       504
//
// A refused answer's problem also names why in its "reason" member (see
// Problem.Reason). The HTTP layer adds 404 for an unknown route, 405 for a
// wrong method (with Allow), 415 for a body that is not application/json
// and 503 from /healthz while the service is not ready.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/registry"
	"github.com/wildrydes/rydes/internal/store"
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

// ProviderRegistry is what the API needs to manage providers and to
// authenticate them; *registry.Registry implements it. Its errors are
// *rydes.Error values (or wrap one); any other error is an internal error.
type ProviderRegistry interface {
	// Create registers a provider and returns it with its credentials;
	// ECONFLICT if the id is taken.
	Create(ctx context.Context, p registry.CreateParams) (rydes.Provider, rydes.ProviderCredentials, error)
	// Get returns one provider; ENOTFOUND if there is none.
	Get(ctx context.Context, id string) (rydes.Provider, error)
	// List returns every provider, ordered by id.
	List(ctx context.Context) ([]rydes.Provider, error)
	// Update changes the fields of p that are set and returns the provider.
	Update(ctx context.Context, p registry.UpdateParams) (rydes.Provider, error)
	// Delete removes a provider, withdrawing it from the open RFQs it was
	// asked in.
	Delete(ctx context.Context, id string) error
	// Rotate replaces a provider's credentials and returns the new ones.
	Rotate(ctx context.Context, id string) (rydes.ProviderCredentials, error)
	// Authenticate returns the provider an API key belongs to, or an
	// EUNAUTHORIZED error.
	Authenticate(ctx context.Context, apiKey string) (rydes.Provider, error)
	// Stats reports how a provider has been doing.
	Stats(ctx context.Context, id string) (rydes.ProviderStats, error)
	// DeadLetters lists dead letters, newest first.
	DeadLetters(ctx context.Context, p store.ListDeadLettersParams) ([]rydes.DeadLetter, error)
	// Replay puts a dead letter's request back on its provider's queue;
	// ECONFLICT if the RFQ is closed, EGONE if the provider is deleted.
	Replay(ctx context.Context, id int64) (rydes.DeadLetter, error)
}

var _ ProviderRegistry = (*registry.Registry)(nil)

// AnswerService stages the answers providers send over HTTP; the engine
// implements it.
type AnswerService interface {
	// SubmitAnswer stages answer a from the authenticated provider, with
	// payload, the body as received, kept for audit. It fails with
	// ENOTFOUND for an unknown RFQ and EFORBIDDEN, recording nothing, if
	// the provider was not asked for it; otherwise the result's Decision
	// says whether the answer was staged, a duplicate or rejected (and
	// why), and its Status is the RFQ's status afterwards.
	SubmitAnswer(ctx context.Context, provider rydes.Provider, a rydes.Answer, payload []byte) (store.StageResult, error)
}

// DefaultMaxBodyBytes is the largest request body accepted when
// Config.MaxBodyBytes is not set.
const DefaultMaxBodyBytes = 64 << 10

// Config holds the dependencies and settings of the API.
type Config struct {
	// Service serves the RFQ routes. Required.
	Service Service
	// Providers serves the administration routes and authenticates
	// providers. Providers, Answers and AdminKeyHash are set together or
	// not at all; without them every administration and provider answer
	// request is refused with 401.
	Providers ProviderRegistry
	// Answers stages the answers providers send.
	Answers AnswerService
	// AdminKeyHash returns the hex SHA-256 of the admin key in force (see
	// auth.Hash); it is called on every administration request, so the key
	// can change at run time. "" accepts no key.
	AdminKeyHash func() string
	// Now is the clock that stamps when an answer was received. Nil means
	// time.Now.
	Now func() time.Time
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
// if cfg.Service is nil, or if some but not all of cfg.Providers,
// cfg.Answers and cfg.AdminKeyHash are set: both are wiring bugs.
func New(cfg Config) http.Handler {
	if cfg.Service == nil {
		panic("api.New: Config.Service is nil")
	}
	if wired := cfg.Providers != nil; (cfg.Answers != nil) != wired || (cfg.AdminKeyHash != nil) != wired {
		panic("api.New: Config.Providers, Config.Answers and Config.AdminKeyHash must be set together")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ready := cfg.Ready
	if ready == nil {
		ready = func() bool { return true }
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	maxBody := cfg.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}

	mux := http.NewServeMux()
	addRoutes(mux, logger, cfg.Service, cfg.Providers, cfg.Answers, cfg.AdminKeyHash, now, ready, maxBody)

	var h http.Handler = muxProblems(mux, logger)
	h = recoverPanics(h, logger)
	h = noSniff(h)
	h = logRequests(h, logger)
	return h
}
