package api

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/wildrydes/rydes"
)

// The workshop's routes keep its wire shapes exactly (see
// shared/seed/LAB3.md): hyphenated "rfq-id", quotes as {responder, quote}
// with the amount as a string, and nothing else in the bodies. Their errors
// are problems like everywhere else; the reference had none to keep.

// seedSubmitBody is the body of POST /submit-instant-ride-rfq. The workshop
// picture also shows duration, distance and fare, as strings or numbers;
// they are kept as RFQ attributes of the same names.
type seedSubmitBody struct {
	From     string          `json:"from"`
	To       string          `json:"to"`
	Customer string          `json:"customer"`
	Duration json.RawMessage `json:"duration"`
	Distance json.RawMessage `json:"distance"`
	Fare     json.RawMessage `json:"fare"`
}

// request checks the body at the edge and returns the request it makes
// for customer, the caller's ("" if the body names it).
func (b seedSubmitBody) request(customer string) (rydes.RFQRequest, error) {
	name, err := requestCustomer(b.Customer, customer)
	if err != nil {
		return rydes.RFQRequest{}, err
	}
	req := rydes.RFQRequest{Customer: name, From: b.From, To: b.To}
	if err := req.Validate(edgeLimits); err != nil {
		return rydes.RFQRequest{}, err
	}
	for _, a := range []struct {
		name string
		raw  json.RawMessage
	}{{"duration", b.Duration}, {"distance", b.Distance}, {"fare", b.Fare}} {
		v, ok, err := scalarValue(a.name, a.raw)
		if err != nil {
			return rydes.RFQRequest{}, err
		}
		if !ok {
			continue
		}
		if req.Attributes == nil {
			req.Attributes = make(map[string]string, 3)
		}
		req.Attributes[a.name] = v
	}
	if err := req.Validate(edgeLimits); err != nil {
		if field, ok := strings.CutPrefix(rydes.ErrorFieldOf(err), "attributes."); ok {
			// The workshop's fields are top level: name them as sent.
			return rydes.RFQRequest{}, rydes.FieldErrorf(field, "%s", rydes.ErrorMessageOf(err))
		}
		return rydes.RFQRequest{}, err
	}
	return req, nil
}

// seedSubmitResponse is the workshop's answer to a submitted request.
type seedSubmitResponse struct {
	RFQID string `json:"rfq-id"`
}

// seedQueryResponse is the workshop's answer to a query: the request and
// its quotes, best first.
type seedQueryResponse struct {
	Quotes   []seedQuote `json:"quotes"`
	RFQID    string      `json:"rfq-id"`
	From     string      `json:"from"`
	To       string      `json:"to"`
	Customer string      `json:"customer"`
}

// seedQuote is one quote as the workshop renders it: the amount as a string.
type seedQuote struct {
	Responder string `json:"responder"`
	Quote     string `json:"quote"`
}

// handleSeedSubmit serves POST /submit-instant-ride-rfq: 201 with exactly
// {"rfq-id": id}.
func handleSeedSubmit(logger *slog.Logger, svc Service, maxBody int64) customerHandler {
	return func(w http.ResponseWriter, r *http.Request, customer string) {
		var body seedSubmitBody
		if err := decodeJSON(w, r, maxBody, &body); err != nil {
			writeError(w, r, logger, err)
			return
		}
		req, err := body.request(customer)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		rfq, err := svc.CreateRFQ(r.Context(), req)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("create rfq: %w", err))
			return
		}
		w.Header().Set("Location", "/query-instant-ride-rfq/"+rfq.ID)
		writeJSON(w, r, logger, http.StatusCreated, seedSubmitResponse{RFQID: rfq.ID})
	}
}

// handleSeedQuery serves GET /query-instant-ride-rfq/{id}.
func handleSeedQuery(logger *slog.Logger, svc Service) customerHandler {
	return func(w http.ResponseWriter, r *http.Request, customer string) {
		id, err := pathID(r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		rfq, err := svc.GetRFQ(r.Context(), id, customer)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("get rfq %s: %w", id, err))
			return
		}
		rfq = wireRFQ(rfq)
		resp := seedQueryResponse{
			Quotes: make([]seedQuote, len(rfq.Quotes)),
			RFQID:  rfq.ID, From: rfq.From, To: rfq.To, Customer: rfq.Customer,
		}
		for i, q := range rfq.Quotes {
			resp.Quotes[i] = seedQuote{Responder: q.Provider, Quote: q.Price.Amount}
		}
		writeJSON(w, r, logger, http.StatusOK, resp)
	}
}
