package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/store"
)

// Watch limits.
const (
	// watchBuffer is the capacity of a watch's inbox on the process's
	// subscription (pointers, cheap) and how many stored events one fetch
	// reads.
	watchBuffer = 64
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

// DecodeEvents decodes one message of EventsStream and checks that it is
// what Publish stores: its body is the events of one RFQ, consecutive (a
// JSON array, or one event as an object, as rydes published before events
// were grouped), its subject is the EventSubject of the last, and its
// Nats-Msg-Id "event.<rfq id>.<seq>" of the last. Anything else can land
// on an event subject (a server response sent there as a reply subject,
// say) and is refused with an error.
func DecodeEvents(m jetstream.Msg) ([]rydes.Event, error) {
	return decodeEvents(m.Subject(), m.Data(), m.Headers())
}

// LastEventOf returns the RFQ, type and seq of the last event of message m
// of EventsStream from its subject and Nats-Msg-Id alone, which Publish
// sets to EventSubject and "event.<rfq id>.<seq>" of that event; it does
// not read the body. What else can land on an event subject (a server
// response sent there as a reply subject) has no such message id, and is
// refused with an error. A reader that needs no more, such as the
// completion notifier (a final event is the last of its message, and the
// notifier reads the RFQ from the store), spares decoding every event of
// the message.
func LastEventOf(m jetstream.Msg) (rfqID string, t rydes.EventType, seq int64, err error) {
	subject := m.Subject()
	parts := strings.Split(strings.TrimPrefix(subject, EventSubjectPrefix), ".")
	if !strings.HasPrefix(subject, EventSubjectPrefix) || len(parts) != 3 {
		return "", "", 0, fmt.Errorf("last event of %s: not an event subject", subject)
	}
	seq, perr := strconv.ParseInt(parts[2], 10, 64)
	if perr != nil || seq < 1 || rydes.ValidateID(parts[0]) != nil || parts[1] == "" {
		return "", "", 0, fmt.Errorf("last event of %s: not an event subject", subject)
	}
	var id string
	if h := m.Headers(); h != nil {
		id = h.Get(jetstream.MsgIDHeader)
	}
	if want := "event." + parts[0] + "." + parts[2]; id != want {
		return "", "", 0, fmt.Errorf("last event of %s: message id %q, want %q", subject, id, want)
	}
	return parts[0], rydes.EventType(parts[1]), seq, nil
}

// decodeStoredEvents decodes the events of a message that EventsStream
// published again on StoredEventSubjectPrefix once stored, with the checks
// of DecodeEvents on its original subject (header Nats-Subject).
func decodeStoredEvents(m *nats.Msg) ([]rydes.Event, error) {
	return decodeEvents(m.Header.Get(jetstream.SubjectHeader), m.Data, m.Header)
}

func decodeEvents(subject string, data []byte, h nats.Header) ([]rydes.Event, error) {
	events, err := store.DecodeEvents(data)
	if err != nil {
		return nil, fmt.Errorf("decode events on %s: %w", subject, err)
	}
	last := events[len(events)-1]
	if !subjectToken(last.RFQID) || !subjectToken(string(last.Type)) {
		return nil, fmt.Errorf("decode events on %s: not an event (rfq %q, seq %d, type %q)", subject, last.RFQID, last.Seq, last.Type)
	}
	if want := EventSubject(last.RFQID, last.Type, last.Seq); subject != want {
		return nil, fmt.Errorf("decode events on %s: the body is events for %s", subject, want)
	}
	var id string
	if h != nil {
		id = h.Get(jetstream.MsgIDHeader)
	}
	if want := EventsMsgID(last); id != want {
		return nil, fmt.Errorf("decode events on %s: message id %q, want %q", subject, id, want)
	}
	return events, nil
}

// Watch follows the events of one RFQ on its caller's goroutine: it has
// none of its own. The caller waits for Ready, then calls Next, until Next
// returns an error; and calls Close when it is done. A Watch is not safe
// for concurrent use.
//
// Ready fires when Next may have something to return: events the process's
// subscription brought, a sign that the watch fell behind, stored events
// read at the start, or the end of the watch. It may fire when Next then
// has nothing: Next returns no events and a nil error, and the caller
// waits again.
type Watch struct {
	b      *Bus
	rfqID  string
	hw     *hubWatcher
	seqr   *sequencer
	stored []rydes.Event // read at the start, not yet returned by Next
	err    error         // what Next returns from now on; io.EOF once over
}

// WatchRFQ follows the events of RFQ rfqID with a seq above afterSeq: those
// stored already and those to come. The returned Watch's Next returns them
// in seq order, each once, and io.EOF after the RFQ's final event
// (complete, expired or cancelled), after EndWatches or Close of the bus,
// or after the Watch's Close; a caller tells the first from the others by
// the last event's Type.Final(). ctx bounds only the reading of the stored
// events here; the caller ends the watch with Close.
//
// Events to come reach every watch of a process through one core NATS
// subscription to what EventsStream publishes again once it stored an event
// (StoredEventSubjectPrefix): a watch costs no consumer on the broker, and
// no goroutine in the process. Those stored already are read once, here,
// after the watch is registered with that subscription, with one direct
// get (see readStored); an event stored in between arrives both ways and is
// returned once. A watch that falls behind (its inbox full) reads the
// stream again in its next Next. It works from any rydes instance on the
// broker. Messages that are not events Publish stored (see DecodeEvents)
// are skipped, and so are repeats of a seq already returned. Events are
// kept for MaxAge at most (less at the stream's bounds): watching an RFQ
// whose events are gone waits for nothing, so callers should read the RFQ
// from the store first, and read a final one whose events were all
// published with StoredEvents instead.
//
// WatchRFQ started after EndWatches (or during it) returns a Watch that is
// over: its Ready fires at once and its Next returns io.EOF.
func (b *Bus) WatchRFQ(ctx context.Context, rfqID string, afterSeq int64) (*Watch, error) {
	if err := rydes.ValidateID(rfqID); err != nil {
		return nil, fmt.Errorf("watch rfq %q: %w", rfqID, err)
	}
	if afterSeq < 0 {
		return nil, fmt.Errorf("watch rfq %s: after seq must not be negative, got %d", rfqID, afterSeq)
	}
	if err := b.enter(); err != nil {
		return nil, fmt.Errorf("watch rfq %s: %w", rfqID, err)
	}
	defer b.wg.Done()
	if err := b.subscribeHub(); err != nil {
		return nil, fmt.Errorf("watch rfq %s: %w", rfqID, err)
	}
	w := &Watch{b: b, rfqID: rfqID, seqr: newSequencer(afterSeq)}
	var registered bool
	if w.hw, registered = b.hub.register(rfqID); !registered {
		w.err = io.EOF // watches ended before this one began
		return w, nil
	}
	// The first read of the stream happens here, so that a watch that
	// cannot read it fails at once.
	stored, err := b.readStored(ctx, rfqID, w.seqr)
	if err != nil {
		b.hub.unregister(w.hw)
		return nil, fmt.Errorf("watch rfq %s: %w", rfqID, err)
	}
	if len(stored) > 0 {
		w.stored = stored
		w.hw.wake()
	}
	return w, nil
}

// Ready returns the channel that receives when Next may have something to
// return (see Watch). It is the same channel for the life of the watch.
func (w *Watch) Ready() <-chan struct{} { return w.hw.ready }

// Next returns the events now ready, in seq order, each once: none (and a
// nil error) if nothing came since the last call. It does not wait for
// events; it blocks only when the watch fell behind, to read the stream
// again within ctx. It returns io.EOF once the final event was returned by
// an earlier call, or the watch ended (EndWatches, Close of the bus or of
// the watch); another error if reading the stream again failed, after
// which the watch is over too.
func (w *Watch) Next(ctx context.Context) ([]rydes.Event, error) {
	if w.err != nil {
		return nil, w.err
	}
	if w.b.watching.Err() != nil {
		w.end(io.EOF)
		return nil, io.EOF
	}
	ready := w.stored
	w.stored = nil
	if w.hw.behind.Swap(false) {
		// The hub dropped messages for this watch: the stream has them.
		r, err := w.b.readAgain(ctx, w.rfqID, w.seqr)
		if err != nil {
			w.end(err)
			if len(ready) > 0 {
				return w.untilFinal(ready), nil // the error comes next
			}
			return nil, err
		}
		ready = append(ready, r...)
	}
	// What the hub brought before this call; later messages wake Ready.
	for n := len(w.hw.live); n > 0; n-- {
		m := <-w.hw.live
		events, err := decodeStoredEvents(m)
		if err != nil {
			w.b.log.Warn("watch rfq: skipped a message that is not events", "rfq", w.rfqID, "subject", m.Subject, "err", err)
			continue
		}
		if events[0].RFQID != w.rfqID {
			continue
		}
		for _, ev := range events {
			r, skipped := w.seqr.add(ev)
			if skipped > 0 {
				w.b.log.Warn("watch rfq: gave up waiting for missing events", "rfq", w.rfqID, "missing", skipped, "resumed_at", r[0].Seq)
			}
			ready = append(ready, r...)
		}
	}
	return w.untilFinal(ready), nil
}

// untilFinal returns events up to the first final one, and ends the watch
// if there is one: nothing follows it.
func (w *Watch) untilFinal(events []rydes.Event) []rydes.Event {
	for i, ev := range events {
		if ev.Type.Final() {
			if w.err == nil {
				w.end(io.EOF)
			}
			return events[:i+1]
		}
	}
	return events
}

// end makes Next return err from now on, unregisters the watch from the
// hub and wakes Ready, so that a caller waiting on it learns of the end.
func (w *Watch) end(err error) {
	w.err = err
	w.stored = nil
	w.b.hub.unregister(w.hw)
	w.hw.wake()
}

// Close ends the watch and unregisters it from the process's
// subscription; Next then returns io.EOF. Closing a watch that is over
// already does nothing more.
func (w *Watch) Close() {
	if w.err == nil {
		w.end(io.EOF)
	}
}

// readAgain reads the stored events of rfqID again for a watch that fell
// behind, as readStored does. Close waits for it; EndWatches and Close cut
// it short, and it then returns io.EOF: the watch is over.
func (b *Bus) readAgain(ctx context.Context, rfqID string, seqr *sequencer) ([]rydes.Event, error) {
	if err := b.enter(); err != nil {
		return nil, io.EOF
	}
	defer b.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(b.watching, cancel)()
	ready, err := b.readStored(ctx, rfqID, seqr)
	switch {
	case err == nil:
		return ready, nil
	case b.watching.Err() != nil:
		return nil, io.EOF
	case ctx.Err() == nil:
		b.log.Warn("watch rfq: reading the stream again after falling behind", "rfq", rfqID, "err", err)
	}
	return nil, fmt.Errorf("watch rfq %s: read the stream again after falling behind: %w", rfqID, err)
}

// readStored reads the events of rfqID that EventsStream holds and returns
// those the sequencer now releases.
func (b *Bus) readStored(ctx context.Context, rfqID string, seqr *sequencer) ([]rydes.Event, error) {
	events, err := b.storedEvents(ctx, rfqID)
	if err != nil {
		return nil, err
	}
	var ready []rydes.Event
	for _, ev := range events {
		r, _ := seqr.add(ev)
		ready = append(ready, r...)
	}
	return ready, nil
}

// StoredEvents returns the events of RFQ rfqID with a seq above afterSeq
// that EventsStream holds now, in seq order, each once. It does not wait
// for more, nor for a gap to fill: the stream drops its oldest events (see
// MaxAge and StreamLimits), so those of an RFQ closed long ago may be gone,
// or only some of them. A caller that knows every event of the RFQ was
// published (store.Store's OutboxHoldsEvents) reads a final RFQ's events
// this way; WatchRFQ follows an RFQ whose events are still to come.
func (b *Bus) StoredEvents(ctx context.Context, rfqID string, afterSeq int64) ([]rydes.Event, error) {
	if err := rydes.ValidateID(rfqID); err != nil {
		return nil, fmt.Errorf("stored events of rfq %q: %w", rfqID, err)
	}
	if err := b.enter(); err != nil {
		return nil, fmt.Errorf("stored events of rfq %s: %w", rfqID, err)
	}
	defer b.wg.Done()
	events, err := b.storedEvents(ctx, rfqID)
	if err != nil {
		return nil, fmt.Errorf("stored events of rfq %s: %w", rfqID, err)
	}
	slices.SortStableFunc(events, func(x, y rydes.Event) int { return cmp.Compare(x.Seq, y.Seq) })
	out := make([]rydes.Event, 0, len(events))
	for _, ev := range events {
		if ev.Seq > afterSeq && (len(out) == 0 || ev.Seq > out[len(out)-1].Seq) {
			out = append(out, ev)
		}
	}
	return out, nil
}

// storedEvents reads the events of rfqID that EventsStream holds, in the
// order of its messages.
//
// As each message of events has a subject of its own (EventSubject), one
// direct get of the last message on every subject of the RFQ (JetStream's
// multi_last) returns all of them, found through the broker's per-subject
// index. A
// consumer filtered on the RFQ instead makes the broker walk the stream
// message by message past some 64,000 subjects: with 20,000 open RFQs and
// 2,000 watchers that was gigabytes of copied messages. The consumer is
// the fallback, for a broker older than 2.11 or an RFQ with over a
// thousand messages of events.
func (b *Bus) storedEvents(ctx context.Context, rfqID string) ([]rydes.Event, error) {
	events, err := b.storedEventsDirect(ctx, rfqID)
	if errors.Is(err, errNoDirectRead) {
		b.log.Debug("watch rfq: reading stored events with a consumer", "rfq", rfqID, "err", err)
		return b.storedEventsConsumer(ctx, rfqID)
	}
	return events, err
}

// storedEventsDirect reads the events of rfqID with one batched direct get.
func (b *Bus) storedEventsDirect(ctx context.Context, rfqID string) ([]rydes.Event, error) {
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
		evs, err := decodeEvents(subject, m.Data, m.Header)
		if err != nil {
			// Something else landed on an event's subject after it (a
			// server response sent there as a reply subject) and hides
			// it from a read of each subject's last message.
			return nil, fmt.Errorf("%w: %w", errNoDirectRead, err)
		}
		events = append(events, evs...)
	}
	return events, nil
}

// storedEventsConsumer reads the events of rfqID with a consumer of its own
// that it deletes after.
func (b *Bus) storedEventsConsumer(ctx context.Context, rfqID string) ([]rydes.Event, error) {
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
	var events []rydes.Event
	for {
		batch, err := cons.FetchNoWait(watchBuffer)
		if err != nil {
			return nil, fmt.Errorf("read stored events: fetch: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			evs, err := DecodeEvents(m)
			if err != nil {
				b.log.Warn("watch rfq: skipped a message that is not events", "rfq", rfqID, "subject", m.Subject(), "err", err)
				continue
			}
			events = append(events, evs...)
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("read stored events: %w", err)
		}
		if n == 0 {
			return events, nil
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

// subscribeHub subscribes the hub on first use.
func (b *Bus) subscribeHub() error {
	b.hubOnce.Do(func() { b.hubErr = b.hub.subscribe(b.js.Conn()) })
	return b.hubErr
}

// eventHub is one process's subscription to the stored events, which it
// hands to the watches of each RFQ.
type eventHub struct {
	log *slog.Logger

	mu       sync.RWMutex
	sub      *nats.Subscription                  // nil until subscribe, and after close
	ended    bool                                // every watch ended: none registers any more
	watchers map[string]map[*hubWatcher]struct{} // by rfq id
}

// hubWatcher is one watch's inbox: the stored events of its RFQ, a flag
// that some were dropped because the inbox was full, and the watch's Ready
// signal, which the hub raises after each.
type hubWatcher struct {
	rfqID  string
	live   chan *nats.Msg
	behind atomic.Bool
	ready  chan struct{} // capacity 1: a signal pending or not
}

// wake raises w's Ready signal, unless one is pending already.
func (w *hubWatcher) wake() {
	select {
	case w.ready <- struct{}{}:
	default:
	}
}

func newEventHub(log *slog.Logger) *eventHub {
	return &eventHub{log: log, watchers: map[string]map[*hubWatcher]struct{}{}}
}

// subscribe makes the hub's subscription.
func (h *eventHub) subscribe(nc *nats.Conn) error {
	sub, err := nc.Subscribe(StoredEventSubjectPrefix+">", h.dispatch)
	if err != nil {
		return fmt.Errorf("subscribe to stored events: %w", err)
	}
	// The callback never blocks, so the subscription's own buffer only
	// absorbs bursts; a watch that falls behind reads the stream again.
	if err := sub.SetPendingLimits(1<<20, 256<<20); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("subscribe to stored events: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sub = sub
	return nil
}

// dispatch hands a stored event to the watches of its RFQ, without
// blocking: a watch whose inbox is full is told it fell behind. Either way
// the watch's Ready fires, after the inbox or the flag changed.
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
			w.behind.Store(true)
		}
		w.wake()
	}
}

// register returns a new inbox for a watch of rfqID, registered to receive
// the RFQ's stored events; after end, it returns one that is not (false),
// its Ready raised.
func (h *eventHub) register(rfqID string) (*hubWatcher, bool) {
	w := &hubWatcher{rfqID: rfqID, live: make(chan *nats.Msg, watchBuffer), ready: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended {
		w.wake()
		return w, false
	}
	ws := h.watchers[rfqID]
	if ws == nil {
		ws = map[*hubWatcher]struct{}{}
		h.watchers[rfqID] = ws
	}
	ws[w] = struct{}{}
	return w, true
}

// unregister forgets w; forgetting it twice does nothing.
func (h *eventHub) unregister(w *hubWatcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ws, ok := h.watchers[w.rfqID]
	if !ok {
		return
	}
	delete(ws, w)
	if len(ws) == 0 {
		delete(h.watchers, w.rfqID)
	}
}

// end ends every watch: it raises the Ready of each registered one (whose
// Next then sees that watching ended), forgets them all, and refuses those
// that register after.
func (h *eventHub) end() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ended = true
	for _, ws := range h.watchers {
		for w := range ws {
			w.wake()
		}
	}
	clear(h.watchers)
}

// close ends the subscription.
func (h *eventHub) close() {
	h.mu.Lock()
	sub := h.sub
	h.sub = nil
	h.mu.Unlock()
	if sub == nil {
		return
	}
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
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
