package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wildrydes/rydes"
)

// Watch limits.
const (
	// watchBuffer is the capacity of a watcher's channel and how many
	// messages its consumer pulls ahead.
	watchBuffer = 64
	// watchMaxReorder bounds the events a watcher holds back while it waits
	// for an earlier seq published after them (an outbox retry can store
	// seq n+1 before seq n). Past it, the watcher gives up on the gap.
	watchMaxReorder = 1024
	// watchInactive is how long the server keeps a watcher's consumer once
	// nobody pulls from it: a backstop for a process that died before
	// deleting it.
	watchInactive = time.Minute
	// watchCleanupTimeout bounds deleting a watcher's consumer.
	watchCleanupTimeout = 5 * time.Second
)

// EventFilter returns the subject filter that matches every event of RFQ
// rfqID on EventsStream.
func EventFilter(rfqID string) string { return EventSubjectPrefix + rfqID + ".>" }

// DecodeEvent decodes one message of EventsStream and checks that it is
// what Publish stores for an event: its body is a rydes.Event whose subject
// is EventSubject(event.RFQID, event.Type) and whose Nats-Msg-Id is
// "event.<rfq id>.<seq>". Anything else can land on an event subject (a
// server response sent there as a reply subject, say) and is refused with
// an error.
func DecodeEvent(m jetstream.Msg) (rydes.Event, error) {
	var ev rydes.Event
	if err := json.Unmarshal(m.Data(), &ev); err != nil {
		return rydes.Event{}, fmt.Errorf("decode event on %s: %w", m.Subject(), err)
	}
	if ev.Seq < 1 || !subjectToken(ev.RFQID) || !subjectToken(string(ev.Type)) {
		return rydes.Event{}, fmt.Errorf("decode event on %s: not an event (rfq %q, seq %d, type %q)", m.Subject(), ev.RFQID, ev.Seq, ev.Type)
	}
	if want := EventSubject(ev.RFQID, ev.Type); m.Subject() != want {
		return rydes.Event{}, fmt.Errorf("decode event on %s: the body is an event for %s", m.Subject(), want)
	}
	var id string
	if h := m.Headers(); h != nil {
		id = h.Get(jetstream.MsgIDHeader)
	}
	if want := "event." + ev.ID(); id != want {
		return rydes.Event{}, fmt.Errorf("decode event on %s: message id %q, want %q", m.Subject(), id, want)
	}
	return ev, nil
}

// WatchRFQ streams the events of RFQ rfqID with a seq above afterSeq, in
// seq order and each once, on the returned channel: those stored already
// and those to come. The channel is closed after the RFQ's final event
// (complete, expired or cancelled), when ctx ends or when the bus is
// closed; a receiver tells the first from the others by the last event's
// Type.Final().
//
// It reads EventsStream with an ordered consumer of its own (ephemeral, in
// memory, deleted when the watch ends), so it works from any rydes instance
// on the broker. Messages on the RFQ's subjects that are not events
// Publish stored (see DecodeEvent) are skipped, and so are repeats of a seq
// already sent. Events are kept for MaxAge: watching an RFQ older than
// that waits for events that are gone, until ctx ends, so callers should
// read the RFQ from the store first and not watch one that is final.
//
// The caller must either drain the channel or end ctx.
func (b *Bus) WatchRFQ(ctx context.Context, rfqID string, afterSeq int64) (<-chan rydes.Event, error) {
	if err := rydes.ValidateID(rfqID); err != nil {
		return nil, fmt.Errorf("watch rfq %q: %w", rfqID, err)
	}
	if afterSeq < 0 {
		return nil, fmt.Errorf("watch rfq %s: after seq must not be negative, got %d", rfqID, afterSeq)
	}
	if err := b.enter(); err != nil {
		return nil, fmt.Errorf("watch rfq %s: %w", rfqID, err)
	}
	cons, err := b.js.OrderedConsumer(ctx, EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{EventFilter(rfqID)},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: watchInactive,
	})
	if err != nil {
		b.wg.Done()
		return nil, fmt.Errorf("watch rfq %s: ordered consumer: %w", rfqID, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(watchBuffer))
	if err != nil {
		b.wg.Done()
		b.deleteWatchConsumer(cons, rfqID)
		return nil, fmt.Errorf("watch rfq %s: messages: %w", rfqID, err)
	}

	out := make(chan rydes.Event, watchBuffer)
	go func() {
		defer b.wg.Done()
		defer close(out)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-b.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		defer b.deleteWatchConsumer(cons, rfqID)
		defer it.Stop()
		b.watch(ctx, it, rfqID, newSequencer(afterSeq), out)
	}()
	return out, nil
}

// watch hands the events it reads from it to out, in seq order, until the
// final event was sent or ctx ends.
func (b *Bus) watch(ctx context.Context, it jetstream.MessagesContext, rfqID string, seqr *sequencer, out chan<- rydes.Event) {
	log := b.log.With("rfq", rfqID)
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				log.Warn("watch rfq: reading events stopped", "err", err)
			}
			return
		}
		ev, err := DecodeEvent(m)
		if err != nil {
			log.Warn("watch rfq: skipped a message that is not an event", "subject", m.Subject(), "err", err)
			continue
		}
		if ev.RFQID != rfqID {
			log.Warn("watch rfq: skipped an event of another rfq", "subject", m.Subject(), "event_rfq", ev.RFQID)
			continue
		}
		ready, skipped := seqr.add(ev)
		if skipped > 0 {
			log.Warn("watch rfq: gave up waiting for missing events", "missing", skipped, "resumed_at", ready[0].Seq)
		}
		for _, ev := range ready {
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
			if ev.Type.Final() {
				return
			}
		}
	}
}

// deleteWatchConsumer deletes the server-side consumer of an ordered
// consumer whose iteration stopped. Failing that, the server deletes it
// after watchInactive.
func (b *Bus) deleteWatchConsumer(cons jetstream.Consumer, rfqID string) {
	info := cons.CachedInfo()
	if info == nil || info.Name == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), watchCleanupTimeout)
	defer cancel()
	err := b.js.DeleteConsumer(ctx, EventsStream, info.Name)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		b.log.Debug("watch rfq: delete consumer; the server will drop it when inactive", "rfq", rfqID, "consumer", info.Name, "err", err)
	}
}

// sequencer puts one RFQ's events in seq order: it releases seq n only
// after n-1, drops repeats and anything at or below the start, and holds
// back events that come early.
type sequencer struct {
	next    int64 // the seq to release next
	pending map[int64]rydes.Event
}

func newSequencer(afterSeq int64) *sequencer {
	return &sequencer{next: afterSeq + 1, pending: make(map[int64]rydes.Event)}
}

// add takes one event and returns the events now ready to send, in order,
// and how many seqs it gave up on, if holding back exceeded
// watchMaxReorder (then the events resume from the earliest held back).
func (s *sequencer) add(ev rydes.Event) (ready []rydes.Event, skipped int64) {
	if ev.Seq < s.next {
		return nil, 0 // already sent, or before the start
	}
	if _, ok := s.pending[ev.Seq]; ok {
		return nil, 0
	}
	s.pending[ev.Seq] = ev
	if _, ok := s.pending[s.next]; !ok && len(s.pending) > watchMaxReorder {
		earliest := ev.Seq
		for seq := range s.pending {
			earliest = min(earliest, seq)
		}
		skipped = earliest - s.next
		s.next = earliest
	}
	for {
		e, ok := s.pending[s.next]
		if !ok {
			return ready, skipped
		}
		delete(s.pending, s.next)
		ready = append(ready, e)
		s.next++
	}
}
