package api

import (
	"container/list"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/wildrydes/rydes"
)

// Rate is a token-bucket limit: PerSecond requests a second on average, up
// to Burst at once. PerSecond 0 or less means no limit; Burst 0 or less
// means PerSecond rounded up (at least 1).
type Rate struct {
	PerSecond float64
	Burst     int
}

// Enabled reports whether the rate limits anything.
func (r Rate) Enabled() bool { return r.PerSecond > 0 }

// burst returns the bucket size r stands for.
func (r Rate) burst() int {
	if r.Burst > 0 {
		return r.Burst
	}
	return max(1, int(math.Ceil(min(r.PerSecond, math.MaxInt32))))
}

// RateLimits bound how fast each caller may send requests, one token bucket
// per key: per customer API key (and, for the open demo customer, per remote
// IP address), per provider API key, and one for the admin key. A request
// over its limit gets 429 with Retry-After. Unauthenticated requests are
// refused (401) before any of those buckets is touched; each refusal takes
// a token from its address's Failed bucket. The zero RateLimits limits
// nothing.
type RateLimits struct {
	// Customer limits each customer key, and each remote IP address served
	// as the open demo customer (see Config.OpenLoopbackCustomers).
	Customer Rate
	// Provider limits each provider key, on the answer routes.
	Provider Rate
	// Admin limits the admin key, on every route it may use.
	Admin Rate
	// Failed limits the failed authentications (a key presented that is
	// no key) of each remote IP address: once its bucket is empty, the
	// address's requests that present a key get 429 without being looked
	// up, so guessing keys is slow and a flood of bad keys costs no
	// database reads.
	Failed Rate
	// MaxKeys bounds how many keys of each kind have a bucket at once; the
	// least recently used bucket is dropped to make room for a new one.
	// Zero or less means DefaultMaxRateKeys.
	MaxKeys int
}

// Defaults of the rate limits of `rydes serve`: generous, so that only a
// runaway client meets them. The admin key, used by operators and tools,
// gets ten times more.
const (
	DefaultRatePerSecond      = 1000
	DefaultRateBurst          = 2000
	DefaultAdminRatePerSecond = 10000
	DefaultAdminRateBurst     = 20000
	DefaultMaxRateKeys        = 10000
	// A client that keeps presenting a wrong key is stopped after
	// DefaultFailedBurst failures, then allowed DefaultFailedPerSecond.
	DefaultFailedPerSecond = 5
	DefaultFailedBurst     = 50
)

// DefaultRateLimits returns the default limits of `rydes serve`.
func DefaultRateLimits() RateLimits {
	return RateLimits{
		Customer: Rate{PerSecond: DefaultRatePerSecond, Burst: DefaultRateBurst},
		Provider: Rate{PerSecond: DefaultRatePerSecond, Burst: DefaultRateBurst},
		Admin:    Rate{PerSecond: DefaultAdminRatePerSecond, Burst: DefaultAdminRateBurst},
		Failed:   Rate{PerSecond: DefaultFailedPerSecond, Burst: DefaultFailedBurst},
	}
}

// keyLimiter holds one token bucket per key, at most max of them: the least
// recently used is dropped to make room. A dropped bucket is as good as a
// fresh one once it has refilled, which an idle key's has; under a flood of
// distinct keys some buckets start afresh, but memory stays bounded.
type keyLimiter struct {
	rate  Rate
	max   int
	mu    sync.Mutex
	keys  map[string]*list.Element // of *keyBucket
	order *list.List               // most recently used first
}

type keyBucket struct {
	key string
	lim *rate.Limiter
}

// newKeyLimiter returns a limiter of r per key, or nil if r limits nothing.
func newKeyLimiter(r Rate, maxKeys int) *keyLimiter {
	if !r.Enabled() {
		return nil
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxRateKeys
	}
	return &keyLimiter{rate: r, max: maxKeys, keys: map[string]*list.Element{}, order: list.New()}
}

// take takes one token from key's bucket at now. It returns 0 if there was
// one, else how long until there will be (and takes nothing). A nil
// keyLimiter allows everything.
func (l *keyLimiter) take(key string, now time.Time) time.Duration {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var lim *rate.Limiter
	if e, ok := l.keys[key]; ok {
		l.order.MoveToFront(e)
		lim = e.Value.(*keyBucket).lim
	} else {
		for l.order.Len() >= l.max {
			oldest := l.order.Back()
			l.order.Remove(oldest)
			delete(l.keys, oldest.Value.(*keyBucket).key)
		}
		lim = rate.NewLimiter(rate.Limit(l.rate.PerSecond), l.rate.burst())
		l.keys[key] = l.order.PushFront(&keyBucket{key: key, lim: lim})
	}
	res := lim.ReserveN(now, 1)
	if !res.OK() { // cannot happen: the burst is at least 1
		return time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d
	}
	return 0
}

// exhausted reports whether key's bucket has no token at now, taking none
// (a key without a bucket has a full one). A nil keyLimiter never is.
func (l *keyLimiter) exhausted(key string, now time.Time) (time.Duration, bool) {
	if l == nil {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.keys[key]
	if !ok {
		return 0, false
	}
	lim := e.Value.(*keyBucket).lim
	if lim.TokensAt(now) >= 1 {
		return 0, false
	}
	res := lim.ReserveN(now, 1)
	d := res.DelayFrom(now)
	res.CancelAt(now)
	return d, true
}

// len returns how many keys have a bucket.
func (l *keyLimiter) len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.order.Len()
}

// limiters are the API's buckets, by kind of caller.
type limiters struct {
	customer, provider, admin *keyLimiter
	failed                    *keyLimiter // failed authentications, by address
	now                       func() time.Time
}

func newLimiters(cfg RateLimits, now func() time.Time) *limiters {
	return &limiters{
		customer: newKeyLimiter(cfg.Customer, cfg.MaxKeys),
		provider: newKeyLimiter(cfg.Provider, cfg.MaxKeys),
		admin:    newKeyLimiter(cfg.Admin, cfg.MaxKeys),
		failed:   newKeyLimiter(cfg.Failed, cfg.MaxKeys),
		now:      now,
	}
}

// allow takes a token for key from l and reports whether the request may
// go on; if not, it has answered 429 with Retry-After, in whole seconds (at
// least 1), when the bucket will have a token again.
func (ls *limiters) allow(w http.ResponseWriter, r *http.Request, logger *slog.Logger, l *keyLimiter, key string) bool {
	wait := l.take(key, ls.now())
	if wait <= 0 {
		return true
	}
	secs := max(1, int64(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeError(w, r, logger, rydes.Errorf(rydes.ETOOMANY, "too many requests from this caller; retry in %d s", secs))
	return false
}

// guessing reports, and answers 429 if so, whether the request's address
// has used up its failed authentications: its key is not looked up.
func (ls *limiters) guessing(w http.ResponseWriter, r *http.Request, logger *slog.Logger) bool {
	wait, out := ls.failed.exhausted("ip:"+remoteIP(r.RemoteAddr), ls.now())
	if !out {
		return false
	}
	secs := max(1, int64(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeError(w, r, logger, rydes.Errorf(rydes.ETOOMANY, "too many failed authentications from this address; retry in %d s", secs))
	return true
}

// failedAuth takes a token from the request's address's bucket of failed
// authentications, and answers err.
func (ls *limiters) failedAuth(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	ls.failed.take("ip:"+remoteIP(r.RemoteAddr), ls.now())
	writeError(w, r, logger, err)
}

// remoteIP returns the host part of addr, a RemoteAddr ("host:port").
func remoteIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}
