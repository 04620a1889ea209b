package api

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"

	"github.com/wildrydes/rydes"
)

// createRFQBody is the body of POST /v1/rfqs. Optional fields are pointers
// so that an explicit zero can be told from an absent field.
type createRFQBody struct {
	Customer   string                     `json:"customer"`
	From       string                     `json:"from"`
	To         string                     `json:"to"`
	Passengers *int                       `json:"passengers"`
	PickupAt   *string                    `json:"pickup_at"`
	Attributes map[string]json.RawMessage `json:"attributes"`
	Timeout    *string                    `json:"timeout"`
}

// request checks the body at the edge, required fields first, and returns
// the request it makes.
func (b createRFQBody) request() (rydes.RFQRequest, error) {
	req := rydes.RFQRequest{Customer: b.Customer, From: b.From, To: b.To}
	if err := req.Validate(edgeLimits); err != nil {
		return rydes.RFQRequest{}, err
	}
	if b.Passengers != nil {
		if *b.Passengers < 1 || *b.Passengers > rydes.MaxPassengers {
			return rydes.RFQRequest{}, rydes.FieldErrorf("passengers", "must be between 1 and %d", rydes.MaxPassengers)
		}
		req.Passengers = *b.Passengers
	}
	if b.PickupAt != nil {
		t, err := parsePickupAt(*b.PickupAt)
		if err != nil {
			return rydes.RFQRequest{}, err
		}
		req.PickupAt = t
	}
	if b.Attributes != nil {
		req.Attributes = make(map[string]string, len(b.Attributes))
		keys := make([]string, 0, len(b.Attributes))
		for k := range b.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys) // name the same offending key every time
		for _, k := range keys {
			v, err := stringValue("attributes."+k, b.Attributes[k])
			if err != nil {
				return rydes.RFQRequest{}, err
			}
			req.Attributes[k] = v
		}
	}
	if b.Timeout != nil {
		d, err := parseTimeout(*b.Timeout)
		if err != nil {
			return rydes.RFQRequest{}, err
		}
		req.Timeout = d
	}
	if err := req.Validate(edgeLimits); err != nil {
		return rydes.RFQRequest{}, err
	}
	return req, nil
}

// handleCreateRFQ serves POST /v1/rfqs: 201 with the RFQ and its Location.
func handleCreateRFQ(logger *slog.Logger, svc Service, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body createRFQBody
		if err := decodeJSON(w, r, maxBody, &body); err != nil {
			writeError(w, r, logger, err)
			return
		}
		req, err := body.request()
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		rfq, err := svc.CreateRFQ(r.Context(), req)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("create rfq: %w", err))
			return
		}
		w.Header().Set("Location", "/v1/rfqs/"+rfq.ID)
		writeJSON(w, r, logger, http.StatusCreated, wireRFQ(rfq))
	})
}

// handleGetRFQ serves GET /v1/rfqs/{id}.
func handleGetRFQ(logger *slog.Logger, svc Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		rfq, err := svc.GetRFQ(r.Context(), id, "")
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("get rfq %s: %w", id, err))
			return
		}
		writeJSON(w, r, logger, http.StatusOK, wireRFQ(rfq))
	})
}

// handleCancelRFQ serves DELETE /v1/rfqs/{id}: 200 with the cancelled RFQ,
// 409 if it was already final.
func handleCancelRFQ(logger *slog.Logger, svc Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		rfq, err := svc.CancelRFQ(r.Context(), id, "")
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("cancel rfq %s: %w", id, err))
			return
		}
		writeJSON(w, r, logger, http.StatusOK, wireRFQ(rfq))
	})
}

// wireRFQ returns rfq as the API promises it: roster and quotes as arrays,
// never null, and quotes best first. It does not modify rfq.
func wireRFQ(rfq rydes.RFQ) rydes.RFQ {
	if rfq.Providers == nil {
		rfq.Providers = []rydes.RosterEntry{}
	}
	rfq.Quotes = slices.Clone(rfq.Quotes)
	if rfq.Quotes == nil {
		rfq.Quotes = []rydes.Quote{}
	}
	rydes.SortQuotes(rfq.Quotes)
	return rfq
}
