package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/store"
	"github.com/wildrydes/rydes/internal/wire"
	"github.com/wildrydes/rydes/provider"
)

// errorBodyBytes is how much of an error response's body a dead letter
// keeps.
const errorBodyBytes = 200

// recordTimeout bounds recording a failure, which happens after the
// request's deadline as often as not.
const recordTimeout = 10 * time.Second

// errStopping is returned by a delivery interrupted because its dispatcher
// is stopping; the SDK then hands the request back to the queue, for the
// next instance.
var errStopping = errors.New("dispatcher stopping; the request goes back to the queue")

// errAttemptTimeout is the cause of an attempt's context when the attempt
// took longer than Config.AttemptTimeout.
var errAttemptTimeout = errors.New("attempt timed out")

// MessageID returns the webhook-id of the delivery of RFQ rfqID to provider
// providerID: the same on every attempt and every redelivery, so that
// receivers can recognise a request they already have.
func MessageID(rfqID, providerID string) string {
	return "msg_" + rfqID + "_" + providerID
}

// Dispatcher delivers one webhook provider's requests: it consumes the
// provider's queue with the provider SDK and POSTs each request to the
// provider's URL.
type Dispatcher struct {
	id  string
	dl  *deliverer
	sdk *provider.Provider
}

// NewDispatcher returns a Dispatcher for the webhook provider providerID.
// It does no I/O; Run checks that the provider's queue exists.
func NewDispatcher(cfg Config, providerID string) (*Dispatcher, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return newDispatcher(newDeliverer(cfg), providerID)
}

func newDispatcher(dl *deliverer, providerID string) (*Dispatcher, error) {
	sdk, err := provider.New(provider.Config{
		Conn:        dl.cfg.Conn,
		ID:          providerID,
		Concurrency: dl.cfg.Concurrency,
		Logger:      dl.log, // the SDK adds the provider
	})
	if err != nil {
		return nil, fmt.Errorf("webhook dispatcher: %w", err)
	}
	return &Dispatcher{id: providerID, dl: dl, sdk: sdk}, nil
}

// ProviderID returns the id of the provider the Dispatcher delivers to.
func (d *Dispatcher) ProviderID() string { return d.id }

// Run delivers the provider's requests until ctx is done, then stops
// gracefully: an attempt in flight may finish (it is bounded by
// Config.AttemptTimeout), and a delivery that would need another attempt,
// or is waiting for one, is handed back to the queue for the next instance
// instead. Run returns nil when stopped by ctx, and an error if the
// provider's queue does not exist or consuming it stopped on its own.
func (d *Dispatcher) Run(ctx context.Context) error {
	stop := ctx.Done()
	err := d.sdk.Run(ctx, func(hctx context.Context, req rydes.ProviderRequest) (provider.Reply, error) {
		return d.dl.deliver(hctx, stop, d.id, req)
	})
	if err != nil {
		return fmt.Errorf("webhook dispatcher %s: %w", d.id, err)
	}
	return nil
}

// deliverer delivers requests to webhook providers. One is shared by every
// Dispatcher of a Supervisor, with its HTTP client.
type deliverer struct {
	cfg    Config
	client *http.Client
	log    *slog.Logger
}

func newDeliverer(cfg Config) *deliverer {
	return &deliverer{cfg: cfg, client: newClient(cfg), log: cfg.Logger.With("component", "webhook")}
}

// outcome is what one attempt came to.
type outcome int

const (
	outAnswered     outcome = iota // 200 or 201 with a valid answer
	outAccepted                    // 202 or 204: the provider answers later
	outRetry                       // worth another attempt
	outPermanent                   // another attempt would fail the same way
	outGone                        // 410 Gone: the endpoint is no more
	outUnregistered                // the provider is no longer registered
)

// result is what one attempt came to, and why.
type result struct {
	outcome outcome
	answer  rydes.Answer // outAnswered
	status  int          // the HTTP status, 0 if no response came back
	// detail is the failure for the dead letter ("HTTP 503: <body>",
	// "network error: dial tcp ...: connection refused"); summary is the
	// same without the response body or addresses, for the RFQ's roster,
	// which customers see.
	detail  string
	summary string
	// retryAfter is the wait the provider asked for, if hasRetryAfter.
	retryAfter    time.Duration
	hasRetryAfter bool
	// atDeadline: the attempt was cut short by the request's deadline.
	atDeadline bool
}

// deliver delivers req to provider providerID: it POSTs it until an attempt
// succeeds, fails for good, the attempts run out or the deadline comes.
// It returns the provider's answer, Silent when the provider will answer
// later or the delivery failed (and was recorded as a dead letter), and an
// error when the request should be delivered again: rydes is stopping (stop
// closed, or ctx cancelled before its deadline) or could not read its
// registry or record the failure.
func (dl *deliverer) deliver(ctx context.Context, stop <-chan struct{}, providerID string, req rydes.ProviderRequest) (provider.Reply, error) {
	log := dl.log.With("provider", providerID, "rfq", req.RFQID)
	body, err := json.Marshal(req)
	if err != nil {
		return provider.Silent(), fmt.Errorf("deliver %s to %s: encode request: %w", req.RFQID, providerID, err)
	}
	deadline := req.Deadline
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	msgID := MessageID(req.RFQID, providerID)

	var last result
	attempts := 0
	for {
		if isClosed(stop) {
			return provider.Silent(), fmt.Errorf("deliver %s to %s: %w", req.RFQID, providerID, errStopping)
		}
		if ctx.Err() != nil {
			return dl.ctxEnded(ctx, log, providerID, req, attempts, last)
		}
		attempts++
		res, err := dl.attempt(ctx, providerID, msgID, req.RFQID, body)
		if err != nil {
			if ctx.Err() != nil {
				return dl.ctxEnded(ctx, log, providerID, req, attempts-1, last)
			}
			return provider.Silent(), fmt.Errorf("deliver %s to %s: %w", req.RFQID, providerID, err)
		}
		last = res
		alog := log.With("attempt", attempts, "status", res.status)
		switch res.outcome {
		case outAnswered:
			alog.Info("webhook delivered; provider answered", "kind", res.answer.Kind)
			return replyOf(res.answer), nil
		case outAccepted:
			alog.Info("webhook delivered; provider answers later")
			return provider.Silent(), nil
		case outUnregistered:
			alog.Info("provider no longer registered; request dropped")
			return provider.Silent(), nil
		case outGone:
			reason := "its webhook answered 410 Gone on " + dl.cfg.Clock.Now().UTC().Format(time.RFC3339)
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
			err := dl.cfg.Providers.PauseForGone(rctx, providerID, reason)
			cancel()
			if err != nil {
				return provider.Silent(), fmt.Errorf("deliver %s to %s: endpoint gone: %w", req.RFQID, providerID, err)
			}
			alog.Warn("webhook endpoint gone; provider paused")
			return dl.fail(ctx, alog, providerID, req, attempts, res, "")
		case outPermanent:
			return dl.fail(ctx, alog, providerID, req, attempts, res, "")
		}

		// outRetry.
		if ctx.Err() != nil {
			return dl.ctxEnded(ctx, log, providerID, req, attempts, last)
		}
		if attempts >= dl.cfg.MaxAttempts {
			return dl.fail(ctx, alog, providerID, req, attempts, res, "")
		}
		wait := backoff(attempts, dl.cfg.InitialBackoff, dl.cfg.MaxBackoff)
		if res.hasRetryAfter && res.retryAfter > wait {
			wait = res.retryAfter
		}
		if deadline.IsZero() {
			// No deadline bounds the wait (rydes's requests all have
			// one): neither may a Retry-After.
			wait = min(wait, dl.cfg.MaxBackoff)
		} else if next := dl.cfg.Clock.Now().Add(wait); !next.Before(deadline) {
			return dl.fail(ctx, alog, providerID, req, attempts, res, fmt.Sprintf("the next attempt, in %s, would be past the deadline", wait.Round(time.Millisecond)))
		}
		if isClosed(stop) {
			return provider.Silent(), fmt.Errorf("deliver %s to %s: %w", req.RFQID, providerID, errStopping)
		}
		alog.Info("webhook delivery failed; retrying", "err", res.detail, "retry_in", wait)
		timer := dl.cfg.Clock.NewTimer(wait)
		select {
		case <-timer.Chan():
		case <-stop:
			timer.Stop()
			return provider.Silent(), fmt.Errorf("deliver %s to %s: %w", req.RFQID, providerID, errStopping)
		case <-ctx.Done():
			timer.Stop()
			return dl.ctxEnded(ctx, log, providerID, req, attempts, last)
		}
	}
}

// ctxEnded handles the end of the handler's context: at the request's
// deadline the delivery failed, recorded as such; cancelled before it, rydes
// is stopping and the request goes back to the queue.
func (dl *deliverer) ctxEnded(ctx context.Context, log *slog.Logger, providerID string, req rydes.ProviderRequest, attempts int, last result) (provider.Reply, error) {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return provider.Silent(), fmt.Errorf("deliver %s to %s: %w (%w)", req.RFQID, providerID, errStopping, ctx.Err())
	}
	if last.detail == "" {
		last = result{detail: "timeout: the request's deadline passed before it could be delivered", summary: "timeout: the deadline passed before delivery", atDeadline: true}
	}
	why := "the request's deadline passed"
	if last.atDeadline {
		why = "" // last says so
	}
	return dl.fail(ctx, log, providerID, req, attempts, last, why)
}

// fail records a delivery that failed for good, after attempts attempts of
// which last was the last: a dead letter holding the request, and the
// provider marked failed in the RFQ's roster. It returns Silent, so that the
// request is acknowledged: the dead letter holds it now. why says why
// delivery stopped if that is not plain from last.
func (dl *deliverer) fail(ctx context.Context, log *slog.Logger, providerID string, req rydes.ProviderRequest, attempts int, last result, why string) (provider.Reply, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	now := dl.cfg.Clock.Now().UTC()
	if _, err := dl.cfg.Failures.AddDeadLetter(ctx, rydes.DeadLetter{
		Provider:   providerID,
		RFQID:      req.RFQID,
		Attempts:   attempts,
		LastError:  last.detail,
		LastStatus: last.status,
		Request:    req,
		CreatedAt:  now,
	}); err != nil {
		return provider.Silent(), fmt.Errorf("deliver %s to %s: keep dead letter: %w", req.RFQID, providerID, err)
	}
	plural := "s"
	if attempts == 1 {
		plural = ""
	}
	reason := fmt.Sprintf("webhook delivery failed after %d attempt%s: %s", attempts, plural, last.summary)
	if why != "" {
		reason += "; " + why
	}
	events, err := dl.cfg.Failures.MarkProviderFailed(ctx, store.MarkProviderFailedParams{
		RFQID: req.RFQID, Provider: providerID, Error: reason, Now: now,
	})
	if rydes.ErrorCodeOf(err) == rydes.ENOTFOUND {
		// The RFQ is gone: there is no roster to mark.
		log.Info("no RFQ to mark the provider failed in", "err", err)
		events, err = nil, nil
	}
	if err != nil {
		return provider.Silent(), fmt.Errorf("deliver %s to %s: mark provider failed: %w", req.RFQID, providerID, err)
	}
	if len(events) > 0 && dl.cfg.OnFailed != nil {
		dl.cfg.OnFailed()
	}
	log.Warn("webhook delivery failed; dead letter kept", "attempts", attempts, "err", last.detail, "why", why)
	return provider.Silent(), nil
}

// attempt makes one delivery attempt. It reads the provider and its secret
// first, so that a changed URL or a rotated secret takes effect at once. An
// error means the registry could not be read: nothing was sent.
func (dl *deliverer) attempt(ctx context.Context, providerID, msgID, rfqID string, body []byte) (result, error) {
	p, err := dl.cfg.Providers.Get(ctx, providerID)
	if rydes.ErrorCodeOf(err) == rydes.ENOTFOUND {
		return result{outcome: outUnregistered}, nil
	}
	if err != nil {
		return result{}, fmt.Errorf("read provider: %w", err)
	}
	if p.Kind != rydes.ProviderKindWebhook || p.WebhookURL == "" {
		return permanent(fmt.Sprintf("provider %s is a %s provider without a webhook URL", providerID, p.Kind), "not a webhook provider"), nil
	}
	secret, err := dl.cfg.Providers.WebhookSecret(ctx, providerID)
	if rydes.ErrorCodeOf(err) == rydes.ENOTFOUND {
		return result{outcome: outUnregistered}, nil
	}
	if err != nil {
		return result{}, fmt.Errorf("read signing secret: %w", err)
	}
	if secret == "" {
		return permanent("provider "+providerID+" has no webhook signing secret", "no signing secret"), nil
	}
	if _, err := standardwebhooks.NewWebhook(secret); err != nil {
		return permanent("provider "+providerID+"'s webhook signing secret is malformed", "malformed signing secret"), nil
	}

	actx, cancel := context.WithTimeoutCause(ctx, dl.cfg.AttemptTimeout, errAttemptTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(actx, http.MethodPost, p.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return permanent("invalid webhook URL: "+err.Error(), "invalid webhook URL"), nil
	}
	signed, err := SignHeaders(secret, msgID, dl.cfg.Clock.Now(), body)
	if err != nil {
		return permanent(err.Error(), "could not sign"), nil
	}
	hreq.Header = signed
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("User-Agent", UserAgent)

	resp, err := dl.client.Do(hreq)
	if err != nil {
		return dl.transportFailure(ctx, actx, err), nil
	}
	defer resp.Body.Close()
	limit := dl.cfg.MaxResponseSize
	data, readErr := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	tooLarge := int64(len(data)) > limit
	if tooLarge {
		data = data[:limit]
	}
	return dl.judge(ctx, actx, providerID, rfqID, resp, data, tooLarge, readErr), nil
}

// judge turns a response into a result.
func (dl *deliverer) judge(ctx, actx context.Context, providerID, rfqID string, resp *http.Response, body []byte, tooLarge bool, readErr error) result {
	code := resp.StatusCode
	status := "HTTP " + strconv.Itoa(code)
	switch {
	case code == http.StatusOK || code == http.StatusCreated:
		if readErr != nil {
			// The answer was cut short: as if no response came.
			res := dl.transportFailure(ctx, actx, readErr)
			res.status = code
			return res
		}
		if tooLarge {
			r := permanent(fmt.Sprintf("%s: the answer is larger than %d bytes", status, dl.cfg.MaxResponseSize), status+" with an answer too large")
			r.status = code
			return r
		}
		a, err := wire.DecodeReply(providerID, rfqID, body, dl.cfg.Clock.Now().UTC())
		if err != nil {
			r := permanent(withBody(fmt.Sprintf("%s: invalid answer (%s)", status, describe(err)), body), fmt.Sprintf("%s with an invalid answer: %s", status, describe(err)))
			r.status = code
			return r
		}
		return result{outcome: outAnswered, answer: a, status: code}
	case code == http.StatusAccepted || code == http.StatusNoContent:
		return result{outcome: outAccepted, status: code}
	case code == http.StatusGone:
		return result{outcome: outGone, status: code, detail: withBody(status+" Gone", body), summary: status + " Gone: the provider was paused"}
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500 && code <= 599:
		res := result{outcome: outRetry, status: code, detail: withBody(status, body), summary: status}
		res.retryAfter, res.hasRetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), dl.cfg.Clock.Now())
		return res
	case code >= 300 && code <= 399:
		detail := status + ": redirects are not followed"
		if loc := resp.Header.Get("Location"); loc != "" {
			detail += " (Location: " + clean(loc, errorBodyBytes) + ")"
		}
		return result{outcome: outPermanent, status: code, detail: detail, summary: status + ": redirect not followed"}
	case code >= 200 && code <= 299:
		return result{outcome: outPermanent, status: code, detail: withBody(status+": unexpected success status (answer with 200 or 201 and a body, or 202 or 204)", body), summary: status + ": unexpected success status"}
	default:
		return result{outcome: outPermanent, status: code, detail: withBody(status, body), summary: status}
	}
}

// transportFailure describes an attempt that got no (complete) response.
// ctx is the handler's, actx the attempt's.
func (dl *deliverer) transportFailure(ctx, actx context.Context, err error) result {
	switch {
	case errors.Is(context.Cause(actx), errAttemptTimeout):
		msg := fmt.Sprintf("timeout: no response within %s", dl.cfg.AttemptTimeout)
		return result{outcome: outRetry, detail: msg, summary: msg}
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		msg := "timeout: no response before the request's deadline"
		return result{outcome: outRetry, detail: msg, summary: msg, atDeadline: true}
	case ctx.Err() != nil:
		return result{outcome: outRetry, detail: "interrupted: " + ctx.Err().Error(), summary: "interrupted"}
	case errors.Is(err, errAddressNotAllowed):
		return permanent("webhook URL refused: "+unwrapURLError(err), "webhook address not allowed")
	}
	var tlsErr *tls.CertificateVerificationError
	if errors.As(err, &tlsErr) {
		return permanent("TLS error: "+unwrapURLError(err), "TLS certificate not valid")
	}
	return result{outcome: outRetry, detail: "network error: " + unwrapURLError(err), summary: "network error"}
}

func permanent(detail, summary string) result {
	return result{outcome: outPermanent, detail: detail, summary: summary}
}

// unwrapURLError returns err's message without the method and URL that
// *url.Error adds: a URL may carry a token in its query.
func unwrapURLError(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err.Error()
	}
	return err.Error()
}

// describe returns a decoding error's message with its field.
func describe(err error) string {
	if f := rydes.ErrorFieldOf(err); f != "" {
		return f + ": " + rydes.ErrorMessageOf(err)
	}
	return rydes.ErrorMessageOf(err)
}

// withBody returns "<status>: <start of body>", or status if the body is
// blank.
func withBody(status string, body []byte) string {
	if s := snippet(body); s != "" {
		return status + ": " + s
	}
	return status
}

// snippet returns the first errorBodyBytes of body as printable text.
func snippet(body []byte) string {
	return clean(string(body[:min(len(body), errorBodyBytes)]), errorBodyBytes)
}

// clean makes s safe to show and log: valid UTF-8, control characters as
// spaces, trimmed, at most n bytes.
func clean(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	s = strings.ToValidUTF8(s, "") // also drops a rune cut in two at the end
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// replyOf turns a decoded answer into the SDK's reply.
func replyOf(a rydes.Answer) provider.Reply {
	if a.Kind == rydes.AnswerDecline {
		return provider.Decline(a.Reason)
	}
	var opts []provider.QuoteOption
	if a.ETASeconds != nil {
		opts = append(opts, provider.WithETA(time.Duration(*a.ETASeconds)*time.Second))
	}
	if !a.ExpiresAt.IsZero() {
		opts = append(opts, provider.WithExpiry(a.ExpiresAt))
	}
	return provider.Quote(a.Price, opts...)
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
