package api

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/wildrydes/rydes"
)

// addRoutes is the whole HTTP surface of rydes: every route is here, and
// docs/openapi.yaml describes each of them.
func addRoutes(mux *http.ServeMux, logger *slog.Logger, svc Service, providers ProviderRegistry, answers AnswerService,
	adminKeyHash func() string, now func() time.Time, ready func() bool, maxBody int64,
) {
	// admin routes need the admin key; provider routes a provider's API
	// key, which says who the provider is.
	admin := func(h http.Handler) http.Handler { return requireAdmin(logger, adminKeyHash, h) }
	provider := func(h providerHandler) http.Handler { return requireProvider(logger, providers, h) }

	mux.Handle("GET /healthz", handleHealthz(logger, ready))

	// Customers. Open until customer keys arrive.
	mux.Handle("POST /v1/rfqs", handleCreateRFQ(logger, svc, maxBody))
	mux.Handle("GET /v1/rfqs/{id}", handleGetRFQ(logger, svc))
	mux.Handle("DELETE /v1/rfqs/{id}", handleCancelRFQ(logger, svc))

	// Providers answering the RFQs they were asked for.
	mux.Handle("POST /v1/rfqs/{id}/quotes", provider(handleSubmitAnswer(logger, answers, rydes.AnswerQuote, now, maxBody)))
	mux.Handle("POST /v1/rfqs/{id}/declines", provider(handleSubmitAnswer(logger, answers, rydes.AnswerDecline, now, maxBody)))

	// Administration: providers and the deliveries that failed them.
	mux.Handle("POST /v1/providers", admin(handleCreateProvider(logger, providers, maxBody)))
	mux.Handle("GET /v1/providers", admin(handleListProviders(logger, providers)))
	mux.Handle("GET /v1/providers/{id}", admin(handleGetProvider(logger, providers)))
	mux.Handle("PATCH /v1/providers/{id}", admin(handleUpdateProvider(logger, providers, maxBody)))
	mux.Handle("DELETE /v1/providers/{id}", admin(handleDeleteProvider(logger, providers)))
	mux.Handle("POST /v1/providers/{id}/rotate", admin(handleRotateProvider(logger, providers)))
	mux.Handle("GET /v1/providers/{id}/stats", admin(handleProviderStats(logger, providers)))
	mux.Handle("GET /v1/dead-letters", admin(handleListDeadLetters(logger, providers)))
	mux.Handle("POST /v1/dead-letters/{id}/replay", admin(handleReplayDeadLetter(logger, providers)))

	// The workshop's routes, with its exact wire shapes.
	mux.Handle("POST /submit-instant-ride-rfq", handleSeedSubmit(logger, svc, maxBody))
	mux.Handle("GET /query-instant-ride-rfq/{id}", handleSeedQuery(logger, svc))
}
