package client_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/client"
	"github.com/wildrydes/rydes/internal/rydestest"
)

// TestTooManyRequestsCarriesRetryAfter checks that a 429 surfaces as a
// *Problem with the wait the server asked for in RetryAfter, in seconds or
// as an HTTP date, and that other problems carry none.
func TestTooManyRequestsCarriesRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name, header string
		status       int
		want         time.Duration
	}{
		{"seconds", "3", http.StatusTooManyRequests, 3 * time.Second},
		{"far future date is capped", "Fri, 01 Jan 2999 00:00:00 GMT", http.StatusTooManyRequests, 24 * time.Hour},
		{"past date", "Mon, 01 Jan 1990 00:00:00 GMT", http.StatusTooManyRequests, 0},
		{"garbage", "soon", http.StatusTooManyRequests, 0},
		{"negative", "-5", http.StatusTooManyRequests, 0},
		{"absent", "", http.StatusTooManyRequests, 0},
		{"on a 503", "7", http.StatusServiceUnavailable, 7 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.header != "" {
					w.Header().Set("Retry-After", tc.header)
				}
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(`{"type":"https://rydes.dev/problems/too_many_requests","title":"Too many requests","status":429,"detail":"retry later","instance":"/v1/rfqs/x"}`))
			}))
			t.Cleanup(srv.Close)
			c, err := client.New(srv.URL)
			require.NoError(t, err)
			_, err = c.GetRFQ(rydestest.Context(t), rydes.NewID())
			p, ok := errors.AsType[*client.Problem](err)
			require.True(t, ok, "got %T: %v", err, err)
			require.Equal(t, tc.status, p.Status)
			require.Equal(t, rydes.ETOOMANY, p.Code())
			require.Equal(t, tc.want, p.RetryAfter)
		})
	}
}
