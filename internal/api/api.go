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
//   - customers: the RFQ routes (/v1/rfqs, /v1/rfqs/{id} and its events
//     and notifications) and the workshop's routes, with the customer's
//     API key (Authorization: Bearer rydes_ck_…), which says who the
//     customer is: it creates RFQs in its own name and sees only its own
//     (another customer's RFQ is 404). The admin key acts there for no
//     customer: it sees every RFQ, and names the customer of an RFQ it
//     creates in the body. Without a key, a request from a loopback
//     address is served as the open demo customer (the body names the
//     customer, reads see every RFQ) if Config.OpenLoopbackCustomers is
//     set, and refused otherwise;
//   - providers: POST /v1/rfqs/{id}/quotes and /declines, with the
//     provider's API key (Authorization: Bearer rydes_pk_…), which alone
//     says who answers: no body names a provider;
//   - administrators: /v1/providers…, /v1/customers…,
//     /v1/dead-letters… and /v1/audit, with the admin key (Authorization:
//     Bearer …), compared by hash in constant time. Every state-changing
//     admin request that succeeds is recorded in Config.Audit (see
//     audited).
//
// A missing or wrong key gets 401 with WWW-Authenticate: Bearer, before the
// request is otherwise looked at. A provider key is not an admin key, nor
// a customer key, nor the other way round.
//
// # Watching an RFQ
//
// GET /v1/rfqs/{id} carries a strong ETag, "<id>.<seq>", that changes with
// every event of the RFQ; If-None-Match gets 304 while it matches, and
// ?wait=20s holds the request until the RFQ changes (or the wait ends), so
// that polling is cheap. GET /v1/rfqs/{id}/events streams the RFQ's events
// as server-sent events, resumable with Last-Event-ID. Both rest on
// Config.Watcher.
//
// # Errors
//
// Every error, including an unknown route (404) and a wrong method (405), is
// an RFC 9457 application/problem+json body (see Problem). Domain errors are
// mapped to a status in one place, ErrorStatus:
//
//	invalid       400  malformed or out-of-range input, whether syntactic
//	                   (bad JSON or invalid UTF-8, wrong type, unknown
//	                   field, a body on a route that takes none) or
//	                   semantic (blank field, timeout out of range, a
//	                   webhook URL refused by Config.CheckURL): one
//	                   status, 400
//	unauthorized  401  no key, or a key that is not valid for the route
//	forbidden     403  e.g. a provider answering an RFQ it was not asked for
//	not_found     404
//	conflict      409  e.g. cancelling an RFQ that is already final, an
//	                   answer after the deadline, a provider id in use
//	gone          410  e.g. replaying a dead letter of a deleted provider
//	too_large     413  the body is larger than Config.MaxBodyBytes
//	unmatched     422  a valid request that no active provider can serve
//	too_many_requests
//	              429  the caller is over its rate limit (Config.RateLimits);
//	                   Retry-After says in how many seconds to try again
//	internal      500  detail "internal error"; the real error is logged
//	timeout       504
//
// A refused answer's problem also names why in its "reason" member (see
// Problem.Reason). The HTTP layer adds 404 for an unknown route, 405 for a
// wrong method (with Allow), 415 for a body that is not application/json
// and 503 from /healthz while the service is not ready, and from the routes
// whose dependency the server was not given (Config.Watcher for the event
// stream, Config.Notifications, Config.Customers for their
// administration). GET /v1/rfqs/{id} answers 304 to a matching
// If-None-Match.
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

// CustomerRegistry is what the API needs to manage customers and to
// authenticate them; *registry.Customers implements it. Its errors are
// *rydes.Error values (or wrap one); any other error is an internal error.
type CustomerRegistry interface {
	// Create registers a customer (name "" means the id) and returns it
	// with its API key, shown only now; ECONFLICT if the id is taken.
	Create(ctx context.Context, id, name string) (rydes.Customer, string, error)
	// List returns every customer, ordered by id.
	List(ctx context.Context) ([]rydes.Customer, error)
	// Delete removes a customer; its key stops working, its RFQs stay.
	Delete(ctx context.Context, id string) error
	// Rotate replaces a customer's API key and returns the new one.
	Rotate(ctx context.Context, id string) (rydes.Customer, string, error)
	// Authenticate returns the customer an API key belongs to, or an
	// EUNAUTHORIZED error.
	Authenticate(ctx context.Context, apiKey string) (rydes.Customer, error)
}

var _ CustomerRegistry = (*registry.Customers)(nil)

// Watcher follows the events of one RFQ.
type Watcher interface {
	// WatchRFQ starts following the RFQ's events with Seq > afterSeq; ctx
	// bounds only the start. The caller closes the Watch.
	WatchRFQ(ctx context.Context, rfqID string, afterSeq int64) (Watch, error)
	// PastEvents returns, for a final RFQ, its events with Seq > afterSeq
	// that the broker still keeps, in seq order, if every event it emitted
	// was published (published true): the broker drops its oldest events,
	// so some or all may be gone. If some are still on their way
	// (published false) it returns none, and the caller watches instead.
	PastEvents(ctx context.Context, rfqID string, afterSeq int64) (events []rydes.Event, published bool, err error)
}

// Watch is one RFQ's events, followed on the caller's goroutine (see
// bus.Watch): the caller waits for Ready, then calls Next. It is not safe
// for concurrent use.
type Watch interface {
	// Ready receives when Next may have something to return: events, or
	// the end of the watch.
	Ready() <-chan struct{}
	// Next returns the events ready now, in seq order, each once, without
	// waiting for more (none if nothing came); io.EOF once the watch is
	// over: after the final event, or when the watcher ended it (the RFQ
	// may then have more to come). Any other error ends the watch too.
	Next(ctx context.Context) ([]rydes.Event, error)
	// Close ends the watch and releases it; closing twice does nothing.
	Close()
}

// Notifications lists the attempts to deliver RFQs' final states to their
// notify_url.
type Notifications interface {
	// ListNotifications returns the attempts for one RFQ, oldest first.
	ListNotifications(ctx context.Context, rfqID string) ([]rydes.Notification, error)
}

// Defaults of Config.MaxWait and Config.Heartbeat.
const (
	DefaultMaxWait   = 30 * time.Second
	DefaultHeartbeat = 15 * time.Second
)

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
	// Customers authenticates customer keys and serves the customer
	// administration routes. Nil accepts no customer key, and the
	// customer administration routes answer 503.
	Customers CustomerRegistry
	// OpenLoopbackCustomers serves customer routes without a key to
	// requests from a loopback address (127.0.0.0/8, ::1), as the open
	// demo customer (--demo). Behind a reverse proxy on the same host every
	// request comes from loopback: leave it off there.
	OpenLoopbackCustomers bool
	// Watcher follows RFQs for GET /v1/rfqs/{id}?wait= and the event
	// stream. Nil makes ?wait= answer at once and the event stream answer
	// 503.
	Watcher Watcher
	// Notifications lists the deliveries to RFQs' notify_url. Nil makes
	// GET /v1/rfqs/{id}/notifications answer 503.
	Notifications Notifications
	// Audit records every successful state-changing admin request and
	// serves GET /v1/audit. Nil records nothing, and GET /v1/audit answers
	// 503.
	Audit AuditLog
	// Web serves the web UI (GET /, /providers and /assets/…). Nil leaves
	// those paths unrouted (404).
	Web http.Handler
	// MaxWait bounds ?wait= on GET /v1/rfqs/{id}. Zero or less means
	// DefaultMaxWait.
	MaxWait time.Duration
	// Heartbeat is how often an idle event stream sends a comment, so that
	// proxies keep it open. Zero or less means DefaultHeartbeat.
	Heartbeat time.Duration
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
	// CheckURL, if set, vets each URL rydes is asked to POST to, when it
	// is given: a provider's webhook_url (POST /v1/providers, PATCH
	// /v1/providers/{id}) and an RFQ's notify_url (POST /v1/rfqs). An
	// EINVALID error refuses the request with 400 naming the field, and
	// nothing changes; any other error is internal. `rydes serve` uses
	// webhook.URLPolicy.Check. Nil accepts every well-formed URL.
	CheckURL func(ctx context.Context, rawURL string) error
	// RateLimits bound how fast each authenticated caller may send
	// requests (429 with Retry-After beyond); the buckets run on Now. The
	// zero value limits nothing; DefaultRateLimits is what `rydes serve`
	// uses.
	RateLimits RateLimits
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

	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	cfg.Logger, cfg.Ready, cfg.Now, cfg.MaxBodyBytes = logger, ready, now, maxBody

	mux := http.NewServeMux()
	addRoutes(mux, cfg)

	var h http.Handler = muxProblems(mux, logger)
	h = recoverPanics(h, logger)
	h = noSniff(h)
	h = logRequests(h, logger)
	return h
}
