// Package provider is the Go SDK for ride providers that answer rydes's
// requests for quotes over NATS.
//
// rydes gives every provider its own durable queue. A provider service
// connects with the credentials rydes issued it (Connect), creates a
// Provider with its id and calls Run with a Handler; Run takes the requests
// from the queue, calls the handler for each, sends its quote or decline
// to rydes as a request and only then acknowledges the request. rydes
// replies once the answer is staged in its database (a receipt), so
// nothing is acknowledged before it is durable: if the service dies
// mid-way, rydes is down or the broker restarts, the request comes back
// and is answered again, and rydes keeps one answer.
//
//	nc, err := provider.Connect("nats://rydes.example.com:4222", "unicorn-express", os.Getenv("RYDES_NATS_PASSWORD"))
//	...
//	defer nc.Close()
//	p, err := provider.New(provider.Config{Conn: nc, ID: "unicorn-express"})
//	...
//	err = p.Run(ctx, func(ctx context.Context, req rydes.ProviderRequest) (provider.Reply, error) {
//		return provider.Quote(rydes.Price{Amount: "45.50", Currency: "EUR"}, provider.WithETA(5*time.Minute)), nil
//	})
//
// The broker lets a provider do exactly this and nothing else: pull from
// its own queue, send its own answers, and receive replies on its own
// inbox prefix (InboxPrefix), which Connect sets.
//
// The package depends on nothing internal to rydes, so partners can use it.
package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wildrydes/rydes"
)

// Names shared with rydes's bus. They are repeated here, not imported, so
// that the SDK needs nothing internal; a test keeps them in step.
const (
	dispatchStream      = "RYDES_DISPATCH"
	answerSubjectPrefix = "rydes.answers."
	queuePrefix         = "provider-"
)

// Defaults.
const (
	// DefaultConcurrency is Config.Concurrency's default.
	DefaultConcurrency = 64
	// DefaultRetryDelay is Config.RetryDelay's default.
	DefaultRetryDelay = time.Second
	// publishTimeout bounds sending one answer and waiting for its
	// receipt.
	publishTimeout = 10 * time.Second
	// defaultAckWait is assumed if the queue does not say its own.
	defaultAckWait = 30 * time.Second
)

// Config configures a Provider.
type Config struct {
	// Conn is the connection to rydes's NATS, authenticated as the
	// provider. Required; the caller keeps ownership of it.
	Conn *nats.Conn
	// ID is the provider's id, as registered with rydes. Required.
	ID string
	// Concurrency is how many handlers run at once at most. Default 64.
	Concurrency int
	// RetryDelay is how long a request whose handling failed waits before
	// it is delivered again. Default 1s.
	RetryDelay time.Duration
	// Logger receives the SDK's logs. Nil discards them.
	Logger *slog.Logger
}

// Handler answers one request. It returns Quote, Decline or Silent; an
// error hands the request back to be delivered again after a delay. ctx
// ends at the request's deadline, after which an answer is refused as late.
// A request may be delivered more than once, so a handler should give the
// same answer each time: rydes keeps the first.
type Handler func(ctx context.Context, req rydes.ProviderRequest) (Reply, error)

// Reply is a handler's answer to one request: a quote, a decline, or
// nothing. The zero Reply is Silent.
type Reply struct {
	kind   rydes.AnswerKind // "" for silent
	price  rydes.Price
	eta    *int
	expiry time.Time
	reason string
}

// QuoteOption adds optional details to a quote.
type QuoteOption func(*Reply)

// WithETA says how long after the pickup time the ride can be there,
// rounded to the second.
func WithETA(d time.Duration) QuoteOption {
	return func(r *Reply) {
		s := int(d.Round(time.Second) / time.Second)
		r.eta = &s
	}
}

// WithExpiry says until when the quote holds.
func WithExpiry(t time.Time) QuoteOption {
	return func(r *Reply) { r.expiry = t }
}

// Quote offers the ride at price.
func Quote(price rydes.Price, opts ...QuoteOption) Reply {
	r := Reply{kind: rydes.AnswerQuote, price: price}
	for _, o := range opts {
		o(&r)
	}
	return r
}

// Decline refuses the request, with an optional reason for the customer.
func Decline(reason string) Reply {
	return Reply{kind: rydes.AnswerDecline, reason: reason}
}

// Silent answers nothing: the request is acknowledged and the provider
// counts as not having answered, until the request's deadline.
func Silent() Reply { return Reply{} }

// Provider consumes one provider's queue and answers its requests.
type Provider struct {
	cfg Config
	js  jetstream.JetStream
	log *slog.Logger

	// testHookReattach, if set, is called before the queue is looked up
	// again after consuming stopped on its own.
	testHookReattach func()
}

// New returns a Provider. It does no I/O; Run checks the queue exists.
func New(cfg Config) (*Provider, error) {
	if cfg.Conn == nil {
		return nil, errors.New("new provider: a NATS connection is required")
	}
	if err := rydes.ValidateProviderID(cfg.ID); err != nil {
		return nil, fmt.Errorf("new provider: id %q: %w", cfg.ID, err)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Concurrency < 0 {
		return nil, fmt.Errorf("new provider %s: concurrency must be positive, got %d", cfg.ID, cfg.Concurrency)
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = DefaultRetryDelay
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("new provider %s: jetstream: %w", cfg.ID, err)
	}
	return &Provider{cfg: cfg, js: js, log: cfg.Logger.With("provider", cfg.ID)}, nil
}

// ID returns the provider's id.
func (p *Provider) ID() string { return p.cfg.ID }

// Run answers requests from the provider's queue with h until ctx is done,
// then stops gracefully: it takes no new request, hands back the ones it
// holds but has not started, waits for the handlers in flight to finish
// and their answers to be sent, and returns nil. Handlers run with a
// context that Run's ctx does not cancel; it ends at the request's
// deadline.
//
// Run carries on across a restart of the broker or a lost connection, as
// long as the connection reconnects (Connect's does): it takes requests
// again once the broker is back. An answer or an ack that could not be
// sent meanwhile is not lost: the request is delivered again and answered
// again, and rydes keeps one answer.
//
// The queue must exist: rydes creates it when the provider is added. Run
// returns an error wrapping jetstream.ErrConsumerNotFound if it does not or
// once it was deleted (the provider was removed), and an error if the
// connection closed (e.g. its credentials were revoked). A broker that lost
// the whole dispatch stream is waited for, up to five minutes: rydes's
// reconciliation creates the stream and the queues again and re-publishes
// the requests still open.
func (p *Provider) Run(ctx context.Context, h Handler) error {
	if h == nil {
		return fmt.Errorf("provider %s: run: a handler is required", p.cfg.ID)
	}
	queue := queuePrefix + p.cfg.ID
	cons, err := p.js.Consumer(ctx, dispatchStream, queue)
	if err != nil {
		return p.lookupError(queue, err)
	}
	if opts := p.cfg.Conn.Opts; opts.User == p.cfg.ID && opts.InboxPrefix != InboxPrefix(p.cfg.ID) {
		p.log.Warn("the connection's inbox prefix is not the provider's: rydes's broker will refuse its subscriptions; connect with provider.Connect or nats.CustomInboxPrefix",
			"inbox_prefix", opts.InboxPrefix, "want", InboxPrefix(p.cfg.ID))
	}

	// Handlers must outlive Run's ctx so that stopping is graceful.
	hctx := context.WithoutCancel(ctx)
	r := newRunner(p.cfg.Concurrency, func(d delivery) { p.handle(hctx, h, d.m, d.beat) })
	defer func() {
		r.stop()
		// Confirm the acks the handlers sent.
		if err := p.cfg.Conn.FlushTimeout(flushTimeout); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			p.log.Warn("flush the acks", "err", err)
		}
	}()
	wait := reattachMinWait
	for {
		started := time.Now()
		if err := p.consume(ctx, r, cons, queue); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		// Consuming stopped on its own: find out why, and start again if
		// the queue is still there. Back off if it keeps stopping at once.
		if time.Since(started) > 2*reattachMaxWait {
			wait = reattachMinWait
		}
		cons, err = p.reattach(ctx, queue, wait)
		if err != nil {
			return err
		}
		if cons == nil {
			return nil // ctx ended
		}
		wait = min(2*wait, reattachMaxWait)
		p.log.Info("consuming again", "queue", queue)
	}
}

// Pulling from the queue.
const (
	// pullExpiry is how long one pull request waits on the server.
	pullExpiry = 10 * time.Second
	// pullHeartbeat is how often the server tells an idle pull it is alive;
	// two missed heartbeats make the SDK pull again.
	pullHeartbeat = 2 * time.Second
	// reattachMinWait and reattachMaxWait bound the wait between two
	// attempts to look the queue up again after consuming stopped.
	reattachMinWait = 100 * time.Millisecond
	reattachMaxWait = 5 * time.Second
	// streamLostGrace is how long Run waits for a dispatch stream that the
	// broker lost (and then for its queue) to be created again.
	streamLostGrace = 5 * time.Minute
)

// runner is one Run's handlers: the requests in flight, the slots they
// hold, and the goroutines that run them.
//
// A request runs on one of at most Concurrency goroutines that live as long
// as the runner, not on a goroutine of its own: decoding a request and
// answering it grows a goroutine's stack beyond its starting size, and a
// new goroutine per request paid that growth (copying the stack) on every
// request, about 2 % of the CPU of a busy provider.
type runner struct {
	serve func(delivery) // handles one request and settles it
	slots chan struct{}
	// work hands a request to an idle handler goroutine; quit, closed once
	// the last request in flight finished, ends them.
	work chan delivery
	quit chan struct{}

	mu       sync.Mutex
	stopped  bool
	workers  int            // handler goroutines started
	inflight sync.WaitGroup // requests taken and not yet settled
	handlers sync.WaitGroup // handler goroutines running
}

// newRunner returns a runner of at most concurrency requests at once, each
// handled by serve.
func newRunner(concurrency int, serve func(delivery)) *runner {
	return &runner{
		serve: serve,
		slots: make(chan struct{}, concurrency),
		work:  make(chan delivery),
		quit:  make(chan struct{}),
	}
}

// delivery is a request taken from the queue, for a handler goroutine:
// the message and how often to tell the broker it is still in hand.
type delivery struct {
	m    jetstream.Msg
	beat time.Duration
}

// take reserves a slot for a request, waiting for one, and counts the
// request in flight. It returns false, reserving nothing, if stopping is
// closed first or the runner stopped.
func (r *runner) take(stopping <-chan struct{}) bool {
	select {
	case r.slots <- struct{}{}:
	case <-stopping:
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		<-r.slots
		return false
	}
	r.inflight.Add(1)
	return true
}

// dispatch runs d on an idle handler goroutine, or on a new one if none is
// idle and fewer than Concurrency run. The caller holds a slot for d and
// counted it in flight. Otherwise it waits for one to be idle, which is
// soon: the slots bound the handlers working to Concurrency, d's slot among
// them, so of Concurrency goroutines one is idle or finishing.
func (r *runner) dispatch(d delivery) {
	select {
	case r.work <- d:
		return
	default:
	}
	r.mu.Lock()
	start := r.workers < cap(r.slots)
	if start {
		r.workers++
	}
	r.mu.Unlock()
	if start {
		r.handlers.Add(1)
		go r.handler(d)
		return
	}
	r.work <- d
}

// handler runs d, then the requests handed to it, until the runner quits.
func (r *runner) handler(d delivery) {
	defer r.handlers.Done()
	for {
		r.serve(d)
		<-r.slots
		r.inflight.Done()
		select {
		case d = <-r.work:
		case <-r.quit:
			return
		}
	}
}

// consume hands requests from cons to r until ctx is done, and then
// returns nil once it stopped taking them, or until consuming stopped on its
// own, and then returns nil too; ctx tells the two apart. It returns an
// error only if it could not start.
func (p *Provider) consume(ctx context.Context, r *runner, cons jetstream.Consumer, queue string) error {
	stopping := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if !r.take(stopping) {
			p.handBack(m) // not started: hand it back at once
			return
		}
		r.dispatch(delivery{m: m, beat: ackWaitOf(cons) / 3})
	},
		jetstream.PullMaxMessages(p.cfg.Concurrency),
		jetstream.PullExpiry(pullExpiry),
		jetstream.PullHeartbeat(pullHeartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			p.log.Warn("consume", "queue", queue, "err", err)
		}),
	)
	if err != nil {
		return fmt.Errorf("provider %s: consume %s: %w", p.cfg.ID, queue, err)
	}
	closed := cc.Closed()
	select {
	case <-ctx.Done():
		close(stopping)
		cc.Drain()
		<-closed
	case <-closed:
		close(stopping)
		p.log.Warn("consuming stopped", "queue", queue)
	}
	return nil
}

// stop makes the runner refuse new requests, waits for the requests in
// flight to be settled, and then for its handler goroutines to end.
func (r *runner) stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.inflight.Wait()
	close(r.quit)
	r.handlers.Wait()
}

// ackWaitOf returns how long the queue waits for an ack.
func ackWaitOf(cons jetstream.Consumer) time.Duration {
	if info := cons.CachedInfo(); info != nil && info.Config.AckWait > 0 {
		return info.Config.AckWait
	}
	return defaultAckWait
}

// reattach waits, then looks the queue up again after consuming stopped on
// its own, until it is found (it returns it), it is gone or the connection
// closed (an error), or ctx is done (nil, nil). Lookups that fail for a
// transient reason (the broker restarting, a lost connection) are retried,
// waiting twice as long each time up to reattachMaxWait.
func (p *Provider) reattach(ctx context.Context, queue string, wait time.Duration) (jetstream.Consumer, error) {
	// lostAt is when the whole dispatch stream was found missing: a broker
	// that lost it, which rydes's reconciliation re-creates, with the
	// queues, within a minute or so. A removed provider loses its queue,
	// never the stream.
	var lostAt time.Time
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil
		case <-t.C:
		}
		if p.testHookReattach != nil {
			p.testHookReattach()
		}
		if p.cfg.Conn.IsClosed() {
			return nil, fmt.Errorf("provider %s: consuming %s stopped: %w", p.cfg.ID, queue, nats.ErrConnectionClosed)
		}
		cons, err := p.js.Consumer(ctx, dispatchStream, queue)
		switch {
		case err == nil:
			return cons, nil
		case ctx.Err() != nil:
			return nil, nil
		case errors.Is(err, jetstream.ErrStreamNotFound):
			if lostAt.IsZero() {
				lostAt = time.Now()
				p.log.Warn("the broker lost the dispatch stream; waiting for rydes to create it again", "queue", queue, "for_at_most", streamLostGrace)
			}
			if time.Since(lostAt) > streamLostGrace {
				return nil, p.lookupError(queue, err)
			}
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			// Right after a lost stream came back, its queues follow.
			if lostAt.IsZero() || time.Since(lostAt) > streamLostGrace {
				return nil, p.lookupError(queue, err)
			}
		}
		wait = min(2*wait, reattachMaxWait)
		p.log.Warn("looking up the queue failed; retrying", "queue", queue, "retry_in", wait, "err", err)
	}
}

// lookupError explains why looking up the provider's queue failed.
func (p *Provider) lookupError(queue string, err error) error {
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return fmt.Errorf("provider %s: no queue %s on stream %s; rydes creates it when the provider is added and deletes it when it is removed: %w", p.cfg.ID, queue, dispatchStream, err)
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("provider %s: stream %s not found; is rydes running on this NATS? %w", p.cfg.ID, dispatchStream, err)
	default:
		return fmt.Errorf("provider %s: look up queue %s: %w", p.cfg.ID, queue, err)
	}
}

// handle answers one request and settles it: ack once the answer is
// stored, nak on failure, term if it cannot be read.
func (p *Provider) handle(ctx context.Context, h Handler, m jetstream.Msg, beat time.Duration) {
	var req rydes.ProviderRequest
	if err := json.Unmarshal(m.Data(), &req); err != nil || req.RFQID == "" {
		p.log.Error("unreadable request; dropping it", "subject", m.Subject(), "err", err)
		if err := m.TermWithReason("unreadable request"); err != nil {
			p.log.Warn("term", "err", err)
		}
		return
	}
	// The request's id goes into each log line rather than into a logger
	// made for the request (slog's With), which costs for every request
	// what only a failure needs.
	if !req.Deadline.IsZero() && !time.Now().Before(req.Deadline) {
		p.log.Debug("request past its deadline; acknowledging it unanswered", "rfq", req.RFQID, "deadline", req.Deadline)
		p.ack(req.RFQID, m)
		return
	}

	// Keep the request ours while the handler works and the answer is sent.
	stopBeat := keepAlive(m, beat, p.log)
	err := p.answer(ctx, h, req)
	stopBeat()
	if err != nil {
		p.log.Warn("request not answered; it will be delivered again", "rfq", req.RFQID, "retry_in", p.cfg.RetryDelay, "err", err)
		p.nak(m, p.cfg.RetryDelay)
		return
	}
	p.ack(req.RFQID, m)
}

// answer calls the handler for req and sends its answer, if any.
func (p *Provider) answer(ctx context.Context, h Handler, req rydes.ProviderRequest) error {
	reply, err := p.callHandler(ctx, h, req)
	if err != nil {
		return fmt.Errorf("handler: %w", err)
	}
	if reply.kind == "" {
		return nil
	}
	return p.publish(ctx, req.RFQID, reply)
}

// callHandler calls h with a context that ends at the request's deadline,
// turning a panic into an error.
func (p *Provider) callHandler(ctx context.Context, h Handler, req rydes.ProviderRequest) (reply Reply, err error) {
	var cancel context.CancelFunc
	if req.Deadline.IsZero() {
		ctx, cancel = context.WithCancel(ctx)
	} else {
		ctx, cancel = context.WithDeadline(ctx, req.Deadline)
	}
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return h(ctx, req)
}

// answerBody is the JSON an answer is sent as; rydes decodes it strictly.
// The provider is not in it: rydes knows who published on the subject.
type answerBody struct {
	RFQID      string           `json:"rfq_id"`
	Kind       rydes.AnswerKind `json:"kind"`
	Price      *rydes.Price     `json:"price,omitempty"`
	ETASeconds *int             `json:"eta_seconds,omitempty"`
	ExpiresAt  string           `json:"expires_at,omitempty"`
	Reason     string           `json:"reason,omitempty"`
}

// encodeAnswer validates reply as the provider's answer for rfqID at now
// and returns the body to send.
func (p *Provider) encodeAnswer(rfqID string, r Reply, now time.Time) ([]byte, error) {
	a := rydes.Answer{
		RFQID: rfqID, Provider: p.cfg.ID, Kind: r.kind, Price: r.price, ETASeconds: r.eta,
		ExpiresAt: r.expiry, Reason: r.reason, ReceivedAt: now,
	}
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("invalid %s: %w", r.kind, err)
	}
	b := answerBody{RFQID: rfqID, Kind: r.kind, ETASeconds: r.eta, Reason: r.reason}
	if r.kind == rydes.AnswerQuote {
		b.Price = &r.price
		if !r.expiry.IsZero() {
			b.ExpiresAt = r.expiry.UTC().Format(time.RFC3339Nano)
		}
	}
	body, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", r.kind, err)
	}
	return body, nil
}

// publish sends reply for rfqID to rydes as a request and waits for the
// receipt, which rydes sends once the answer is staged. An error (rydes is
// not there, did not reply in time, or could not stage the answer now)
// leaves the request to be delivered and answered again; staging is
// idempotent. A refused answer (late, say) is final: it is logged, and
// the request acknowledged.
func (p *Provider) publish(ctx context.Context, rfqID string, r Reply) error {
	body, err := p.encodeAnswer(rfqID, r, time.Now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	msg, err := p.cfg.Conn.RequestWithContext(ctx, answerSubjectPrefix+p.cfg.ID, body)
	if err != nil {
		return fmt.Errorf("send %s for %s: %w", r.kind, rfqID, err)
	}
	var receipt rydes.AnswerReceipt
	if err := json.Unmarshal(msg.Data, &receipt); err != nil {
		return fmt.Errorf("send %s for %s: unreadable receipt %.200q: %w", r.kind, rfqID, msg.Data, err)
	}
	switch {
	case receipt.Error != "":
		return fmt.Errorf("send %s for %s: rydes did not stage it: %s", r.kind, rfqID, receipt.Error)
	case receipt.Outcome == rydes.OutcomeRejected:
		p.log.Warn("answer refused", "rfq", rfqID, "kind", r.kind, "reason", receipt.Reason, "message", receipt.Message)
	case receipt.Outcome == "":
		return fmt.Errorf("send %s for %s: receipt without an outcome: %.200q", r.kind, rfqID, msg.Data)
	}
	return nil
}

// ack acknowledges m. It does not wait for the server to confirm it: on a
// connection that stays up the broker takes its messages in order, so the
// ack arrives, and a stopping runner flushes the connection once for all
// of them (see runner.stop). An ack lost with a broken connection brings
// the request back, which is what an unacknowledged one does anyway: rydes
// answers the second answer with a duplicate receipt. Waiting for each
// confirmation cost a round trip per request, a twentieth of the CPU
// `rydes bench` spends on one, for nothing the protocol needs.
func (p *Provider) ack(rfq string, m jetstream.Msg) {
	if err := m.Ack(); err != nil {
		// The request will be delivered again; its answer is deduplicated.
		p.log.Warn("ack", "rfq", rfq, "err", err)
	}
}

// handBack gives m back to the queue for immediate redelivery and waits
// for the server to confirm it. A stopping provider hands back what it has
// not started; unconfirmed, a hand-back still queued in a broker that shuts
// down too is lost, and the request waits out the ack wait, often past its
// deadline. JetStream's ack protocol confirms any ack, -NAK included, that
// is sent as a request; the SDK's Nak does not ask.
func (p *Provider) handBack(m jetstream.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), handBackTimeout)
	defer cancel()
	if _, err := p.cfg.Conn.RequestWithContext(ctx, m.Reply(), []byte("-NAK")); err != nil {
		p.log.Warn("hand back", "subject", m.Subject(), "err", err)
	}
}

// handBackTimeout bounds the wait for the server to confirm a hand-back,
// and flushTimeout a stopping runner's for it to confirm the acks sent.
const (
	handBackTimeout = 2 * time.Second
	flushTimeout    = 2 * time.Second
)

func (p *Provider) nak(m jetstream.Msg, delay time.Duration) {
	var err error
	if delay > 0 {
		err = m.NakWithDelay(delay)
	} else {
		err = m.Nak()
	}
	if err != nil {
		p.log.Warn("nak", "subject", m.Subject(), "err", err)
	}
}

// keepAlive tells the server every interval that m is being worked on, so
// that it is not redelivered meanwhile, until the returned function is
// called; that function returns once the beats stopped. It costs a timer
// and no goroutine until the first beat is due: most requests are answered
// long before.
func keepAlive(m jetstream.Msg, interval time.Duration, log *slog.Logger) (stop func()) {
	if interval <= 0 {
		interval = defaultAckWait / 3
	}
	var (
		mu      sync.Mutex // held by a beat, so that stop waits for it
		stopped bool
		t       *time.Timer
	)
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(interval, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if err := m.InProgress(); err != nil {
			log.Warn("in progress", "subject", m.Subject(), "err", err)
		}
		t.Reset(interval)
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}
