package main

import (
	"bytes"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes/internal/api"
	"github.com/wildrydes/rydes/internal/app"
	"github.com/wildrydes/rydes/internal/bus"
	"github.com/wildrydes/rydes/internal/engine"
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

// The answer linger: engine.DefaultLinger by default, set by flag or
// variable, 0 (or less) turning it off, which the app's config says with a
// negative value (its zero is the default).
func TestServeAnswerLingerFlag(t *testing.T) {
	var stderr bytes.Buffer
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want time.Duration
	}{
		{"default", nil, nil, engine.DefaultLinger},
		{"flag", []string{"--answer-linger", "500us"}, nil, 500 * time.Microsecond},
		{"variable", nil, map[string]string{"RYDES_ANSWER_LINGER": "2ms"}, 2 * time.Millisecond},
		{"off", []string{"--answer-linger", "0"}, nil, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := serveConfig(tc.args, envOf(tc.env), &stderr)
			require.NoError(t, err)
			require.Equal(t, tc.want, cfg.AnswerLinger)
		})
	}
	_, _, err := serveConfig([]string{"--answer-linger", "soon"}, envOf(nil), &stderr)
	require.ErrorContains(t, err, "answer-linger")
}

// TestServeRateLimitFlags checks the rate limit flags: on by default with
// api.DefaultRateLimits, set by flag or RYDES_* variable, 0 to disable, and
// nonsense refused.
func TestServeRateLimitFlags(t *testing.T) {
	noEnv := func(string) string { return "" }
	cfg, _, err := serveConfig(nil, noEnv, io.Discard)
	require.NoError(t, err)
	require.Equal(t, api.DefaultRateLimits(), cfg.RateLimits)

	cfg, _, err = serveConfig([]string{"--rate-limit", "5", "--rate-burst", "10", "--provider-rate-limit", "0"}, func(k string) string {
		return map[string]string{"RYDES_ADMIN_RATE_LIMIT": "50", "RYDES_ADMIN_RATE_BURST": "60", "RYDES_RATE_LIMIT": "7"}[k]
	}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, api.Rate{PerSecond: 5, Burst: 10}, cfg.RateLimits.Customer, "the command line wins over RYDES_RATE_LIMIT")
	require.False(t, cfg.RateLimits.Provider.Enabled(), "0 disables")
	require.Equal(t, api.Rate{PerSecond: 50, Burst: 60}, cfg.RateLimits.Admin)

	for _, args := range [][]string{
		{"--rate-limit", "-1"},
		{"--provider-rate-limit", "NaN"},
		{"--admin-rate-limit", "+Inf"},
		{"--rate-burst", "0"},
		{"--provider-rate-burst", "-3"},
		{"--failed-auth-limit", "-2"},
		{"--failed-auth-burst", "0"},
	} {
		_, _, err := serveConfig(args, noEnv, io.Discard)
		require.Error(t, err, "%q", args)
	}
	// A burst does not matter when there is no limit.
	_, _, err = serveConfig([]string{"--rate-limit", "0", "--rate-burst", "0"}, noEnv, io.Discard)
	require.NoError(t, err)
}

func TestServeWebhookAllowFlag(t *testing.T) {
	noEnv := func(string) string { return "" }
	cfg, _, err := serveConfig(nil, noEnv, io.Discard)
	require.NoError(t, err)
	require.Empty(t, cfg.WebhookAllowNetworks, "nothing non-public is allowed by default")

	cfg, _, err = serveConfig([]string{"--webhook-allow", "10.1.2.9/24, 192.0.2.7,::1"}, noEnv, io.Discard)
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{
		netip.MustParsePrefix("10.1.2.0/24"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("::1/128"),
	}, cfg.WebhookAllowNetworks)

	cfg, _, err = serveConfig(nil, func(k string) string {
		return map[string]string{"RYDES_WEBHOOK_ALLOW": "127.0.0.0/8"}[k]
	}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, cfg.WebhookAllowNetworks)

	_, _, err = serveConfig([]string{"--webhook-allow", "10.1.2.0/24,intranet"}, noEnv, io.Discard)
	require.ErrorContains(t, err, `invalid network "intranet"`)
}

// TestServeStreamLimitFlags checks the bounds of the broker's streams: bus's
// defaults unless set, sizes with units, by flag or RYDES_* variable, and
// nonsense refused.
func TestServeStreamLimitFlags(t *testing.T) {
	cfg, _, err := serveConfig(nil, envOf(nil), io.Discard)
	require.NoError(t, err)
	require.Equal(t, bus.StreamLimits{MaxBytes: bus.DefaultDispatchMaxBytes, MaxMsgs: bus.DefaultDispatchMaxMsgs}, cfg.DispatchLimits)
	require.Equal(t, bus.StreamLimits{MaxBytes: bus.DefaultEventsMaxBytes, MaxMsgs: bus.DefaultEventsMaxMsgs, MaxAge: bus.MaxAge}, cfg.EventsLimits)

	cfg, _, err = serveConfig([]string{"--events-max-msgs", "1000000", "--events-max-bytes", "256MiB", "--dispatch-max-bytes", "2GB", "--events-max-age", "3h"},
		envOf(map[string]string{"RYDES_DISPATCH_MAX_MSGS": "5000"}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, bus.StreamLimits{MaxBytes: 256 << 20, MaxMsgs: 1_000_000, MaxAge: 3 * time.Hour}, cfg.EventsLimits)
	require.Equal(t, bus.StreamLimits{MaxBytes: 2_000_000_000, MaxMsgs: 5000}, cfg.DispatchLimits)

	for _, args := range [][]string{
		{"--events-max-msgs", "0"},
		{"--dispatch-max-msgs", "-3"},
		{"--events-max-bytes", "0"},
		{"--events-max-bytes", "lots"},
		{"--dispatch-max-bytes", "-1GiB"},
		{"--dispatch-max-bytes", "20EiB"},
		{"--events-max-age", "0"},
		{"--events-max-age", "-1h"},
		{"--events-max-age", "soon"},
	} {
		_, _, err := serveConfig(args, envOf(nil), io.Discard)
		require.Error(t, err, "%q", args)
	}
}
