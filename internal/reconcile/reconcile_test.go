package reconcile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/bus"
	"github.com/wildrydes/rydes/internal/reconcile"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
	"github.com/wildrydes/rydes/internal/store/sqlite"
)

// harness is a real embedded broker and a real SQLite store, with the
// outbox relayed by hand.
type harness struct {
	t       *testing.T
	ctx     context.Context
	clock   *clockwork.FakeClock
	store   *sqlite.Store
	bus     *bus.Bus
	js      jetstream.JetStream
	rec     *reconcile.Reconciler
	queues  int // calls of EnsureQueues
	limits  rydes.Limits
	created []rydes.RFQ
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx := rydestest.Context(t)
	log := rydestest.Logger(t)
	emb, err := bus.StartEmbedded(ctx, bus.EmbeddedConfig{StoreDir: t.TempDir(), SyncAlways: true, Logger: log})
	require.NoError(t, err)
	t.Cleanup(emb.Shutdown)
	nc, err := emb.Connect()
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	b, err := bus.New(ctx, nc, bus.Config{Logger: log})
	require.NoError(t, err)
	t.Cleanup(b.Close)
	st, err := sqlite.Open(ctx, t.TempDir()+"/rydes.db", log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })

	h := &harness{
		t: t, ctx: ctx, clock: clockwork.NewFakeClockAt(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)),
		store: st, bus: b, js: b.JetStream(),
		limits: rydes.Limits{DefaultTimeout: time.Minute, MaxTimeout: 10 * time.Minute},
	}
	for _, p := range []string{"p1", "p2"} {
		require.NoError(t, b.EnsureProviderQueue(ctx, p))
	}
	h.rec, err = reconcile.New(reconcile.Config{
		Store: st, Broker: b, Clock: h.clock, Logger: log,
		EnsureQueues: func(ctx context.Context) error {
			h.queues++
			for _, p := range []string{"p1", "p2"} {
				if err := b.EnsureProviderQueue(ctx, p); err != nil {
					return err
				}
			}
			return nil
		},
	})
	require.NoError(t, err)
	return h
}

// createRFQ stores an RFQ asking p1 and p2 and relays its outbox.
func (h *harness) createRFQ() rydes.RFQ {
	h.t.Helper()
	r, err := rydes.NewRFQ(rydes.NewID(), rydes.RFQRequest{Customer: "alice", From: "Castle", To: "Rainbow"}, []string{"p1", "p2"}, h.clock.Now(), h.limits)
	require.NoError(h.t, err)
	require.NoError(h.t, h.store.CreateRFQ(h.ctx, store.CreateRFQParams{RFQ: r}))
	h.relay()
	h.created = append(h.created, r)
	return r
}

// relay publishes and deletes the outbox, recording the acknowledged
// sequences, as the engine's relay does.
func (h *harness) relay() {
	h.t.Helper()
	msgs, err := h.store.PendingOutbox(h.ctx, store.PendingOutboxParams{Limit: 1000})
	require.NoError(h.t, err)
	acked, err := h.bus.Publish(h.ctx, msgs)
	require.NoError(h.t, err)
	ids := make([]int64, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	require.NoError(h.t, h.store.DeleteOutbox(h.ctx, store.DeleteOutboxParams{IDs: ids, Acked: acked}))
}

// relayAcked returns the relay's acked mark of stream, "" if none.
func (h *harness) relayAcked(stream string) string {
	h.t.Helper()
	v, _, err := h.store.GetSetting(h.ctx, store.AckedSetting(stream))
	require.NoError(h.t, err)
	return v
}

// setRelayAcked sets the relay's acked mark of stream.
func (h *harness) setRelayAcked(stream string, seq uint64) {
	h.t.Helper()
	require.NoError(h.t, h.store.PutSetting(h.ctx, store.AckedSetting(stream), strconv.FormatUint(seq, 10)))
}

func (h *harness) once() reconcile.Report {
	h.t.Helper()
	rep, err := h.rec.Once(h.ctx)
	require.NoError(h.t, err)
	return rep
}

func (h *harness) lastSeq(stream string) uint64 {
	h.t.Helper()
	st, err := h.bus.StreamState(h.ctx, stream)
	require.NoError(h.t, err)
	return st.LastSeq
}

// queued returns the RFQ ids waiting in provider's queue.
func (h *harness) queued(provider string) []string {
	h.t.Helper()
	s, err := h.js.Stream(h.ctx, bus.DispatchStream)
	require.NoError(h.t, err)
	var ids []string
	info, err := s.Info(h.ctx)
	require.NoError(h.t, err)
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(h.ctx, seq)
		if err != nil {
			continue // deleted
		}
		if !strings.HasPrefix(m.Subject, bus.DispatchSubjectPrefix+provider+".") {
			continue
		}
		var req rydes.ProviderRequest
		require.NoError(h.t, json.Unmarshal(m.Data, &req))
		ids = append(ids, req.RFQID)
	}
	return ids
}

func TestNoLossChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.createRFQ()
	rep := h.once()
	require.Empty(t, rep.Losses, "first round: nothing to compare with")
	before := map[string]uint64{bus.DispatchStream: h.lastSeq(bus.DispatchStream), bus.EventsStream: h.lastSeq(bus.EventsStream)}

	h.createRFQ()
	rep = h.once()
	require.Empty(t, rep.Losses)
	require.Zero(t, rep.Dispatches+rep.Events, "nothing re-published")
	require.Equal(t, before[bus.DispatchStream]+2, h.lastSeq(bus.DispatchStream), "only the new RFQ's two requests")
	require.Zero(t, h.queues)

	// The marks are in the database: a reconciler of another process (or
	// after a restart) compares with them.
	v, ok, err := h.store.GetSetting(h.ctx, reconcile.MarkSetting(bus.DispatchStream))
	require.NoError(t, err)
	require.True(t, ok)
	var m reconcile.Mark
	require.NoError(t, json.Unmarshal([]byte(v), &m))
	require.Equal(t, h.lastSeq(bus.DispatchStream), m.LastSeq)
}

func TestLostDispatchStreamIsRepublished(t *testing.T) {
	h := newHarness(t)
	open := h.createRFQ()
	answered := h.createRFQ()
	// p1 answered the second RFQ: only p2 is pending in it.
	_, err := h.store.StageAnswers(h.ctx, store.StageAnswersParams{Now: h.clock.Now(), Answers: []store.StageAnswer{{
		Answer: rydes.Answer{RFQID: answered.ID, Provider: "p1", Kind: rydes.AnswerDecline, ReceivedAt: h.clock.Now()},
	}}})
	require.NoError(t, err)
	h.relay()
	require.Empty(t, h.once().Losses)

	// The broker loses the stream with its consumers; rydes's bus
	// re-creates it empty, as a restarted broker with lost files would.
	require.NoError(t, h.js.DeleteStream(h.ctx, bus.DispatchStream))
	require.NoError(t, h.bus.EnsureStreams(h.ctx))
	require.Empty(t, h.queued("p1"))

	rep := h.once()
	require.Contains(t, rep.Losses, bus.DispatchStream)
	require.Contains(t, rep.Losses[bus.DispatchStream], "created again")
	require.Equal(t, 3, rep.Dispatches, "p1 and p2 of the first RFQ, p2 of the second")
	require.Equal(t, 1, h.queues, "the providers' queues are made again")
	require.Equal(t, []string{open.ID}, h.queued("p1"))
	require.ElementsMatch(t, []string{open.ID, answered.ID}, h.queued("p2"))
	_, err = h.js.Consumer(h.ctx, bus.DispatchStream, bus.ProviderQueue("p1"))
	require.NoError(t, err, "p1's queue is there again")

	// The relay's mark counted the old stream's sequences; the heal set it
	// back to the new one's.
	require.Equal(t, strconv.FormatUint(h.lastSeq(bus.DispatchStream), 10), h.relayAcked(bus.DispatchStream))

	// Healed: the next round finds nothing.
	rep = h.once()
	require.Empty(t, rep.Losses)
	require.Zero(t, rep.Dispatches)
}

func TestMissingStreamIsCreatedAndHealed(t *testing.T) {
	h := newHarness(t)
	r := h.createRFQ()
	h.once()
	require.NoError(t, h.js.DeleteStream(h.ctx, bus.DispatchStream))
	rep := h.once()
	require.Equal(t, "the stream is missing", rep.Losses[bus.DispatchStream])
	require.Equal(t, 2, rep.Dispatches)
	require.Equal(t, []string{r.ID}, h.queued("p1"))
}

func TestSequenceGoingBackIsALoss(t *testing.T) {
	h := newHarness(t)
	h.createRFQ()
	h.once()
	// A mark above the stream's last sequence is what a broker that lost
	// its acknowledged tail (lazy fsync, a crash) looks like.
	st, err := h.bus.StreamState(h.ctx, bus.DispatchStream)
	require.NoError(t, err)
	b, err := json.Marshal(reconcile.Mark{Created: st.Created, LastSeq: st.LastSeq + 5})
	require.NoError(t, err)
	require.NoError(t, h.store.PutSetting(h.ctx, reconcile.MarkSetting(bus.DispatchStream), string(b)))

	rep := h.once()
	require.Contains(t, rep.Losses[bus.DispatchStream], "went back")
	require.Equal(t, 2, rep.Dispatches)
	// Re-published with their original message ids: the broker still held
	// them, so it stored nothing twice.
	require.Equal(t, st.LastSeq, h.lastSeq(bus.DispatchStream))
}

// TestRelayAckedAboveStreamIsALoss is a broker that lost the tail the relay
// published since the last round (lazy fsync and a power loss taking rydes
// down with it, so the bus's acks in memory are gone too): the relay's
// mark, written with the delete of the outbox rows, is above the stream's
// last sequence.
func TestRelayAckedAboveStreamIsALoss(t *testing.T) {
	h := newHarness(t)
	r := h.createRFQ()
	seq := h.lastSeq(bus.DispatchStream)
	require.Equal(t, strconv.FormatUint(seq, 10), h.relayAcked(bus.DispatchStream), "the relay recorded what it published")
	require.Empty(t, h.once().Losses)

	// The relay published three more requests, acknowledged at seq+1 to
	// seq+3, which the broker lost.
	h.setRelayAcked(bus.DispatchStream, seq+3)
	rep := h.once()
	require.Equal(t, fmt.Sprintf("its last sequence went back from %d to %d", seq+3, seq), rep.Losses[bus.DispatchStream])
	require.NotContains(t, rep.Losses, bus.EventsStream)
	require.Equal(t, 2, rep.Dispatches, "p1's and p2's requests of the open RFQ are re-published")
	require.Equal(t, []string{r.ID}, h.queued("p1"))
	require.Equal(t, strconv.FormatUint(h.lastSeq(bus.DispatchStream), 10), h.relayAcked(bus.DispatchStream),
		"the relay's mark is set back to the healed stream's last sequence")

	rep = h.once()
	require.Empty(t, rep.Losses, "healed: the next round finds nothing")
	require.Zero(t, rep.Dispatches+rep.Events)
}

// With no reconciliation mark yet (the first round, rydes restarted before
// any), the relay's mark alone detects the lost tail.
func TestRelayAckedWithoutMarkIsALoss(t *testing.T) {
	h := newHarness(t)
	h.createRFQ()
	seq := h.lastSeq(bus.EventsStream)
	h.setRelayAcked(bus.EventsStream, seq+1)
	rep := h.once()
	require.Contains(t, rep.Losses[bus.EventsStream], "went back")
	require.NotContains(t, rep.Losses, bus.DispatchStream, "the relay's mark of the dispatches is the stream's")
	require.Equal(t, strconv.FormatUint(h.lastSeq(bus.EventsStream), 10), h.relayAcked(bus.EventsStream))
	require.Empty(t, h.once().Losses)
}

// A stream created again is healed for that, whatever the relay's mark
// (which may count the old incarnation's sequences), and the heal sets the
// relay's mark to the new incarnation's last sequence, so that it does not
// make every later round heal again.
func TestNewIncarnationResetsRelayAcked(t *testing.T) {
	h := newHarness(t)
	h.createRFQ()
	require.Empty(t, h.once().Losses)
	st, err := h.bus.StreamState(h.ctx, bus.DispatchStream)
	require.NoError(t, err)
	// A mark of the current incarnation, and a relay's mark that is
	// higher but belongs to (the reconciler's mark of) an older one.
	b, err := json.Marshal(reconcile.Mark{Created: st.Created.Add(-time.Hour), LastSeq: st.LastSeq})
	require.NoError(t, err)
	require.NoError(t, h.store.PutSetting(h.ctx, reconcile.MarkSetting(bus.DispatchStream), string(b)))
	h.setRelayAcked(bus.DispatchStream, st.LastSeq+10)
	rep := h.once()
	require.Contains(t, rep.Losses[bus.DispatchStream], "created again", "the incarnation, not the sequence, tells")
	require.Equal(t, strconv.FormatUint(h.lastSeq(bus.DispatchStream), 10), h.relayAcked(bus.DispatchStream),
		"reset with the new incarnation")
	require.Empty(t, h.once().Losses)
}

func TestLostEventsStreamGetsFinalEventsBack(t *testing.T) {
	h := newHarness(t)
	old := h.createRFQ()
	_, err := h.store.CancelRFQ(h.ctx, store.CancelRFQParams{ID: old.ID, Now: h.clock.Now()})
	require.NoError(t, err)
	h.relay()
	h.clock.Advance(bus.MaxAge + time.Hour) // beyond the events' retention
	cancelled := h.createRFQ()
	res, err := h.store.CancelRFQ(h.ctx, store.CancelRFQParams{ID: cancelled.ID, Now: h.clock.Now()})
	require.NoError(t, err)
	h.relay()
	stillOpen := h.createRFQ()
	h.once()

	require.NoError(t, h.js.DeleteStream(h.ctx, bus.EventsStream))
	rep := h.once()
	require.Equal(t, "the stream is missing", rep.Losses[bus.EventsStream])
	require.Equal(t, 1, rep.Events, "only the RFQ closed within the events' retention")

	s, err := h.js.Stream(h.ctx, bus.EventsStream)
	require.NoError(t, err)
	m, err := s.GetLastMsgForSubject(h.ctx, bus.EventSubject(cancelled.ID, rydes.EventCancelled, res.Event.Seq))
	require.NoError(t, err)
	evs, err := store.DecodeEvents(m.Data)
	require.NoError(t, err)
	require.Equal(t, []rydes.Event{res.Event}, evs, "the final event as the store emitted it, alone")
	require.Equal(t, "event."+res.Event.ID(), m.Header.Get(jetstream.MsgIDHeader))
	_, err = s.GetLastMsgForSubject(h.ctx, bus.EventSubject(stillOpen.ID, rydes.EventCreated, 1))
	require.Error(t, err, "non-final events are not re-published")
}

func TestRunStopsWithContext(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() { done <- h.rec.Run(ctx) }()
	h.clock.BlockUntilContext(h.ctx, 1) // the first round ran and waits
	h.clock.Advance(time.Minute)
	h.clock.BlockUntilContext(h.ctx, 1) // the second too
	cancel()
	require.NoError(t, <-done)
	_, ok, err := h.store.GetSetting(h.ctx, reconcile.MarkSetting(bus.EventsStream))
	require.NoError(t, err)
	require.True(t, ok, "a round saved its marks")
}

func TestContinueWaitsForTheFirstRound(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() { done <- h.rec.Continue(ctx) }()
	h.clock.BlockUntilContext(h.ctx, 1) // waits, no round yet
	_, ok, err := h.store.GetSetting(h.ctx, reconcile.MarkSetting(bus.EventsStream))
	require.NoError(t, err)
	require.False(t, ok, "no round before the first Interval")
	h.clock.Advance(time.Minute)
	h.clock.BlockUntilContext(h.ctx, 1) // the first round ran and waits
	cancel()
	require.NoError(t, <-done)
	_, ok, err = h.store.GetSetting(h.ctx, reconcile.MarkSetting(bus.EventsStream))
	require.NoError(t, err)
	require.True(t, ok, "a round after one Interval saved its marks")
}
