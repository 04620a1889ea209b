package api

import (
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/store"
)

// Dead letter page sizes.
const (
	DefaultDeadLetterLimit = 100
	MaxDeadLetterLimit     = 500
)

// deadLetterPage is the body of GET /v1/dead-letters: a page of dead
// letters, newest first, and the before to ask for the next page with, if
// there is one.
type deadLetterPage struct {
	DeadLetters []rydes.DeadLetter `json:"dead_letters"`
	NextBefore  int64              `json:"next_before,omitzero"`
}

// deadLetterQuery checks the query of GET /v1/dead-letters: provider,
// before and limit, each at most once, and nothing else.
func deadLetterQuery(q url.Values) (store.ListDeadLettersParams, error) {
	p := store.ListDeadLettersParams{Limit: DefaultDeadLetterLimit}
	err := parseListQuery(q, []queryParam{
		{"provider", func(v string) error {
			if err := rydes.ValidateProviderID(v); err != nil {
				return err
			}
			p.Provider = v
			return nil
		}},
		{"before", func(v string) (err error) { p.BeforeID, err = parsePositiveID("before", v); return err }},
		{"limit", func(v string) (err error) { p.Limit, err = parseLimit(v, MaxDeadLetterLimit); return err }},
	})
	if err != nil {
		return store.ListDeadLettersParams{}, err
	}
	return p, nil
}

// queryParam is one parameter a list route takes, with what parses it.
type queryParam struct {
	name  string
	parse func(v string) error
}

// parseListQuery checks the query of a list route: each parameter given
// at most once and known, parsed in the order of their names.
func parseListQuery(q url.Values, known []queryParam) error {
	names := make([]string, len(known))
	for i, k := range known {
		names[i] = k.name
	}
	for _, name := range slices.Sorted(maps.Keys(q)) {
		values := q[name]
		if len(values) != 1 {
			return rydes.FieldErrorf(name, "must be given once")
		}
		i := slices.Index(names, name)
		if i < 0 {
			return rydes.FieldErrorf(name, "is not a known query parameter; known: %s", strings.Join(names, ", "))
		}
		if err := known[i].parse(values[0]); err != nil {
			return err
		}
	}
	return nil
}

// parseLimit parses a page size between 1 and max.
func parseLimit(v string, max int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || !allDigits(v) || n < 1 || n > max {
		return 0, rydes.FieldErrorf("limit", "must be an integer between 1 and %d", max)
	}
	return n, nil
}

// handleListDeadLetters serves GET /v1/dead-letters: a page of dead
// letters, newest first, optionally of one provider.
func handleListDeadLetters(logger *slog.Logger, providers ProviderRegistry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		params, err := deadLetterQuery(r.URL.Query())
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("query: %w", err))
			return
		}
		// One more than asked tells whether there is a next page.
		limit := params.Limit
		params.Limit++
		dls, err := providers.DeadLetters(r.Context(), params)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("list dead letters: %w", err))
			return
		}
		page := deadLetterPage{DeadLetters: dls}
		if len(dls) > limit {
			page.DeadLetters = dls[:limit]
			page.NextBefore = dls[limit-1].ID
		}
		if page.DeadLetters == nil {
			page.DeadLetters = []rydes.DeadLetter{}
		}
		writeJSON(w, r, logger, http.StatusOK, page)
	})
}

// handleReplayDeadLetter serves POST /v1/dead-letters/{id}/replay: 200 with
// the dead letter, its request back on the provider's queue; 409 if the RFQ
// is closed, 410 if the provider is gone.
func handleReplayDeadLetter(logger *slog.Logger, providers ProviderRegistry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := parsePositiveID("id", r.PathValue("id"))
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("path: %w", err))
			return
		}
		if err := requireNoBody(r); err != nil {
			writeError(w, r, logger, err)
			return
		}
		dl, err := providers.Replay(r.Context(), id)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("replay dead letter %d: %w", id, err))
			return
		}
		writeJSON(w, r, logger, http.StatusOK, dl)
	})
}
