package bench

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/wildrydes/rydes"
)

// tracker joins what the load generator, the bench's providers and the
// event observers see of each request, and records the latencies:
//
//   - create→complete: from when the request was meant to be sent (open
//     loop) or was sent (closed loop) to when its complete event was seen
//     on the events stream;
//   - answer→staged: from when a bench provider handed its answer to the
//     provider SDK (which publishes it to the answers stream at once) to
//     when the matching quote event was seen on the events stream, which
//     rydes publishes after the transaction that staged it committed;
//   - staged→SSE: from when an event was seen on the events stream to when
//     it arrived on a request's server-sent event stream, for the requests
//     watched over SSE, counting only events published after the stream
//     was open (a replay on connection measures the connection, not the
//     push).
//
// Only what happens inside the measurement window counts: requests started
// in it, answers given in it, events seen in it.
type tracker struct {
	createComplete *Histogram
	answerStaged   *Histogram
	stagedSSE      *Histogram

	// window is [from, to); zero until measuring starts.
	from, to atomic.Int64 // unix nanos

	created   atomic.Int64 // requests created (201) in the window
	completed atomic.Int64 // requests whose complete event was seen in the window
	stagedN   atomic.Int64 // answers whose event was seen in the window
	expired   atomic.Int64 // requests that expired or were cancelled
	inflight  atomic.Int64 // created, not yet final

	// Totals since the start, window or not, for the progress line.
	totalCreated, totalCompleted, totalStaged atomic.Int64

	mu      sync.Mutex
	rfqs    map[string]*rfqState
	answers map[answerKey]time.Time   // answer given, not yet seen staged
	sse     map[eventKey]*sseObserved // events of watched requests
}

type answerKey struct{ rfq, provider string }

type eventKey struct {
	rfq string
	seq int64
}

// sseObserved is what was seen of one event of a watched request.
type sseObserved struct {
	staged   time.Time // seen on the events stream
	pushed   time.Time // seen on the SSE stream
	opened   time.Time // when that SSE stream opened
	final    bool
	hasStage bool
	hasPush  bool
}

// rfqState is one request's progress.
type rfqState struct {
	start    time.Time // when it was (meant to be) sent; zero until created
	created  bool
	final    bool
	finalAt  time.Time
	complete bool
	watched  bool          // over SSE
	done     chan struct{} // closed when the final event is seen
}

func newTracker() *tracker {
	return &tracker{
		createComplete: NewHistogram(),
		answerStaged:   NewHistogram(),
		stagedSSE:      NewHistogram(),
		rfqs:           make(map[string]*rfqState),
		answers:        make(map[answerKey]time.Time),
		sse:            make(map[eventKey]*sseObserved),
	}
}

// setWindow starts the measurement window.
func (t *tracker) setWindow(from, to time.Time) {
	t.from.Store(from.UnixNano())
	t.to.Store(to.UnixNano())
}

// inWindow reports whether at falls in the measurement window.
func (t *tracker) inWindow(at time.Time) bool {
	from := t.from.Load()
	if from == 0 {
		return false
	}
	n := at.UnixNano()
	return n >= from && n < t.to.Load()
}

// state returns id's state, making it; t.mu is held.
func (t *tracker) state(id string) *rfqState {
	s := t.rfqs[id]
	if s == nil {
		s = &rfqState{done: make(chan struct{})}
		t.rfqs[id] = s
	}
	return s
}

// createdRFQ records that request id, (meant to be) sent at start, was
// created, and whether it will be watched over SSE, and returns a channel
// closed once it is final. Its final event may have been seen already.
func (t *tracker) createdRFQ(id string, start time.Time, watched bool) <-chan struct{} {
	t.totalCreated.Add(1)
	if t.inWindow(start) {
		t.created.Add(1)
	}
	t.inflight.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.state(id)
	s.start, s.created, s.watched = start, true, watched
	if s.final {
		t.finish(id, s)
	}
	return s.done
}

// finish records a request that is created and final; t.mu is held.
func (t *tracker) finish(id string, s *rfqState) {
	t.inflight.Add(-1)
	if !s.complete {
		t.expired.Add(1)
	}
	if s.complete && t.inWindow(s.start) {
		t.createComplete.Record(s.finalAt.Sub(s.start))
	}
	delete(t.rfqs, id)
}

// answered records that provider gave its answer to request id at at.
func (t *tracker) answered(id, provider string, at time.Time) {
	t.mu.Lock()
	t.answers[answerKey{id, provider}] = at
	t.mu.Unlock()
}

// event records an event seen on the events stream at at.
func (t *tracker) event(ev rydes.Event, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch ev.Type {
	case rydes.EventQuote, rydes.EventDecline:
		k := answerKey{ev.RFQID, ev.Provider}
		if given, ok := t.answers[k]; ok {
			delete(t.answers, k)
			if t.inWindow(given) {
				t.answerStaged.Record(at.Sub(given))
			}
		}
		t.totalStaged.Add(1)
		if t.inWindow(at) {
			t.stagedN.Add(1)
		}
	}
	if s := t.rfqs[ev.RFQID]; s != nil && s.watched {
		o := t.sseEntry(ev)
		o.staged, o.hasStage = at, true
		t.pairSSE(ev, o)
	}
	if ev.Type.Final() {
		s := t.state(ev.RFQID)
		if s.final {
			return // a redelivery
		}
		s.final, s.finalAt = true, at
		s.complete = ev.Type == rydes.EventComplete
		close(s.done)
		if s.complete {
			t.totalCompleted.Add(1)
			if t.inWindow(at) {
				t.completed.Add(1)
			}
		}
		if s.created {
			t.finish(ev.RFQID, s)
		}
	}
}

// pushed records an event that arrived on an SSE stream opened at opened.
func (t *tracker) pushed(ev rydes.Event, at, opened time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o := t.sseEntry(ev)
	o.pushed, o.opened, o.hasPush = at, opened, true
	t.pairSSE(ev, o)
}

// sseEntry returns the record of ev; t.mu is held.
func (t *tracker) sseEntry(ev rydes.Event) *sseObserved {
	k := eventKey{ev.RFQID, ev.Seq}
	o := t.sse[k]
	if o == nil {
		o = &sseObserved{final: ev.Type.Final()}
		t.sse[k] = o
	}
	return o
}

// pairSSE records staged→SSE once both sides of ev were seen; t.mu is held.
func (t *tracker) pairSSE(ev rydes.Event, o *sseObserved) {
	if !o.hasStage || !o.hasPush {
		return
	}
	delete(t.sse, eventKey{ev.RFQID, ev.Seq})
	if o.staged.After(o.opened) && t.inWindow(o.staged) {
		t.stagedSSE.Record(o.pushed.Sub(o.staged))
	}
}
