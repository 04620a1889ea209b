package webhook

import (
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackoffSchedule(t *testing.T) {
	nominal := []time.Duration{
		500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second,
		8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second,
	}
	for i, want := range nominal {
		attempt := i + 1
		for range 200 {
			got := backoff(attempt, DefaultInitialBackoff, DefaultMaxBackoff)
			require.GreaterOrEqual(t, got, want/2, "after attempt %d", attempt)
			require.LessOrEqual(t, got, want, "after attempt %d", attempt)
		}
	}
	for _, attempt := range []int{40, 64, 1000} {
		got := backoff(attempt, DefaultInitialBackoff, DefaultMaxBackoff)
		require.GreaterOrEqual(t, got, DefaultMaxBackoff/2, "no overflow after attempt %d", attempt)
		require.LessOrEqual(t, got, DefaultMaxBackoff)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{" 120 ", 2 * time.Minute, true},
		{"99999999999999999999999", maxRetryAfter, true},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{"Sunday, 01-Mar-26 12:00:30 GMT", 30 * time.Second, true}, // RFC 850
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{now.Add(1000 * time.Hour).Format(http.TimeFormat), maxRetryAfter, true},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		require.Equal(t, tt.ok, ok, "%q", tt.in)
		require.Equal(t, tt.want, got, "%q", tt.in)
	}
}

func TestPublicAddr(t *testing.T) {
	for addr, public := range map[string]bool{
		"8.8.8.8": true, "2001:4860:4860::8888": true, "93.184.216.34": true,
		"127.0.0.1": false, "::1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "fe80::1": false, "fc00::1": false, "0.0.0.0": false, "::": false,
		"100.64.0.1": false, "224.0.0.1": false, "255.255.255.255": false, "::ffff:127.0.0.1": false,
		"::ffff:8.8.8.8": true,
	} {
		require.Equal(t, public, publicAddr(netip.MustParseAddr(addr)), addr)
	}
}
