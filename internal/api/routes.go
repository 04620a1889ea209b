package api

import (
	"net/http"

	"github.com/wildrydes/rydes"
)

// addRoutes is the whole HTTP surface of rydes: every route is here, and
// docs/openapi.yaml describes each of them. cfg has its defaults filled in
// (see New).
func addRoutes(mux *http.ServeMux, cfg Config) {
	logger, svc, maxBody := cfg.Logger, cfg.Service, cfg.MaxBodyBytes
	// admin routes need the admin key; provider routes a provider's API
	// key, which says who the provider is; customer routes a customer's
	// key, which says who the customer is, or the admin key (any customer),
	// or, when open, none from loopback.
	// Each caller has its own rate limit, taken once it is authenticated.
	limits := newLimiters(cfg.RateLimits, cfg.Now)
	admin := func(h http.Handler) http.Handler {
		return requireAdmin(logger, cfg.AdminKeyHash, limits, audited(logger, cfg.Audit, cfg.Now, maxBody, h))
	}
	provider := func(h providerHandler) http.Handler { return requireProvider(logger, cfg.Providers, limits, h) }
	customer := func(h customerHandler) http.Handler {
		return requireCustomer(logger, cfg.Customers, cfg.AdminKeyHash, cfg.OpenLoopbackCustomers, limits, h)
	}

	mux.Handle("GET /healthz", handleHealthz(logger, cfg.Ready))

	// Customers asking for quotes and following their requests.
	mux.Handle("POST /v1/rfqs", customer(handleCreateRFQ(logger, svc, maxBody, cfg.CheckURL)))
	mux.Handle("GET /v1/rfqs/{id}", handleGetRFQ(logger, svc, cfg.Watcher, cfg.MaxWait, customer))
	mux.Handle("DELETE /v1/rfqs/{id}", customer(handleCancelRFQ(logger, svc)))
	mux.Handle("GET /v1/rfqs/{id}/events", handleRFQEvents(logger, svc, cfg.Watcher, cfg.Heartbeat, customer))
	mux.Handle("GET /v1/rfqs/{id}/notifications", customer(handleListNotifications(logger, svc, cfg.Notifications)))

	// Providers answering the RFQs they were asked for.
	mux.Handle("POST /v1/rfqs/{id}/quotes", provider(handleSubmitAnswer(logger, cfg.Answers, rydes.AnswerQuote, cfg.Now, maxBody)))
	mux.Handle("POST /v1/rfqs/{id}/declines", provider(handleSubmitAnswer(logger, cfg.Answers, rydes.AnswerDecline, cfg.Now, maxBody)))

	// Administration: providers and the deliveries that failed them,
	// customers.
	providers := cfg.Providers
	mux.Handle("POST /v1/providers", admin(handleCreateProvider(logger, providers, maxBody, cfg.CheckURL)))
	mux.Handle("GET /v1/providers", admin(handleListProviders(logger, providers)))
	mux.Handle("GET /v1/providers/{id}", admin(handleGetProvider(logger, providers)))
	mux.Handle("PATCH /v1/providers/{id}", admin(handleUpdateProvider(logger, providers, maxBody, cfg.CheckURL)))
	mux.Handle("DELETE /v1/providers/{id}", admin(handleDeleteProvider(logger, providers)))
	mux.Handle("POST /v1/providers/{id}/rotate", admin(handleRotateProvider(logger, providers)))
	mux.Handle("GET /v1/providers/{id}/stats", admin(handleProviderStats(logger, providers)))
	mux.Handle("GET /v1/dead-letters", admin(handleListDeadLetters(logger, providers)))
	mux.Handle("POST /v1/dead-letters/{id}/replay", admin(handleReplayDeadLetter(logger, providers)))
	mux.Handle("POST /v1/customers", admin(handleCreateCustomer(logger, cfg.Customers, maxBody)))
	mux.Handle("GET /v1/customers", admin(handleListCustomers(logger, cfg.Customers)))
	mux.Handle("DELETE /v1/customers/{id}", admin(handleDeleteCustomer(logger, cfg.Customers)))
	mux.Handle("POST /v1/customers/{id}/rotate", admin(handleRotateCustomer(logger, cfg.Customers)))
	mux.Handle("GET /v1/audit", admin(handleListAudit(logger, cfg.Audit)))

	// The workshop's routes, with its exact wire shapes.
	mux.Handle("POST /submit-instant-ride-rfq", customer(handleSeedSubmit(logger, svc, maxBody)))
	mux.Handle("GET /query-instant-ride-rfq/{id}", customer(handleSeedQuery(logger, svc)))

	// The web UI, built elsewhere (internal/web).
	if cfg.Web != nil {
		mux.Handle("GET /{$}", cfg.Web)
		mux.Handle("GET /providers", cfg.Web)
		mux.Handle("GET /assets/", cfg.Web)
	}
}
