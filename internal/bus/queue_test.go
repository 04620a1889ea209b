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

	require.NoError(t, bb.bus.Redispatch(ctx, "p1", req, "replay.7.1"))
	require.NoError(t, bb.bus.Redispatch(ctx, "p1", req, "replay.7.1"), "a duplicate is not an error")
	bb.waitQueueInfo(t, "p1", QueueInfo{Pending: 1})
	require.EqualValues(t, 1, bb.streamMsgs(t, DispatchStream), "the same dedupe id is stored once")

	cons, err := bb.js.Consumer(ctx, DispatchStream, ProviderQueue("p1"))
	require.NoError(t, err)
	m, err := cons.Next(jetstream.FetchContext(ctx))
	require.NoError(t, err)
	require.Equal(t, DispatchSubject("p1"), m.Subject())
	require.Equal(t, "replay.7.1", m.Headers().Get(jetstream.MsgIDHeader))
	require.Equal(t, rfq1, m.Headers().Get(HeaderRFQID))
	var got rydes.ProviderRequest
	require.NoError(t, json.Unmarshal(m.Data(), &got))
	require.Equal(t, req, got)
	require.NoError(t, m.DoubleAck(ctx))

	// Another id is another delivery, even of a request dispatched before.
	_, err = bb.bus.Publish(ctx, []store.OutboxMessage{dispatchMsg(2, rfq2, "p1")})
	require.NoError(t, err)
	require.NoError(t, bb.bus.Redispatch(ctx, "p1", req, "replay.7.2"))
	bb.waitQueueInfo(t, "p1", QueueInfo{Pending: 2})

	require.Error(t, bb.bus.Redispatch(ctx, "p.1", req, "x"))
	require.Error(t, bb.bus.Redispatch(ctx, "p1", req, ""))
	bb.bus.Close()
	require.ErrorContains(t, bb.bus.Redispatch(ctx, "p1", req, "replay.7.3"), "closed")
}
