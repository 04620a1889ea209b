package api

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/wildrydes/rydes"
)

// quoteBody is the body of POST /v1/rfqs/{id}/quotes. It names no RFQ and
// no provider: the path says which RFQ, the API key which provider.
type quoteBody struct {
	Price      json.RawMessage `json:"price"`
	ETASeconds *int            `json:"eta_seconds"`
	ExpiresAt  *string         `json:"expires_at"`
}

// declineBody is the body of POST /v1/rfqs/{id}/declines.
type declineBody struct {
	Reason *string `json:"reason"`
}

// answerResult is the body of an accepted answer: what staging it did and
// the RFQ's status afterwards.
type answerResult struct {
	Outcome   rydes.Outcome `json:"outcome"`
	RFQStatus rydes.Status  `json:"rfq_status"`
}

// rejectedAnswer is an answer the engine refused: a domain error whose code
// follows from the reason, which the problem also names (Problem.Reason).
type rejectedAnswer struct {
	reason rydes.RejectReason
	err    *rydes.Error
}

func (e *rejectedAnswer) Error() string {
	return "answer refused (" + string(e.reason) + "): " + e.err.Error()
}
func (e *rejectedAnswer) Unwrap() error { return e.err }

// rejectCodes maps why an answer was refused to the domain error code, and
// so (through problemKinds) to the status, the provider gets.
var rejectCodes = map[rydes.RejectReason]rydes.ErrorCode{
	rydes.RejectInvalid:         rydes.EINVALID,
	rydes.RejectUnknownRFQ:      rydes.ENOTFOUND,
	rydes.RejectNotAsked:        rydes.EFORBIDDEN,
	rydes.RejectWithdrawn:       rydes.EFORBIDDEN,
	rydes.RejectAlreadyAnswered: rydes.ECONFLICT,
	rydes.RejectLate:            rydes.ECONFLICT,
	rydes.RejectClosed:          rydes.ECONFLICT,
}

// rejection returns the error a refused answer gets: an internal one for a
// reason the API does not know, which is a bug.
func rejection(d rydes.Decision) error {
	code, ok := rejectCodes[d.Reason]
	if !ok {
		return fmt.Errorf("answer refused for an unknown reason %q: %s", d.Reason, d.Message)
	}
	msg := d.Message
	if msg == "" {
		msg = "the answer was refused: " + string(d.Reason)
	}
	return &rejectedAnswer{reason: d.Reason, err: rydes.Errorf(code, "%s", msg)}
}

// parseAnswer checks body, a quote's or a decline's, at the edge and returns
// the answer it gives, without the RFQ, provider and time it came with.
func parseAnswer(kind rydes.AnswerKind, body []byte) (rydes.Answer, error) {
	a := rydes.Answer{Kind: kind}
	if kind == rydes.AnswerDecline {
		var b declineBody
		if err := unmarshalStrict(body, &b); err != nil {
			return rydes.Answer{}, err
		}
		if b.Reason != nil {
			a.Reason = *b.Reason
		}
		return a, nil
	}
	var b quoteBody
	if err := unmarshalStrict(body, &b); err != nil {
		return rydes.Answer{}, err
	}
	if len(b.Price) == 0 || isNull(b.Price) {
		return rydes.Answer{}, rydes.FieldErrorf("price", "is required, as {\"amount\": \"45.50\", \"currency\": \"EUR\"}")
	}
	if err := unmarshalObject("price", b.Price, &a.Price); err != nil {
		return rydes.Answer{}, err
	}
	a.ETASeconds = b.ETASeconds
	if b.ExpiresAt != nil {
		if len(*b.ExpiresAt) > rydes.MaxTimeTextLen {
			return rydes.Answer{}, rydes.FieldErrorf("expires_at", "must be at most %d bytes", rydes.MaxTimeTextLen)
		}
		t, err := time.Parse(time.RFC3339, *b.ExpiresAt)
		if err != nil {
			return rydes.Answer{}, rydes.FieldErrorf("expires_at", "must be an RFC 3339 time such as \"2030-07-01T09:45:00Z\"")
		}
		a.ExpiresAt = t.UTC()
	}
	return a, nil
}

// handleSubmitAnswer serves POST /v1/rfqs/{id}/quotes and /declines, for
// answers of the given kind from the authenticated provider: 201 when the
// answer is staged, 200 when it repeats one already staged, a problem
// naming the reason when it is refused.
func handleSubmitAnswer(logger *slog.Logger, answers AnswerService, kind rydes.AnswerKind, now func() time.Time, maxBody int64) providerHandler {
	return func(w http.ResponseWriter, r *http.Request, p rydes.Provider) {
		id, err := pathID(r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		body, err := readJSON(w, r, maxBody)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		a, err := parseAnswer(kind, body)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		a.RFQID, a.Provider, a.ReceivedAt = id, p.ID, now().UTC().Truncate(time.Microsecond)
		if err := a.Validate(); err != nil {
			writeError(w, r, logger, err)
			return
		}
		res, err := answers.SubmitAnswer(r.Context(), p, a, body)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("provider %s answers rfq %s: %w", p.ID, id, err))
			return
		}
		status := http.StatusOK
		switch res.Decision.Outcome {
		case rydes.OutcomeStaged:
			status = http.StatusCreated
		case rydes.OutcomeDuplicate:
		case rydes.OutcomeRejected:
			writeError(w, r, logger, fmt.Errorf("provider %s answers rfq %s: %w", p.ID, id, rejection(res.Decision)))
			return
		default:
			writeError(w, r, logger, fmt.Errorf("provider %s answers rfq %s: unknown outcome %q", p.ID, id, res.Decision.Outcome))
			return
		}
		if res.Status == "" {
			writeError(w, r, logger, fmt.Errorf("provider %s answers rfq %s: %s without the rfq's status", p.ID, id, res.Decision.Outcome))
			return
		}
		writeJSON(w, r, logger, status, answerResult{Outcome: res.Decision.Outcome, RFQStatus: res.Status})
	}
}
