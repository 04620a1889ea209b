package webhook_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/wildrydes/rydes/internal/webhook"
)

// FuzzSignatureVerify checks the signing of deliveries and its
// verification: a delivery signed with a secret verifies, with rydes's
// Verify and with the Standard Webhooks library partners use; a change of
// any single byte of the body, the id, the timestamp, the signature or the
// key makes it fail; headers made of anything never panic and never verify
// unless they are the real ones.
func FuzzSignatureVerify(f *testing.F) {
	f.Add([]byte("0123456789abcdef0123456789abcdef"), "msg_8b095f9e-cffc-4790-91a6-28353fa30e42_acme", int64(1782898200), []byte(`{"rfq_id":"8b095f9e"}`), uint(0), byte(1), uint8(0), "v1,garbage")
	f.Add([]byte{0}, "x", int64(0), []byte{}, uint(7), byte(0x80), uint8(1), "")
	f.Add([]byte("k"), "a.b.c", int64(1), []byte("1.2.3"), uint(3), byte(0xff), uint8(2), "v1,")
	f.Add([]byte("secret"), "id with spaces", int64(9999999999), []byte("\x00\xff body"), uint(100), byte(2), uint8(3), "v2,abc v1,def")
	f.Add(make([]byte, 100), "é", int64(1700000000), []byte("ü"), uint(1), byte(0x20), uint8(4), " ")
	f.Fuzz(func(t *testing.T, key []byte, msgID string, ts int64, body []byte, pos uint, flip byte, which uint8, forged string) {
		if len(key) == 0 || len(key) > 256 || msgID == "" || flip == 0 {
			return
		}
		if ts < 0 {
			ts = -ts
		}
		ts %= 100_000_000_000 // up to year 5138
		at := time.Unix(ts, 0)
		secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
		h, err := webhook.SignHeaders(secret, msgID, at, body)
		if err != nil {
			t.Fatalf("sign: %v", err)
		}
		if got := h.Get(webhook.HeaderTimestamp); got != strconv.FormatInt(ts, 10) {
			t.Fatalf("timestamp header %q, want %d", got, ts)
		}
		if err := webhook.Verify(secret, h, body, at, 0); err != nil {
			t.Fatalf("a fresh signature does not verify: %v", err)
		}
		lib, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := lib.VerifyIgnoringTimestamp(body, h); err != nil {
			t.Fatalf("the Standard Webhooks library refuses our signature: %v", err)
		}
		// Outside the tolerance, the same delivery is refused.
		if err := webhook.Verify(secret, h, body, at.Add(webhook.DefaultTolerance+time.Second), 0); !errors.Is(err, webhook.ErrTimestampTooFar) {
			t.Fatalf("a stale delivery: %v", err)
		}

		mutate := func(b []byte) []byte {
			c := append([]byte(nil), b...)
			c[pos%uint(len(c))] ^= flip
			return c
		}
		clone := func() http.Header { return h.Clone() }
		var what string
		mb, mh, msecret := body, clone(), secret
		switch which % 5 {
		case 0:
			if len(body) == 0 {
				return
			}
			what, mb = "body", mutate(body)
		case 1:
			what = "id"
			mh.Set(webhook.HeaderID, string(mutate([]byte(msgID))))
		case 2:
			what = "timestamp"
			mh.Set(webhook.HeaderTimestamp, string(mutate([]byte(h.Get(webhook.HeaderTimestamp)))))
		case 3:
			what = "signature"
			mh.Set(webhook.HeaderSignature, string(mutate([]byte(h.Get(webhook.HeaderSignature)))))
		case 4:
			what, msecret = "key", "whsec_"+base64.StdEncoding.EncodeToString(mutate(key))
		}
		if err := webhook.Verify(msecret, mh, mb, at, 0); err == nil {
			t.Fatalf("a delivery with one byte of its %s changed (pos %d, xor %#x) verifies", what, pos, flip)
		}

		// Forged signature headers: never a panic, never a match unless
		// they hold the real signature.
		fh := clone()
		fh.Set(webhook.HeaderSignature, forged)
		err = webhook.Verify(secret, fh, body, at, 0)
		if err == nil && !containsSignature(forged, h.Get(webhook.HeaderSignature)) {
			t.Fatalf("forged signature %q verifies", forged)
		}
	})
}

// containsSignature reports whether header, a webhook-signature value (a
// space-separated list), holds sig.
func containsSignature(header, sig string) bool {
	for i := 0; i+len(sig) <= len(header); i++ {
		if header[i:i+len(sig)] == sig && (i == 0 || header[i-1] == ' ') && (i+len(sig) == len(header) || header[i+len(sig)] == ' ') {
			return true
		}
	}
	return false
}

// TestVerifyRefusesNonCanonicalTimestamps checks that the timestamp must
// be written as SignHeaders writes it: the library alone would accept a
// leading zero or a sign.
func TestVerifyRefusesNonCanonicalTimestamps(t *testing.T) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	at := time.Unix(1782898200, 0)
	body := []byte(`{}`)
	h, err := webhook.SignHeaders(secret, "msg_1", at, body)
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range []string{"01782898200", "+1782898200", " 1782898200", "1782898200.0", "1782898200x", ""} {
		m := h.Clone()
		m.Set(webhook.HeaderTimestamp, ts)
		if err := webhook.Verify(secret, m, body, at, 0); err == nil {
			t.Errorf("timestamp %q verifies", ts)
		}
	}
	if err := webhook.Verify(secret, h, body, at, 0); err != nil {
		t.Fatalf("the canonical one does not: %v", err)
	}
}
