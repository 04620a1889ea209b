// Package wire holds the wire format of what providers send to rydes: the
// answer body, decoded strictly and validated the same way whether it came
// over NATS or HTTP. The provider is never part of the body; it is whoever
// the transport authenticated (the NATS subject it published on, the
// credentials of an HTTP request).
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/wildrydes/rydes"
)

// MaxAnswerBytes is the largest answer body accepted.
const MaxAnswerBytes = 16 << 10

// answerBody is the JSON shape of an answer on the wire. Price is kept raw
// so that it is decoded strictly on its own, with its fields named
// "price.<field>" in errors.
type answerBody struct {
	RFQID      string          `json:"rfq_id"`
	Kind       string          `json:"kind"`
	Price      json.RawMessage `json:"price,omitempty"`
	ETASeconds *int            `json:"eta_seconds,omitempty"`
	ExpiresAt  *string         `json:"expires_at,omitempty"`
	Reason     string          `json:"reason,omitempty"`
}

// typedAnswerBody is answerBody with the price decoded in the same pass:
// what a well-formed body decodes into (decodeAnswerBody).
type typedAnswerBody struct {
	RFQID      string     `json:"rfq_id"`
	Kind       string     `json:"kind"`
	Price      *priceBody `json:"price,omitempty"`
	ETASeconds *int       `json:"eta_seconds,omitempty"`
	ExpiresAt  *string    `json:"expires_at,omitempty"`
	Reason     string     `json:"reason,omitempty"`
}

// decodeAnswerBody decodes an answer body strictly, and its price, nil if
// it has none (left out or null). A well-formed body takes one pass, the
// price with it; a body that pass refuses is decoded again in two, the
// body and then its price on its own, for an error that names the field
// ("price.tax": encoding/json names no path for an unknown field inside
// the price). Two decoders an answer were 2 % of rydes's CPU at
// saturation.
func decodeAnswerBody(body []byte) (answerBody, *priceBody, error) {
	var t typedAnswerBody
	if decodeStrict(body, &t, "") == nil {
		return answerBody{RFQID: t.RFQID, Kind: t.Kind, ETASeconds: t.ETASeconds, ExpiresAt: t.ExpiresAt, Reason: t.Reason}, t.Price, nil
	}
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

// priceBody is the JSON shape of a price.
type priceBody struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

// DecodeAnswer decodes and validates the answer body that provider sent,
// received at receivedAt. The body must be one JSON object of at most
// MaxAnswerBytes with only the known fields:
//
//	{"rfq_id": "<uuid>", "kind": "quote"|"decline",
//	 "price": {"amount": "45.50", "currency": "EUR"}, "eta_seconds": 300,
//	 "expires_at": "<RFC 3339>", "reason": "..."}
//
// The body cannot name the provider: a "provider" field is an unknown field.
// Errors are *rydes.Error: ETOOLARGE for an oversized body, EINVALID
// otherwise, with Field naming the offending field where there is one.
func DecodeAnswer(provider string, body []byte, receivedAt time.Time) (rydes.Answer, error) {
	if len(body) > MaxAnswerBytes {
		return rydes.Answer{}, rydes.Errorf(rydes.ETOOLARGE, "an answer must be at most %d bytes, got %d", MaxAnswerBytes, len(body))
	}
	b, price, err := decodeAnswerBody(body)
	if err != nil {
		return rydes.Answer{}, err
	}
	return b.answer(b.RFQID, provider, price, receivedAt)
}

// EncodeAnswer returns the wire body of a: everything but the provider and
// the time it was received, which are not the sender's to say. It fails with
// an EINVALID *rydes.Error if a is not a valid answer.
func EncodeAnswer(a rydes.Answer) ([]byte, error) {
	// The provider is not part of the body; validate the rest.
	check := a
	if check.Provider == "" {
		check.Provider = "encoder"
	}
	if err := check.Validate(); err != nil {
		return nil, err
	}
	b := answerBody{RFQID: a.RFQID, Kind: string(a.Kind), ETASeconds: a.ETASeconds, Reason: a.Reason}
	if a.Kind == rydes.AnswerQuote {
		price, err := json.Marshal(priceBody(a.Price))
		if err != nil {
			return nil, fmt.Errorf("encode price: %w", err)
		}
		b.Price = price
		if !a.ExpiresAt.IsZero() {
			s := a.ExpiresAt.UTC().Format(time.RFC3339Nano)
			b.ExpiresAt = &s
		}
	}
	body, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode answer: %w", err)
	}
	return body, nil
}

// RFQIDOf returns the rfq_id of a body that may not decode as an answer, if
// it is an object holding a well-formed RFQ id, and "" otherwise. It lets a
// refused answer be filed under its RFQ for audit.
func RFQIDOf(body []byte) string {
	if len(body) > MaxAnswerBytes {
		return ""
	}
	var v struct {
		RFQID string `json:"rfq_id"`
	}
	if json.Unmarshal(body, &v) != nil || rydes.ValidateID(v.RFQID) != nil {
		return ""
	}
	return v.RFQID
}

// decodeStrict decodes data, which must be exactly one JSON object, into v,
// refusing unknown fields. Errors name fields with prefix prepended.
func decodeStrict(data []byte, v any, prefix string) error {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		if prefix != "" {
			return rydes.FieldErrorf(strings.TrimSuffix(prefix, "."), "must be a JSON object")
		}
		return rydes.Errorf(rydes.EINVALID, "the body is empty; expected a JSON object")
	}
	if trimmed[0] != '{' {
		if prefix != "" {
			return rydes.FieldErrorf(strings.TrimSuffix(prefix, "."), "must be a JSON object")
		}
		return rydes.Errorf(rydes.EINVALID, "the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, prefix)
	}
	if _, err := dec.Token(); err != io.EOF {
		return rydes.Errorf(rydes.EINVALID, "the body must hold a single JSON value")
	}
	return nil
}

// jsonError translates an encoding/json error into a *rydes.Error.
func jsonError(err error, prefix string) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return rydes.Errorf(rydes.EINVALID, "malformed JSON at byte %d: %s", syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return rydes.Errorf(rydes.EINVALID, "malformed JSON: unexpected end of input")
	case errors.As(err, &typ):
		field := prefix + typ.Field
		if typ.Field == "" {
			field = strings.TrimSuffix(prefix, ".")
		}
		return rydes.FieldErrorf(field, "must be %s", describeType(typ.Type.Kind()))
	}
	// encoding/json reports unknown fields as a plain error:
	// json: unknown field "name".
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if unq, uerr := strconv.Unquote(name); uerr == nil {
			name = unq
		}
		return rydes.FieldErrorf(prefix+name, "is not a known field")
	}
	return rydes.Errorf(rydes.EINVALID, "malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// describeType names a Go kind as a JSON type for error messages.
func describeType(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number"
	case reflect.Struct, reflect.Map:
		return "a JSON object"
	default:
		return "a value of another type"
	}
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// answer turns a decoded body and its price into the validated answer of
// provider to the RFQ rfqID: the part DecodeAnswer and DecodeReply share.
func (b answerBody) answer(rfqID, provider string, price *priceBody, receivedAt time.Time) (rydes.Answer, error) {
	a := rydes.Answer{
		RFQID:      rfqID,
		Provider:   provider,
		Kind:       rydes.AnswerKind(b.Kind),
		ETASeconds: b.ETASeconds,
		Reason:     b.Reason,
		ReceivedAt: receivedAt,
	}
	if price != nil {
		a.Price = rydes.Price(*price)
	}
	if b.ExpiresAt != nil {
		if len(*b.ExpiresAt) > rydes.MaxTimeTextLen {
			return rydes.Answer{}, rydes.FieldErrorf("expires_at", "must be at most %d bytes", rydes.MaxTimeTextLen)
		}
		t, err := time.Parse(time.RFC3339Nano, *b.ExpiresAt)
		if err != nil {
			return rydes.Answer{}, rydes.FieldErrorf("expires_at", "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
		}
		a.ExpiresAt = t.UTC()
	}
	if err := a.Validate(); err != nil {
		return rydes.Answer{}, err
	}
	return a, nil
}
