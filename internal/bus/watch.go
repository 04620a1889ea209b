package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wildrydes/rydes"
)

// Watch limits.
const (
	// watchBuffer is the capacity of a watcher's inbox on the process's
	// subscription (pointers, cheap) and how many stored events one fetch
	// reads.
	watchBuffer = 64
	// watchOut is the capacity of the channel a watcher hands events on:
	// small, as every watcher has one (an event is some 150 bytes).
	watchOut = 8
	// watchMaxReorder bounds the events a watcher holds back while it waits
	// for an earlier seq published after them (an outbox retry can store
	// seq n+1 before seq n). Past it, the watcher gives up on the gap.
	watchMaxReorder = 1024
	// watchInactive is how long the server keeps a watcher's consumer once
	// nobody pulls from it: a backstop for a process that died before
	// deleting it.
	watchInactive = time.Minute
	// directReadTimeout bounds the direct get of an RFQ's stored events.
	directReadTimeout = 5 * time.Second
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
	return decodeEvent(m.Subject(), m.Data(), m.Headers())
}

// decodeStoredEvent decodes an event that EventsStream published again on
// StoredEventSubjectPrefix once stored, with the checks of DecodeEvent on
// its original subject (header Nats-Subject).
func decodeStoredEvent(m *nats.Msg) (rydes.Event, error) {
	return decodeEvent(m.Header.Get(jetstream.SubjectHeader), m.Data, m.Header)
}

func decodeEvent(subject string, data []byte, h nats.Header) (rydes.Event, error) {
	var ev rydes.Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return rydes.Event{}, fmt.Errorf("decode event on %s: %w", subject, err)
	}
	if ev.Seq < 1 || !subjectToken(ev.RFQID) || !subjectToken(string(ev.Type)) {
		return rydes.Event{}, fmt.Errorf("decode event on %s: not an event (rfq %q, seq %d, type %q)", subject, ev.RFQID, ev.Seq, ev.Type)
	}
	if want := EventSubject(ev.RFQID, ev.Type, ev.Seq); subject != want {
		return rydes.Event{}, fmt.Errorf("decode event on %s: the body is an event for %s", subject, want)
	}
	var id string
	if h != nil {
		id = h.Get(jetstream.MsgIDHeader)
	}
	if want := "event." + ev.ID(); id != want {
		return rydes.Event{}, fmt.Errorf("decode event on %s: message id %q, want %q", subject, id, want)
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
// Events to come reach every watcher of a process through one core NATS
// subscription to what EventsStream publishes again once it stored an event
// (StoredEventSubjectPrefix): a watcher costs no consumer on the broker.
// Those stored already are read once, after the watcher is registered with
// that subscription, with one direct get (see readStored); an event
// stored in between arrives both ways and is sent once. A watcher that
// falls behind (its buffer full) reads the stream again. It works from any
// rydes instance on the broker. Messages that are not events Publish
// stored (see DecodeEvent) are skipped, and so are repeats of a seq already
// sent. Events are kept for MaxAge: watching an RFQ older than that waits
// for events that are gone, until ctx ends, so callers should read the RFQ
// from the store first and not watch one that is final.
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
	hub, err := b.eventHub()
	if err != nil {
		b.wg.Done()
		return nil, fmt.Errorf("watch rfq %s: %w", rfqID, err)
	}
	w := hub.register(rfqID)
	seqr := newSequencer(afterSeq)
	// The first read of the stream happens here, so that a watch that
	// cannot read it fails at once.
	ready, err := b.readStored(ctx, rfqID, seqr)
	if err != nil {
		hub.unregister(w)
		b.wg.Done()
		return nil, fmt.Errorf("watch rfq %s: %w", rfqID, err)
	}

	out := make(chan rydes.Event, watchOut)
	go func() {
		defer b.wg.Done()
		defer close(out)
		defer hub.unregister(w)
		// One goroutine per watcher: the end of every watch (EndWatches,
		// Close) cancels this one's context without another.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(b.watching, cancel)()
		if b.watching.Err() != nil {
			return // watches ended before this one began
		}
		if !send(ctx, out, ready) {
			return
		}
		b.watch(ctx, w, rfqID, seqr, out)
	}()
	return out, nil
}

// send hands events to out, in order. It returns false once ctx ended or
// the final event was sent: the watch is over.
func send(ctx context.Context, out chan<- rydes.Event, events []rydes.Event) bool {
	for _, ev := range events {
		select {
		case out <- ev:
		case <-ctx.Done():
			return false
		}
		if ev.Type.Final() {
			return false
		}
	}
	return ctx.Err() == nil
}

// watch hands the events the hub brings to out, in seq order, until the
// final event was sent or ctx ends; when it fell behind, it reads the
// stream again.
func (b *Bus) watch(ctx context.Context, w *hubWatcher, rfqID string, seqr *sequencer, out chan<- rydes.Event) {
	log := b.log.With("rfq", rfqID)
	for {
		var ready []rydes.Event
		select {
		case <-ctx.Done():
			return
		case <-w.behind:
			var err error
			if ready, err = b.readStored(ctx, rfqID, seqr); err != nil {
				if ctx.Err() == nil {
					log.Warn("watch rfq: reading the stream again after falling behind", "err", err)
				}
				return
			}
		case m := <-w.live:
			ev, err := decodeStoredEvent(m)
			if err != nil {
				log.Warn("watch rfq: skipped a message that is not an event", "subject", m.Subject, "err", err)
				continue
			}
			if ev.RFQID != rfqID {
				continue
			}
			var skipped int64
			ready, skipped = seqr.add(ev)
			if skipped > 0 {
				log.Warn("watch rfq: gave up waiting for missing events", "missing", skipped, "resumed_at", ready[0].Seq)
			}
		}
		if !send(ctx, out, ready) {
			return
		}
	}
}

// readStored reads the events of rfqID that EventsStream holds and returns
// those the sequencer now releases.
//
// As each event has a subject of its own (EventSubject), one direct get of
// the last message on every subject of the RFQ (JetStream's multi_last)
// returns all of them, found through the broker's per-subject index. A
// consumer filtered on the RFQ instead makes the broker walk the stream
// message by message past some 64,000 subjects: with 20,000 open RFQs and
// 2,000 watchers that was gigabytes of copied messages. The consumer is
// the fallback, for a broker older than 2.11 or an RFQ with over a
// thousand events.
func (b *Bus) readStored(ctx context.Context, rfqID string, seqr *sequencer) ([]rydes.Event, error) {
	ready, err := b.readStoredDirect(ctx, rfqID, seqr)
	if errors.Is(err, errNoDirectRead) {
		b.log.Debug("watch rfq: reading stored events with a consumer", "rfq", rfqID, "err", err)
		return b.readStoredConsumer(ctx, rfqID, seqr)
	}
	return ready, err
}

// readStoredDirect reads the events of rfqID with one batched direct get.
// It leaves seqr as it found it when it returns errNoDirectRead.
func (b *Bus) readStoredDirect(ctx context.Context, rfqID string, seqr *sequencer) ([]rydes.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, directReadTimeout)
	defer cancel()
	msgs, err := b.lastMsgsFor(ctx, EventsStream, EventFilter(rfqID))
	if err != nil {
		return nil, fmt.Errorf("read stored events: %w", err)
	}
	events := make([]rydes.Event, 0, len(msgs))
	for _, m := range msgs {
		// The reply's headers are the stored message's plus the server's
		// Nats-Subject (the subject it was stored on), Nats-Sequence...
		subject := m.Header.Get(jetstream.SubjectHeader)
		ev, err := decodeEvent(subject, m.Data, m.Header)
		if err != nil {
			// Something else landed on an event's subject after it (a
			// server response sent there as a reply subject) and hides
			// it from a read of each subject's last message.
			return nil, fmt.Errorf("%w: %w", errNoDirectRead, err)
		}
		events = append(events, ev)
	}
	var ready []rydes.Event
	for _, ev := range events {
		r, _ := seqr.add(ev)
		ready = append(ready, r...)
	}
	return ready, nil
}

// readStoredConsumer reads the events of rfqID with a consumer of its own
// that it deletes after.
func (b *Bus) readStoredConsumer(ctx context.Context, rfqID string, seqr *sequencer) ([]rydes.Event, error) {
	cons, err := b.js.CreateConsumer(ctx, EventsStream, jetstream.ConsumerConfig{
		FilterSubject:     EventFilter(rfqID),
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: watchInactive,
		MemoryStorage:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("read stored events: consumer: %w", err)
	}
	defer b.deleteWatchConsumer(cons, rfqID)
	var ready []rydes.Event
	for {
		batch, err := cons.FetchNoWait(watchBuffer)
		if err != nil {
			return nil, fmt.Errorf("read stored events: fetch: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			ev, err := DecodeEvent(m)
			if err != nil {
				b.log.Warn("watch rfq: skipped a message that is not an event", "rfq", rfqID, "subject", m.Subject(), "err", err)
				continue
			}
			r, _ := seqr.add(ev)
			ready = append(ready, r...)
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("read stored events: %w", err)
		}
		if n == 0 {
			return ready, nil
		}
	}
}

// deleteWatchConsumer deletes the consumer that read stored events. Failing
// that, the server deletes it after watchInactive.
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

// eventHub returns the bus's hub, subscribing it on first use.
func (b *Bus) eventHub() (*eventHub, error) {
	b.hubOnce.Do(func() {
		b.hub, b.hubErr = newEventHub(b.js.Conn(), b.log)
	})
	return b.hub, b.hubErr
}

// eventHub is one process's subscription to the stored events, which it
// hands to the watchers of each RFQ.
type eventHub struct {
	sub *nats.Subscription
	log *slog.Logger

	mu       sync.RWMutex
	watchers map[string]map[*hubWatcher]struct{} // by rfq id
}

// hubWatcher is one watcher's inbox: the stored events of its RFQ, and a
// signal that some were dropped because the inbox was full.
type hubWatcher struct {
	rfqID  string
	live   chan *nats.Msg
	behind chan struct{}
}

func newEventHub(nc *nats.Conn, log *slog.Logger) (*eventHub, error) {
	h := &eventHub{log: log, watchers: map[string]map[*hubWatcher]struct{}{}}
	sub, err := nc.Subscribe(StoredEventSubjectPrefix+">", h.dispatch)
	if err != nil {
		return nil, fmt.Errorf("subscribe to stored events: %w", err)
	}
	// The callback never blocks, so the subscription's own buffer only
	// absorbs bursts; a watcher that falls behind reads the stream again.
	if err := sub.SetPendingLimits(1<<20, 256<<20); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe to stored events: %w", err)
	}
	h.sub = sub
	return h, nil
}

// dispatch hands a stored event to the watchers of its RFQ, without
// blocking: a watcher whose inbox is full is told it fell behind.
func (h *eventHub) dispatch(m *nats.Msg) {
	rest, ok := strings.CutPrefix(m.Subject, StoredEventSubjectPrefix)
	if !ok {
		return
	}
	rfqID, _, _ := strings.Cut(rest, ".")
	h.mu.RLock()
	defer h.mu.RUnlock()
	for w := range h.watchers[rfqID] {
		select {
		case w.live <- m:
		default:
			select {
			case w.behind <- struct{}{}:
			default:
			}
		}
	}
}

func (h *eventHub) register(rfqID string) *hubWatcher {
	w := &hubWatcher{rfqID: rfqID, live: make(chan *nats.Msg, watchBuffer), behind: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	ws := h.watchers[rfqID]
	if ws == nil {
		ws = map[*hubWatcher]struct{}{}
		h.watchers[rfqID] = ws
	}
	ws[w] = struct{}{}
	return w
}

func (h *eventHub) unregister(w *hubWatcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.watchers[w.rfqID], w)
	if len(h.watchers[w.rfqID]) == 0 {
		delete(h.watchers, w.rfqID)
	}
}

// close ends the subscription.
func (h *eventHub) close() {
	if err := h.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		h.log.Debug("unsubscribe stored events", "err", err)
	}
}

// sequencer puts one RFQ's events in seq order: it releases seq n only
// after n-1, drops repeats and anything at or below the start, and holds
// back events that come early.
type sequencer struct {
	next    int64 // the seq to release next
	pending map[int64]rydes.Event
	final   bool // a final event is held back
}

func newSequencer(afterSeq int64) *sequencer {
	return &sequencer{next: afterSeq + 1, pending: make(map[int64]rydes.Event)}
}

// add takes one event and returns the events now ready to send, in order,
// and how many seqs it gave up on, if holding back exceeded
// watchMaxReorder or a final event came (then the events resume from the
// earliest held back). A final event comes last, published after every
// other event of its RFQ: a seq still missing then is one the broker lost
// (see package reconcile), and waiting for it would keep the watcher from
// ever seeing the end.
func (s *sequencer) add(ev rydes.Event) (ready []rydes.Event, skipped int64) {
	if ev.Seq < s.next {
		return nil, 0 // already sent, or before the start
	}
	if _, ok := s.pending[ev.Seq]; ok {
		return nil, 0
	}
	s.pending[ev.Seq] = ev
	if ev.Type.Final() {
		s.final = true
	}
	for {
		for {
			e, ok := s.pending[s.next]
			if !ok {
				break
			}
			delete(s.pending, s.next)
			ready = append(ready, e)
			s.next++
		}
		if len(s.pending) == 0 || !(s.final || len(s.pending) > watchMaxReorder) {
			return ready, skipped
		}
		// Give up on the gap: resume from the earliest held back.
		earliest := int64(math.MaxInt64)
		for seq := range s.pending {
			earliest = min(earliest, seq)
		}
		skipped += earliest - s.next
		s.next = earliest
	}
}
