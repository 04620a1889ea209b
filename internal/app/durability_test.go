package app_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes/internal/app"
	"github.com/wildrydes/rydes/internal/rydestest"
)

// TestDurabilityReachesBrokerAndStore starts rydes with each durability and
// reads back what the embedded broker and SQLite were given.
func TestDurabilityReachesBrokerAndStore(t *testing.T) {
	for _, tc := range []struct {
		durability  app.Durability
		syncAlways  bool
		synchronous int // PRAGMA synchronous: 2 FULL, 1 NORMAL
	}{
		{"", true, 2},
		{app.DurabilityPowerLoss, true, 2},
		{app.DurabilityProcessCrash, false, 1},
	} {
		t.Run(string(tc.durability), func(t *testing.T) {
			cfg := config(t, t.TempDir(), fleet(1, 1, false))
			cfg.Durability = tc.durability
			h := start(t, cfg)
			require.Equal(t, tc.syncAlways, h.app.Embedded().Server().JetStreamConfig().SyncAlways)
			n, err := h.app.SQLite().Synchronous(rydestest.Context(t))
			require.NoError(t, err)
			require.Equal(t, tc.synchronous, n)
		})
	}
}

func TestDurabilityInvalid(t *testing.T) {
	cfg := config(t, t.TempDir(), fleet(1, 1, false))
	cfg.Durability = "sometimes"
	_, err := app.Start(rydestest.Context(t), cfg)
	require.ErrorContains(t, err, `durability "sometimes"`)
}
