// Package notify delivers completion webhooks: when an RFQ that has a
// notify_url completes, expires or is cancelled, rydes POSTs the final RFQ
// there, signed the Standard Webhooks way with the RFQ's notify secret.
//
// A Notifier consumes the final events (complete, expired, cancelled) of
// bus.EventsStream from one durable consumer, ConsumerName, that every rydes
// instance shares: each transition is handled by one instance at a time.
// Retries are JetStream redeliveries (a nak with a delay), so they survive
// restarts; the store's notification log keeps every attempt, and a
// delivery already accepted is not made again when its message comes back
// (a crash between the POST and the ack).
//
// A notification is
//
//	POST <notify_url>
//	Content-Type: application/json
//	User-Agent: rydes-notify/1
//	webhook-id: notify_<rfq id>_<event type>   (the same on every attempt)
//	webhook-timestamp: <unix seconds>
//	webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">
//
//	<the final rydes.RFQ as JSON, without its notify secret>
//
// Any 2xx accepts it. Network errors, timeouts, 408, 429 (after its
// Retry-After, if any) and 5xx are retried with Config.Backoff, up to
// Config.MaxAttempts attempts; any other status, a redirect (never
// followed) or a non-public address (unless Config.AllowPrivateNetworks) is
// a permanent failure.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	neturl "net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go/jetstream"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/bus"
	"github.com/wildrydes/rydes/internal/store"
	"github.com/wildrydes/rydes/internal/webhook"
)

// ConsumerName is the durable consumer on bus.EventsStream that every
// rydes instance's Notifier shares.
const ConsumerName = "notifier"

// UserAgent is the User-Agent of every notification.
const UserAgent = "rydes-notify/1"

// Defaults of Config's fields.
const (
	DefaultMaxAttempts    = 20
	DefaultAttemptTimeout = 10 * time.Second
	DefaultConcurrency    = 16
	// DefaultMaxRetryAfter bounds the wait a receiver's Retry-After asks
	// for; events are kept bus.MaxAge only.
	DefaultMaxRetryAfter = time.Hour
)

// DefaultBackoff is Config.Backoff's default: the wait after the first
// failed attempt, the second, ...; the last one repeats.
var DefaultBackoff = []time.Duration{
	time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute,
}

// Limits of one attempt.
const (
	// maxResponseBytes is how much of a response is read, so that the
	// connection can be reused; the rest is dropped.
	maxResponseBytes = 64 << 10
	// errorBodyBytes is how much of a failed response's body is recorded.
	errorBodyBytes = 200
	// pullAhead is how many messages the consumer fetches per worker.
	pullAhead = 2
	// maxAckPending bounds the notifications all instances hold unacked,
	// those waiting for a retry included.
	maxAckPending = 10_000
)

// Store is what the notifier needs of the database. store.Store satisfies
// it.
type Store interface {
	// NotifyTarget returns the RFQ's notify URL ("" for none) and secret;
	// ENOTFOUND if there is no such RFQ.
	NotifyTarget(ctx context.Context, rfqID string) (url, secret string, err error)
	// GetRFQ returns the RFQ, without its notify secret.
	GetRFQ(ctx context.Context, p store.GetRFQParams) (rydes.RFQ, error)
	// RecordNotification appends an attempt to the RFQ's notification log
	// and returns it with its Attempt number.
	RecordNotification(ctx context.Context, n rydes.Notification) (rydes.Notification, error)
	// NotificationDelivered reports whether a delivery of the RFQ's event
	// was accepted already.
	NotificationDelivered(ctx context.Context, rfqID string, event rydes.EventType) (bool, error)
}

var _ Store = store.Store(nil)

// Config configures a Notifier. JS and Store are required; every other
// field has a default.
type Config struct {
	// JS is the JetStream context to consume from, such as
	// (*bus.Bus).JetStream(). The streams must exist (bus.New creates them).
	JS jetstream.JetStream
	// Store is the database.
	Store Store
	// Clock tells the time of signatures and of the notification log. Nil
	// for the real clock. Retry delays are JetStream's, on the real clock.
	Clock clockwork.Clock
	// Logger receives the logs. Nil for slog.Default().
	Logger *slog.Logger
	// AllowPrivateNetworks lets notifications go to loopback, private and
	// other non-public addresses. Off by default: a customer's URL must not
	// reach rydes's own network.
	AllowPrivateNetworks bool
	// AllowedNetworks are non-public networks notifications may go to
	// even without AllowPrivateNetworks (an explicit allow-list).
	AllowedNetworks []netip.Prefix
	// Backoff is the wait before the next attempt after the first failed
	// attempt, the second, and so on; its last entry repeats. Default
	// DefaultBackoff. A receiver's Retry-After (429, 503) replaces it.
	Backoff []time.Duration
	// MaxAttempts bounds the attempts per notification. Default 20.
	MaxAttempts int
	// AttemptTimeout bounds one attempt. Default 10s.
	AttemptTimeout time.Duration
	// AckWait is how long the server waits for a handled message's ack
	// before giving it to another instance. It must exceed AttemptTimeout,
	// with room for the store calls. Default AttemptTimeout + 50s.
	AckWait time.Duration
	// Concurrency bounds the notifications this instance sends at once.
	// Default 16.
	Concurrency int
	// MaxRetryAfter bounds the wait a Retry-After asks for. Default 1h.
	MaxRetryAfter time.Duration
}

// withDefaults checks cfg and fills in its defaults.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.JS == nil || cfg.Store == nil {
		return cfg, errors.New("notify: JS and Store are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Backoff == nil {
		cfg.Backoff = DefaultBackoff
	}
	if len(cfg.Backoff) == 0 {
		return cfg, errors.New("notify: Backoff must have at least one entry")
	}
	for _, d := range cfg.Backoff {
		if d <= 0 {
			return cfg, fmt.Errorf("notify: Backoff entries must be positive, got %s", d)
		}
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.AttemptTimeout == 0 {
		cfg.AttemptTimeout = DefaultAttemptTimeout
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = cfg.AttemptTimeout + 50*time.Second
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.MaxRetryAfter == 0 {
		cfg.MaxRetryAfter = DefaultMaxRetryAfter
	}
	switch {
	case cfg.MaxAttempts < 0:
		return cfg, fmt.Errorf("notify: MaxAttempts must be positive, got %d", cfg.MaxAttempts)
	case cfg.AttemptTimeout < 0:
		return cfg, fmt.Errorf("notify: AttemptTimeout must be positive, got %s", cfg.AttemptTimeout)
	case cfg.AckWait <= cfg.AttemptTimeout:
		return cfg, fmt.Errorf("notify: AckWait %s must exceed AttemptTimeout %s", cfg.AckWait, cfg.AttemptTimeout)
	case cfg.Concurrency < 0:
		return cfg, fmt.Errorf("notify: Concurrency must be positive, got %d", cfg.Concurrency)
	case cfg.MaxRetryAfter < 0:
		return cfg, fmt.Errorf("notify: MaxRetryAfter must be positive, got %s", cfg.MaxRetryAfter)
	}
	return cfg, nil
}

// MessageID returns the webhook-id of the notification of RFQ rfqID's
// event: the same on every attempt, so receivers can deduplicate.
func MessageID(rfqID string, event rydes.EventType) string {
	return "notify_" + rfqID + "_" + string(event)
}

// FilterSubjects are the subjects of ConsumerName: the final events.
func FilterSubjects() []string {
	return []string{
		bus.EventSubjectPrefix + "*." + string(rydes.EventComplete) + ".*",
		bus.EventSubjectPrefix + "*." + string(rydes.EventExpired) + ".*",
		bus.EventSubjectPrefix + "*." + string(rydes.EventCancelled) + ".*",
	}
}

// Notifier sends completion webhooks. Create it with New and call Run.
type Notifier struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client
}

// New returns a Notifier. It does no I/O.
func New(cfg Config) (*Notifier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Notifier{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "notify"),
		client: webhook.NewHTTPClient(cfg.AllowPrivateNetworks, cfg.AllowedNetworks...),
	}, nil
}

// Run creates or updates the shared consumer and sends notifications until
// ctx ends; then it lets the notifications in flight finish (each within
// AttemptTimeout), hands back the messages it holds and returns nil. It
// returns an error if it could not start or consuming stopped on its own
// (the consumer was deleted, the connection closed).
func (n *Notifier) Run(ctx context.Context) error {
	cons, err := n.cfg.JS.CreateOrUpdateConsumer(ctx, bus.EventsStream, jetstream.ConsumerConfig{
		Durable:        ConsumerName,
		Description:    "rydes: completion webhooks; shared by every instance",
		FilterSubjects: FilterSubjects(),
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        n.cfg.AckWait,
		MaxAckPending:  maxAckPending,
		// The notifier counts attempts itself and terms the message after
		// MaxAttempts; the server never drops one on its own.
		MaxDeliver: -1,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("notify: create or update consumer %s: %w", ConsumerName, err)
	}

	msgs := make(chan jetstream.Msg)
	stopping := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-stopping:
			n.nak(m, 0)
		}
	},
		jetstream.PullMaxMessages(pullAhead*n.cfg.Concurrency),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			n.log.Warn("notify: consume", "err", err)
		}),
	)
	if err != nil {
		return fmt.Errorf("notify: consume %s: %w", ConsumerName, err)
	}

	// In-flight notifications outlive ctx: interrupting a POST would leave
	// its receiver unsure, and the attempt unrecorded.
	hctx := context.WithoutCancel(ctx)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for range n.cfg.Concurrency {
		wg.Go(func() {
			for {
				select {
				case m := <-msgs:
					n.handle(hctx, m)
				case <-quit:
					return
				}
			}
		})
	}

	var runErr error
	select {
	case <-ctx.Done():
	case <-cc.Closed():
		runErr = errors.New("notify: consuming stopped (consumer deleted or connection closed)")
	}
	// Stop pulling; what was pulled and not taken by a worker goes back
	// to the stream, for another instance or the next run.
	close(stopping)
	cc.Stop()
	<-cc.Closed()
	close(quit)
	wg.Wait()
	return runErr
}

// handle handles one final event's message, acking, naking or terming it.
func (n *Notifier) handle(ctx context.Context, m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		n.log.Error("notify: message without metadata; dropped", "subject", m.Subject(), "err", err)
		n.term(m)
		return
	}
	// A final event is the last of its message, which its subject names;
	// the RFQ itself is read from the store.
	rfqID, typ, _, err := bus.LastEventOf(m)
	ev := rydes.Event{RFQID: rfqID, Type: typ}
	if err != nil || !ev.Type.Final() {
		n.log.Warn("notify: skipped a message that is not a final event", "subject", m.Subject(), "err", err)
		n.term(m)
		return
	}
	delivery := int(md.NumDelivered)
	log := n.log.With("rfq", ev.RFQID, "event", ev.Type, "delivery", delivery)
	// Bound the store calls and the attempt by the ack wait: past it, the
	// message may be with another instance already.
	ctx, cancel := context.WithTimeout(ctx, n.cfg.AckWait)
	defer cancel()

	url, secret, err := n.cfg.Store.NotifyTarget(ctx, ev.RFQID)
	if rydes.ErrorCodeOf(err) == rydes.ENOTFOUND {
		log.Warn("notify: the rfq of a final event is not in the store; nothing to notify")
		n.term(m)
		return
	}
	if err != nil {
		n.retryLater(m, log, delivery, fmt.Errorf("read notify target: %w", err))
		return
	}
	if url == "" {
		n.ack(ctx, m, log)
		return
	}
	delivered, err := n.cfg.Store.NotificationDelivered(ctx, ev.RFQID, ev.Type)
	if err != nil {
		n.retryLater(m, log, delivery, fmt.Errorf("read notification log: %w", err))
		return
	}
	if delivered {
		log.Info("notify: already delivered; not sent again")
		n.ack(ctx, m, log)
		return
	}
	if delivery > n.cfg.MaxAttempts {
		// The last attempt's outcome was lost (a crash before its term).
		n.record(ctx, log, rydes.Notification{RFQID: ev.RFQID, Event: ev.Type, At: n.now(),
			Error: fmt.Sprintf("gave up: %d attempts made", n.cfg.MaxAttempts)})
		n.term(m)
		return
	}
	rfq, err := n.cfg.Store.GetRFQ(ctx, store.GetRFQParams{ID: ev.RFQID})
	if err != nil {
		n.retryLater(m, log, delivery, fmt.Errorf("read rfq: %w", err))
		return
	}
	if !rfq.Status.Final() {
		log.Warn("notify: the rfq of a final event is not final in the store; dropped", "status", rfq.Status)
		n.term(m)
		return
	}
	rfq.NotifySecret = ""
	body, err := json.Marshal(rfq)
	if err != nil {
		log.Error("notify: encode rfq; dropped", "err", err)
		n.term(m)
		return
	}

	if err := m.InProgress(); err != nil {
		log.Debug("notify: in progress", "err", err)
	}
	res := n.attempt(ctx, url, secret, MessageID(ev.RFQID, ev.Type), body)
	giveUp := !res.ok && (res.permanent || delivery >= n.cfg.MaxAttempts)
	rec := rydes.Notification{RFQID: ev.RFQID, Event: ev.Type, At: n.now(), Status: res.status, Error: res.err, Delivered: res.ok}
	if giveUp && !res.permanent {
		rec.Error += fmt.Sprintf(" (gave up after %d attempts)", delivery)
	}
	rec = n.record(ctx, log, rec)
	attempt := rec.Attempt
	if attempt == 0 {
		attempt = delivery
	}
	log = log.With("attempt", attempt)
	switch {
	case res.ok:
		log.Info("notify: notification delivered", "status", res.status)
		n.ack(ctx, m, log)
	case giveUp:
		log.Warn("notify: notification failed for good", "status", res.status, "err", res.err)
		n.term(m)
	default:
		delay := n.backoff(delivery)
		if res.hasRetryAfter {
			delay = min(res.retryAfter, n.cfg.MaxRetryAfter)
		}
		log.Info("notify: notification attempt failed; will retry", "status", res.status, "err", res.err, "retry_in", delay)
		n.nak(m, delay)
	}
}

// result is the outcome of one attempt.
type result struct {
	ok            bool
	permanent     bool
	status        int
	err           string
	retryAfter    time.Duration
	hasRetryAfter bool
}

// attempt POSTs body to url once, signed with secret.
func (n *Notifier) attempt(ctx context.Context, url, secret, msgID string, body []byte) result {
	if _, err := standardwebhooks.NewWebhook(secret); err != nil {
		return result{permanent: true, err: "the rfq's notify secret is malformed"}
	}
	actx, cancel := context.WithTimeout(ctx, n.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return result{permanent: true, err: "invalid notify URL: " + err.Error()}
	}
	signed, err := webhook.SignHeaders(secret, msgID, n.cfg.Clock.Now(), body)
	if err != nil {
		return result{permanent: true, err: err.Error()}
	}
	req.Header = signed
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)

	resp, err := n.client.Do(req)
	if err != nil {
		switch {
		case webhook.IsAddressNotAllowed(err):
			return result{permanent: true, err: "notify URL refused: " + urlErrorText(err)}
		case actx.Err() != nil:
			return result{err: fmt.Sprintf("timeout: no response within %s", n.cfg.AttemptTimeout)}
		default:
			return result{err: "network error: " + urlErrorText(err)}
		}
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	code := resp.StatusCode
	status := "HTTP " + strconv.Itoa(code)
	switch {
	case code >= 200 && code <= 299:
		return result{ok: true, status: code}
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500 && code <= 599:
		res := result{status: code, err: withBody(status, data)}
		res.retryAfter, res.hasRetryAfter = webhook.ParseRetryAfter(resp.Header.Get("Retry-After"), n.cfg.Clock.Now())
		return res
	case code >= 300 && code <= 399:
		return result{permanent: true, status: code, err: status + ": redirects are not followed"}
	default:
		return result{permanent: true, status: code, err: withBody(status, data)}
	}
}

// backoff returns the wait after the delivery-th attempt failed.
func (n *Notifier) backoff(delivery int) time.Duration {
	return n.cfg.Backoff[min(max(delivery, 1), len(n.cfg.Backoff))-1]
}

func (n *Notifier) now() time.Time { return n.cfg.Clock.Now().UTC().Truncate(time.Microsecond) }

// record appends rec to the notification log and returns it as stored; on
// failure it logs and returns rec unchanged (Attempt 0).
func (n *Notifier) record(ctx context.Context, log *slog.Logger, rec rydes.Notification) rydes.Notification {
	stored, err := n.cfg.Store.RecordNotification(ctx, rec)
	if err != nil {
		log.Error("notify: record attempt", "delivered", rec.Delivered, "err", err)
		return rec
	}
	return stored
}

// retryLater naks m after the backoff of its delivery, for a failure that
// is rydes's, not the receiver's.
func (n *Notifier) retryLater(m jetstream.Msg, log *slog.Logger, delivery int, err error) {
	delay := n.backoff(delivery)
	log.Error("notify: will retry", "retry_in", delay, "err", err)
	n.nak(m, delay)
}

func (n *Notifier) ack(ctx context.Context, m jetstream.Msg, log *slog.Logger) {
	// A double ack, so that a lost ack does not bring the message back
	// (a redelivery is harmless, but costs a store read).
	if err := m.DoubleAck(ctx); err != nil {
		log.Warn("notify: ack", "err", err)
	}
}

func (n *Notifier) nak(m jetstream.Msg, delay time.Duration) {
	var err error
	if delay > 0 {
		err = m.NakWithDelay(delay)
	} else {
		err = m.Nak()
	}
	if err != nil {
		n.log.Warn("notify: nak", "subject", m.Subject(), "err", err)
	}
}

func (n *Notifier) term(m jetstream.Msg) {
	if err := m.Term(); err != nil {
		n.log.Warn("notify: term", "subject", m.Subject(), "err", err)
	}
}

// urlErrorText returns err's message without the method and URL that
// *url.Error adds: a URL may carry a token in its query.
func urlErrorText(err error) string {
	var uerr *neturl.Error
	if errors.As(err, &uerr) {
		return uerr.Err.Error()
	}
	return err.Error()
}

// withBody returns "<status>: <start of body>", or status if the body is
// blank, as printable text.
func withBody(status string, body []byte) string {
	s := strings.ToValidUTF8(string(body[:min(len(body), errorBodyBytes)]), "")
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s))
	if s == "" {
		return status
	}
	return status + ": " + s
}
