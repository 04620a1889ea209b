package rydes

import (
	"encoding/json"
	"regexp"
	"time"
)

// AuditAction names a kind of administrative change recorded in the audit
// log.
type AuditAction string

// The administrative changes rydes records. Each is recorded once per
// change that succeeded; refused and failed attempts change nothing and are
// not recorded.
const (
	AuditProviderCreate   AuditAction = "provider.create"    // a provider was registered
	AuditProviderUpdate   AuditAction = "provider.update"    // a provider's name, status, URL or filter changed
	AuditProviderDelete   AuditAction = "provider.delete"    // a provider was removed
	AuditProviderRotate   AuditAction = "provider.rotate"    // a provider's credentials were replaced
	AuditCustomerCreate   AuditAction = "customer.create"    // a customer was registered
	AuditCustomerDelete   AuditAction = "customer.delete"    // a customer was removed
	AuditCustomerRotate   AuditAction = "customer.rotate"    // a customer's API key was replaced
	AuditDeadLetterReplay AuditAction = "dead_letter.replay" // a dead letter was put back on its queue
	AuditAdminKeySet      AuditAction = "admin_key.set"      // the admin key was set or replaced
)

// AuditActions are every AuditAction, in the order above.
var AuditActions = []AuditAction{
	AuditProviderCreate, AuditProviderUpdate, AuditProviderDelete, AuditProviderRotate,
	AuditCustomerCreate, AuditCustomerDelete, AuditCustomerRotate,
	AuditDeadLetterReplay, AuditAdminKeySet,
}

// Bounds of an audit entry's fields.
const (
	MaxAuditActorLen   = 128     // bytes of Actor
	MaxAuditTargetLen  = 128     // bytes of Target
	MaxAuditAddrLen    = 128     // bytes of RemoteAddr
	MaxAuditDetailsLen = 4 << 10 // bytes of Details
)

var auditActionPattern = regexp.MustCompile(`^[a-z][a-z_]*\.[a-z][a-z_]*$`)

// AuditEntry is one administrative change in the audit log: who did what to
// which object, from where and when. Details never hold keys, secrets or
// passwords: only what changed that is safe to show (names, statuses,
// filters, URLs without their credentials).
type AuditEntry struct {
	// ID is the entry's number, increasing in the order entries were added.
	ID int64 `json:"id"`
	// At is when the change was made.
	At time.Time `json:"at"`
	// Actor is who made it: "admin:<fingerprint>" for a request with the
	// admin key (the fingerprint is the start of the key's SHA-256 hash,
	// never the key), "config" for a change made by rydes serve's
	// configuration.
	Actor string `json:"actor"`
	// Action is what was done.
	Action AuditAction `json:"action"`
	// Target is the id of the object changed ("" if none).
	Target string `json:"target,omitempty"`
	// RemoteAddr is the network address the request came from ("" if the
	// change did not come over the network).
	RemoteAddr string `json:"remote_addr,omitempty"`
	// Details is a JSON object of what changed, or nil.
	Details json.RawMessage `json:"details,omitempty"`
}

// Validate checks that e is an entry that can be recorded: an action of the
// form "object.verb", an actor, a time, bounded fields and Details, if set,
// a JSON object.
func (e AuditEntry) Validate() error {
	switch {
	case !auditActionPattern.MatchString(string(e.Action)):
		return FieldErrorf("action", "must look like object.verb, e.g. provider.create")
	case e.Actor == "":
		return FieldErrorf("actor", "is required")
	case len(e.Actor) > MaxAuditActorLen:
		return FieldErrorf("actor", "must be at most %d bytes", MaxAuditActorLen)
	case len(e.Target) > MaxAuditTargetLen:
		return FieldErrorf("target", "must be at most %d bytes", MaxAuditTargetLen)
	case len(e.RemoteAddr) > MaxAuditAddrLen:
		return FieldErrorf("remote_addr", "must be at most %d bytes", MaxAuditAddrLen)
	case e.At.IsZero():
		return FieldErrorf("at", "is required")
	case len(e.Details) > MaxAuditDetailsLen:
		return FieldErrorf("details", "must be at most %d bytes", MaxAuditDetailsLen)
	}
	if len(e.Details) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(e.Details, &obj); err != nil || obj == nil {
			return FieldErrorf("details", "must be a JSON object")
		}
	}
	return nil
}
