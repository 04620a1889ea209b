package webhook

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/auth"
	"github.com/wildrydes/rydes/internal/rydestest"
)

const quoteBody = `{"kind":"quote","price":{"amount":"45.50","currency":"EUR"},"eta_seconds":300}`

func TestAnswerIsPublished(t *testing.T) {
	expiry := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	tests := []struct {
		name   string
		status int
		body   string
		check  func(t *testing.T, a rydes.Answer)
	}{
		{
			name: "quote", status: http.StatusOK,
			body: `{"kind":"quote","price":{"amount":"45.50","currency":"EUR"},"eta_seconds":300,"expires_at":"` + expiry.Format(time.RFC3339) + `"}`,
			check: func(t *testing.T, a rydes.Answer) {
				require.Equal(t, rydes.AnswerQuote, a.Kind)
				require.Equal(t, rydes.Price{Amount: "45.50", Currency: "EUR"}, a.Price)
				require.NotNil(t, a.ETASeconds)
				require.Equal(t, 300, *a.ETASeconds)
				require.True(t, expiry.Equal(a.ExpiresAt), "expiry %s, want %s", a.ExpiresAt, expiry)
			},
		},
		{
			name: "decline with 201", status: http.StatusCreated,
			body: `{"kind":"decline","reason":"no unicorns left"}`,
			check: func(t *testing.T, a rydes.Answer) {
				require.Equal(t, rydes.AnswerDecline, a.Kind)
				require.Equal(t, "no unicorns left", a.Reason)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			hk := newHook(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ delivery) { reply(w, tt.status, tt.body) })
			secret := h.addProvider(t, "hook-1", hk.URL+"/rydes")
			h.run(t, h.config(t), "hook-1")

			req := h.dispatch(t, "hook-1", inAnHour())
			in := h.nextAnswer(t)
			require.Equal(t, "hook-1", in.Answer.Provider, "the answer is the provider's")
			require.Equal(t, req.RFQID, in.Answer.RFQID)
			tt.check(t, in.Answer)

			got := hk.deliveries()
			require.Len(t, got, 1)
			d := got[0]
			var sent rydes.ProviderRequest
			require.NoError(t, json.Unmarshal(d.body, &sent))
			require.Equal(t, req, sent, "the body is the provider request")
			require.Equal(t, "application/json", d.header.Get("Content-Type"))
			require.Equal(t, UserAgent, d.header.Get("User-Agent"))
			require.Equal(t, "msg_"+req.RFQID+"_hook-1", d.header.Get(HeaderID))
			ts, err := strconv.ParseInt(d.header.Get(HeaderTimestamp), 10, 64)
			require.NoError(t, err)
			require.Equal(t, h.clock.Now().Unix(), ts, "the timestamp is the clock's")
			wh, err := standardwebhooks.NewWebhook(secret)
			require.NoError(t, err)
			require.NoError(t, wh.Verify(d.body, d.header))

			h.waitQueueEmpty(t)
			dls, marks := h.failures.recorded()
			require.Empty(t, dls)
			require.Empty(t, marks)
			h.requireNoWaits(t)
		})
	}
}

func TestSlowProviderPastTheDeadlineFails(t *testing.T) {
	h := newHarness(t)
	release := make(chan struct{})
	hk := newHook(t, func(_ int, w http.ResponseWriter, r *http.Request, _ delivery) {
		select { // never answers in time
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	h.addProvider(t, "slow", hk.URL)
	h.run(t, h.config(t), "slow")

	// A short deadline, by the real clock: the SDK ends the handler there.
	req := h.dispatch(t, "slow", time.Now().Add(1500*time.Millisecond))
	dl, mark := h.nextFailure(t)

	require.Equal(t, "slow", dl.Provider)
	require.Equal(t, req.RFQID, dl.RFQID)
	require.Equal(t, 1, dl.Attempts)
	require.Zero(t, dl.LastStatus, "no response came back")
	require.Contains(t, dl.LastError, "timeout")
	require.Equal(t, req, dl.Request, "the dead letter holds the request, for replay")
	require.Equal(t, h.clock.Now().UTC(), dl.CreatedAt)

	require.Equal(t, req.RFQID, mark.RFQID)
	require.Equal(t, "slow", mark.Provider)
	require.Equal(t, "webhook delivery failed after 1 attempt: timeout: no response before the request's deadline", mark.Error)
	rydestest.WaitFor(t, "the outbox to be kicked for the provider_failed event", func() bool { return h.onFailed.Load() == 1 })

	h.waitQueueEmpty(t)
	require.Zero(t, h.answersPublished(t), "nothing is published for a failed delivery")
	require.Len(t, hk.deliveries(), 1)
}

func TestServerErrorsAreRetriedWithBackoff(t *testing.T) {
	h := newHarness(t)
	hk := newHook(t, func(n int, w http.ResponseWriter, _ *http.Request, _ delivery) {
		if n <= 2 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		reply(w, http.StatusOK, quoteBody)
	})
	secret := h.addProvider(t, "flaky", hk.URL)
	h.run(t, h.config(t), "flaky")

	req := h.dispatch(t, "flaky", inAnHour())
	first := h.advance(t)
	second := h.advance(t)
	require.GreaterOrEqual(t, first, 250*time.Millisecond)
	require.LessOrEqual(t, first, 500*time.Millisecond)
	require.GreaterOrEqual(t, second, 500*time.Millisecond)
	require.LessOrEqual(t, second, time.Second)

	in := h.nextAnswer(t)
	require.Equal(t, req.RFQID, in.Answer.RFQID)
	require.Equal(t, rydes.AnswerQuote, in.Answer.Kind)

	got := hk.deliveries()
	require.Len(t, got, 3)
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	for i, d := range got {
		require.Equal(t, MessageID(req.RFQID, "flaky"), d.header.Get(HeaderID), "attempt %d: the same webhook-id on every attempt", i+1)
		require.NoError(t, wh.Verify(d.body, d.header), "attempt %d is signed afresh", i+1)
		require.Equal(t, got[0].body, d.body)
	}
	require.Equal(t, strconv.FormatInt(h.clock.Now().Unix(), 10), got[2].header.Get(HeaderTimestamp), "each attempt is signed at its own time")

	h.waitQueueEmpty(t)
	require.Equal(t, uint64(1), h.answersPublished(t), "one answer")
	dls, _ := h.failures.recorded()
	require.Empty(t, dls)
	h.requireNoWaits(t)
}

func TestRetryAfterIsHonoured(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter func(now time.Time) string
		want       time.Duration
	}{
		{name: "seconds", retryAfter: func(time.Time) string { return "20" }, want: 20 * time.Second},
		{name: "http date", retryAfter: func(now time.Time) string { return now.Add(40 * time.Second).UTC().Format(http.TimeFormat) }, want: 40 * time.Second},
		{name: "shorter than the backoff", retryAfter: func(time.Time) string { return "0" }, want: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			hk := newHook(t, func(n int, w http.ResponseWriter, _ *http.Request, _ delivery) {
				if n == 1 {
					w.Header().Set("Retry-After", tt.retryAfter(h.clock.Now()))
					http.Error(w, "slow down", http.StatusTooManyRequests)
					return
				}
				reply(w, http.StatusOK, quoteBody)
			})
			h.addProvider(t, "busy", hk.URL)
			h.run(t, h.config(t), "busy")

			req := h.dispatch(t, "busy", inAnHour())
			wait := h.advance(t)
			if tt.want < 0 {
				require.GreaterOrEqual(t, wait, 250*time.Millisecond, "never sooner than the backoff")
				require.LessOrEqual(t, wait, 500*time.Millisecond)
			} else {
				require.Equal(t, tt.want, wait)
			}
			in := h.nextAnswer(t)
			require.Equal(t, req.RFQID, in.Answer.RFQID)
			require.Len(t, hk.deliveries(), 2)
		})
	}
}

func TestRetryAfterPastTheDeadlineEndsRetrying(t *testing.T) {
	h := newHarness(t)
	hk := newHook(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ delivery) {
		w.Header().Set("Retry-After", "7200")
		http.Error(w, "come back tomorrow", http.StatusTooManyRequests)
	})
	h.addProvider(t, "busy", hk.URL)
	h.run(t, h.config(t), "busy")

	req := h.dispatch(t, "busy", inAnHour())
	dl, mark := h.nextFailure(t)
	require.Equal(t, req.RFQID, dl.RFQID)
	require.Equal(t, 1, dl.Attempts)
	require.Equal(t, http.StatusTooManyRequests, dl.LastStatus)
	require.Equal(t, "HTTP 429: come back tomorrow", dl.LastError)
	require.Contains(t, mark.Error, "HTTP 429")
	require.Contains(t, mark.Error, "past the deadline")
	require.NotContains(t, mark.Error, "tomorrow", "the roster, which customers see, holds no response body")
	h.waitQueueEmpty(t)
	h.requireNoWaits(t)
	require.Len(t, hk.deliveries(), 1)
}

func TestGonePausesTheProvider(t *testing.T) {
	h := newHarness(t)
	hk := newHook(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ delivery) {
		http.Error(w, "we closed", http.StatusGone)
	})
	h.addProvider(t, "gone", hk.URL)
	h.run(t, h.config(t), "gone")

	req := h.dispatch(t, "gone", inAnHour())
	dl, mark := h.nextFailure(t)
	require.Equal(t, 1, dl.Attempts, "not retried")
	require.Equal(t, http.StatusGone, dl.LastStatus)
	require.Equal(t, req, dl.Request)
	require.Contains(t, mark.Error, "410")

	pauses := h.providers.pauses()
	require.Len(t, pauses, 1)
	require.Equal(t, "gone", pauses[0].id)
	require.Contains(t, pauses[0].reason, "410 Gone")
	p, err := h.providers.Get(t.Context(), "gone")
	require.NoError(t, err)
	require.Equal(t, rydes.ProviderPaused, p.Status)

	h.waitQueueEmpty(t)
	h.requireNoWaits(t)
	require.Len(t, hk.deliveries(), 1)
	require.Zero(t, h.answersPublished(t))
}

func TestSignatureVerifiesAndRotationTakesEffectAtOnce(t *testing.T) {
	h := newHarness(t)
	hk := newHook(t, func(_ int, w http.ResponseWriter, r *http.Request, d delivery) {
		// The receiver verifies with the provider's current secret, as a
		// partner would, and refuses what does not verify.
		wh, err := standardwebhooks.NewWebhook(h.providers.secret("signed"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := wh.Verify(d.body, r.Header); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		reply(w, http.StatusOK, quoteBody)
	})
	oldSecret := h.addProvider(t, "signed", hk.URL)
	h.run(t, h.config(t), "signed")

	first := h.dispatch(t, "signed", inAnHour())
	require.Equal(t, first.RFQID, h.nextAnswer(t).Answer.RFQID, "rydes's genuine delivery verifies")
	genuine := hk.deliveries()[0]
	wh, err := standardwebhooks.NewWebhook(oldSecret)
	require.NoError(t, err)
	require.NoError(t, wh.Verify(genuine.body, genuine.header))

	// Tampered copies of it, sent to the receiver, are refused.
	send := func(body []byte, header http.Header) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, hk.URL, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header = header
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		return resp.StatusCode
	}
	otherRoute := []byte(strings.Replace(string(genuine.body), "Rainbow Bridge", "Evil Lair", 1))
	require.NotEqual(t, genuine.body, otherRoute)
	otherID := genuine.header.Clone()
	otherID.Set(HeaderID, MessageID(rydes.NewID(), "signed"))
	otherTime := genuine.header.Clone()
	otherTime.Set(HeaderTimestamp, strconv.FormatInt(h.clock.Now().Unix()+1, 10))
	forged := genuine.header.Clone()
	forger, err := standardwebhooks.NewWebhook(auth.NewWebhookSecret())
	require.NoError(t, err)
	sig, err := forger.Sign(genuine.header.Get(HeaderID), h.clock.Now(), otherRoute)
	require.NoError(t, err)
	forged.Set(HeaderSignature, sig)
	for name, tampered := range map[string]delivery{
		"body":      {header: genuine.header, body: otherRoute},
		"id":        {header: otherID, body: genuine.body},
		"timestamp": {header: otherTime, body: genuine.body},
		"forged":    {header: forged, body: otherRoute},
	} {
		require.ErrorIs(t, wh.Verify(tampered.body, tampered.header), standardwebhooks.ErrNoMatchingSignature, name)
		require.Equal(t, http.StatusUnauthorized, send(tampered.body, tampered.header), name)
	}
	require.Equal(t, http.StatusOK, send(genuine.body, genuine.header), "while the genuine one verifies")

	// Rotate: the next delivery is signed with the new secret only.
	p, err := h.providers.Get(t.Context(), "signed")
	require.NoError(t, err)
	h.providers.put(p, auth.NewWebhookSecret())
	second := h.dispatch(t, "signed", inAnHour())
	require.Equal(t, second.RFQID, h.nextAnswer(t).Answer.RFQID, "the receiver verified it with the new secret")
	got := hk.deliveries()
	require.Len(t, got, 7)
	last := got[len(got)-1]
	require.Equal(t, MessageID(second.RFQID, "signed"), last.header.Get(HeaderID))
	require.ErrorIs(t, wh.Verify(last.body, last.header), standardwebhooks.ErrNoMatchingSignature, "the old secret no longer verifies")
}

func TestAcceptedMeansTheProviderAnswersLater(t *testing.T) {
	for _, status := range []int{http.StatusAccepted, http.StatusNoContent} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			h := newHarness(t)
			hk := newHook(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ delivery) { w.WriteHeader(status) })
			h.addProvider(t, "later", hk.URL)
			h.run(t, h.config(t), "later")

			h.dispatch(t, "later", inAnHour())
			h.waitQueueEmpty(t)
			require.Len(t, hk.deliveries(), 1)
			require.Zero(t, h.answersPublished(t), "nothing is published: the provider answers over HTTP")
			dls, marks := h.failures.recorded()
			require.Empty(t, dls)
			require.Empty(t, marks)
			h.requireNoWaits(t)
		})
	}
}

func TestPermanentFailuresAreNotRetried(t *testing.T) {
	tests := []struct {
		name    string
		respond func(w http.ResponseWriter)
		status  int
		detail  string // the dead letter's LastError contains it
	}{
		{
			name:    "client error",
			respond: func(w http.ResponseWriter) { http.Error(w, "missing field\x00 \"to\"", http.StatusBadRequest) },
			status:  http.StatusBadRequest, detail: `HTTP 400: missing field  "to"`,
		},
		{
			name:    "invalid answer",
			respond: func(w http.ResponseWriter) { reply(w, http.StatusOK, `{"kind":"quote"}`) },
			status:  http.StatusOK, detail: "HTTP 200: invalid answer",
		},
		{
			name: "answer for another request",
			respond: func(w http.ResponseWriter) {
				reply(w, http.StatusOK, `{"rfq_id":"`+rydes.NewID()+`","kind":"decline"}`)
			},
			status: http.StatusOK, detail: "is not the id of the request answered",
		},
		{
			name:    "empty 200",
			respond: func(w http.ResponseWriter) { w.WriteHeader(http.StatusOK) },
			status:  http.StatusOK, detail: "HTTP 200: invalid answer",
		},
		{
			name: "answer too large",
			respond: func(w http.ResponseWriter) {
				reply(w, http.StatusOK, strings.Repeat(" ", DefaultMaxResponseSize+10)+quoteBody)
			},
			status: http.StatusOK, detail: "larger than",
		},
		{
			name:    "other success status",
			respond: func(w http.ResponseWriter) { w.WriteHeader(http.StatusResetContent) },
			status:  http.StatusResetContent, detail: "unexpected success status",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			hk := newHook(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ delivery) { tt.respond(w) })
			h.addProvider(t, "strict", hk.URL)
			h.run(t, h.config(t), "strict")

			req := h.dispatch(t, "strict", inAnHour())
			dl, mark := h.nextFailure(t)
			require.Equal(t, req.RFQID, dl.RFQID)
			require.Equal(t, 1, dl.Attempts)
			require.Equal(t, tt.status, dl.LastStatus)
			require.Contains(t, dl.LastError, tt.detail)
			require.LessOrEqual(t, len(dl.LastError), 400, "the body is cut")
			require.Contains(t, mark.Error, "after 1 attempt: HTTP "+strconv.Itoa(tt.status))
			h.waitQueueEmpty(t)
			h.requireNoWaits(t)
			require.Len(t, hk.deliveries(), 1)
			require.Zero(t, h.answersPublished(t))
		})
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	h := newHarness(t)
	target := newHook(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ delivery) { reply(w, http.StatusOK, quoteBody) })
	hk := newHook(t, func(_ int, w http.ResponseWriter, r *http.Request, _ delivery) {
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusTemporaryRedirect)
	})
	h.addProvider(t, "moved", hk.URL)
	h.run(t, h.config(t), "moved")

	h.dispatch(t, "moved", inAnHour())
	dl, mark := h.nextFailure(t)
	require.Equal(t, 1, dl.Attempts)
	require.Equal(t, http.StatusTemporaryRedirect, dl.LastStatus)
	require.Contains(t, dl.LastError, "redirects are not followed")
	require.Contains(t, dl.LastError, target.URL+"/elsewhere")
	require.Contains(t, mark.Error, "redirect not followed")
	h.waitQueueEmpty(t)
	require.Empty(t, target.deliveries(), "the redirect was not followed")
	require.Len(t, hk.deliveries(), 1)
}

func TestAttemptTimeoutIsRetried(t *testing.T) {
	h := newHarness(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hk := newHook(t, func(n int, w http.ResponseWriter, r *http.Request, _ delivery) {
		if n == 1 {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		reply(w, http.StatusOK, quoteBody)
	})
	h.addProvider(t, "sluggish", hk.URL)
	cfg := h.config(t)
	cfg.AttemptTimeout = 200 * time.Millisecond
	h.run(t, cfg, "sluggish")

	req := h.dispatch(t, "sluggish", inAnHour())
	h.advance(t)
	require.Equal(t, req.RFQID, h.nextAnswer(t).Answer.RFQID)
	require.Len(t, hk.deliveries(), 2)
}

func TestNetworkErrorsUseUpTheAttempts(t *testing.T) {
	h := newHarness(t)
	// A port nobody listens on any more.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + l.Addr().String() + "/hook"
	require.NoError(t, l.Close())
	h.addProvider(t, "down", url)
	cfg := h.config(t)
	cfg.MaxAttempts = 3
	h.run(t, cfg, "down")

	req := h.dispatch(t, "down", inAnHour())
	h.advance(t)
	h.advance(t)
	dl, mark := h.nextFailure(t)
	require.Equal(t, req.RFQID, dl.RFQID)
	require.Equal(t, 3, dl.Attempts)
	require.Zero(t, dl.LastStatus)
	require.Contains(t, dl.LastError, "network error: ")
	require.Contains(t, dl.LastError, "refused")
	require.Equal(t, "webhook delivery failed after 3 attempts: network error", mark.Error)
	h.waitQueueEmpty(t)
	h.requireNoWaits(t)
}

func TestStoppingHandsTheRequestBack(t *testing.T) {
	h := newHarness(t)
	hk := newHook(t, func(n int, w http.ResponseWriter, _ *http.Request, _ delivery) {
		if n == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		reply(w, http.StatusOK, quoteBody)
	})
	h.addProvider(t, "hook-1", hk.URL)
	stop := h.run(t, h.config(t), "hook-1")

	req := h.dispatch(t, "hook-1", inAnHour())
	<-h.clock.waits // waiting to retry: stop now
	require.NoError(t, stop())
	dls, _ := h.failures.recorded()
	require.Empty(t, dls, "stopping is no failure")

	// The next instance gets the request again.
	h.run(t, h.config(t), "hook-1")
	in := h.nextAnswer(t)
	require.Equal(t, req.RFQID, in.Answer.RFQID)
	got := hk.deliveries()
	require.Len(t, got, 2)
	require.Equal(t, got[0].header.Get(HeaderID), got[1].header.Get(HeaderID), "a redelivery has the same webhook-id")
}

func TestPrivateAddressesAreRefusedUnlessAllowed(t *testing.T) {
	h := newHarness(t)
	hk := newHook(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ delivery) { reply(w, http.StatusOK, quoteBody) })
	h.addProvider(t, "internal", hk.URL)
	cfg := h.config(t)
	cfg.AllowPrivateNetworks = false
	h.run(t, cfg, "internal")

	h.dispatch(t, "internal", inAnHour())
	dl, mark := h.nextFailure(t)
	require.Equal(t, 1, dl.Attempts, "not retried")
	require.Contains(t, dl.LastError, "address not allowed")
	require.Contains(t, mark.Error, "webhook address not allowed")
	require.Empty(t, hk.deliveries())
	h.requireNoWaits(t)
}

func TestRemovedProviderIsNotDeliveredTo(t *testing.T) {
	h := newHarness(t)
	hk := newHook(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ delivery) { reply(w, http.StatusOK, quoteBody) })
	h.addProvider(t, "leaving", hk.URL)
	h.providers.remove("leaving") // deleted while its request waits in the queue
	h.run(t, h.config(t), "leaving")

	h.dispatch(t, "leaving", inAnHour())
	h.waitQueueEmpty(t)
	require.Empty(t, hk.deliveries())
	dls, marks := h.failures.recorded()
	require.Empty(t, dls)
	require.Empty(t, marks)
}

func TestChangedURLTakesEffectAtOnce(t *testing.T) {
	h := newHarness(t)
	old := newHook(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ delivery) {
		http.Error(w, "moving", http.StatusServiceUnavailable)
	})
	moved := newHook(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ delivery) { reply(w, http.StatusOK, quoteBody) })
	secret := h.addProvider(t, "mover", old.URL)
	h.run(t, h.config(t), "mover")

	req := h.dispatch(t, "mover", inAnHour())
	<-old.arrived
	p, err := h.providers.Get(t.Context(), "mover")
	require.NoError(t, err)
	p.WebhookURL = moved.URL
	h.providers.put(p, secret)
	h.advance(t)
	require.Equal(t, req.RFQID, h.nextAnswer(t).Answer.RFQID)
	require.Len(t, old.deliveries(), 1)
	require.Len(t, moved.deliveries(), 1, "the retry went to the new URL")
}
