package app_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/client"
	"github.com/wildrydes/rydes/internal/api/apitest"
	"github.com/wildrydes/rydes/internal/app"
	"github.com/wildrydes/rydes/internal/bus"
	"github.com/wildrydes/rydes/internal/reconcile"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
)

// TestBrokerThatLostARequestHeals is reconciliation end to end: the broker
// loses the dispatch stream, with a request waiting in a provider's queue
// and the queue itself; rydes creates both again and re-publishes the
// request from its database, and the provider answers it.
func TestBrokerThatLostARequestHeals(t *testing.T) {
	cfg := partnerConfig(t)
	cfg.ReconcileInterval = 50 * time.Millisecond
	h := start(t, cfg)
	h.key = adminKey
	ctx := rydestest.Context(t)
	admin, err := client.New(h.app.URL(), client.WithAPIKey(adminKey))
	require.NoError(t, err)
	_, creds, err := admin.CreateProvider(ctx, client.CreateProviderRequest{ID: "natsy", Kind: rydes.ProviderKindNATS})
	require.NoError(t, err)

	rfq := h.create(`{"customer":"cmr","from":"A","to":"B","timeout":"5m"}`)
	js := h.app.Bus().JetStream()
	rydestest.WaitFor(t, "the request to wait in natsy's queue", func() bool {
		c, err := js.Consumer(ctx, bus.DispatchStream, bus.ProviderQueue("natsy"))
		return err == nil && c.CachedInfo().NumPending == 1
	})

	// The broker loses the stream (a disk lost, files corrupt): the request
	// and the queue are gone.
	require.NoError(t, js.DeleteStream(ctx, bus.DispatchStream))

	rydestest.WaitFor(t, "reconciliation to put the request back in a new queue", func() bool {
		c, err := js.Consumer(ctx, bus.DispatchStream, bus.ProviderQueue("natsy"))
		return err == nil && c.CachedInfo().NumPending == 1
	})
	runNATSPartner(t, h.app.NATSURL(), creds, "31")
	got := h.waitStatus(rfq.ID, rydes.StatusComplete)
	require.Len(t, got.Quotes, 1)
	require.Equal(t, "natsy", got.Quotes[0].Provider)
}

// TestRoundAtStartFindsALostTail restarts rydes over a broker that lost the
// tail of a stream the outbox relay published (the relay's acked mark in the
// database is above the stream's last sequence, as after a power loss under
// lazy fsync): the reconciliation round at start detects and heals it before
// Start returns, with the periodic rounds an hour away.
func TestRoundAtStartFindsALostTail(t *testing.T) {
	cfg := partnerConfig(t)
	cfg.ReconcileInterval = time.Hour
	ctx := rydestest.Context(t)
	first, err := app.Start(ctx, cfg)
	require.NoError(t, err)
	h := &harness{t: t, app: first, val: apitest.NewValidator(t, apitest.SpecPath(t)), key: adminKey}
	admin, err := client.New(first.URL(), client.WithAPIKey(adminKey))
	require.NoError(t, err)
	_, _, err = admin.CreateProvider(ctx, client.CreateProviderRequest{ID: "natsy", Kind: rydes.ProviderKindNATS})
	require.NoError(t, err)
	h.create(`{"customer":"cmr","from":"A","to":"B","timeout":"5m"}`)

	acked := func(a *app.App) string {
		v, _, err := a.SQLite().GetSetting(ctx, store.AckedSetting(bus.DispatchStream))
		require.NoError(t, err)
		return v
	}
	lastSeq := func(a *app.App) uint64 {
		st, err := a.Bus().StreamState(ctx, bus.DispatchStream)
		require.NoError(t, err)
		return st.LastSeq
	}
	var seq uint64
	rydestest.WaitFor(t, "the relay to record the request's sequence", func() bool {
		seq = lastSeq(first)
		return seq > 0 && acked(first) == strconv.FormatUint(seq, 10)
	})
	// Five more requests were acknowledged and recorded, and lost.
	require.NoError(t, first.SQLite().PutSetting(ctx, store.AckedSetting(bus.DispatchStream), strconv.FormatUint(seq+5, 10)))
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, first.Shutdown(sctx))

	second := start(t, cfg).app
	require.Equal(t, strconv.FormatUint(lastSeq(second), 10), acked(second), "healed at start: the relay's mark is the stream's again")
	v, ok, err := second.SQLite().GetSetting(ctx, reconcile.MarkSetting(bus.DispatchStream))
	require.NoError(t, err)
	require.True(t, ok)
	var m reconcile.Mark
	require.NoError(t, json.Unmarshal([]byte(v), &m))
	require.Equal(t, lastSeq(second), m.LastSeq)
}
