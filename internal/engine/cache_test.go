package engine_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/engine"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
)

// countingStore counts the reads of an RFQ that reach the database.
type countingStore struct {
	store.Store
	gets atomic.Int32
}

func (s *countingStore) GetRFQ(ctx context.Context, p store.GetRFQParams) (rydes.RFQ, error) {
	s.gets.Add(1)
	return s.Store.GetRFQ(ctx, p)
}

// countingEngine returns an engine on cs.
func countingEngine(t *testing.T, cs *countingStore) *engine.Engine {
	t.Helper()
	eng, err := engine.New(engine.Config{
		Store: cs, Publisher: &recordingPublisher{}, Clock: clockwork.NewFakeClockAt(start), Logger: rydestest.Logger(t),
		Limits: rydes.Limits{DefaultTimeout: 30 * time.Second, MaxTimeout: 5 * time.Minute},
	})
	require.NoError(t, err)
	return eng
}

// A final RFQ never changes, so its reads are served from memory; an open
// one is read from the database every time.
func TestFinalRFQsAreReadFromMemory(t *testing.T) {
	ctx := rydestest.Context(t)
	st := openStore(t, "p1")
	cs := &countingStore{Store: st}
	eng := countingEngine(t, cs)

	rfq, err := eng.CreateRFQ(ctx, rydes.RFQRequest{Customer: "cmr", From: "Frankfurt", To: "Las Vegas"})
	require.NoError(t, err)
	for range 2 {
		_, err := eng.GetRFQ(ctx, rfq.ID, "cmr")
		require.NoError(t, err)
	}
	require.EqualValues(t, 2, cs.gets.Load(), "an open RFQ is read from the database each time")

	_, err = eng.CancelRFQ(ctx, rfq.ID, "cmr")
	require.NoError(t, err)
	first, err := eng.GetRFQ(ctx, rfq.ID, "cmr")
	require.NoError(t, err)
	require.Equal(t, rydes.StatusCancelled, first.Status)
	reads := cs.gets.Load()

	first.Providers[0].State = "mangled by a caller"
	again, err := eng.GetRFQ(ctx, rfq.ID, "")
	require.NoError(t, err)
	require.Equal(t, reads, cs.gets.Load(), "a final RFQ is served from memory")
	require.Equal(t, rydes.ProviderWithdrawn, again.Providers[0].State, "callers do not share the cached copy")
	fromDB, err := st.GetRFQ(ctx, store.GetRFQParams{ID: rfq.ID})
	require.NoError(t, err)
	require.Equal(t, fromDB, again)

	_, err = eng.GetRFQ(ctx, rfq.ID, "someone-else")
	require.Error(t, err)
	require.Equal(t, rydes.ENOTFOUND, rydes.ErrorCodeOf(err), "another customer's RFQ is not found, cached or not")
}

// RFQVersion tells an RFQ's seq without reading it whole: from the store's
// seq alone while open, from memory once final.
func TestRFQVersion(t *testing.T) {
	ctx := rydestest.Context(t)
	st := openStore(t, "p1")
	cs := &countingStore{Store: st}
	eng := countingEngine(t, cs)
	rfq, err := eng.CreateRFQ(ctx, rydes.RFQRequest{Customer: "cmr", From: "A", To: "B"})
	require.NoError(t, err)

	seq, err := eng.RFQVersion(ctx, rfq.ID, "cmr")
	require.NoError(t, err)
	require.EqualValues(t, 1, seq)
	require.Zero(t, cs.gets.Load(), "the RFQ is not read whole")
	_, err = eng.RFQVersion(ctx, rfq.ID, "someone-else")
	require.Equal(t, rydes.ENOTFOUND, rydes.ErrorCodeOf(err))
	_, err = eng.RFQVersion(ctx, "not an id", "")
	require.Equal(t, rydes.EINVALID, rydes.ErrorCodeOf(err))

	cancelled, err := eng.CancelRFQ(ctx, rfq.ID, "cmr")
	require.NoError(t, err)
	_, err = eng.GetRFQ(ctx, rfq.ID, "") // now cached
	require.NoError(t, err)
	seq, err = eng.RFQVersion(ctx, rfq.ID, "")
	require.NoError(t, err)
	require.Equal(t, cancelled.Seq, seq)
	_, err = eng.RFQVersion(ctx, rfq.ID, "someone-else")
	require.Equal(t, rydes.ENOTFOUND, rydes.ErrorCodeOf(err), "from memory, another customer's is not found either")
}
