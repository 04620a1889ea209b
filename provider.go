package rydes

import (
	"cmp"
	"strings"
	"time"
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
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Kind      ProviderKind   `json:"kind"`
	Status    ProviderStatus `json:"status"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
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
