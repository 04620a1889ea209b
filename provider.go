package rydes

import "time"

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
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Kind      ProviderKind   `json:"kind"`
	Status    ProviderStatus `json:"status"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}
