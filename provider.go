package rydes

import (
	"cmp"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ProviderKind says how a provider receives requests and answers them.
type ProviderKind string

// The kinds of provider.
const (
	ProviderKindSimulated ProviderKind = "simulated" // one of rydes's own simulated unicorn providers
	ProviderKindNATS      ProviderKind = "nats"      // a partner consuming its queue over NATS
	ProviderKindWebhook   ProviderKind = "webhook"   // a partner rydes POSTs requests to
)

// ProviderStatus says whether a provider is asked for new requests.
type ProviderStatus string

// The statuses of a provider.
const (
	ProviderActive ProviderStatus = "active" // asked for every matching request
	ProviderPaused ProviderStatus = "paused" // asked for nothing new
)

// Provider is a partner that quotes on rides.
type Provider struct {
	ID     string         `json:"id"`
	Name   string         `json:"name"`
	Kind   ProviderKind   `json:"kind"`
	Status ProviderStatus `json:"status"`
	// WebhookURL is where rydes POSTs requests to a webhook provider.
	WebhookURL string `json:"webhook_url,omitempty"`
	// Filter says which requests the provider wants; the zero Filter wants
	// every request.
	Filter Filter `json:"filter"`
	// PausedReason says why rydes paused the provider itself (its webhook
	// answered 410 Gone), empty otherwise.
	PausedReason string    `json:"paused_reason,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Provider field limits.
const (
	MaxProviderNameLen = 128
	MaxWebhookURLLen   = 2048
	MaxFilterPatterns  = 256
)

// Validate checks a provider's own fields (not its timestamps).
func (p Provider) Validate() error {
	if err := ValidateProviderID(p.ID); err != nil {
		return &Error{Code: EINVALID, Field: "id", Message: err.(*Error).Message}
	}
	if err := validateText("name", p.Name, MaxProviderNameLen); err != nil {
		return err
	}
	switch p.Kind {
	case ProviderKindNATS, ProviderKindSimulated:
		if p.WebhookURL != "" {
			return FieldErrorf("webhook_url", "is only for webhook providers")
		}
	case ProviderKindWebhook:
		if err := ValidateWebhookURL(p.WebhookURL); err != nil {
			return err
		}
	default:
		return FieldErrorf("kind", "must be %q or %q", ProviderKindNATS, ProviderKindWebhook)
	}
	if p.Status != ProviderActive && p.Status != ProviderPaused {
		return FieldErrorf("status", "must be %q or %q", ProviderActive, ProviderPaused)
	}
	return p.Filter.Validate()
}

// ValidateWebhookURL checks that u is an absolute http or https URL without
// user information or fragment. Whether its host may be reached (no
// loopback or private addresses) is the sender's policy, not checked here.
func ValidateWebhookURL(u string) error {
	if u == "" {
		return FieldErrorf("webhook_url", "is required for webhook providers")
	}
	if len(u) > MaxWebhookURLLen {
		return FieldErrorf("webhook_url", "must be at most %d bytes", MaxWebhookURLLen)
	}
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" || parsed.User != nil || parsed.Fragment != "" {
		return FieldErrorf("webhook_url", "must be an absolute http or https URL without user information or fragment")
	}
	return nil
}

// Filter is a provider's routing filter, the counterpart of the workshop's
// SNS filter policies: a request is routed to the provider only if every
// condition that is set holds. Place patterns compare case-insensitively and
// may use the wildcards of path.Match ("*" for any run of characters, so
// "Frank*" or "* Airport").
type Filter struct {
	// From lists the pickup places served; empty means any.
	From []string `json:"from,omitempty"`
	// To lists the destinations served; empty means any.
	To []string `json:"to,omitempty"`
	// MaxPassengers is the most passengers the provider takes; 0 means any.
	// A request that names no passengers counts as one passenger.
	MaxPassengers int `json:"max_passengers,omitzero"`
	// Attributes maps an attribute name to the values accepted; the request
	// must carry the attribute with one of them.
	Attributes map[string][]string `json:"attributes,omitempty"`
}

// Clone returns a copy of f that shares nothing with it.
func (f Filter) Clone() Filter {
	c := f
	c.From, c.To = slices.Clone(f.From), slices.Clone(f.To)
	if f.Attributes != nil {
		c.Attributes = make(map[string][]string, len(f.Attributes))
		for k, v := range f.Attributes {
			c.Attributes[k] = slices.Clone(v)
		}
	}
	return c
}

// IsZero reports whether the filter accepts every request.
func (f Filter) IsZero() bool {
	return len(f.From) == 0 && len(f.To) == 0 && f.MaxPassengers == 0 && len(f.Attributes) == 0
}

// Validate checks the filter's patterns and bounds.
func (f Filter) Validate() error {
	for _, field := range []struct {
		name     string
		patterns []string
	}{{"filter.from", f.From}, {"filter.to", f.To}} {
		if len(field.patterns) > MaxFilterPatterns {
			return FieldErrorf(field.name, "at most %d patterns are allowed", MaxFilterPatterns)
		}
		for _, p := range field.patterns {
			if err := validateText(field.name, p, MaxTextLen); err != nil {
				return err
			}
			if _, err := path.Match(strings.ToLower(p), ""); err != nil {
				return FieldErrorf(field.name, "pattern %q is malformed: %v", truncate(p, 80), err)
			}
		}
	}
	if f.MaxPassengers < 0 || f.MaxPassengers > MaxPassengers {
		return FieldErrorf("filter.max_passengers", "must be between 0 (any) and %d", MaxPassengers)
	}
	if len(f.Attributes) > MaxAttributes {
		return FieldErrorf("filter.attributes", "at most %d attributes are allowed", MaxAttributes)
	}
	for k, vs := range f.Attributes {
		if !validKey(k) {
			return FieldErrorf("filter.attributes", "key %q must be 1 to %d letters, digits, '_', '-' or '.'", truncate(k, 80), MaxAttributeKey)
		}
		if len(vs) == 0 || len(vs) > MaxFilterPatterns {
			return FieldErrorf("filter.attributes."+k, "must list 1 to %d accepted values", MaxFilterPatterns)
		}
		for _, v := range vs {
			if len(v) > MaxTextLen || !utf8.ValidString(v) || strings.IndexFunc(v, unicode.IsControl) >= 0 {
				return FieldErrorf("filter.attributes."+k, "values must be valid text of at most %d bytes", MaxTextLen)
			}
		}
	}
	return nil
}

// Matches reports whether a request passes the filter.
func (f Filter) Matches(r RFQRequest) bool {
	if !matchPlace(f.From, r.From) || !matchPlace(f.To, r.To) {
		return false
	}
	if f.MaxPassengers > 0 && max(r.Passengers, 1) > f.MaxPassengers {
		return false
	}
	for k, accepted := range f.Attributes {
		v, ok := r.Attributes[k]
		if !ok {
			return false
		}
		found := false
		for _, a := range accepted {
			if a == v {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func matchPlace(patterns []string, place string) bool {
	if len(patterns) == 0 {
		return true
	}
	place = strings.ToLower(strings.TrimSpace(place))
	for _, p := range patterns {
		if ok, _ := path.Match(strings.ToLower(strings.TrimSpace(p)), place); ok {
			return true
		}
	}
	return false
}

// ProviderCredentials are a provider's secrets, shown once when created or
// rotated. rydes keeps only hashes of the API key and the NATS password; it
// keeps the webhook signing secret, which it needs to sign.
type ProviderCredentials struct {
	// APIKey authenticates the provider on HTTP (Authorization: Bearer).
	APIKey string `json:"api_key"`
	// NATSUser and NATSPassword authenticate the provider on the broker.
	NATSUser     string `json:"nats_user"`
	NATSPassword string `json:"nats_password"`
	// WebhookSecret signs deliveries to a webhook provider (Standard
	// Webhooks, "whsec_" followed by base64).
	WebhookSecret string `json:"webhook_secret,omitempty"`
}

// ProviderStats is how a provider has been doing.
type ProviderStats struct {
	Provider  string `json:"provider"`
	Asked     int    `json:"asked"`
	Pending   int    `json:"pending"`
	Quoted    int    `json:"quoted"`
	Declined  int    `json:"declined"`
	TimedOut  int    `json:"timed_out"`
	Failed    int    `json:"failed"`
	Withdrawn int    `json:"withdrawn"`
	// ResponseP50 and ResponseP99 are percentiles of the time from a
	// request's creation to the provider's answer, over its answers.
	ResponseP50 Duration `json:"response_p50"`
	ResponseP99 Duration `json:"response_p99"`
	// QueueDepth is how many requests wait in the provider's queue, not yet
	// delivered; InFlight how many were delivered and not yet acknowledged.
	QueueDepth int `json:"queue_depth"`
	InFlight   int `json:"in_flight"`
	// OldestPendingAge is the age of the oldest request in the queue.
	OldestPendingAge Duration `json:"oldest_pending_age"`
}

// Duration is a time.Duration that is JSON-encoded as a Go duration string
// ("1.5s").
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Customer is a customer app or account with its own API key: it sees and
// cancels only its own requests.
type Customer struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// Validate checks a customer's own fields. Customer ids follow the rules of
// provider ids.
func (c Customer) Validate() error {
	if err := ValidateProviderID(c.ID); err != nil {
		return &Error{Code: EINVALID, Field: "id", Message: err.(*Error).Message}
	}
	return validateText("name", c.Name, MaxProviderNameLen)
}

// Notification is one attempt to deliver an RFQ's final state to its
// notify_url.
type Notification struct {
	RFQID string    `json:"rfq_id"`
	Event EventType `json:"event"` // complete, expired or cancelled
	// Attempt numbers the attempts for this RFQ and event from 1.
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	// Status is the receiver's HTTP status, 0 if none came back.
	Status int `json:"status,omitzero"`
	// Error says why the attempt failed; empty when it was accepted (2xx).
	Error     string `json:"error,omitempty"`
	Delivered bool   `json:"delivered"`
}

// DeadLetter is a delivery to a webhook provider that exhausted its retries.
type DeadLetter struct {
	ID       int64  `json:"id"`
	Provider string `json:"provider"`
	RFQID    string `json:"rfq_id"`
	// Attempts is how many deliveries were tried.
	Attempts int `json:"attempts"`
	// LastError is the last attempt's failure, e.g. "HTTP 503" or a
	// network error; LastStatus its HTTP status (0 if none came back).
	LastError  string `json:"last_error"`
	LastStatus int    `json:"last_status,omitzero"`
	// Request is what was being delivered.
	Request   ProviderRequest `json:"request"`
	CreatedAt time.Time       `json:"created_at"`
	// ReplayedAt is when the dead letter was last replayed, if ever.
	ReplayedAt time.Time `json:"replayed_at,omitzero"`
}

// CompareProviderIDs orders provider ids the way people read them: runs of
// digits compare as numbers, so UnicornManagementResource2 comes before
// UnicornManagementResource10. Ids equal in that order compare bytewise.
func CompareProviderIDs(a, b string) int {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		ca, cb := a[i], b[j]
		if isDigit(ca) && isDigit(cb) {
			si, sj := i, j
			for i < len(a) && isDigit(a[i]) {
				i++
			}
			for j < len(b) && isDigit(b[j]) {
				j++
			}
			na, nb := strings.TrimLeft(a[si:i], "0"), strings.TrimLeft(b[sj:j], "0")
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			continue
		}
		if c := cmp.Compare(ca, cb); c != 0 {
			return c
		}
		i++
		j++
	}
	if c := cmp.Compare(len(a)-i, len(b)-j); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
