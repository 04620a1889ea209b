package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/wire"
)

// AnswerQueue is the queue group of every rydes instance's answer service:
// each answer goes to one of them.
const AnswerQueue = "rydes-answers"

// Inbound is one answer as the answer service received it.
type Inbound struct {
	// Answer is the decoded answer. Its Provider is the one whose subject
	// it was sent on; ReceivedAt is when this process received it (for an
	// answer drained from the retired AnswersStream, when the stream stored
	// it). When Err is set, Answer has only Provider, ReceivedAt and, if the
	// payload names a well-formed one, RFQID.
	Answer rydes.Answer
	// Payload is the message body as received.
	Payload []byte
	// Err is why the payload did not decode to a valid answer (a
	// *rydes.Error), or nil.
	Err error
}

// AnswerHandler decides one answer and returns the receipt its provider is
// sent. It must return only once what it decided is durable; a receipt
// with Error set tells the provider to send the answer again later, so the
// handler must be idempotent.
type AnswerHandler func(ctx context.Context, in Inbound) rydes.AnswerReceipt

// ServeOptions tune ServeAnswers.
type ServeOptions struct {
	// MaxInFlight bounds the answers being handled at once (default 4096);
	// past it, answers wait in the subscription's buffer.
	MaxInFlight int
	// HandleTimeout bounds the handling of one answer (default 30s); a
	// provider that waited longer sends the answer again.
	HandleTimeout time.Duration
	// Ready, if set, is called once the service takes answers.
	Ready func()
}

// ServeAnswers is the answer service: it takes the answers providers send
// on their answer subjects as requests (queue group AnswerQueue, so that
// each goes to one rydes instance), hands each, concurrently, to handler
// and replies with the receipt handler returns, as JSON. An answer sent
// without a reply subject is handled all the same.
//
// First it drains AnswersStream, if a broker still holds it from an
// earlier version of rydes: it stops the stream from taking answers, hands
// what it holds to handler, and deletes it.
//
// ServeAnswers returns nil once ctx is done or the bus closed, after the
// answers already received were handled and replied to, and an error if it
// could not start.
func (b *Bus) ServeAnswers(ctx context.Context, handler AnswerHandler, opts ServeOptions) error {
	if handler == nil {
		return errors.New("serve answers: a handler is required")
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 4096
	}
	if opts.HandleTimeout <= 0 {
		opts.HandleTimeout = 30 * time.Second
	}
	if err := b.enter(); err != nil {
		return fmt.Errorf("serve answers: %w", err)
	}
	defer b.wg.Done()
	if err := b.retireAnswersStream(ctx, handler); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("serve answers: %w", err)
	}

	var handlers sync.WaitGroup
	slots := make(chan struct{}, opts.MaxInFlight)
	handle := func(m *nats.Msg) {
		in := decodeInbound(m.Subject, m.Data, time.Now())
		// Taking a slot blocks this subscription's delivery: answers then
		// wait in its buffer.
		slots <- struct{}{}
		handlers.Go(func() {
			defer func() { <-slots }()
			hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.HandleTimeout)
			defer cancel()
			receipt := handler(hctx, in)
			if m.Reply == "" {
				return
			}
			body, err := json.Marshal(receipt)
			if err != nil {
				b.log.Error("answer receipt: encode", "provider", in.Answer.Provider, "err", err)
				return
			}
			if err := m.Respond(body); err != nil {
				// The provider times out and sends the answer again.
				b.log.Warn("answer receipt: reply", "provider", in.Answer.Provider, "rfq", in.Answer.RFQID, "err", err)
			}
		})
	}
	nc := b.js.Conn()
	sub, err := nc.QueueSubscribe(AnswerSubjectPrefix+"*", AnswerQueue, handle)
	if err != nil {
		return fmt.Errorf("serve answers: subscribe: %w", err)
	}
	if err := sub.SetPendingLimits(1<<20, 256<<20); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("serve answers: %w", err)
	}
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("serve answers: subscribe: %w", err)
	}
	if opts.Ready != nil {
		opts.Ready()
	}

	select {
	case <-ctx.Done():
	case <-b.done:
	}
	// Stop taking answers, handle those already received, and reply.
	drained := sub.StatusChanged(nats.SubscriptionClosed)
	if err := sub.Drain(); err != nil {
		_ = sub.Unsubscribe()
	} else {
		select {
		case <-drained:
		case <-time.After(opts.HandleTimeout):
			b.log.Warn("serve answers: drain timed out; unsubscribing")
			_ = sub.Unsubscribe()
		}
	}
	handlers.Wait()
	return nil
}

// retiredAnswersSubject is where AnswersStream listens while it is
// drained: a subject nobody sends on.
const retiredAnswersSubject = "rydes.retired.answers"

// retireAnswersStream drains and deletes AnswersStream if the broker
// still has it. It first moves the stream off the answer subjects, so that
// the stream no longer takes (and acknowledges) answers meant for the
// answer service.
func (b *Bus) retireAnswersStream(ctx context.Context, handler AnswerHandler) error {
	s, err := b.js.Stream(ctx, AnswersStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up retired stream %s: %w", AnswersStream, err)
	}
	cfg := s.CachedInfo().Config
	if len(cfg.Subjects) != 1 || cfg.Subjects[0] != retiredAnswersSubject {
		cfg.Subjects = []string{retiredAnswersSubject}
		if _, err := b.js.UpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("retire stream %s: move it off the answer subjects: %w", AnswersStream, err)
		}
	}
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       GathererConsumer,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       b.cfg.AckWait,
		MaxDeliver:    -1,
	})
	if err != nil {
		return fmt.Errorf("retire stream %s: consumer: %w", AnswersStream, err)
	}
	drained := 0
	for {
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			return fmt.Errorf("retire stream %s: fetch: %w", AnswersStream, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			received := time.Now()
			if md, err := m.Metadata(); err == nil && !md.Timestamp.IsZero() {
				received = md.Timestamp
			}
			in := decodeInbound(m.Subject(), m.Data(), received)
			if r := handler(ctx, in); r.Error != "" {
				return fmt.Errorf("retire stream %s: stage an answer of %s: %s", AnswersStream, in.Answer.Provider, r.Error)
			}
			if err := m.DoubleAck(ctx); err != nil {
				return fmt.Errorf("retire stream %s: ack: %w", AnswersStream, err)
			}
			drained++
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("retire stream %s: fetch: %w", AnswersStream, err)
		}
		if n == 0 {
			break
		}
	}
	if err := b.js.DeleteStream(ctx, AnswersStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("retire stream %s: delete: %w", AnswersStream, err)
	}
	b.log.Info("retired the answers stream; answers now come as requests", "stream", AnswersStream, "drained", drained)
	return nil
}

// decodeInbound decodes one answer sent on subject. The provider is the
// last token of the subject, never anything in the body.
func decodeInbound(subject string, body []byte, received time.Time) Inbound {
	provider, ok := strings.CutPrefix(subject, AnswerSubjectPrefix)
	if !ok {
		provider = ""
	}
	// Microseconds: what every store keeps, so a redelivery compares equal.
	received = received.UTC().Truncate(time.Microsecond)
	a, err := wire.DecodeAnswer(provider, body, received)
	if err != nil {
		return Inbound{
			Answer:  rydes.Answer{RFQID: wire.RFQIDOf(body), Provider: provider, ReceivedAt: received},
			Payload: body,
			Err:     err,
		}
	}
	return Inbound{Answer: a, Payload: body}
}
