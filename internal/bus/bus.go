// Package bus is rydes's message bus on NATS: the JetStream streams and the
// per-provider queues requests are scattered to, the service answers are
// gathered by, and an embedded server for running on one machine.
//
// Two streams carry what rydes publishes:
//
//	RYDES_DISPATCH  rydes.dispatch.<provider>.<rfq id>
//	                                                 work queue: one durable
//	                                                 consumer per provider IS
//	                                                 that provider's queue
//	RYDES_EVENTS    rydes.events.<rfq id>.<type>.<seq>
//	                                                 limits: RFQ events for
//	                                                 watchers, kept 24h by
//	                                                 default
//
// Answers come back as requests, not through a stream: a provider sends
// its answer on rydes.answers.<provider> and waits for the reply, which
// every rydes instance's answer service (ServeAnswers, one queue group)
// sends once the answer is staged in the database. The database's group
// commit is then the one durable write an answer costs, and a provider
// holds nothing acknowledged that rydes could lose.
//
// Every stream is bounded in age (MaxAge), bytes and messages
// (StreamLimits). The dispatch stream refuses what does not fit
// (DiscardNew): a publication to a full stream fails, so the outbox keeps
// the request and re-sends it once there is room, instead of the broker
// silently dropping the oldest requests nobody took yet. The events stream
// drops its oldest events (DiscardOld): the store holds every RFQ's state,
// events are only a window onto it.
//
// Re-publishing stores nothing twice. A request goes to a subject of its
// own per provider and RFQ, published only if that subject holds nothing
// (Nats-Expected-Last-Subject-Sequence 0): while the provider has not
// acknowledged it, the broker's per-subject index, which it keeps anyway,
// refuses a second copy, and costs nothing once the request is gone. A
// message of events carries a Nats-Msg-Id, which the broker remembers for
// its duplicate window.
//
// The embedded server can authenticate providers (EmbeddedConfig.Providers):
// each then connects with its own credentials and may only pull from its
// own queue, send its own answers and read its own inbox
// (ProviderPermissions); rydes's own connections use an internal user.
package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/store"
)

// Stream names.
const (
	DispatchStream = "RYDES_DISPATCH" // requests, one subject per provider and RFQ
	EventsStream   = "RYDES_EVENTS"   // RFQ events
	// AnswersStream held answers before they were sent as requests to
	// rydes (ServeAnswers); a Bus drains and deletes it where it remains.
	AnswersStream = "RYDES_ANSWERS"
)

// Subject prefixes; the subject helpers append the variable tokens.
const (
	DispatchSubjectPrefix = "rydes.dispatch."
	AnswerSubjectPrefix   = "rydes.answers."
	EventSubjectPrefix    = "rydes.events."
	// StoredEventSubjectPrefix is where EventsStream publishes each event
	// again once it stored it: StoredEventSubjectPrefix + "<rfq id>.<type>".
	StoredEventSubjectPrefix = "rydes.stored.events."
)

// GathererConsumer is the durable consumer on AnswersStream that rydes
// instances shared to gather answers; only draining the retired stream
// uses it.
const GathererConsumer = "gatherer"

// ProviderQueuePrefix prefixes a provider's id to name its durable
// consumer on DispatchStream.
const ProviderQueuePrefix = "provider-"

// HeaderRFQID is the header that carries the RFQ id of a dispatch and an
// event, so that tools can route or filter without decoding the body.
const HeaderRFQID = "Rydes-Rfq-Id"

// Stream limits.
const (
	// DuplicateWindow is how long a stream remembers message ids.
	DuplicateWindow = 2 * time.Minute
	// MaxAge is how long a message is kept at most; RFQs live minutes.
	MaxAge = 24 * time.Hour
)

// Default stream bounds (StreamLimits), per stream. JetStream reserves a
// stream's MaxBytes on the server's store when the stream is created, so
// together they must fit the broker's max_file_store.
const (
	DefaultDispatchMaxBytes = 1 << 30 // 1 GiB of requests not yet acknowledged by their provider
	DefaultDispatchMaxMsgs  = 1_000_000
	DefaultEventsMaxBytes   = 1 << 30 // 1 GiB of events (the last MaxAge at most)
	DefaultEventsMaxMsgs    = 5_000_000
)

// StreamLimits bound one stream. Zero fields take the stream's default.
type StreamLimits struct {
	MaxBytes int64         // bytes of messages kept
	MaxMsgs  int64         // messages kept
	MaxAge   time.Duration // how long a message is kept at most; default MaxAge
}

// withDefaults returns l with its zero fields set to maxBytes, maxMsgs
// and MaxAge.
func (l StreamLimits) withDefaults(maxBytes, maxMsgs int64) StreamLimits {
	if l.MaxBytes == 0 {
		l.MaxBytes = maxBytes
	}
	if l.MaxMsgs == 0 {
		l.MaxMsgs = maxMsgs
	}
	if l.MaxAge == 0 {
		l.MaxAge = MaxAge
	}
	return l
}

// Consumer limits.
const (
	// ProviderMaxAckPending bounds the requests a provider holds unacked.
	ProviderMaxAckPending = 1000
)

// Publication limits.
const (
	// publishWindow is how many messages one Publish call has in flight.
	publishWindow = 512
	// publishAckTimeout bounds the wait for a PubAck, so that futures of
	// abandoned publications are released even if no ack ever comes.
	publishAckTimeout = 30 * time.Second
	// publishMaxPending bounds the async publications of a Bus in flight.
	publishMaxPending = 4096
)

// DispatchSubject is the subject the request of RFQ rfqID to provider is
// published on: "rydes.dispatch.<provider>.<rfq id>". As a request's
// subject is its own, the broker stores it only once while it is held
// (see Publish).
func DispatchSubject(provider, rfqID string) string {
	return DispatchSubjectPrefix + provider + "." + rfqID
}

// DispatchFilters are the subjects of provider's queue: its requests
// ("rydes.dispatch.<provider>.*"), and "rydes.dispatch.<provider>", where
// rydes published them before each had a subject of its own, so that a
// queue updated in place still delivers those.
func DispatchFilters(provider string) []string {
	return []string{DispatchSubjectPrefix + provider + ".*", DispatchSubjectPrefix + provider}
}

// AnswerSubject is the subject provider publishes its answers on.
func AnswerSubject(provider string) string { return AnswerSubjectPrefix + provider }

// EventSubject is the subject of a message of RFQ rfqID's events whose
// last is event seq, of type t: "rydes.events.<rfq id>.<type>.<seq>".
// Every message has a subject of its own, so that the broker's
// per-subject index finds all of one RFQ's at once (see WatchRFQ), and a
// final event, always the last of its message, is one wildcard away
// ("rydes.events.*.complete.*").
func EventSubject(rfqID string, t rydes.EventType, seq int64) string {
	return EventSubjectPrefix + rfqID + "." + string(t) + "." + strconv.FormatInt(seq, 10)
}

// ProviderQueue returns the name of provider's durable consumer on
// DispatchStream: its queue.
func ProviderQueue(provider string) string { return ProviderQueuePrefix + provider }

// Config configures a Bus.
type Config struct {
	// Replicas is the number of copies of each stream: 1 (the default) on
	// a single server, 3 on a cluster.
	Replicas int
	// Logger receives the bus's logs. Nil discards them.
	Logger *slog.Logger
	// AckWait is how long a consumer waits for a message's ack before
	// redelivering it. Default 30s.
	AckWait time.Duration
	// Dispatch and Events bound the streams DispatchStream and
	// EventsStream; zero fields take the Default* constants.
	Dispatch, Events StreamLimits
}

// withDefaults returns cfg with its zero fields set to their defaults, or
// an error if a field is out of range.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Replicas < 0 {
		return Config{}, fmt.Errorf("replicas must be positive, got %d", cfg.Replicas)
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = DefaultAckWait
	}
	if cfg.AckWait < time.Second {
		return Config{}, fmt.Errorf("ack wait must be at least 1s, got %s", cfg.AckWait)
	}
	for name, l := range map[string]StreamLimits{DispatchStream: cfg.Dispatch, EventsStream: cfg.Events} {
		if l.MaxBytes < 0 || l.MaxMsgs < 0 || l.MaxAge < 0 {
			return Config{}, fmt.Errorf("stream %s: limits must not be negative, got %d bytes, %d messages, %s", name, l.MaxBytes, l.MaxMsgs, l.MaxAge)
		}
		if l.MaxAge > 0 && l.MaxAge < DuplicateWindow {
			return Config{}, fmt.Errorf("stream %s: max age must be at least the duplicate window %s, got %s", name, DuplicateWindow, l.MaxAge)
		}
	}
	cfg.Dispatch = cfg.Dispatch.withDefaults(DefaultDispatchMaxBytes, DefaultDispatchMaxMsgs)
	cfg.Events = cfg.Events.withDefaults(DefaultEventsMaxBytes, DefaultEventsMaxMsgs)
	return cfg, nil
}

// DefaultAckWait is Config.AckWait's default.
const DefaultAckWait = 30 * time.Second

// Bus publishes rydes's outbox to JetStream, manages the providers' queues
// and gathers answers. It is safe for concurrent use.
type Bus struct {
	js  jetstream.JetStream
	cfg Config
	log *slog.Logger

	dispatch jetstream.Stream
	acks     ackMarks // what Publish was acknowledged with, for reconciliation

	// hub hands stored events to the watches of each RFQ; its one
	// subscription is made on first use (hubOnce).
	hub     *eventHub
	hubOnce sync.Once
	hubErr  error
	// watching is cancelled when every watch ends (EndWatches, Close):
	// Watch.Next checks it, and it cuts short the reads of a watch that
	// fell behind.
	watching    context.Context
	endWatching context.CancelFunc

	// done is closed by Close; Publish and Gather calls are counted in wg.
	done      chan struct{}
	mu        sync.Mutex
	closed    bool
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// MinServerVersion is the oldest nats-server rydes runs on: a provider's
// queue and the completion notifier's consumer each filter several
// subjects, which 2.10 brought.
const MinServerVersion = "2.10.0"

// checkServerVersion fails for a nats-server older than MinServerVersion,
// or a version it cannot read.
func checkServerVersion(version string) error {
	parse := func(v string) ([3]int, error) {
		var out [3]int
		core, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), "-") // 2.11.0-RC.1
		parts := strings.Split(core, ".")
		if len(parts) != 3 {
			return out, fmt.Errorf("not a version: %q", v)
		}
		for i, p := range parts {
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 {
				return out, fmt.Errorf("not a version: %q", v)
			}
			out[i] = n
		}
		return out, nil
	}
	have, err := parse(version)
	if err != nil {
		return fmt.Errorf("the broker's nats-server version: %w", err)
	}
	need, _ := parse(MinServerVersion)
	if slices.Compare(have[:], need[:]) < 0 {
		return fmt.Errorf("the broker runs nats-server %s; rydes needs %s or later", version, MinServerVersion)
	}
	return nil
}

// New returns a Bus on nc, creating or updating its streams. nc stays the
// caller's: Close does not close it. It refuses a broker older than
// MinServerVersion before it changes anything there.
func New(ctx context.Context, nc *nats.Conn, cfg Config) (*Bus, error) {
	if nc == nil {
		return nil, errors.New("new bus: a NATS connection is required")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("new bus: %w", err)
	}
	if err := checkServerVersion(nc.ConnectedServerVersion()); err != nil {
		return nil, fmt.Errorf("new bus: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(publishMaxPending),
		jetstream.WithPublishAsyncTimeout(publishAckTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("new bus: jetstream: %w", err)
	}
	b := &Bus{js: js, cfg: cfg, log: cfg.Logger, done: make(chan struct{}), hub: newEventHub(cfg.Logger)}
	b.watching, b.endWatching = context.WithCancel(context.Background())
	for _, sc := range StreamConfigs(cfg) {
		s, err := js.CreateOrUpdateStream(ctx, sc)
		if err != nil {
			return nil, fmt.Errorf("new bus: create or update stream %s: %w", sc.Name, err)
		}
		if sc.Name == DispatchStream {
			b.dispatch = s
		}
	}
	return b, nil
}

// StreamConfigs returns the configuration of rydes's streams for cfg
// (replicas and limits; zero fields take their defaults). It panics if cfg
// is out of range, which New reports as an error.
func StreamConfigs(cfg Config) []jetstream.StreamConfig {
	cfg, err := cfg.withDefaults()
	if err != nil {
		panic("bus.StreamConfigs: " + err.Error())
	}
	replicas := cfg.Replicas
	return []jetstream.StreamConfig{
		{
			Name:        DispatchStream,
			Description: "rydes: requests for quotes, one subject per provider and request, one durable consumer per provider",
			// rydes.dispatch.<provider>.<rfq id>, and the one subject per
			// provider of the requests rydes published before.
			Subjects:  []string{DispatchSubjectPrefix + "*.*", DispatchSubjectPrefix + "*"},
			Retention: jetstream.WorkQueuePolicy,
			Storage:   jetstream.FileStorage,
			Replicas:  replicas,
			// Moot since requests carry no message id (a request is
			// deduplicated by its subject, see Publish); kept as it was so
			// that the stream updates in place.
			Duplicates: DuplicateWindow,
			// A request older than MaxAge is long past its deadline (at
			// most rydes.DefaultMaxTimeout); no bound drops a live one
			// silently: a full stream refuses new requests instead.
			MaxAge:   cfg.Dispatch.MaxAge,
			MaxBytes: cfg.Dispatch.MaxBytes,
			MaxMsgs:  cfg.Dispatch.MaxMsgs,
			Discard:  jetstream.DiscardNew,
		},
		{
			Name:        EventsStream,
			Description: "rydes: RFQ events",
			Subjects:    []string{EventSubjectPrefix + ">"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
			Duplicates:  DuplicateWindow,
			MaxAge:      cfg.Events.MaxAge,
			MaxBytes:    cfg.Events.MaxBytes,
			MaxMsgs:     cfg.Events.MaxMsgs,
			Discard:     jetstream.DiscardOld,
			// A watcher reads an RFQ's stored events with one direct get
			// of the last message on each of its subjects (see WatchRFQ).
			AllowDirect: true,
			// Every event, once stored, is published again on core NATS
			// for the watchers of each rydes instance (see WatchRFQ).
			RePublish: &jetstream.RePublish{Source: EventSubjectPrefix + ">", Destination: StoredEventSubjectPrefix + ">"},
		},
	}
}

// JetStream returns the JetStream context the bus uses.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// enter registers a call that Close waits for; it fails once Close began.
func (b *Bus) enter() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("bus is closed")
	}
	b.wg.Add(1)
	return nil
}

// Close stops every Gather, ends every watch (EndWatches), waits for the
// calls in flight (Publish, a WatchRFQ, a Watch's read of the stream) and
// releases the bus's subscriptions. It does not wait for open watches,
// which hold nothing of the bus's once ended, nor close the connection.
func (b *Bus) Close() {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		close(b.done)
		b.mu.Unlock()
		b.EndWatches()
		b.wg.Wait()
		b.hub.close()
		b.js.CleanupPublisher()
	})
}

// EndWatches ends every watch of the bus, those to come included: the
// Ready of each fires, and its Next returns io.EOF. A process that starts
// stopping calls it so that event streams end before it waits for its
// HTTP requests; Close ends them too.
func (b *Bus) EndWatches() {
	// Cancelled first: a watch that the hub wakes, or refuses, sees it.
	b.endWatching()
	b.hub.end()
}

// PublishError reports the messages of a Publish call that were not
// stored. The others were; deleting their outbox rows is safe.
type PublishError struct {
	Failed []FailedMessage
	Total  int // outbox messages in the call
}

// FailedMessage is one broker message of an outbox message that could not
// be published; an outbox message with one failed was not published.
type FailedMessage struct {
	ID      int64  // OutboxMessage.ID
	Subject string // the broker message's, if it got one
	Err     error
}

// Error implements error.
func (e *PublishError) Error() string {
	f := e.Failed[0]
	return fmt.Sprintf("publish outbox: %d broker messages of %d outbox messages failed; first, of outbox message %d: %v", len(e.Failed), e.Total, f.ID, f.Err)
}

// Unwrap returns the errors of the failed messages.
func (e *PublishError) Unwrap() []error {
	errs := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		errs[i] = f.Err
	}
	return errs
}

// Publish publishes outbox messages, pipelined, and returns once JetStream
// stored every one of them (a duplicate of a message stored before counts),
// or with an error if any was not or ctx ended first. The caller deletes
// the outbox rows only on nil; a *PublishError says which messages failed.
//
// On success it returns, per stream, the highest sequence a PubAck of this
// call carried (a duplicate's ack, which names the sequence the message was
// stored at before, counts too): what the caller can record as acknowledged
// by the broker (store.DeleteOutboxParams.Acked). The map is empty for no
// messages, and nil with an error. Every ack is also noted for TakeAckedSeq.
//
// A dispatch is a broker message per provider, to DispatchSubject(provider,
// rfq) with the rydes.ProviderRequest as JSON, published only if that
// subject holds nothing (Nats-Expected-Last-Subject-Sequence 0): a request
// published before and not yet acknowledged by its provider is the one
// stored (see storeDispatchAgain). Events (one RFQ's, of one write) are one
// message to the EventSubject of the last of them, with the rydes.Events
// as a JSON array and the Nats-Msg-Id "event.<rfq id>.<seq>" of the last,
// which readers check (DecodeEvents). Either body is msg.Payload, if set
// (an older outbox row's payload of events is one event, an object). Each
// carries HeaderRFQID.
func (b *Bus) Publish(ctx context.Context, msgs []store.OutboxMessage) (map[string]uint64, error) {
	if err := b.enter(); err != nil {
		return nil, fmt.Errorf("publish outbox: %w", err)
	}
	defer b.wg.Done()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("publish outbox: %w", err)
	}

	perr := &PublishError{Total: len(msgs)}
	acked := map[string]uint64{}
	noteAck := func(ack *jetstream.PubAck) {
		b.acks.note(ack)
		if ack != nil && ack.Sequence > acked[ack.Stream] {
			acked[ack.Stream] = ack.Sequence
		}
	}
	type inflight struct {
		msg    *store.OutboxMessage
		future jetstream.PubAckFuture
	}
	futures := make([]inflight, 0, publishWindow)
	var taken []inflight // dispatches whose subject held a message already
	// await waits for the acks of what is in flight.
	await := func() error {
		for _, p := range futures {
			select {
			case ack := <-p.future.Ok():
				noteAck(ack) // stored, or a duplicate of events stored before: both fine
			case err := <-p.future.Err():
				if nm := p.future.Msg(); isWrongLastSeq(err) && strings.HasPrefix(nm.Subject, DispatchSubjectPrefix) {
					taken = append(taken, p)
					continue
				}
				perr.Failed = append(perr.Failed, FailedMessage{ID: p.msg.ID, Subject: p.future.Msg().Subject, Err: fmt.Errorf("publish to %s: %w", p.future.Msg().Subject, err)})
			case <-ctx.Done():
				return fmt.Errorf("publish outbox: waiting for acks: %w", ctx.Err())
			case <-b.done:
				return errors.New("publish outbox: bus closed while waiting for acks")
			}
		}
		futures = futures[:0]
		// Rare: a re-publication, or something else on the subject.
		for _, p := range taken {
			ack, err := b.storeDispatchAgain(ctx, p.future.Msg())
			if err != nil {
				perr.Failed = append(perr.Failed, FailedMessage{ID: p.msg.ID, Subject: p.future.Msg().Subject, Err: err})
				continue
			}
			noteAck(ack)
		}
		taken = taken[:0]
		return nil
	}
	for i := range msgs {
		m := &msgs[i]
		nms, err := outboxNATSMsgs(m)
		if err != nil {
			perr.Failed = append(perr.Failed, FailedMessage{ID: m.ID, Err: err})
			continue
		}
		for _, nm := range nms {
			if len(futures) == publishWindow {
				if err := await(); err != nil {
					return nil, err
				}
			}
			f, err := b.js.PublishMsgAsync(nm)
			if err != nil {
				perr.Failed = append(perr.Failed, FailedMessage{ID: m.ID, Subject: nm.Subject, Err: fmt.Errorf("publish to %s: %w", nm.Subject, err)})
				continue
			}
			futures = append(futures, inflight{msg: m, future: f})
		}
	}
	if err := await(); err != nil {
		return nil, err
	}
	if len(perr.Failed) > 0 {
		return nil, perr
	}
	return acked, nil
}

// isWrongLastSeq reports whether err is JetStream's refusal of a message
// whose Nats-Expected-Last-Subject-Sequence is not its subject's last
// sequence (a replicated stream reports it with a code of its own).
func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// dispatchStoreAttempts bounds storeDispatchAgain's reads and publications.
const dispatchStoreAttempts = 3

// storeDispatchAgain settles the publication of dispatch nm, which the
// stream refused because its subject held a message. If the subject's last
// message is a request for the same RFQ, that is nm published before and
// still held: nm counts as stored, at that message's sequence. If it is
// something else that landed on the subject first (a server response sent
// there as a reply subject, say), nm is published after it; if the subject
// is empty again (its provider acknowledged what it held), nm is published
// again, and the provider may see a request twice, as after any
// redelivery.
func (b *Bus) storeDispatchAgain(ctx context.Context, nm *nats.Msg) (*jetstream.PubAck, error) {
	for range dispatchStoreAttempts {
		last, err := b.dispatch.GetLastMsgForSubject(ctx, nm.Subject)
		var expect uint64
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return nil, fmt.Errorf("publish to %s: read what its subject holds: %w", nm.Subject, err)
		case last.Header.Get(HeaderRFQID) == nm.Header.Get(HeaderRFQID):
			return &jetstream.PubAck{Stream: DispatchStream, Sequence: last.Sequence, Duplicate: true}, nil
		default:
			expect = last.Sequence
		}
		nm.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(expect, 10))
		ack, err := b.js.PublishMsg(ctx, nm)
		if err == nil {
			return ack, nil
		}
		if !isWrongLastSeq(err) {
			return nil, fmt.Errorf("publish to %s: %w", nm.Subject, err)
		}
	}
	return nil, fmt.Errorf("publish to %s: what its subject holds changed %d times in a row", nm.Subject, dispatchStoreAttempts)
}

// outboxNATSMsgs returns the broker messages that publish m.
func outboxNATSMsgs(m *store.OutboxMessage) ([]*nats.Msg, error) {
	var (
		body []byte
		err  error
	)
	switch m.Kind {
	case store.OutboxDispatch:
		if m.Dispatch == nil || len(m.Dispatch.Providers) == 0 {
			return nil, fmt.Errorf("outbox message %d: dispatch without content", m.ID)
		}
		rfqID := m.Dispatch.Request.RFQID
		if !subjectToken(rfqID) {
			return nil, fmt.Errorf("outbox message %d: RFQ id %q does not make a subject", m.ID, rfqID)
		}
		for _, p := range m.Dispatch.Providers {
			if err := rydes.ValidateProviderID(p); err != nil {
				return nil, fmt.Errorf("outbox message %d: dispatch to %q: %w", m.ID, p, err)
			}
		}
		if body = m.Payload; body == nil {
			if body, err = json.Marshal(m.Dispatch.Request); err != nil {
				return nil, fmt.Errorf("outbox message %d: encode: %w", m.ID, err)
			}
		}
		nms := make([]*nats.Msg, len(m.Dispatch.Providers))
		for i, p := range m.Dispatch.Providers {
			nms[i] = newDispatchNATSMsg(p, rfqID, body)
		}
		return nms, nil
	case store.OutboxEvent:
		if len(m.Events) == 0 {
			return nil, fmt.Errorf("outbox message %d: event without content", m.ID)
		}
		if err := store.CheckEvents(m.Events); err != nil {
			return nil, fmt.Errorf("outbox message %d: %w", m.ID, err)
		}
		last := m.Events[len(m.Events)-1]
		if !subjectToken(last.RFQID) || !subjectToken(string(last.Type)) {
			return nil, fmt.Errorf("outbox message %d: event %q of RFQ %q does not make a subject", m.ID, last.Type, last.RFQID)
		}
		if body = m.Payload; body == nil {
			if body, err = json.Marshal(m.Events); err != nil {
				return nil, fmt.Errorf("outbox message %d: encode: %w", m.ID, err)
			}
		}
		nm := nats.NewMsg(EventSubject(last.RFQID, last.Type, last.Seq))
		nm.Data = body
		nm.Header.Set(jetstream.MsgIDHeader, EventsMsgID(last))
		nm.Header.Set(HeaderRFQID, last.RFQID)
		return []*nats.Msg{nm}, nil
	default:
		return nil, fmt.Errorf("outbox message %d: unknown kind %q", m.ID, m.Kind)
	}
}

// EventsMsgID is the Nats-Msg-Id of a message of events whose last is
// last: "event.<rfq id>.<seq>". A final event that reconciliation
// publishes again alone has the id of the message that carried it.
func EventsMsgID(last rydes.Event) string { return "event." + last.ID() }

// newDispatchNATSMsg returns the broker message of the request of RFQ
// rfqID to provider, body: stored only if its subject holds nothing.
func newDispatchNATSMsg(provider, rfqID string, body []byte) *nats.Msg {
	nm := nats.NewMsg(DispatchSubject(provider, rfqID))
	nm.Data = body
	nm.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	nm.Header.Set(HeaderRFQID, rfqID)
	return nm
}

// subjectToken reports whether s can be one token of a subject.
func subjectToken(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*> \t\r\n")
}

// EnsureProviderQueue creates provider's queue, or updates it to the
// current configuration: the durable pull consumer ProviderQueue(provider)
// on DispatchStream, filtered to DispatchFilters(provider), that
// redelivers a request until it is acked. Requests published for the
// provider before its queue existed are in it.
func (b *Bus) EnsureProviderQueue(ctx context.Context, provider string) error {
	if err := rydes.ValidateProviderID(provider); err != nil {
		return fmt.Errorf("ensure queue of provider %q: %w", provider, err)
	}
	_, err := b.js.CreateOrUpdateConsumer(ctx, DispatchStream, jetstream.ConsumerConfig{
		Durable:     ProviderQueue(provider),
		Description: "rydes: requests for provider " + provider,
		// FilterSubjects, not FilterSubject: a queue made before requests
		// had subjects of their own is updated to these.
		FilterSubjects: DispatchFilters(provider),
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        b.cfg.AckWait,
		MaxAckPending:  ProviderMaxAckPending,
		// Redeliver until acked: an RFQ's deadline, not the queue, decides
		// when a request no longer matters.
		MaxDeliver: -1,
	})
	if err != nil {
		return fmt.Errorf("ensure queue of provider %s: %w", provider, err)
	}
	return nil
}

// DeleteProviderQueue deletes provider's queue and purges the requests
// waiting in it. Deleting a queue that does not exist is not an error.
func (b *Bus) DeleteProviderQueue(ctx context.Context, provider string) error {
	if err := rydes.ValidateProviderID(provider); err != nil {
		return fmt.Errorf("delete queue of provider %q: %w", provider, err)
	}
	err := b.js.DeleteConsumer(ctx, DispatchStream, ProviderQueue(provider))
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("delete queue of provider %s: %w", provider, err)
	}
	for _, f := range DispatchFilters(provider) {
		if err := b.dispatch.Purge(ctx, jetstream.WithPurgeSubject(f)); err != nil {
			return fmt.Errorf("delete queue of provider %s: purge %s: %w", provider, f, err)
		}
	}
	return nil
}

// QueueDepth returns how many requests wait in provider's queue (pending)
// and how many it was given and has not acked yet (ackPending). It fails
// with ENOTFOUND if the provider has no queue.
func (b *Bus) QueueDepth(ctx context.Context, provider string) (pending, ackPending int, err error) {
	if err := rydes.ValidateProviderID(provider); err != nil {
		return 0, 0, fmt.Errorf("queue depth of provider %q: %w", provider, err)
	}
	c, err := b.dispatch.Consumer(ctx, ProviderQueue(provider))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 0, 0, rydes.Errorf(rydes.ENOTFOUND, "provider %s has no queue", provider)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("queue depth of provider %s: %w", provider, err)
	}
	info := c.CachedInfo()
	return int(info.NumPending), info.NumAckPending, nil
}

// QueueInfo is the state of one provider's queue.
type QueueInfo struct {
	// Pending is how many requests wait, not yet delivered.
	Pending int
	// InFlight is how many were delivered and not yet acknowledged.
	InFlight int
	// Oldest is when JetStream stored the oldest request still in the
	// queue, delivered or not (not acknowledged yet); zero if none.
	Oldest time.Time
}

// QueueInfo describes provider's queue. It fails with ENOTFOUND if the
// provider has no queue.
func (b *Bus) QueueInfo(ctx context.Context, provider string) (QueueInfo, error) {
	if err := rydes.ValidateProviderID(provider); err != nil {
		return QueueInfo{}, fmt.Errorf("queue info of provider %q: %w", provider, err)
	}
	c, err := b.dispatch.Consumer(ctx, ProviderQueue(provider))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return QueueInfo{}, rydes.Errorf(rydes.ENOTFOUND, "provider %s has no queue", provider)
	}
	if err != nil {
		return QueueInfo{}, fmt.Errorf("queue info of provider %s: %w", provider, err)
	}
	info := c.CachedInfo()
	qi := QueueInfo{Pending: int(info.NumPending), InFlight: info.NumAckPending}
	if qi.Pending == 0 && qi.InFlight == 0 {
		return qi, nil
	}
	// DispatchStream is a work queue: a request leaves it when acked, so
	// the first message on the provider's subjects is the oldest unacked.
	for _, f := range DispatchFilters(provider) {
		m, err := b.dispatch.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(f))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			// None there, or acked between the calls.
		case err != nil:
			return QueueInfo{}, fmt.Errorf("queue info of provider %s: oldest request: %w", provider, err)
		case qi.Oldest.IsZero() || m.Time.Before(qi.Oldest):
			qi.Oldest = m.Time.UTC()
		}
	}
	return qi, nil
}

// Redispatch puts req on provider's queue again, as Publish does a
// dispatch: if the queue still holds the request (its provider has not
// acknowledged it), it stores nothing more. It returns once JetStream
// stored the request (or found it held).
func (b *Bus) Redispatch(ctx context.Context, provider string, req rydes.ProviderRequest) error {
	if err := rydes.ValidateProviderID(provider); err != nil {
		return fmt.Errorf("redispatch to provider %q: %w", provider, err)
	}
	if !subjectToken(req.RFQID) {
		return fmt.Errorf("redispatch to provider %s: RFQ id %q does not make a subject", provider, req.RFQID)
	}
	if err := b.enter(); err != nil {
		return fmt.Errorf("redispatch to provider %s: %w", provider, err)
	}
	defer b.wg.Done()
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("redispatch to provider %s: encode: %w", provider, err)
	}
	nm := newDispatchNATSMsg(provider, req.RFQID, body)
	_, err = b.js.PublishMsg(ctx, nm)
	if isWrongLastSeq(err) {
		_, err = b.storeDispatchAgain(ctx, nm)
	}
	if err != nil {
		return fmt.Errorf("redispatch %s to provider %s: %w", req.RFQID, provider, err)
	}
	return nil
}
