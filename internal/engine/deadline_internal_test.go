package engine

import (
	"context"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
	"github.com/wildrydes/rydes/internal/store/sqlite"
)

// nopPublisher publishes nothing; CreateRFQ does not publish.
type nopPublisher struct{ Publisher }

// A new RFQ kicks the deadline loop only if the loop would sleep past its
// deadline, or is not asleep.
func TestCreateKicksTheDeadlineLoopOnlyWhenDueBeforeItWakes(t *testing.T) {
	ctx := rydestest.Context(t)
	start := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	st, err := sqlite.Open(ctx, t.TempDir()+"/rydes.db", rydestest.Logger(t))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	_, err = st.UpsertProvider(ctx, store.UpsertProviderParams{ID: "p1", Name: "p1", Kind: rydes.ProviderKindNATS, Status: rydes.ProviderActive, Now: start})
	require.NoError(t, err)
	e, err := New(Config{
		Store: st, Publisher: nopPublisher{}, Clock: clockwork.NewFakeClockAt(start), Logger: rydestest.Logger(t),
		Limits: rydes.Limits{DefaultTimeout: 30 * time.Second, MaxTimeout: time.Hour},
	})
	require.NoError(t, err)

	for _, tc := range []struct {
		name    string
		wake    time.Time // zero: the loop is not asleep
		timeout time.Duration
		kicked  bool
	}{
		{"not asleep", time.Time{}, time.Minute, true},
		{"due before the loop wakes", start.Add(time.Minute), 30 * time.Second, true},
		{"due after the loop wakes", start.Add(time.Minute), 2 * time.Minute, false},
		{"due as the loop wakes", start.Add(time.Minute), time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for len(e.deadlineKick) > 0 {
				<-e.deadlineKick
			}
			e.deadlineWake.Store(0)
			if !tc.wake.IsZero() {
				e.deadlineWake.Store(tc.wake.UnixNano())
			}
			_, err := e.CreateRFQ(context.Background(), rydes.RFQRequest{Customer: "c", From: "a", To: "b", Timeout: tc.timeout})
			require.NoError(t, err)
			require.Equal(t, tc.kicked, len(e.deadlineKick) == 1)
		})
	}
}
