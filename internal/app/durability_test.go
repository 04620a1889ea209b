package app_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes/internal/app"
	"github.com/wildrydes/rydes/internal/rydestest"
)

// TestDurabilityReachesBrokerAndStore starts rydes with each durability and
// reads back what the embedded broker and SQLite were given. The broker
// fsyncs every write only when nothing else would heal what it loses:
// power-loss durability with reconciliation off.
func TestDurabilityReachesBrokerAndStore(t *testing.T) {
	for _, tc := range []struct {
		name        string
		durability  app.Durability
		reconcile   time.Duration
		syncAlways  bool
		synchronous int // PRAGMA synchronous: 2 FULL, 1 NORMAL
	}{
		{"default", "", 0, false, 2},
		{"power-loss", app.DurabilityPowerLoss, 0, false, 2},
		{"power-loss without reconciliation", app.DurabilityPowerLoss, -1, true, 2},
		{"process-crash", app.DurabilityProcessCrash, 0, false, 1},
		{"process-crash without reconciliation", app.DurabilityProcessCrash, -1, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(t, t.TempDir(), fleet(1, 1, false))
			cfg.Durability = tc.durability
			cfg.ReconcileInterval = tc.reconcile
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
