package rydes

import (
	"cmp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/currency"
)

// Price is an amount of money: a decimal amount as text (so no precision is
// lost on the wire) and its ISO 4217 currency code.
type Price struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

// Price bounds.
const (
	// PriceScale is how many units of Units make one of Amount.
	PriceScale = 10_000
	// MaxPriceDecimals is the number of decimals an amount may have.
	MaxPriceDecimals = 4
	// MaxPriceAmount is the largest amount accepted, in whole units.
	MaxPriceAmount = 1_000_000
	// MaxETA is the longest ETA a quote may give.
	MaxETA = 24 * time.Hour
)

// Validate checks that the price is a sane one: a positive decimal of at most
// four decimals and at most MaxPriceAmount, in a known ISO 4217 currency.
func (p Price) Validate() error {
	if _, err := p.Units(); err != nil {
		return err
	}
	if len(p.Currency) != 3 || strings.ToUpper(p.Currency) != p.Currency {
		return FieldErrorf("price.currency", "must be an ISO 4217 code such as EUR")
	}
	if _, err := currency.ParseISO(p.Currency); err != nil {
		return FieldErrorf("price.currency", "%q is not an ISO 4217 currency", p.Currency)
	}
	return nil
}

// Units returns the amount in units of 1/PriceScale, for ordering and sums.
func (p Price) Units() (int64, error) {
	whole, frac, hasDot := strings.Cut(p.Amount, ".")
	if whole == "" || len(whole) > 7 || (hasDot && (frac == "" || len(frac) > MaxPriceDecimals)) {
		return 0, badAmount()
	}
	if !digits(whole) || !digits(frac) {
		return 0, badAmount()
	}
	// At most 7 + MaxPriceDecimals digits, all checked: no overflow, and
	// no strconv error made (and dropped) for an amount without decimals.
	var u int64
	for _, c := range whole + frac {
		u = u*10 + int64(c-'0')
	}
	for range MaxPriceDecimals - len(frac) {
		u *= 10
	}
	if u <= 0 || u > MaxPriceAmount*PriceScale {
		return 0, badAmount()
	}
	return u, nil
}

// badAmount is the error of an amount that Units refuses; made only when
// needed (Units is on the path of every read of an RFQ's quotes).
func badAmount() error {
	return FieldErrorf("price.amount", "must be a positive decimal such as \"45.50\", at most %d with at most %d decimals", MaxPriceAmount, MaxPriceDecimals)
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Quote is one provider's offer for one RFQ.
type Quote struct {
	Provider   string    `json:"provider"`
	Price      Price     `json:"price"`
	ETASeconds *int      `json:"eta_seconds,omitempty"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	ReceivedAt time.Time `json:"received_at"`
}

// SortQuotes orders quotes best first: lowest price, then earliest received,
// then provider id. Prices in different currencies are compared by amount.
func SortQuotes(qs []Quote) {
	if len(qs) < 2 {
		return
	}
	// Each price is parsed once, not at every comparison.
	type keyed struct {
		units int64
		q     Quote
	}
	ks := make([]keyed, len(qs))
	for i, q := range qs {
		u, _ := q.Price.Units()
		ks[i] = keyed{u, q}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int {
		return cmp.Or(cmp.Compare(a.units, b.units), a.q.ReceivedAt.Compare(b.q.ReceivedAt), cmp.Compare(a.q.Provider, b.q.Provider))
	})
	for i, k := range ks {
		qs[i] = k.q
	}
}

// AnswerKind tells a quote from a decline.
type AnswerKind string

// The kinds of answer a provider can give.
const (
	AnswerQuote   AnswerKind = "quote"
	AnswerDecline AnswerKind = "decline"
)

// Answer is what a provider sends back for an RFQ: a quote or a decline. The
// provider is taken from the credentials it answered with, never from a body.
type Answer struct {
	RFQID      string     `json:"rfq_id"`
	Provider   string     `json:"provider"`
	Kind       AnswerKind `json:"kind"`
	Price      Price      `json:"price,omitzero"`        // quotes only
	ETASeconds *int       `json:"eta_seconds,omitempty"` // quotes only, optional
	ExpiresAt  time.Time  `json:"expires_at,omitzero"`   // quotes only, optional
	Reason     string     `json:"reason,omitempty"`      // declines only, optional
	ReceivedAt time.Time  `json:"received_at"`
}

// Validate checks the answer on its own, without the RFQ it is for.
func (a Answer) Validate() error {
	if err := ValidateID(a.RFQID); err != nil {
		return FieldErrorf("rfq_id", "must be the UUID of an RFQ")
	}
	if err := ValidateProviderID(a.Provider); err != nil {
		return err
	}
	switch a.Kind {
	case AnswerQuote:
		if err := a.Price.Validate(); err != nil {
			return err
		}
		if a.ETASeconds != nil && (*a.ETASeconds < 0 || *a.ETASeconds > int(MaxETA/time.Second)) {
			return FieldErrorf("eta_seconds", "must be between 0 and %d", int(MaxETA/time.Second))
		}
		if !a.ExpiresAt.IsZero() && !a.ReceivedAt.IsZero() && !a.ExpiresAt.After(a.ReceivedAt) {
			return FieldErrorf("expires_at", "must be in the future")
		}
		if a.Reason != "" {
			return FieldErrorf("reason", "is for declines only")
		}
	case AnswerDecline:
		if a.Price != (Price{}) || a.ETASeconds != nil || !a.ExpiresAt.IsZero() {
			return FieldErrorf("price", "a decline carries no price, ETA or expiry")
		}
		if len(a.Reason) > MaxReasonLen || !utf8.ValidString(a.Reason) || strings.IndexFunc(a.Reason, unicode.IsControl) >= 0 {
			return FieldErrorf("reason", "must be valid text of at most %d bytes without control characters", MaxReasonLen)
		}
	default:
		return FieldErrorf("kind", "must be %q or %q", AnswerQuote, AnswerDecline)
	}
	return nil
}

// Quote returns the quote an answer of kind AnswerQuote carries.
func (a Answer) Quote() Quote {
	return Quote{Provider: a.Provider, Price: a.Price, ETASeconds: a.ETASeconds, ExpiresAt: a.ExpiresAt, ReceivedAt: a.ReceivedAt}
}

// sameContent reports whether two answers say the same thing, ignoring when
// they were received: a redelivery of one answer.
func (a Answer) sameContent(b Answer) bool {
	eta := func(p *int) int {
		if p == nil {
			return -1
		}
		return *p
	}
	return a.Kind == b.Kind && a.Price == b.Price && eta(a.ETASeconds) == eta(b.ETASeconds) &&
		a.ExpiresAt.Equal(b.ExpiresAt) && a.Reason == b.Reason
}

// Outcome is what staging an answer did.
type Outcome string

// The outcomes of an answer.
const (
	OutcomeStaged    Outcome = "staged"    // recorded; the roster changed
	OutcomeDuplicate Outcome = "duplicate" // the same answer was already staged; nothing changed
	OutcomeRejected  Outcome = "rejected"  // refused; recorded for audit with a reason
)

// RejectReason says why an answer was refused.
type RejectReason string

// Why answers are refused.
const (
	RejectInvalid         RejectReason = "invalid"          // malformed or insane content
	RejectUnknownRFQ      RejectReason = "unknown_rfq"      // no such RFQ
	RejectNotAsked        RejectReason = "not_asked"        // the provider is not in the roster
	RejectLate            RejectReason = "late"             // the deadline had passed
	RejectClosed          RejectReason = "closed"           // the RFQ was already complete, expired or cancelled
	RejectAlreadyAnswered RejectReason = "already_answered" // the provider answered differently before
	RejectWithdrawn       RejectReason = "withdrawn"        // the provider was removed while the RFQ was open
)

// Decision is the verdict on one answer.
type Decision struct {
	Outcome Outcome
	Reason  RejectReason // when rejected
	Message string       // when rejected, for humans
}

// Prior is what is already staged for the provider that is answering: its
// roster entry and, if it answered, that answer.
type Prior struct {
	Entry  RosterEntry
	Answer *Answer
}

// Decide says what to do with answer a for the RFQ whose status and deadline
// are given, at time now. prior is nil when the provider was not asked. An
// answer is late if it was received (a.ReceivedAt, or now if unset) at or
// after the deadline.
// Answers are checked in this order: content, asked, already answered
// (duplicates are recognised even after the RFQ closed), cancelled (closed:
// cancelling withdraws the providers still pending, and they are told the
// RFQ closed rather than that they were removed), withdrawn, late, closed. A failed provider (its deliveries failed) may still answer while the
// RFQ is open: the answer is staged like a pending provider's.
func Decide(status Status, deadline time.Time, prior *Prior, a Answer, now time.Time) Decision {
	if err := a.Validate(); err != nil {
		return Decision{Outcome: OutcomeRejected, Reason: RejectInvalid, Message: err.Error()}
	}
	if prior == nil {
		return Decision{Outcome: OutcomeRejected, Reason: RejectNotAsked, Message: "provider " + a.Provider + " was not asked for this RFQ"}
	}
	if prior.Entry.State.Answered() {
		if prior.Answer != nil && prior.Answer.sameContent(a) {
			return Decision{Outcome: OutcomeDuplicate}
		}
		return Decision{Outcome: OutcomeRejected, Reason: RejectAlreadyAnswered, Message: "provider " + a.Provider + " already answered this RFQ"}
	}
	if status == StatusCancelled {
		return Decision{Outcome: OutcomeRejected, Reason: RejectClosed, Message: "the RFQ is " + string(status)}
	}
	if prior.Entry.State == ProviderWithdrawn {
		return Decision{Outcome: OutcomeRejected, Reason: RejectWithdrawn, Message: "provider " + a.Provider + " was withdrawn from this RFQ"}
	}
	if status == StatusExpired || prior.Entry.State == ProviderTimedOut {
		return Decision{Outcome: OutcomeRejected, Reason: RejectLate, Message: "the RFQ's deadline " + deadline.Format(time.RFC3339Nano) + " had passed"}
	}
	if status.Final() {
		return Decision{Outcome: OutcomeRejected, Reason: RejectClosed, Message: "the RFQ is " + string(status)}
	}
	// An answer is on time if it was received (stored by the broker, or
	// taken over HTTP) before the deadline, however late it is decided: an
	// answer acknowledged to its provider before the deadline and held up
	// by a crash is still staged, as long as the RFQ is open.
	received := a.ReceivedAt
	if received.IsZero() {
		received = now
	}
	if !received.Before(deadline) {
		return Decision{Outcome: OutcomeRejected, Reason: RejectLate, Message: "the RFQ's deadline " + deadline.Format(time.RFC3339Nano) + " had passed"}
	}
	return Decision{Outcome: OutcomeStaged}
}

// Rejection is a refused answer, kept for audit.
type Rejection struct {
	RFQID      string       `json:"rfq_id"`
	Provider   string       `json:"provider"`
	Reason     RejectReason `json:"reason"`
	Message    string       `json:"message"`
	ReceivedAt time.Time    `json:"received_at"`
	// Payload is the answer as received, possibly malformed, bounded in size.
	Payload []byte `json:"payload,omitempty"`
}

// AnswerReceipt is rydes's reply to an answer a provider sends over NATS, as
// a request on its answer subject: what staging decided, sent once that is
// durable, or why the answer could not be decided now.
type AnswerReceipt struct {
	// Outcome is what staging did: staged, duplicate (staged before) or
	// rejected (refused, and recorded for audit). Empty when Error is set.
	Outcome Outcome `json:"outcome,omitempty"`
	// RFQStatus is the RFQ's status after the answer, when it exists.
	RFQStatus Status `json:"rfq_status,omitempty"`
	// Reason and Message say why a rejected answer was refused.
	Reason  RejectReason `json:"reason,omitempty"`
	Message string       `json:"message,omitempty"`
	// Error, when set, says the answer was not decided (rydes is stopping,
	// its database failed): the provider sends it again later; staging is
	// idempotent.
	Error string `json:"error,omitempty"`
}
