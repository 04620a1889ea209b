// Package store defines what rydes needs from its database: the Store
// interface, the parameter and result types of its methods, and (in
// storetest) the one conformance suite that every implementation passes.
//
// The database is rydes's source of truth. Every method that changes state
// does so in one transaction, and every transition it makes writes the
// messages to publish for it into an outbox in that same transaction, so
// nothing is published that was not committed and nothing committed is left
// unpublished.
package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/wildrydes/rydes"
)

// Store is rydes's database. Implementations must be safe for concurrent
// use, also by several processes sharing one database: each transition of
// an RFQ happens exactly once however many callers race for it.
//
// Errors are *rydes.Error for the caller's mistakes (ENOTFOUND, ECONFLICT,
// EINVALID); anything else is an internal error.
type Store interface {
	// UpsertProvider creates the provider or updates its name, kind and
	// status, and returns it as stored.
	UpsertProvider(ctx context.Context, p UpsertProviderParams) (rydes.Provider, error)
	// ListProviders returns the providers, ordered by id, optionally only
	// those of one status or kind.
	ListProviders(ctx context.Context, p ListProvidersParams) ([]rydes.Provider, error)
	// CreateProvider registers a new provider with its secrets. ECONFLICT if
	// a provider with that id exists (a deleted provider's id may be reused).
	CreateProvider(ctx context.Context, p CreateProviderParams) (rydes.Provider, error)
	// GetProvider returns one provider. ENOTFOUND if there is none.
	GetProvider(ctx context.Context, id string) (rydes.Provider, error)
	// UpdateProvider changes the fields that are set and returns the
	// provider as stored. ENOTFOUND if there is none.
	UpdateProvider(ctx context.Context, p UpdateProviderParams) (rydes.Provider, error)
	// DeleteProvider removes a provider and its secrets and withdraws it
	// from every open RFQ it is pending or failed in: its roster entry
	// becomes withdrawn with a provider_withdrawn event, and an RFQ left
	// with nobody pending completes (complete event). It does so in
	// transactions of at most Chunk RFQs, the first of which deletes the
	// provider (so that no new RFQ asks it), so that withdrawing a provider
	// from many RFQs holds the store's writer for a moment at a time. If
	// it fails after the first, the provider is gone and WithdrawDeleted
	// finishes. ENOTFOUND if there is none. It returns the ids of the RFQs
	// withdrawn from, oldest first.
	DeleteProvider(ctx context.Context, p DeleteProviderParams) ([]string, error)
	// WithdrawDeleted withdraws providers that no longer exist from the
	// open RFQs they are still pending or failed in, as DeleteProvider
	// does, in transactions of at most Chunk RFQs: what a DeleteProvider
	// that stopped half-way (a crash, an error) left. It returns the ids of
	// the RFQs withdrawn from.
	WithdrawDeleted(ctx context.Context, p WithdrawDeletedParams) ([]string, error)
	// ProviderSecrets returns a provider's stored secrets. ENOTFOUND if
	// there is none.
	ProviderSecrets(ctx context.Context, id string) (ProviderSecrets, error)
	// SetProviderSecrets replaces the secrets that are set (non-empty).
	// ENOTFOUND if there is no such provider.
	SetProviderSecrets(ctx context.Context, p SetProviderSecretsParams) error
	// ProviderByAPIKeyHash returns the provider whose API key hashes to
	// hash. ENOTFOUND if none does.
	ProviderByAPIKeyHash(ctx context.Context, hash string) (rydes.Provider, error)
	// ProviderStats counts a provider's roster entries by state and gives
	// percentiles of its response times (answered_at - rfq created_at) over
	// its most recent answers (at most 10,000). The queue fields are left
	// zero: the broker knows them. It works for deleted providers too
	// (their past RFQs remain).
	ProviderStats(ctx context.Context, id string) (rydes.ProviderStats, error)
	// MarkProviderFailed records that the request could not be delivered to
	// a provider: if its entry in the RFQ's roster is pending and the RFQ is
	// open, the entry becomes failed with Error as its reason and a
	// provider_failed event, and an RFQ left with nobody pending completes.
	// Otherwise (answered, timed out, closed) nothing changes. It returns
	// the events emitted.
	MarkProviderFailed(ctx context.Context, p MarkProviderFailedParams) ([]rydes.Event, error)

	// AddDeadLetter keeps a delivery that exhausted its retries and returns
	// it with its id.
	AddDeadLetter(ctx context.Context, d rydes.DeadLetter) (rydes.DeadLetter, error)
	// ListDeadLetters returns dead letters, newest first, optionally of one
	// provider, at most Limit (0 for 100), with ids below BeforeID if set.
	ListDeadLetters(ctx context.Context, p ListDeadLettersParams) ([]rydes.DeadLetter, error)
	// GetDeadLetter returns one dead letter. ENOTFOUND if there is none.
	GetDeadLetter(ctx context.Context, id int64) (rydes.DeadLetter, error)
	// MarkDeadLetterReplayed sets a dead letter's ReplayedAt. ENOTFOUND if
	// there is none.
	MarkDeadLetterReplayed(ctx context.Context, id int64, at time.Time) error

	// NotifyTarget returns where and with which secret an RFQ's final state
	// is to be POSTed ("" URL if nowhere). ENOTFOUND if there is no RFQ.
	NotifyTarget(ctx context.Context, rfqID string) (url, secret string, err error)
	// RecordNotification appends one delivery attempt to an RFQ's
	// notification log; Attempt is set by the store (1, 2, ... per RFQ and
	// event) and returned.
	RecordNotification(ctx context.Context, n rydes.Notification) (rydes.Notification, error)
	// ListNotifications returns an RFQ's notification log, oldest first.
	ListNotifications(ctx context.Context, rfqID string) ([]rydes.Notification, error)
	// NotificationDelivered reports whether a delivery of the RFQ's event was
	// accepted already (so a redelivered message is not sent twice).
	NotificationDelivered(ctx context.Context, rfqID string, event rydes.EventType) (bool, error)

	// CreateCustomer registers a customer with the hash of its API key.
	// ECONFLICT if the id exists.
	CreateCustomer(ctx context.Context, p CreateCustomerParams) (rydes.Customer, error)
	// ListCustomers returns the customers ordered by id.
	ListCustomers(ctx context.Context) ([]rydes.Customer, error)
	// DeleteCustomer removes a customer (its key stops working; its RFQs
	// stay). ENOTFOUND if there is none.
	DeleteCustomer(ctx context.Context, id string) error
	// SetCustomerKey replaces a customer's API key hash. ENOTFOUND if none.
	SetCustomerKey(ctx context.Context, id, apiKeyHash string) error
	// CustomerByAPIKeyHash returns the customer whose key hashes to hash.
	// ENOTFOUND if none does.
	CustomerByAPIKeyHash(ctx context.Context, hash string) (rydes.Customer, error)

	// GetSetting returns a named setting's value and whether it is set.
	GetSetting(ctx context.Context, name string) (string, bool, error)
	// InitSetting sets a named setting only if it is not set yet and
	// returns the value in force, so that racing processes agree.
	InitSetting(ctx context.Context, name, value string) (string, error)
	// PutSetting sets a named setting, replacing any value.
	PutSetting(ctx context.Context, name, value string) error

	// CreateRFQ stores a new open RFQ with its roster (and its NotifyURL and
	// NotifySecret, if any) and, in the same
	// transaction, its outbox messages: the dispatch to every asked
	// provider (one message) and the created event (seq 1). It fails with
	// ECONFLICT if the id exists.
	CreateRFQ(ctx context.Context, p CreateRFQParams) error
	// GetRFQ returns the RFQ with its roster (in the order asked), its
	// quotes (best price first), its Seq (the seq of its latest event) and
	// its NotifyURL, never its NotifySecret. ENOTFOUND if there is none, or
	// if Customer is set and the RFQ belongs to another customer.
	GetRFQ(ctx context.Context, p GetRFQParams) (rydes.RFQ, error)
	// RFQSeq returns the seq of an RFQ's latest event (its version, as in
	// GetRFQ's Seq) without reading the rest. ENOTFOUND as for GetRFQ.
	RFQSeq(ctx context.Context, p GetRFQParams) (int64, error)
	// CancelRFQ moves an open RFQ to cancelled: each provider still
	// pending becomes withdrawn with a provider_withdrawn event, then the
	// RFQ becomes cancelled with the cancelled event, so that only open RFQs
	// have pending providers. ENOTFOUND as for GetRFQ; ECONFLICT if the RFQ
	// is already final.
	CancelRFQ(ctx context.Context, p CancelRFQParams) (CancelRFQResult, error)
	// StageAnswers decides each answer with rydes.Decide against the RFQ as
	// it is inside the transaction and applies the decisions in one
	// transaction, in order: a staged answer changes the roster (and adds a
	// quote) and emits its event, and the answer that leaves no provider
	// pending completes the RFQ and emits complete; a rejected one is
	// recorded; a duplicate changes nothing. Results are in input order.
	StageAnswers(ctx context.Context, p StageAnswersParams) ([]StageResult, error)
	// RecordRejections keeps refused answers that never became an Answer
	// (an undecodable payload, say) for audit.
	RecordRejections(ctx context.Context, rs []rydes.Rejection) error
	// ListRejections returns the refused answers for one RFQ, or all of them
	// when RFQID is empty, oldest first, at most Limit (0 for 100).
	ListRejections(ctx context.Context, p ListRejectionsParams) ([]rydes.Rejection, error)
	// ExpireDue expires open RFQs whose deadline is at or before Now, at
	// most Limit of them (0 for 100), earliest deadline first: every pending
	// provider becomes timed_out with a provider_timed_out event, then the
	// RFQ becomes expired with an expired event. It returns the ids expired.
	ExpireDue(ctx context.Context, p ExpireDueParams) ([]string, error)
	// NextDeadline returns the earliest deadline of an open RFQ, and false
	// if no RFQ is open.
	NextDeadline(ctx context.Context) (time.Time, bool, error)
	// ListRFQs returns RFQs as GetRFQ does, ordered by id, after AfterID,
	// at most Limit (0 for 100): the open ones (Open), or the final ones
	// closed at or after ClosedSince. Reconciliation pages through them.
	ListRFQs(ctx context.Context, p ListRFQsParams) ([]rydes.RFQ, error)

	// PendingOutbox returns up to Limit (0 for 100) unpublished outbox
	// messages with an id above AfterID, oldest (lowest id) first.
	PendingOutbox(ctx context.Context, p PendingOutboxParams) ([]OutboxMessage, error)
	// OutboxHoldsEvents reports whether the outbox holds events of RFQ
	// rfqID not yet published: if not, every event the RFQ emitted so far
	// was stored by the broker (or is gone from it).
	OutboxHoldsEvents(ctx context.Context, rfqID string) (bool, error)
	// DeleteOutbox removes messages that were published (IDs; ids that are
	// already gone are ignored) and, in the same transaction, raises for
	// each stream of Acked the setting AckedSetting(stream) to the
	// sequence the broker acknowledged the publication with, unless it
	// holds a higher one already: the database's high-water mark of what
	// each stream acknowledged, exact however the process stops.
	DeleteOutbox(ctx context.Context, p DeleteOutboxParams) error

	// PurgeFinished deletes final RFQs (complete, expired, cancelled) that
	// closed before Before, oldest first, at most Limit of them (0 for
	// DefaultPurgeLimit) in one transaction, with everything kept for them:
	// roster, quotes, notification log, refused answers and dead letters.
	// It never
	// touches an open RFQ, nor an RFQ that still has outbox messages to
	// publish. It returns how many RFQs it deleted; the caller repeats
	// while that is Limit.
	PurgeFinished(ctx context.Context, p PurgeFinishedParams) (int, error)
	// PurgeHistory deletes, oldest first and at most Limit rows in all (0
	// for DefaultPurgeLimit) in one transaction, the records that are not
	// part of an RFQ and are older than Before: dead letters created before
	// it, refused answers received before it whose RFQ does not exist (any
	// more), and audit entries made before it. It returns how many rows it
	// deleted; the caller repeats while that is Limit.
	PurgeHistory(ctx context.Context, p PurgeHistoryParams) (int, error)

	// AddAudit appends an entry to the audit log and returns it as stored,
	// with its ID. EINVALID if the entry does not pass Validate.
	AddAudit(ctx context.Context, e rydes.AuditEntry) (rydes.AuditEntry, error)
	// ListAudit returns audit entries, newest first, optionally of one
	// action, at most Limit (0 for 100), with ids below BeforeID if set.
	ListAudit(ctx context.Context, p ListAuditParams) ([]rydes.AuditEntry, error)

	// Close releases the database.
	Close() error
}

// DefaultPurgeLimit is the batch of PurgeFinished and PurgeHistory when
// their Limit is 0: small enough that a purge holds the database's write
// lock only briefly.
const DefaultPurgeLimit = 500

// PurgeFinishedParams are the parameters of Store.PurgeFinished.
type PurgeFinishedParams struct {
	Before time.Time // RFQs that closed before this go
	Limit  int       // at most this many RFQs; 0 for DefaultPurgeLimit
}

// PurgeHistoryParams are the parameters of Store.PurgeHistory.
type PurgeHistoryParams struct {
	Before time.Time // records older than this go
	Limit  int       // at most this many rows; 0 for DefaultPurgeLimit
}

// ListAuditParams are the parameters of Store.ListAudit.
type ListAuditParams struct {
	BeforeID int64             // 0 for the newest
	Limit    int               // 0 for 100
	Action   rydes.AuditAction // "" for all
}

// UpsertProviderParams are the parameters of Store.UpsertProvider.
type UpsertProviderParams struct {
	ID     string
	Name   string
	Kind   rydes.ProviderKind
	Status rydes.ProviderStatus
	Now    time.Time
}

// ListProvidersParams are the parameters of Store.ListProviders.
type ListProvidersParams struct {
	Status rydes.ProviderStatus // "" for all
	Kind   rydes.ProviderKind   // "" for all
}

// CreateProviderParams are the parameters of Store.CreateProvider.
type CreateProviderParams struct {
	// Provider is the new provider; CreatedAt and UpdatedAt are set from Now.
	Provider rydes.Provider
	Secrets  ProviderSecrets
	Now      time.Time
}

// ProviderSecrets are what rydes keeps of a provider's credentials: hashes
// of the API key and of the NATS password (rydes never stores those), and
// the webhook signing secret, which it needs to sign.
type ProviderSecrets struct {
	APIKeyHash       string
	NATSPasswordHash string
	WebhookSecret    string
}

// CreateCustomerParams are the parameters of Store.CreateCustomer.
type CreateCustomerParams struct {
	Customer   rydes.Customer // CreatedAt is set from Now
	APIKeyHash string
	Now        time.Time
}

// UpdateProviderParams are the parameters of Store.UpdateProvider: nil
// fields stay as they are.
type UpdateProviderParams struct {
	ID           string
	Name         *string
	Status       *rydes.ProviderStatus
	PausedReason *string
	WebhookURL   *string
	Filter       *rydes.Filter
	Now          time.Time
}

// DeleteProviderParams are the parameters of Store.DeleteProvider.
type DeleteProviderParams struct {
	ID  string
	Now time.Time
	// Chunk is the most RFQs one transaction withdraws the provider from;
	// 0 for DefaultWithdrawChunk.
	Chunk int
}

// WithdrawDeletedParams are the parameters of Store.WithdrawDeleted.
type WithdrawDeletedParams struct {
	Now time.Time
	// Chunk is as DeleteProviderParams.Chunk.
	Chunk int
}

// DefaultWithdrawChunk is how many RFQs one transaction of DeleteProvider
// and WithdrawDeleted withdraws a provider from by default: some 40 ms of
// SQLite's writer on a 2-core machine, against 2 s for 20,000 RFQs at once.
const DefaultWithdrawChunk = 256

// SetProviderSecretsParams are the parameters of Store.SetProviderSecrets.
type SetProviderSecretsParams struct {
	ID      string
	Secrets ProviderSecrets // empty fields stay as they are
	Now     time.Time
}

// MarkProviderFailedParams are the parameters of Store.MarkProviderFailed.
type MarkProviderFailedParams struct {
	RFQID    string
	Provider string
	Error    string
	Now      time.Time
}

// ListDeadLettersParams are the parameters of Store.ListDeadLetters.
type ListDeadLettersParams struct {
	Provider string // "" for all
	BeforeID int64  // 0 for the newest
	Limit    int
}

// CreateRFQParams are the parameters of Store.CreateRFQ.
type CreateRFQParams struct {
	// RFQ is the new RFQ as rydes.NewRFQ made it: open, with its roster.
	RFQ rydes.RFQ
}

// GetRFQParams are the parameters of Store.GetRFQ.
type GetRFQParams struct {
	ID       string
	Customer string // if set, only this customer's RFQ is found
}

// CancelRFQParams are the parameters of Store.CancelRFQ.
type CancelRFQParams struct {
	ID       string
	Customer string // if set, only this customer's RFQ is found
	Now      time.Time
}

// CancelRFQResult is what Store.CancelRFQ did.
type CancelRFQResult struct {
	RFQ   rydes.RFQ   // after the cancellation
	Event rydes.Event // the cancelled event (the provider_withdrawn ones precede it)
}

// StageAnswersParams are the parameters of Store.StageAnswers.
type StageAnswersParams struct {
	Answers []StageAnswer
	// Now is the time the answers are judged at (deadlines).
	Now time.Time
}

// StageAnswer is one answer to stage, with its payload as received, kept
// with the rejection if it is refused.
type StageAnswer struct {
	Answer  rydes.Answer
	Payload []byte
}

// StageResult is what staging one answer did.
type StageResult struct {
	Decision rydes.Decision
	// Events are the events the answer emitted: its quote or decline event
	// and, if it was the last one pending, the complete event.
	Events []rydes.Event
	// Status is the RFQ's status after the answer ("" if there is no RFQ).
	Status rydes.Status
}

// ListRejectionsParams are the parameters of Store.ListRejections.
type ListRejectionsParams struct {
	RFQID string
	Limit int
}

// ExpireDueParams are the parameters of Store.ExpireDue.
type ExpireDueParams struct {
	Now time.Time
	// Before, if set and earlier than Now, expires only the RFQs whose
	// deadline is at or before it: answers received before a later
	// deadline may still wait to be staged. Events and closing times are
	// at Now all the same.
	Before time.Time
	Limit  int
}

// ListRFQsParams are the parameters of Store.ListRFQs.
type ListRFQsParams struct {
	// Open lists the open RFQs; otherwise the final ones closed at or
	// after ClosedSince.
	Open        bool
	ClosedSince time.Time
	AfterID     string // "" for the first page
	Limit       int
}

// PendingOutboxParams are the parameters of Store.PendingOutbox.
type PendingOutboxParams struct {
	// AfterID, if set, returns only messages with a greater id: the outbox
	// relay reads on past what it published and is still deleting.
	AfterID int64
	Limit   int
}

// DeleteOutboxParams are the parameters of Store.DeleteOutbox.
type DeleteOutboxParams struct {
	// IDs are the outbox messages published.
	IDs []int64
	// Acked maps a stream's name to the highest sequence the broker
	// acknowledged the publication of these messages with. Nil or empty
	// writes no setting.
	Acked map[string]uint64
}

// AckedSetting is the name of the setting in which DeleteOutbox keeps the
// highest sequence the stream acknowledged a publication of the outbox
// relay with, as a decimal number. Reconciliation compares the stream
// with it; a missing or unparsable value counts as 0.
func AckedSetting(stream string) string { return "reconcile.acked." + stream }

// OutboxKind tells the kinds of outbox message apart.
type OutboxKind string

// The kinds of outbox message.
const (
	OutboxDispatch OutboxKind = "dispatch" // an RFQ sent to the queues of its providers
	OutboxEvent    OutboxKind = "event"    // an RFQ's event
)

// OutboxMessage is a message committed for publication. Exactly one of
// Dispatch and Events is set, as Kind says.
type OutboxMessage struct {
	ID        int64
	Kind      OutboxKind
	CreatedAt time.Time
	// Dispatch is the request and the providers it goes to (Kind
	// OutboxDispatch): every provider a new RFQ asked, in one message.
	Dispatch *Dispatch
	// Events are the events to emit (Kind OutboxEvent): those one write
	// emitted for one RFQ, in seq order, consecutive (see CheckEvents).
	// They travel as one message: the 10 answers of a request staged
	// together are 11 events, and were 11 messages.
	Events []rydes.Event
	// Payload is the content (Dispatch.Request, or Events as a JSON array)
	// as stored; a publisher sends it as it is. Nil: encode the content.
	// Rows written before events were grouped hold one event as a JSON
	// object, which readers accept too.
	Payload []byte
}

// CheckEvents checks that events can be one outbox message: at least one,
// all of one RFQ, with seqs that follow each other from a first above 0,
// and no final event but the last.
func CheckEvents(events []rydes.Event) error {
	if len(events) == 0 {
		return errors.New("no events")
	}
	first := events[0]
	if first.Seq < 1 {
		return fmt.Errorf("event seq %d of RFQ %q is below 1", first.Seq, first.RFQID)
	}
	for i, ev := range events {
		if ev.RFQID != first.RFQID {
			return fmt.Errorf("events of RFQs %q and %q together", first.RFQID, ev.RFQID)
		}
		if ev.Seq != first.Seq+int64(i) {
			return fmt.Errorf("RFQ %s: event seq %d follows %d", ev.RFQID, ev.Seq, first.Seq+int64(i)-1)
		}
		if ev.Type.Final() && i != len(events)-1 {
			return fmt.Errorf("RFQ %s: final event %d is followed by others", ev.RFQID, ev.Seq)
		}
	}
	return nil
}

// DecodeEvents decodes the content of an event message (an outbox row's
// payload, a message of the events stream): a JSON array of events, or one
// event as a JSON object, as rydes wrote before it grouped events; and
// checks them with CheckEvents.
func DecodeEvents(data []byte) ([]rydes.Event, error) {
	events, err := UnmarshalEvents[rydes.Event](data)
	if err != nil {
		return nil, err
	}
	if err := CheckEvents(events); err != nil {
		return nil, err
	}
	return events, nil
}

// UnmarshalEvents decodes the content of an event message into Ts:
// rydes.Event, or a type with only the fields a reader needs. The content
// is a JSON array, or one JSON object, as rydes wrote before it grouped
// events. It checks nothing else; DecodeEvents does.
func UnmarshalEvents[T any](data []byte) ([]T, error) {
	if body := bytes.TrimLeft(data, " \t\r\n"); len(body) > 0 && body[0] == '{' {
		one := make([]T, 1)
		if err := json.Unmarshal(data, &one[0]); err != nil {
			return nil, err
		}
		return one, nil
	}
	var list []T
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, err
	}
	return list, nil
}

// GroupEvents splits events, in the order emitted, into the events of
// each RFQ, in the order of each RFQ's first: the outbox messages of one
// write.
func GroupEvents(events []rydes.Event) [][]rydes.Event {
	if len(events) == 0 {
		return nil
	}
	first := events[0].RFQID
	if !slices.ContainsFunc(events, func(ev rydes.Event) bool { return ev.RFQID != first }) {
		return [][]rydes.Event{events}
	}
	index := map[string]int{}
	var groups [][]rydes.Event
	for _, ev := range events {
		i, ok := index[ev.RFQID]
		if !ok {
			i = len(groups)
			index[ev.RFQID] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], ev)
	}
	return groups
}

// OutboxFeed is what a Store may also do: hand the outbox messages each
// write transaction inserted, with their ids, to a listener once the
// transaction committed, so that the relay publishes them from memory
// instead of reading them back. The outbox table stays the truth: a message
// the listener drops (or that a process dies holding) is found there.
type OutboxFeed interface {
	// SetOutboxListener makes f receive, after each commit, the outbox
	// messages it inserted, in id order; nil stops it. f runs on the
	// store's writer and must not block or call the store.
	SetOutboxListener(f func([]OutboxMessage))
}

// Dispatch is an RFQ on its way to asked providers, each through its own
// queue: one outbox message for all of them (the request, the same for
// each, is written once), which a publisher sends to each provider's queue
// as a message of its own.
type Dispatch struct {
	// Providers are the providers the request goes to: at least one, each
	// once.
	Providers []string
	Request   rydes.ProviderRequest
}
