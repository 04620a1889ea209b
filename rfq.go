package rydes

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Status is where an RFQ is in its life. An RFQ starts open and moves, exactly
// once, to one of the final statuses.
type Status string

// The statuses of an RFQ.
const (
	StatusOpen      Status = "open"      // gathering answers
	StatusComplete  Status = "complete"  // every asked provider answered
	StatusExpired   Status = "expired"   // the deadline passed first; quotes so far are kept
	StatusCancelled Status = "cancelled" // the customer withdrew it
)

// Final reports whether s is one of the final statuses.
func (s Status) Final() bool {
	return s == StatusComplete || s == StatusExpired || s == StatusCancelled
}

// ProviderState is where one asked provider is in answering one RFQ.
type ProviderState string

// The states of an asked provider in an RFQ's roster.
const (
	// ProviderPending: asked, no answer yet. Only an open RFQ has pending
	// providers: expiry times them out, cancelling withdraws them.
	ProviderPending  ProviderState = "pending"
	ProviderQuoted   ProviderState = "quoted"    // answered with a quote
	ProviderDeclined ProviderState = "declined"  // answered with a decline
	ProviderTimedOut ProviderState = "timed_out" // did not answer before the deadline
	// ProviderWithdrawn: the request was withdrawn from the provider before
	// it answered: the provider was removed from rydes while the RFQ was
	// open (it counts as done, so the RFQ can still complete), or the
	// customer cancelled the RFQ.
	ProviderWithdrawn ProviderState = "withdrawn"
	// ProviderFailed: rydes could not deliver the request to the provider
	// (its webhook kept failing). It counts as done, so the RFQ can still
	// complete, but an answer arriving before the RFQ closes is staged.
	ProviderFailed ProviderState = "failed"
)

// Answered reports whether the provider gave an answer (quote or decline).
func (s ProviderState) Answered() bool { return s == ProviderQuoted || s == ProviderDeclined }

// Done reports whether the provider no longer holds up the RFQ's completion:
// it answered, was withdrawn or failed.
func (s ProviderState) Done() bool {
	return s.Answered() || s == ProviderWithdrawn || s == ProviderFailed || s == ProviderTimedOut
}

// RFQ is a customer's request for quotes: a ride from one place to another,
// sent to the providers in its roster, open until all of them answered, its
// deadline passed or the customer cancelled it.
type RFQ struct {
	ID         string            `json:"id"`
	Status     Status            `json:"status"`
	Customer   string            `json:"customer"`
	From       string            `json:"from"`
	To         string            `json:"to"`
	Passengers int               `json:"passengers,omitzero"`
	PickupAt   time.Time         `json:"pickup_at,omitzero"`
	Attributes map[string]string `json:"attributes,omitempty"`
	CreatedAt  time.Time         `json:"created_at"`
	Deadline   time.Time         `json:"deadline"`
	ClosedAt   time.Time         `json:"closed_at,omitzero"`
	// Seq is the seq of the RFQ's latest event: it grows with every change
	// of status, roster or quotes, so it versions the RFQ (ETag) and tells a
	// watcher where it is.
	Seq int64 `json:"seq"`
	// NotifyURL is where rydes POSTs the final RFQ when it completes,
	// expires or is cancelled; empty for none.
	NotifyURL string `json:"notify_url,omitempty"`
	// NotifySecret signs those notifications (Standard Webhooks). It is
	// shown only in the answer to the request that created the RFQ.
	NotifySecret string `json:"notify_secret,omitempty"`

	// Providers is the roster: one entry per provider asked, fixed at creation.
	Providers []RosterEntry `json:"providers"`
	// Quotes holds the quotes staged so far, best price first.
	Quotes []Quote `json:"quotes"`
}

// Asked returns the ids of the providers in the roster.
func (r *RFQ) Asked() []string {
	ids := make([]string, len(r.Providers))
	for i, p := range r.Providers {
		ids[i] = p.Provider
	}
	return ids
}

// FinalEvent returns the event that closed a final RFQ, as the store
// emitted it: its last event (Seq), of the type its status names, at its
// closing time. ok is false for an RFQ still open.
func (r *RFQ) FinalEvent() (ev Event, ok bool) {
	var t EventType
	switch r.Status {
	case StatusComplete:
		t = EventComplete
	case StatusExpired:
		t = EventExpired
	case StatusCancelled:
		t = EventCancelled
	default:
		return Event{}, false
	}
	return Event{RFQID: r.ID, Seq: r.Seq, Type: t, At: r.ClosedAt, Customer: r.Customer, Status: r.Status}, true
}

// RosterEntry is one asked provider's state in one RFQ.
type RosterEntry struct {
	Provider  string        `json:"provider"`
	State     ProviderState `json:"state"`
	ChangedAt time.Time     `json:"changed_at"`
	// Reason is the provider's reason for a decline, if it gave one, or the
	// last delivery error of a failed provider.
	Reason string `json:"reason,omitempty"`
}

// RFQRequest is what a customer asks for; NewRFQ turns it into an RFQ.
type RFQRequest struct {
	Customer   string
	From       string
	To         string
	Passengers int       // 0 when not given
	PickupAt   time.Time // zero when not given (as soon as possible)
	Attributes map[string]string
	Timeout    time.Duration // 0 for the default
	NotifyURL  string        // where to POST the final RFQ; "" for none
}

// Limits bounds what a request may ask for.
type Limits struct {
	DefaultTimeout time.Duration // deadline of a request that names none
	MaxTimeout     time.Duration // the longest timeout a request may name
}

// Minimum and maximum sizes of request fields.
const (
	MinTimeout        = time.Second
	MaxTextLen        = 256 // from, to, attribute values
	MaxCustomerLen    = 128
	MaxPassengers     = 64
	MaxAttributes     = 32
	MaxAttributeKey   = 64
	MaxReasonLen      = 512
	MaxProviderIDLen  = 64
	MaxTimeTextLen    = 64 // a duration or timestamp as text: timeout, pickup_at, expires_at
	DefaultTimeout    = 30 * time.Second
	DefaultMaxTimeout = 10 * time.Minute
)

// Validate checks limits for consistency.
func (l Limits) Validate() error {
	if l.MaxTimeout < MinTimeout {
		return Errorf(EINVALID, "maximum timeout %s is below the minimum %s", l.MaxTimeout, MinTimeout)
	}
	if l.DefaultTimeout < MinTimeout || l.DefaultTimeout > l.MaxTimeout {
		return Errorf(EINVALID, "default timeout %s is not within [%s, %s]", l.DefaultTimeout, MinTimeout, l.MaxTimeout)
	}
	return nil
}

// Validate checks a request against the limits and returns an EINVALID
// *Error naming the first offending field.
func (r RFQRequest) Validate(l Limits) error {
	if err := validateText("customer", r.Customer, MaxCustomerLen); err != nil {
		return err
	}
	if err := validateText("from", r.From, MaxTextLen); err != nil {
		return err
	}
	if err := validateText("to", r.To, MaxTextLen); err != nil {
		return err
	}
	if r.Passengers < 0 || r.Passengers > MaxPassengers {
		return FieldErrorf("passengers", "must be between 1 and %d", MaxPassengers)
	}
	if len(r.Attributes) > MaxAttributes {
		return FieldErrorf("attributes", "at most %d attributes are allowed", MaxAttributes)
	}
	for k, v := range r.Attributes {
		if !validKey(k) {
			return FieldErrorf("attributes", "key %q must be 1 to %d letters, digits, '_', '-' or '.'", truncate(k, 80), MaxAttributeKey)
		}
		if len(v) > MaxTextLen || !utf8.ValidString(v) || strings.IndexFunc(v, unicode.IsControl) >= 0 {
			return FieldErrorf("attributes."+k, "must be valid text of at most %d bytes without control characters", MaxTextLen)
		}
	}
	if r.NotifyURL != "" {
		if err := ValidateWebhookURL(r.NotifyURL); err != nil {
			return &Error{Code: EINVALID, Field: "notify_url", Message: err.(*Error).Message}
		}
	}
	if r.Timeout != 0 && (r.Timeout < MinTimeout || r.Timeout > l.MaxTimeout) {
		return FieldErrorf("timeout", "must be between %s and %s", MinTimeout, l.MaxTimeout)
	}
	return nil
}

// NewRFQ validates req and returns the open RFQ it asks for, with id, created
// at now, its deadline set and every asked provider pending.
func NewRFQ(id string, req RFQRequest, asked []string, now time.Time, l Limits) (RFQ, error) {
	if err := req.Validate(l); err != nil {
		return RFQ{}, err
	}
	if len(asked) == 0 {
		return RFQ{}, Errorf(EUNMATCHED, "no active provider can serve this request")
	}
	timeout := req.Timeout
	if timeout == 0 {
		timeout = l.DefaultTimeout
	}
	now = now.UTC().Truncate(time.Microsecond)
	rfq := RFQ{
		ID:         id,
		Status:     StatusOpen,
		Customer:   strings.TrimSpace(req.Customer),
		From:       strings.TrimSpace(req.From),
		To:         strings.TrimSpace(req.To),
		Passengers: req.Passengers,
		Attributes: req.Attributes,
		CreatedAt:  now,
		Deadline:   now.Add(timeout),
		Seq:        1,
		NotifyURL:  req.NotifyURL,
		Providers:  make([]RosterEntry, len(asked)),
		Quotes:     []Quote{},
	}
	if !req.PickupAt.IsZero() {
		rfq.PickupAt = req.PickupAt.UTC().Truncate(time.Microsecond)
	}
	for i, p := range asked {
		rfq.Providers[i] = RosterEntry{Provider: p, State: ProviderPending, ChangedAt: now}
	}
	return rfq, nil
}

// ValidateID checks that id is a UUID in its canonical form, as RFQ ids
// are: 36 characters, hex digits (of either case) in groups of 8, 4, 4, 4
// and 12 joined by hyphens. uuid.Parse takes other forms too (braces, a
// urn: prefix, no hyphens); this check, on every request naming an RFQ,
// allocates nothing.
func ValidateID(id string) error {
	if !canonicalUUID(id) {
		return FieldErrorf("id", "must be a UUID such as 8b095f9e-cffc-4790-91a6-28353fa30e42")
	}
	return nil
}

func canonicalUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// NewID returns a new RFQ id: a UUID of version 7, which begins with the
// time it was made (in milliseconds) and has 74 random bits after it. Ids
// made one after another sort together, so the database's indexes keyed by
// RFQ id (the requests, their rosters) grow at their end: a commit of many
// new requests writes a few pages there instead of one per request at
// random, as random (version 4) ids did.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

// ValidateProviderID checks a provider id: 1 to 64 letters, digits, '_' or
// '-'. Provider ids appear in NATS subjects, so dots and wildcards are out.
func ValidateProviderID(id string) error {
	if id == "" || len(id) > MaxProviderIDLen {
		return FieldErrorf("provider", "must be 1 to %d characters", MaxProviderIDLen)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return FieldErrorf("provider", "may hold only letters, digits, '_' and '-'")
		}
	}
	return nil
}

func validateText(field, s string, max int) error {
	if strings.TrimSpace(s) == "" {
		return FieldErrorf(field, "is required and must not be blank")
	}
	if len(s) > max {
		return FieldErrorf(field, "must be at most %d bytes", max)
	}
	if !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return FieldErrorf(field, "must be valid text without control characters")
	}
	return nil
}

func validKey(k string) bool {
	if k == "" || len(k) > MaxAttributeKey {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ProviderRequest is what a provider receives for an RFQ it is asked to
// quote on: the ride, not the customer.
type ProviderRequest struct {
	RFQID      string            `json:"rfq_id"`
	From       string            `json:"from"`
	To         string            `json:"to"`
	Passengers int               `json:"passengers,omitzero"`
	PickupAt   time.Time         `json:"pickup_at,omitzero"`
	Attributes map[string]string `json:"attributes,omitempty"`
	CreatedAt  time.Time         `json:"created_at"`
	Deadline   time.Time         `json:"deadline"`
}

// ProviderRequest returns what the providers asked for r receive.
func (r *RFQ) ProviderRequest() ProviderRequest {
	return ProviderRequest{
		RFQID: r.ID, From: r.From, To: r.To, Passengers: r.Passengers, PickupAt: r.PickupAt,
		Attributes: r.Attributes, CreatedAt: r.CreatedAt, Deadline: r.Deadline,
	}
}
