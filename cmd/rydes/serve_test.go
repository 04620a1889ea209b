package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes/internal/app"
)

func TestServeDurabilityFlag(t *testing.T) {
	var stderr bytes.Buffer
	cfg, _, err := serveConfig(nil, envOf(nil), &stderr)
	require.NoError(t, err)
	require.Equal(t, app.DurabilityPowerLoss, cfg.Durability, "the default promises survival of a power loss")

	cfg, _, err = serveConfig([]string{"--durability", "process-crash"}, envOf(nil), &stderr)
	require.NoError(t, err)
	require.Equal(t, app.DurabilityProcessCrash, cfg.Durability)

	cfg, _, err = serveConfig(nil, envOf(map[string]string{"RYDES_DURABILITY": "process-crash"}), &stderr)
	require.NoError(t, err)
	require.Equal(t, app.DurabilityProcessCrash, cfg.Durability)

	_, _, err = serveConfig([]string{"--durability", "whenever"}, envOf(nil), &stderr)
	require.ErrorContains(t, err, `durability "whenever"`)
}
