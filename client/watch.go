package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/wildrydes/rydes"
)

// DefaultWatchInterval is how often Watch polls when given no interval.
const DefaultWatchInterval = time.Second

// watchRetries is how many transient failures in a row Watch rides out.
const watchRetries = 5

// Watch polls the RFQ with the given id every interval (DefaultWatchInterval
// if interval <= 0) until its status is final, and returns it then.
//
// fn, if not nil, is called with the first RFQ read and then with each one
// that differs from the one before it: a new status, a provider's new state
// or a new or changed quote. Its last call is with the final RFQ. If fn
// returns an error, Watch stops and returns it.
//
// Up to five transient failures in a row (network errors, 429, 502, 503 and
// 504) are ridden out by polling again, after the interval or the
// Retry-After the server asked for, whichever is longer; any other error,
// and the end of ctx, stop Watch. On error Watch returns the last RFQ it read, or the zero RFQ.
func (c *Client) Watch(ctx context.Context, id string, interval time.Duration, fn func(rydes.RFQ) error) (rydes.RFQ, error) {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	var (
		last     rydes.RFQ
		seen     bool
		failures int
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-timer.C:
		}
		rfq, err := c.GetRFQ(ctx, id)
		switch {
		case err == nil:
			failures = 0
			if !seen || changed(last, rfq) {
				seen, last = true, rfq
				if fn != nil {
					if err := fn(rfq); err != nil {
						return rfq, err
					}
				}
			}
			if rfq.Status.Final() {
				return rfq, nil
			}
		case ctx.Err() != nil:
			return last, ctx.Err()
		case transient(err) && failures < watchRetries:
			failures++
			// Over the rate limit: wait as long as the server asks.
			timer.Reset(max(interval, retryAfter(err)))
			continue
		default:
			return last, err
		}
		timer.Reset(interval)
	}
}

// transient reports whether err may go away if the request is repeated.
func transient(err error) bool {
	if p, ok := errors.AsType[*Problem](err); ok {
		switch p.Status {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	_, ok := errors.AsType[*url.Error](err)
	return ok
}

// retryAfter returns the wait a *Problem in err's chain asks for
// (Problem.RetryAfter), or 0.
func retryAfter(err error) time.Duration {
	if p, ok := errors.AsType[*Problem](err); ok {
		return p.RetryAfter
	}
	return 0
}

// changed reports whether b says anything new about an RFQ compared to a:
// its status, its roster or its quotes.
func changed(a, b rydes.RFQ) bool {
	if a.Status != b.Status || !a.ClosedAt.Equal(b.ClosedAt) {
		return true
	}
	sameEntry := func(x, y rydes.RosterEntry) bool {
		return x.Provider == y.Provider && x.State == y.State && x.Reason == y.Reason && x.ChangedAt.Equal(y.ChangedAt)
	}
	sameQuote := func(x, y rydes.Quote) bool {
		return x.Provider == y.Provider && x.Price == y.Price && sameETA(x.ETASeconds, y.ETASeconds) &&
			x.ExpiresAt.Equal(y.ExpiresAt) && x.ReceivedAt.Equal(y.ReceivedAt)
	}
	return !slices.EqualFunc(a.Providers, b.Providers, sameEntry) || !slices.EqualFunc(a.Quotes, b.Quotes, sameQuote)
}

// sameETA reports whether two optional ETAs are equal.
func sameETA(a, b *int) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
