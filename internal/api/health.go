package api

import (
	"log/slog"
	"net/http"
)

// handleHealthz serves GET /healthz: 200 {"status":"ok"} while ready reports
// true, a 503 problem otherwise.
func handleHealthz(logger *slog.Logger, ready func() bool) http.Handler {
	type health struct {
		Status string `json:"status"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if !ready() {
			writeError(w, r, logger, &httpError{
				status: http.StatusServiceUnavailable,
				slug:   "unavailable",
				title:  "Service unavailable",
				detail: "rydes is not ready to serve requests",
			})
			return
		}
		writeJSON(w, r, logger, http.StatusOK, health{Status: "ok"})
	})
}
