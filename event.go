package rydes

import (
	"strconv"
	"time"
)

// EventType names a transition of an RFQ.
type EventType string

// The events an RFQ emits, each exactly once.
const (
	EventCreated           EventType = "created"            // the RFQ was accepted
	EventQuote             EventType = "quote"              // a provider quoted
	EventDecline           EventType = "decline"            // a provider declined
	EventProviderTimedOut  EventType = "provider_timed_out" // a provider did not answer in time
	EventProviderWithdrawn EventType = "provider_withdrawn" // a provider was removed, or the RFQ cancelled, before it answered
	EventProviderFailed    EventType = "provider_failed"    // rydes could not deliver to a provider
	EventComplete          EventType = "complete"           // every asked provider answered
	EventExpired           EventType = "expired"            // the deadline passed first
	EventCancelled         EventType = "cancelled"          // the customer cancelled
)

// Final reports whether the event closes its RFQ.
func (t EventType) Final() bool {
	return t == EventComplete || t == EventExpired || t == EventCancelled
}

// Event is one transition of one RFQ. Seq numbers an RFQ's events from 1 with
// no gaps, so that watchers can resume and deduplicate.
type Event struct {
	RFQID    string    `json:"rfq_id"`
	Seq      int64     `json:"seq"`
	Type     EventType `json:"type"`
	At       time.Time `json:"at"`
	Customer string    `json:"customer"`
	// Provider is set for quote, decline and the provider_* events.
	Provider string `json:"provider,omitempty"`
	// Quote is set for quote.
	Quote *Quote `json:"quote,omitempty"`
	// Reason is a decline's reason, if any, or a failed provider's last error.
	Reason string `json:"reason,omitempty"`
	// Status is the RFQ's status after the event.
	Status Status `json:"status"`
}

// ID returns the event's unique id, "<rfq id>.<seq>", used to deduplicate
// its publication.
func (e Event) ID() string { return e.RFQID + "." + strconv.FormatInt(e.Seq, 10) }
