package wire_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/wire"
)

func TestDecodeReplyGood(t *testing.T) {
	tests := []struct {
		name string
		body string
		want rydes.Answer
	}{
		{
			name: "quote without rfq_id",
			body: `{"kind":"quote","price":{"amount":"45.50","currency":"EUR"},"eta_seconds":300,"expires_at":"2026-03-01T14:00:00+01:00"}`,
			want: rydes.Answer{
				RFQID: rfqID, Provider: "hook-1", Kind: rydes.AnswerQuote,
				Price:      rydes.Price{Amount: "45.50", Currency: "EUR"},
				ETASeconds: intPtr(300), ExpiresAt: received.Add(time.Hour),
				ReceivedAt: received,
			},
		},
		{
			name: "quote with the request's rfq_id",
			body: `{"rfq_id":"` + rfqID + `","kind":"quote","price":{"amount":"7","currency":"USD"}}`,
			want: rydes.Answer{RFQID: rfqID, Provider: "hook-1", Kind: rydes.AnswerQuote, Price: rydes.Price{Amount: "7", Currency: "USD"}, ReceivedAt: received},
		},
		{
			name: "rfq_id in upper case is the same id",
			body: `{"rfq_id":"` + strings.ToUpper(rfqID) + `","kind":"decline"}`,
			want: rydes.Answer{RFQID: rfqID, Provider: "hook-1", Kind: rydes.AnswerDecline, ReceivedAt: received},
		},
		{
			name: "decline with reason, whitespace around",
			body: "\n {\"kind\":\"decline\",\"reason\":\"no unicorns left\"} \n",
			want: rydes.Answer{RFQID: rfqID, Provider: "hook-1", Kind: rydes.AnswerDecline, Reason: "no unicorns left", ReceivedAt: received},
		},
		{
			name: "decline with null price",
			body: `{"kind":"decline","price":null}`,
			want: rydes.Answer{RFQID: rfqID, Provider: "hook-1", Kind: rydes.AnswerDecline, ReceivedAt: received},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wire.DecodeReply("hook-1", rfqID, []byte(tt.body), received)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestDecodeReplyBad(t *testing.T) {
	const otherID = "0d6c7c8e-5a1f-4d3c-9b7a-2f1e0c9d8b7a"
	tests := []struct {
		name  string
		rfqID string
		body  string
		code  rydes.ErrorCode
		field string
	}{
		{name: "empty", body: ``, code: rydes.EINVALID},
		{name: "blank", body: " \r\n", code: rydes.EINVALID},
		{name: "null", body: `null`, code: rydes.EINVALID},
		{name: "array", body: `[{"kind":"decline"}]`, code: rydes.EINVALID},
		{name: "text", body: `OK`, code: rydes.EINVALID},
		{name: "two objects", body: `{"kind":"decline"}{"kind":"decline"}`, code: rydes.EINVALID},
		{name: "truncated", body: `{"kind":"decline"`, code: rydes.EINVALID},
		{name: "unknown field", body: `{"kind":"decline","note":"x"}`, code: rydes.EINVALID, field: "note"},
		{name: "provider in body", body: `{"kind":"decline","provider":"someone-else"}`, code: rydes.EINVALID, field: "provider"},
		{name: "another rfq", body: `{"rfq_id":"` + otherID + `","kind":"decline"}`, code: rydes.EINVALID, field: "rfq_id"},
		{name: "rfq_id not a uuid", body: `{"rfq_id":"nope","kind":"decline"}`, code: rydes.EINVALID, field: "rfq_id"},
		{name: "rfq_id not a string", body: `{"rfq_id":7,"kind":"decline"}`, code: rydes.EINVALID, field: "rfq_id"},
		{name: "no kind", body: `{"price":{"amount":"1","currency":"EUR"}}`, code: rydes.EINVALID, field: "kind"},
		{name: "bad kind", body: `{"kind":"maybe"}`, code: rydes.EINVALID, field: "kind"},
		{name: "quote without price", body: `{"kind":"quote"}`, code: rydes.EINVALID, field: "price.amount"},
		{name: "price not an object", body: `{"kind":"quote","price":"45.50 EUR"}`, code: rydes.EINVALID, field: "price"},
		{name: "price unknown field", body: `{"kind":"quote","price":{"amount":"1","currency":"EUR","tax":"0"}}`, code: rydes.EINVALID, field: "price.tax"},
		{name: "price as number", body: `{"kind":"quote","price":{"amount":45.5,"currency":"EUR"}}`, code: rydes.EINVALID, field: "price.amount"},
		{name: "unknown currency", body: `{"kind":"quote","price":{"amount":"1","currency":"XYZ"}}`, code: rydes.EINVALID, field: "price.currency"},
		{name: "negative eta", body: `{"kind":"quote","price":{"amount":"1","currency":"EUR"},"eta_seconds":-1}`, code: rydes.EINVALID, field: "eta_seconds"},
		{name: "expiry not a time", body: `{"kind":"quote","price":{"amount":"1","currency":"EUR"},"expires_at":"tomorrow"}`, code: rydes.EINVALID, field: "expires_at"},
		{name: "expiry in the past", body: `{"kind":"quote","price":{"amount":"1","currency":"EUR"},"expires_at":"2020-01-01T00:00:00Z"}`, code: rydes.EINVALID, field: "expires_at"},
		{name: "decline with price", body: `{"kind":"decline","price":{"amount":"1","currency":"EUR"}}`, code: rydes.EINVALID, field: "price"},
		{name: "quote with reason", body: `{"kind":"quote","price":{"amount":"1","currency":"EUR"},"reason":"x"}`, code: rydes.EINVALID, field: "reason"},
		{name: "reason with control characters", body: `{"kind":"decline","reason":"a\u0007b"}`, code: rydes.EINVALID, field: "reason"},
		{name: "request id not a uuid", rfqID: "not-a-uuid", body: `{"kind":"decline"}`, code: rydes.EINVALID, field: "rfq_id"},
		{name: "too large", body: `{"kind":"decline","reason":"` + strings.Repeat(" ", wire.MaxReplyBytes) + `"}`, code: rydes.ETOOLARGE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := rfqID
			if tt.rfqID != "" {
				id = tt.rfqID
			}
			_, err := wire.DecodeReply("hook-1", id, []byte(tt.body), received)
			require.Error(t, err)
			require.Equal(t, tt.code, rydes.ErrorCodeOf(err), "error: %v", err)
			require.Equal(t, tt.field, rydes.ErrorFieldOf(err), "error: %v", err)
		})
	}
}

func TestDecodeReplyEchoesLongRFQIDShortly(t *testing.T) {
	long := strings.Repeat("é", 200)
	_, err := wire.DecodeReply("hook-1", rfqID, []byte(`{"rfq_id":"`+long+`","kind":"decline"}`), received)
	require.Error(t, err)
	require.Less(t, len(err.Error()), 300, "a long rfq_id is cut in the message")
	require.True(t, utf8.ValidString(err.Error()), "it is cut on a rune boundary")
}

// TestDecodeReplyAgreesWithDecodeAnswer: a reply that names its RFQ is the
// same answer as the same body sent over NATS or the HTTP answer route.
func TestDecodeReplyAgreesWithDecodeAnswer(t *testing.T) {
	body := []byte(`{"rfq_id":"` + rfqID + `","kind":"quote","price":{"amount":"12.3","currency":"GBP"},"eta_seconds":60}`)
	viaReply, err := wire.DecodeReply("hook-1", rfqID, body, received)
	require.NoError(t, err)
	viaAnswer, err := wire.DecodeAnswer("hook-1", body, received)
	require.NoError(t, err)
	require.Equal(t, viaAnswer, viaReply)
}

func FuzzDecodeReply(f *testing.F) {
	f.Add(`{"kind":"quote","price":{"amount":"45.50","currency":"EUR"},"eta_seconds":300,"expires_at":"2026-03-01T13:00:00+01:00"}`)
	f.Add(`{"rfq_id":"` + rfqID + `","kind":"decline","reason":"x"}`)
	f.Add(`{"rfq_id":"` + strings.ToUpper(rfqID) + `","kind":"decline"}`)
	f.Add(`{"rfq_id":"0d6c7c8e-5a1f-4d3c-9b7a-2f1e0c9d8b7a","kind":"decline"}`)
	f.Add(`{"kind":"decline","price":null}`)
	f.Add(`{"kind":"quote","price":{"amount":"1e3","currency":"eur"}}`)
	f.Add(`{"kind":"quote","provider":"q"}`)
	f.Add(`{"eta_seconds":99999999999999999999}`)
	f.Add(`null`)
	f.Add(``)
	f.Fuzz(func(t *testing.T, body string) {
		a, err := wire.DecodeReply("hook-1", rfqID, []byte(body), received)
		if err != nil {
			var rerr *rydes.Error
			require.ErrorAs(t, err, &rerr, "errors must be *rydes.Error")
			return
		}
		require.NoError(t, a.Validate())
		require.Equal(t, "hook-1", a.Provider)
		require.Equal(t, rfqID, a.RFQID, "the answer is always for the request answered")
		require.Equal(t, received, a.ReceivedAt)
		// What decodes re-encodes to a body that decodes to the same answer,
		// both as a reply and as an answer over NATS.
		again, err := wire.EncodeAnswer(a)
		require.NoError(t, err)
		b, err := wire.DecodeReply("hook-1", rfqID, again, received)
		require.NoError(t, err)
		require.Equal(t, a, b)
		c, err := wire.DecodeAnswer("hook-1", again, received)
		require.NoError(t, err)
		require.Equal(t, a, c)
	})
}
