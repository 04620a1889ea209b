package client

import (
	"context"
	"net/http"
	"time"

	"github.com/wildrydes/rydes"
)

// The methods in this file are for partners that answer requests over HTTP
// rather than NATS: they need a Client made WithAPIKey(providerAPIKey), the
// API key of the answering provider, which the server takes the provider
// from.

// AnswerResult is what rydes did with a quote or a decline.
type AnswerResult struct {
	// Outcome is rydes.OutcomeStaged when the answer was recorded, or
	// rydes.OutcomeDuplicate when the same answer had been recorded before
	// (a retry), which changed nothing.
	Outcome rydes.Outcome `json:"outcome"`
	// RFQStatus is the status of the RFQ after the answer: it is complete
	// once every asked provider answered.
	RFQStatus rydes.Status `json:"rfq_status"`
}

// quoteRequest is the body of POST /v1/rfqs/{id}/quotes.
type quoteRequest struct {
	Price      rydes.Price `json:"price"`
	ETASeconds *int        `json:"eta_seconds,omitempty"`
	ExpiresAt  time.Time   `json:"expires_at,omitzero"`
}

// QuoteOption sets an optional field of a quote sent by SubmitQuote.
type QuoteOption func(*quoteRequest)

// WithETA says how long the ride will take to reach the pickup, rounded to
// the second; 0 is a valid ETA (the vehicle is there).
func WithETA(d time.Duration) QuoteOption {
	return func(q *quoteRequest) {
		s := int(d.Round(time.Second) / time.Second)
		q.ETASeconds = &s
	}
}

// WithExpiresAt says until when the quote holds; it must be in the future.
// A zero t leaves the expiry out.
func WithExpiresAt(t time.Time) QuoteOption {
	return func(q *quoteRequest) { q.ExpiresAt = t }
}

// SubmitQuote answers the RFQ rfqID with a quote of price, such as
// rydes.Price{Amount: "45.50", Currency: "EUR"}, as the provider whose API
// key the Client holds. Sending the same quote again is harmless (the
// outcome is then rydes.OutcomeDuplicate); a different answer to an RFQ
// already answered, a late one or one to an RFQ the provider was not asked
// in fails with a *Problem.
func (c *Client) SubmitQuote(ctx context.Context, rfqID string, price rydes.Price, opts ...QuoteOption) (AnswerResult, error) {
	body := quoteRequest{Price: price}
	for _, opt := range opts {
		opt(&body)
	}
	return c.answer(ctx, rfqID, "/quotes", body)
}

// SubmitDecline answers the RFQ rfqID with a decline, giving reason if it is
// not empty, as the provider whose API key the Client holds. Like
// SubmitQuote, it may be retried.
func (c *Client) SubmitDecline(ctx context.Context, rfqID, reason string) (AnswerResult, error) {
	body := struct {
		Reason string `json:"reason,omitempty"`
	}{reason}
	return c.answer(ctx, rfqID, "/declines", body)
}

// answer posts body to the answers route suffix of the RFQ rfqID.
func (c *Client) answer(ctx context.Context, rfqID, suffix string, body any) (AnswerResult, error) {
	var res AnswerResult
	path, err := rfqPath(rfqID)
	if err != nil {
		return res, err
	}
	err = c.do(ctx, http.MethodPost, path+suffix, body, &res)
	return res, err
}
