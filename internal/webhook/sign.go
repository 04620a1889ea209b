package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// DefaultTolerance is how far a delivery's timestamp may be from the
// receiver's clock for Verify to accept it, as Standard Webhooks advises.
const DefaultTolerance = 5 * time.Minute

// SignHeaders returns the Standard Webhooks headers of a delivery of body
// with id msgID at time at, signed with secret ("whsec_" and base64):
// webhook-id, webhook-timestamp (Unix seconds) and webhook-signature
// ("v1,<base64 HMAC-SHA256 of <id>.<timestamp>.<body>>"). Every signed POST
// of rydes, to webhook providers and to notify URLs, is signed here.
func SignHeaders(secret, msgID string, at time.Time, body []byte) (http.Header, error) {
	if msgID == "" {
		return nil, errors.New("sign webhook: empty message id")
	}
	if at.Unix() < 0 {
		return nil, fmt.Errorf("sign webhook: timestamp %s is before 1970", at)
	}
	signer, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return nil, fmt.Errorf("sign webhook: malformed secret: %w", err)
	}
	sig, err := signer.Sign(msgID, at, body)
	if err != nil {
		return nil, fmt.Errorf("sign webhook: %w", err)
	}
	h := http.Header{}
	h.Set(HeaderID, msgID)
	h.Set(HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(HeaderSignature, sig)
	return h, nil
}

// Errors of Verify.
var (
	ErrMissingHeaders    = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature")
	ErrBadTimestamp      = errors.New("webhook: webhook-timestamp is not Unix seconds in canonical form")
	ErrTimestampTooFar   = errors.New("webhook: webhook-timestamp is too far from now")
	ErrSignatureMismatch = errors.New("webhook: no signature matches")
)

// Verify checks a delivery as its receiver should: body and its Standard
// Webhooks headers h must carry a v1 signature made with secret, and a
// timestamp, in canonical Unix seconds (digits only, no leading zero),
// within tolerance of now (DefaultTolerance if tolerance <= 0). It returns
// one of the Err* errors above, wrapped, or a malformed-secret error.
func Verify(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if h.Get(HeaderID) == "" || h.Get(HeaderTimestamp) == "" || h.Get(HeaderSignature) == "" {
		return ErrMissingHeaders
	}
	ts, ok := parseUnixSeconds(h.Get(HeaderTimestamp))
	if !ok {
		return ErrBadTimestamp
	}
	at := time.Unix(ts, 0)
	if d := now.Sub(at); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s off", ErrTimestampTooFar, d.Round(time.Second))
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return fmt.Errorf("webhook: malformed secret: %w", err)
	}
	if err := wh.VerifyIgnoringTimestamp(body, h); err != nil {
		return fmt.Errorf("%w: %w", ErrSignatureMismatch, err)
	}
	return nil
}

// parseUnixSeconds parses s as SignHeaders writes a timestamp: decimal
// digits without sign or leading zero (except "0" itself).
func parseUnixSeconds(s string) (int64, bool) {
	if s == "" || len(s) > 19 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
