package wire_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/wire"
)

const rfqID = "8b095f9e-cffc-4790-91a6-28353fa30e42"

var received = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func intPtr(i int) *int { return &i }

func TestDecodeAnswerGood(t *testing.T) {
	tests := []struct {
		name string
		body string
		want rydes.Answer
	}{
		{
			name: "full quote",
			body: `{"rfq_id":"` + rfqID + `","kind":"quote","price":{"amount":"45.50","currency":"EUR"},"eta_seconds":300,"expires_at":"2026-03-01T14:00:00+01:00"}`,
			want: rydes.Answer{
				RFQID: rfqID, Provider: "unicorn-1", Kind: rydes.AnswerQuote,
				Price:      rydes.Price{Amount: "45.50", Currency: "EUR"},
				ETASeconds: intPtr(300), ExpiresAt: time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC),
				ReceivedAt: received,
			},
		},
		{
			name: "minimal quote",
			body: `{"rfq_id":"` + rfqID + `","kind":"quote","price":{"amount":"7","currency":"USD"}}`,
			want: rydes.Answer{RFQID: rfqID, Provider: "unicorn-1", Kind: rydes.AnswerQuote, Price: rydes.Price{Amount: "7", Currency: "USD"}, ReceivedAt: received},
		},
		{
			name: "decline with reason, whitespace around",
			body: " \n{\"rfq_id\":\"" + rfqID + "\",\"kind\":\"decline\",\"reason\":\"no unicorns left\"}\n ",
			want: rydes.Answer{RFQID: rfqID, Provider: "unicorn-1", Kind: rydes.AnswerDecline, Reason: "no unicorns left", ReceivedAt: received},
		},
		{
			name: "decline with null price",
			body: `{"rfq_id":"` + rfqID + `","kind":"decline","price":null}`,
			want: rydes.Answer{RFQID: rfqID, Provider: "unicorn-1", Kind: rydes.AnswerDecline, ReceivedAt: received},
		},
		{
			name: "eta zero",
			body: `{"rfq_id":"` + rfqID + `","kind":"quote","price":{"amount":"1.0001","currency":"JPY"},"eta_seconds":0}`,
			want: rydes.Answer{RFQID: rfqID, Provider: "unicorn-1", Kind: rydes.AnswerQuote, Price: rydes.Price{Amount: "1.0001", Currency: "JPY"}, ETASeconds: intPtr(0), ReceivedAt: received},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wire.DecodeAnswer("unicorn-1", []byte(tt.body), received)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestDecodeAnswerBad(t *testing.T) {
	quote := func(extra string) string {
		return `{"rfq_id":"` + rfqID + `","kind":"quote","price":{"amount":"45.50","currency":"EUR"}` + extra + `}`
	}
	tests := []struct {
		name     string
		provider string
		body     string
		code     rydes.ErrorCode
		field    string
	}{
		{name: "empty", body: ``, code: rydes.EINVALID},
		{name: "blank", body: "  \n", code: rydes.EINVALID},
		{name: "not an object", body: `[1,2]`, code: rydes.EINVALID},
		{name: "null", body: `null`, code: rydes.EINVALID},
		{name: "string", body: `"quote"`, code: rydes.EINVALID},
		{name: "syntax error", body: `{"rfq_id":`, code: rydes.EINVALID},
		{name: "broken syntax", body: `{"rfq_id" "x"}`, code: rydes.EINVALID},
		{name: "trailing value", body: quote(``) + `{}`, code: rydes.EINVALID},
		{name: "trailing garbage", body: quote(``) + ` x`, code: rydes.EINVALID},
		{name: "provider in body", body: quote(`,"provider":"someone-else"`), code: rydes.EINVALID, field: "provider"},
		{name: "received_at in body", body: quote(`,"received_at":"2026-03-01T12:00:00Z"`), code: rydes.EINVALID, field: "received_at"},
		{name: "unknown price field", body: `{"rfq_id":"` + rfqID + `","kind":"quote","price":{"amount":"1","currency":"EUR","vat":"0"}}`, code: rydes.EINVALID, field: "price.vat"},
		{name: "price amount a number", body: `{"rfq_id":"` + rfqID + `","kind":"quote","price":{"amount":45.5,"currency":"EUR"}}`, code: rydes.EINVALID, field: "price.amount"},
		{name: "price a string", body: `{"rfq_id":"` + rfqID + `","kind":"quote","price":"45.50 EUR"}`, code: rydes.EINVALID, field: "price"},
		{name: "price amount negative", body: `{"rfq_id":"` + rfqID + `","kind":"quote","price":{"amount":"-1","currency":"EUR"}}`, code: rydes.EINVALID, field: "price.amount"},
		{name: "price amount zero", body: `{"rfq_id":"` + rfqID + `","kind":"quote","price":{"amount":"0","currency":"EUR"}}`, code: rydes.EINVALID, field: "price.amount"},
		{name: "price currency unknown", body: `{"rfq_id":"` + rfqID + `","kind":"quote","price":{"amount":"1","currency":"XYZ"}}`, code: rydes.EINVALID, field: "price.currency"},
		{name: "quote without price", body: `{"rfq_id":"` + rfqID + `","kind":"quote"}`, code: rydes.EINVALID, field: "price.amount"},
		{name: "kind missing", body: `{"rfq_id":"` + rfqID + `"}`, code: rydes.EINVALID, field: "kind"},
		{name: "kind unknown", body: `{"rfq_id":"` + rfqID + `","kind":"maybe"}`, code: rydes.EINVALID, field: "kind"},
		{name: "kind a number", body: `{"rfq_id":"` + rfqID + `","kind":1}`, code: rydes.EINVALID, field: "kind"},
		{name: "rfq_id missing", body: `{"kind":"decline"}`, code: rydes.EINVALID, field: "rfq_id"},
		{name: "rfq_id not a uuid", body: `{"rfq_id":"rfq-1","kind":"decline"}`, code: rydes.EINVALID, field: "rfq_id"},
		{name: "eta a string", body: quote(`,"eta_seconds":"300"`), code: rydes.EINVALID, field: "eta_seconds"},
		{name: "eta fractional", body: quote(`,"eta_seconds":1.5`), code: rydes.EINVALID, field: "eta_seconds"},
		{name: "eta huge", body: quote(`,"eta_seconds":1e40`), code: rydes.EINVALID, field: "eta_seconds"},
		{name: "eta negative", body: quote(`,"eta_seconds":-1`), code: rydes.EINVALID, field: "eta_seconds"},
		{name: "eta too long", body: quote(`,"eta_seconds":86401`), code: rydes.EINVALID, field: "eta_seconds"},
		{name: "expires_at not a time", body: quote(`,"expires_at":"tomorrow"`), code: rydes.EINVALID, field: "expires_at"},
		{name: "expires_at a number", body: quote(`,"expires_at":1767225600`), code: rydes.EINVALID, field: "expires_at"},
		{name: "expires_at in the past", body: quote(`,"expires_at":"2026-03-01T11:59:59Z"`), code: rydes.EINVALID, field: "expires_at"},
		{name: "reason on a quote", body: quote(`,"reason":"because"`), code: rydes.EINVALID, field: "reason"},
		{name: "price on a decline", body: `{"rfq_id":"` + rfqID + `","kind":"decline","price":{"amount":"1","currency":"EUR"}}`, code: rydes.EINVALID, field: "price"},
		{name: "reason with control characters", body: `{"rfq_id":"` + rfqID + `","kind":"decline","reason":"a\u0000b"}`, code: rydes.EINVALID, field: "reason"},
		{name: "reason too long", body: `{"rfq_id":"` + rfqID + `","kind":"decline","reason":"` + strings.Repeat("x", rydes.MaxReasonLen+1) + `"}`, code: rydes.EINVALID, field: "reason"},
		{name: "bad provider", provider: "a.b", body: quote(``), code: rydes.EINVALID, field: "provider"},
		{name: "empty provider", provider: "-", body: quote(``), code: rydes.EINVALID, field: "provider"},
		{name: "too large", body: `{"rfq_id":"` + rfqID + `","kind":"decline","reason":"` + strings.Repeat(" ", wire.MaxAnswerBytes) + `"}`, code: rydes.ETOOLARGE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			provider := tt.provider
			switch provider {
			case "":
				provider = "unicorn-1"
			case "-":
				provider = ""
			}
			_, err := wire.DecodeAnswer(provider, []byte(tt.body), received)
			require.Error(t, err)
			var rerr *rydes.Error
			require.ErrorAs(t, err, &rerr, "errors must be *rydes.Error")
			require.Equal(t, tt.code, rerr.Code, "code of %v", err)
			require.Equal(t, tt.field, rerr.Field, "field of %v", err)
		})
	}
}

func TestEncodeAnswerRoundTrip(t *testing.T) {
	answers := []rydes.Answer{
		{RFQID: rfqID, Provider: "p", Kind: rydes.AnswerQuote, Price: rydes.Price{Amount: "45.50", Currency: "EUR"}, ETASeconds: intPtr(300), ExpiresAt: received.Add(time.Hour + time.Nanosecond), ReceivedAt: received},
		{RFQID: rfqID, Provider: "p", Kind: rydes.AnswerQuote, Price: rydes.Price{Amount: "3", Currency: "GBP"}, ReceivedAt: received},
		{RFQID: rfqID, Provider: "p", Kind: rydes.AnswerDecline, Reason: "fully booked", ReceivedAt: received},
		{RFQID: rfqID, Provider: "p", Kind: rydes.AnswerDecline, ReceivedAt: received},
	}
	for _, a := range answers {
		body, err := wire.EncodeAnswer(a)
		require.NoError(t, err)
		require.NotContains(t, string(body), "provider")
		require.NotContains(t, string(body), "received_at")
		got, err := wire.DecodeAnswer(a.Provider, body, a.ReceivedAt)
		require.NoError(t, err, "body %s", body)
		require.Equal(t, a, got)
	}
}

func TestEncodeAnswerBody(t *testing.T) {
	body, err := wire.EncodeAnswer(rydes.Answer{RFQID: rfqID, Kind: rydes.AnswerQuote, Price: rydes.Price{Amount: "45.50", Currency: "EUR"}, ETASeconds: intPtr(300), ExpiresAt: time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)})
	require.NoError(t, err)
	require.JSONEq(t, `{"rfq_id":"`+rfqID+`","kind":"quote","price":{"amount":"45.50","currency":"EUR"},"eta_seconds":300,"expires_at":"2026-03-01T13:00:00Z"}`, string(body))

	body, err = wire.EncodeAnswer(rydes.Answer{RFQID: rfqID, Kind: rydes.AnswerDecline, Reason: "no"})
	require.NoError(t, err)
	require.JSONEq(t, `{"rfq_id":"`+rfqID+`","kind":"decline","reason":"no"}`, string(body))
}

func TestEncodeAnswerInvalid(t *testing.T) {
	for _, a := range []rydes.Answer{
		{RFQID: rfqID, Kind: "maybe"},
		{RFQID: "nope", Kind: rydes.AnswerDecline},
		{RFQID: rfqID, Kind: rydes.AnswerQuote},
		{RFQID: rfqID, Kind: rydes.AnswerDecline, Price: rydes.Price{Amount: "1", Currency: "EUR"}},
	} {
		_, err := wire.EncodeAnswer(a)
		require.Equal(t, rydes.EINVALID, rydes.ErrorCodeOf(err), "%+v: %v", a, err)
	}
}

func TestRFQIDOf(t *testing.T) {
	require.Equal(t, rfqID, wire.RFQIDOf([]byte(`{"rfq_id":"`+rfqID+`","kind":"nonsense","extra":1}`)))
	require.Empty(t, wire.RFQIDOf([]byte(`{"rfq_id":"not-a-uuid"}`)))
	require.Empty(t, wire.RFQIDOf([]byte(`{"rfq_id":`)))
	require.Empty(t, wire.RFQIDOf([]byte(`[]`)))
}

func FuzzDecodeAnswer(f *testing.F) {
	f.Add("p", `{"rfq_id":"`+rfqID+`","kind":"quote","price":{"amount":"45.50","currency":"EUR"},"eta_seconds":300,"expires_at":"2026-03-01T13:00:00+01:00"}`)
	f.Add("p", `{"rfq_id":"`+rfqID+`","kind":"decline","reason":"x"}`)
	f.Add("p", `{"rfq_id":"`+rfqID+`","kind":"decline","price":null}`)
	f.Add("p", `{"rfq_id":"`+rfqID+`","kind":"quote","price":{"amount":"1e3","currency":"eur"}}`)
	f.Add("p", `{"rfq_id":"`+rfqID+`","kind":"quote","provider":"q"}`)
	f.Add("a.b", `{}`)
	f.Add("", `null`)
	f.Add("p", `{"eta_seconds":99999999999999999999}`)
	f.Fuzz(func(t *testing.T, provider, body string) {
		a, err := wire.DecodeAnswer(provider, []byte(body), received)
		if err != nil {
			var rerr *rydes.Error
			require.ErrorAs(t, err, &rerr, "errors must be *rydes.Error")
			return
		}
		require.NoError(t, a.Validate())
		require.Equal(t, provider, a.Provider)
		require.Equal(t, received, a.ReceivedAt)
		// What decodes re-encodes to a body that decodes to the same answer.
		again, err := wire.EncodeAnswer(a)
		require.NoError(t, err)
		b, err := wire.DecodeAnswer(provider, again, received)
		require.NoError(t, err)
		require.Equal(t, a, b)
	})
}

// BenchmarkDecodeAnswer decodes a quote as a provider sends it.
func BenchmarkDecodeAnswer(b *testing.B) {
	body := []byte(`{"rfq_id":"` + rfqID + `","kind":"quote","price":{"amount":"45.50","currency":"EUR"},"eta_seconds":300}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := wire.DecodeAnswer("p", body, received); err != nil {
			b.Fatal(err)
		}
	}
}
