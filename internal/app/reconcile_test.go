package app_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/client"
	"github.com/wildrydes/rydes/internal/bus"
	"github.com/wildrydes/rydes/internal/rydestest"
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
