package webhook

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxRetryAfter bounds a Retry-After, so that a silly one cannot overflow.
const maxRetryAfter = 24 * time.Hour

// backoff returns the wait after the attempt-th attempt failed: initial
// doubled attempt-1 times, capped at max, then jittered down by up to half
// ("equal jitter"), so the wait is in [d/2, d] and retries of many
// deliveries that failed together spread out.
func backoff(attempt int, initial, max time.Duration) time.Duration {
	d := max
	if shift := attempt - 1; shift < 32 {
		if v := initial << shift; v > 0 && v < max {
			d = v
		}
	}
	half := d / 2
	return d - rand.N(half+1)
}

// parseRetryAfter parses a Retry-After header, in seconds or as an HTTP
// date, and returns the wait it asks for from now, and whether it was a
// valid one.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if allDigits(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), maxRetryAfter), true
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
