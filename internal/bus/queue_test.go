package bus

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
)

// waitQueueInfo waits until provider's queue has the pending and in-flight
// counts of want, and returns its info.
func (bb *bundle) waitQueueInfo(t *testing.T, provider string, want QueueInfo) QueueInfo {
	t.Helper()
	var got QueueInfo
	rydestest.WaitFor(t, "queue of "+provider, func() bool {
		var err error
		got, err = bb.bus.QueueInfo(rydestest.Context(t), provider)
		require.NoError(t, err)
		return got.Pending == want.Pending && got.InFlight == want.InFlight
	})
	return got
}

func TestQueueInfo(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	require.NoError(t, bb.bus.EnsureProviderQueue(ctx, "p1"))
	require.NoError(t, bb.bus.EnsureProviderQueue(ctx, "p2"))

	qi, err := bb.bus.QueueInfo(ctx, "p1")
	require.NoError(t, err)
	require.Equal(t, QueueInfo{}, qi, "an empty queue has no oldest request")

	before := time.Now()
	_, err = bb.bus.Publish(ctx, []store.OutboxMessage{dispatchMsg(1, rfq1, "p1")})
	require.NoError(t, err)
	between := time.Now()
	_, err = bb.bus.Publish(ctx, []store.OutboxMessage{dispatchMsg(2, rfq2, "p1"), dispatchMsg(3, rfq1, "p2")})
	require.NoError(t, err)

	qi = bb.waitQueueInfo(t, "p1", QueueInfo{Pending: 2})
	require.False(t, qi.Oldest.Before(before.Truncate(time.Microsecond)), "oldest %s, published after %s", qi.Oldest, before)
	require.False(t, qi.Oldest.After(between), "oldest %s is the second request, published after %s", qi.Oldest, between)
	require.Equal(t, time.UTC, qi.Oldest.Location())
	first := qi.Oldest

	// Delivered, not acked: still the oldest request in the queue.
	cons, err := bb.js.Consumer(ctx, DispatchStream, ProviderQueue("p1"))
	require.NoError(t, err)
	m, err := cons.Next(jetstream.FetchContext(ctx))
	require.NoError(t, err)
	require.Equal(t, rfq1, m.Headers().Get(HeaderRFQID))
	qi = bb.waitQueueInfo(t, "p1", QueueInfo{Pending: 1, InFlight: 1})
	require.True(t, first.Equal(qi.Oldest))

	// Acked: the second request is the oldest now.
	require.NoError(t, m.DoubleAck(ctx))
	qi = bb.waitQueueInfo(t, "p1", QueueInfo{Pending: 1})
	require.True(t, qi.Oldest.After(first) || qi.Oldest.Equal(first))
	md, err := cons.Next(jetstream.FetchContext(ctx))
	require.NoError(t, err)
	meta, err := md.Metadata()
	require.NoError(t, err)
	require.True(t, meta.Timestamp.Equal(qi.Oldest), "oldest %s, the request was stored at %s", qi.Oldest, meta.Timestamp)
	require.NoError(t, md.DoubleAck(ctx))
	qi = bb.waitQueueInfo(t, "p1", QueueInfo{})
	require.True(t, qi.Oldest.IsZero())

	// p2's queue is its own.
	qi = bb.waitQueueInfo(t, "p2", QueueInfo{Pending: 1})
	require.False(t, qi.Oldest.IsZero())

	_, err = bb.bus.QueueInfo(ctx, "p3")
	require.Equal(t, rydes.ENOTFOUND, rydes.ErrorCodeOf(err))
	_, err = bb.bus.QueueInfo(ctx, "a.b")
	require.Error(t, err)
}

func TestRedispatch(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	require.NoError(t, bb.bus.EnsureProviderQueue(ctx, "p1"))
	req := dispatchMsg(1, rfq1, "p1").Dispatch.Request

	require.NoError(t, bb.bus.Redispatch(ctx, "p1", req))
	require.NoError(t, bb.bus.Redispatch(ctx, "p1", req), "a request the queue holds is not an error")
	bb.waitQueueInfo(t, "p1", QueueInfo{Pending: 1})
	require.EqualValues(t, 1, bb.streamMsgs(t, DispatchStream), "a request the queue holds is stored once")

	cons, err := bb.js.Consumer(ctx, DispatchStream, ProviderQueue("p1"))
	require.NoError(t, err)
	m, err := cons.Next(jetstream.FetchContext(ctx))
	require.NoError(t, err)
	require.Equal(t, DispatchSubject("p1", rfq1), m.Subject())
	require.Equal(t, rfq1, m.Headers().Get(HeaderRFQID))
	var got rydes.ProviderRequest
	require.NoError(t, json.Unmarshal(m.Data(), &got))
	require.Equal(t, req, got)
	require.NoError(t, m.DoubleAck(ctx))

	// Once the provider acknowledged it, a redispatch is another delivery.
	_, err = bb.bus.Publish(ctx, []store.OutboxMessage{dispatchMsg(2, rfq2, "p1")})
	require.NoError(t, err)
	require.NoError(t, bb.bus.Redispatch(ctx, "p1", req))
	bb.waitQueueInfo(t, "p1", QueueInfo{Pending: 2})

	require.Error(t, bb.bus.Redispatch(ctx, "p.1", req))
	bad := req
	bad.RFQID = "a.b"
	require.Error(t, bb.bus.Redispatch(ctx, "p1", bad))
	bb.bus.Close()
	require.ErrorContains(t, bb.bus.Redispatch(ctx, "p1", req), "closed")
}

// A dispatch is stored once while its provider has not acknowledged it,
// however often it is published (the relay again after a crash,
// reconciliation), with no id for the broker to remember; once
// acknowledged, it is gone, and publishing it again is another delivery.
func TestDispatchIsStoredOnceWhileHeld(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	require.NoError(t, bb.bus.EnsureProviderQueue(ctx, "p1"))
	d := dispatchMsg(1, rfq1, "p1")

	first, err := bb.bus.Publish(ctx, []store.OutboxMessage{d})
	require.NoError(t, err)
	again, err := bb.bus.Publish(ctx, []store.OutboxMessage{d, dispatchMsg(2, rfq2, "p1"), d})
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{DispatchStream: 2}, again, "the acked sequences: rfq2's, and rfq1's as first stored")
	require.Equal(t, first[DispatchStream], uint64(1))
	require.EqualValues(t, 2, bb.streamMsgs(t, DispatchStream))

	cons, err := bb.js.Consumer(ctx, DispatchStream, ProviderQueue("p1"))
	require.NoError(t, err)
	m, err := cons.Next(jetstream.FetchContext(ctx))
	require.NoError(t, err)
	require.Equal(t, DispatchSubject("p1", rfq1), m.Subject())
	require.NoError(t, m.DoubleAck(ctx))
	require.EqualValues(t, 1, bb.streamMsgs(t, DispatchStream))

	_, err = bb.bus.Publish(ctx, []store.OutboxMessage{d})
	require.NoError(t, err)
	require.EqualValues(t, 2, bb.streamMsgs(t, DispatchStream), "acknowledged, then published again: delivered again")
}

// Something else that landed on a request's subject first (any message
// there that is not a request for that RFQ) does not keep the request out.
func TestDispatchIsStoredAfterWhatLandedOnItsSubject(t *testing.T) {
	bb := setup(t, false)
	ctx := rydestest.Context(t)
	subject := DispatchSubject("p1", rfq1)
	_, err := bb.js.Publish(ctx, subject, []byte(`{"type":"io.nats.jetstream.api.v1.consumer_info_response"}`))
	require.NoError(t, err)

	d := dispatchMsg(2, rfq1, "p1")
	acked, err := bb.bus.Publish(ctx, []store.OutboxMessage{d})
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{DispatchStream: 2}, acked)
	s, err := bb.js.Stream(ctx, DispatchStream)
	require.NoError(t, err)
	raw, err := s.GetLastMsgForSubject(ctx, subject)
	require.NoError(t, err)
	require.Equal(t, rfq1, raw.Header.Get(HeaderRFQID))
	var req rydes.ProviderRequest
	require.NoError(t, json.Unmarshal(raw.Data, &req))
	require.Equal(t, d.Dispatch.Request, req)

	// And once stored, it is the one held.
	_, err = bb.bus.Publish(ctx, []store.OutboxMessage{d})
	require.NoError(t, err)
	require.NoError(t, bb.bus.Redispatch(ctx, "p1", d.Dispatch.Request))
	require.EqualValues(t, 2, bb.streamMsgs(t, DispatchStream))
}

// A rydes from before requests had subjects of their own made the dispatch
// stream with one subject per provider and queues filtered to it: the
// stream and queues are updated in place, and a queue delivers the
// requests left on the old subject, then the new ones.
func TestQueuesOfBeforeDeliverOldAndNewRequests(t *testing.T) {
	ctx := rydestest.Context(t)
	_, nc := startEmbedded(t, EmbeddedConfig{})
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	for _, sc := range StreamConfigs(Config{}) {
		if sc.Name == DispatchStream {
			sc.Subjects = []string{DispatchSubjectPrefix + "*"}
		}
		_, err := js.CreateStream(ctx, sc)
		require.NoError(t, err, sc.Name)
	}
	old := DispatchSubjectPrefix + "p1"
	_, err = js.CreateOrUpdateConsumer(ctx, DispatchStream, jetstream.ConsumerConfig{
		Durable: ProviderQueue("p1"), FilterSubject: old, AckPolicy: jetstream.AckExplicitPolicy,
	})
	require.NoError(t, err)
	_, err = js.Publish(ctx, old, []byte(`{"rfq_id":"`+rfq2+`"}`))
	require.NoError(t, err)

	b, err := New(ctx, nc, Config{Logger: rydestest.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(b.Close)
	require.NoError(t, b.EnsureProviderQueue(ctx, "p1"))
	_, err = b.Publish(ctx, []store.OutboxMessage{dispatchMsg(1, rfq1, "p1")})
	require.NoError(t, err)
	qi, err := b.QueueInfo(ctx, "p1")
	require.NoError(t, err)
	require.False(t, qi.Oldest.IsZero(), "the oldest request is found on either subject")

	cons, err := js.Consumer(ctx, DispatchStream, ProviderQueue("p1"))
	require.NoError(t, err)
	var subjects []string
	for range 2 {
		m, err := cons.Next(jetstream.FetchContext(ctx))
		require.NoError(t, err)
		subjects = append(subjects, m.Subject())
		require.NoError(t, m.DoubleAck(ctx))
	}
	require.Equal(t, []string{old, DispatchSubject("p1", rfq1)}, subjects)

	// Deleting the queue purges both subjects.
	_, err = js.Publish(ctx, old, []byte(`{}`))
	require.NoError(t, err)
	_, err = b.Publish(ctx, []store.OutboxMessage{dispatchMsg(2, rfq2, "p1")})
	require.NoError(t, err)
	require.NoError(t, b.DeleteProviderQueue(ctx, "p1"))
	s, err := js.Stream(ctx, DispatchStream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.Zero(t, info.State.Msgs)
}
