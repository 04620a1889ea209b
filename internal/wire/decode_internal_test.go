package wire

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// decodeAnswerBodyTwoPass is how answer bodies were decoded before the
// one-pass decoding: the body with its price raw, then the price on its
// own. decodeAnswerBody must agree with it on every input.
func decodeAnswerBodyTwoPass(body []byte) (answerBody, *priceBody, error) {
	var b answerBody
	if err := decodeStrict(body, &b, ""); err != nil {
		return answerBody{}, nil, err
	}
	if len(b.Price) == 0 || isNull(b.Price) {
		return b, nil, nil
	}
	var p priceBody
	if err := decodeStrict(b.Price, &p, "price."); err != nil {
		return answerBody{}, nil, err
	}
	return b, &p, nil
}

// FuzzDecodeAnswerBodyOnePass checks that decoding in one pass gives what
// decoding in two gives: the same body and price, or the same error.
func FuzzDecodeAnswerBodyOnePass(f *testing.F) {
	for _, body := range []string{
		`{"rfq_id":"x","kind":"quote","price":{"amount":"45.50","currency":"EUR"},"eta_seconds":300,"expires_at":"2026-03-01T13:00:00+01:00"}`,
		`{"kind":"decline","reason":"no vans","price":null}`,
		`{"kind":"quote","price":{"amount":"1","currency":"EUR","tax":"0"}}`,
		`{"kind":"quote","price":{"amount":45.5,"currency":"EUR"}}`,
		`{"kind":"quote","price":"45.50 EUR"}`,
		`{"kind":"quote","price":[]}`,
		`{"kind":"quote","Price":{"Amount":"1","CURRENCY":"EUR"}}`,
		`{"kind":"quote","price":{"amount":"1","amount":"2","currency":"EUR"}}`,
		`{"kind":"quote","provider":"q"}`,
		`{"eta_seconds":99999999999999999999}`,
		`{"kind":"quote"} {}`,
		`{"kind":"quote"`,
		` `, `null`, `[]`, `{}`,
	} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b1, p1, err1 := decodeAnswerBody(body)
		b2, p2, err2 := decodeAnswerBodyTwoPass(body)
		if err2 != nil {
			require.Equal(t, err2, err1)
			return
		}
		require.NoError(t, err1)
		b2.Price = nil // kept raw by the two-pass decoding only
		require.Equal(t, b2, b1)
		require.Equal(t, p2, p1)
	})
}
