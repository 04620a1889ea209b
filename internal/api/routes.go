package api

import (
	"log/slog"
	"net/http"
)

// addRoutes is the whole HTTP surface of rydes: every route is here, and
// docs/openapi.yaml describes each of them.
func addRoutes(mux *http.ServeMux, logger *slog.Logger, svc Service, ready func() bool, maxBody int64) {
	mux.Handle("GET /healthz", handleHealthz(logger, ready))

	mux.Handle("POST /v1/rfqs", handleCreateRFQ(logger, svc, maxBody))
	mux.Handle("GET /v1/rfqs/{id}", handleGetRFQ(logger, svc))
	mux.Handle("DELETE /v1/rfqs/{id}", handleCancelRFQ(logger, svc))

	// The workshop's routes, with its exact wire shapes.
	mux.Handle("POST /submit-instant-ride-rfq", handleSeedSubmit(logger, svc, maxBody))
	mux.Handle("GET /query-instant-ride-rfq/{id}", handleSeedQuery(logger, svc))
}
