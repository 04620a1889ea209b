package wire

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wildrydes/rydes"
)

// MaxReplyBytes is the largest webhook reply body accepted.
const MaxReplyBytes = MaxAnswerBytes

// DecodeReply decodes and validates the answer a webhook provider returned in
// the body of its response to the delivery of request rfqID, received at
// receivedAt. It is as strict as DecodeAnswer: one JSON object of at most
// MaxReplyBytes with only the known fields,
//
//	{"kind": "quote", "price": {"amount": "45.50", "currency": "EUR"},
//	 "eta_seconds": 300, "expires_at": "<RFC 3339>"}
//	{"kind": "decline", "reason": "..."}
//
// except that "rfq_id" may be left out: the reply answers the request it is
// the response to. If given, it must be that request's id (compared without
// regard to case, as UUIDs are); the answer always carries rfqID.
//
// Errors are *rydes.Error: ETOOLARGE for an oversized body, EINVALID
// otherwise, with Field naming the offending field where there is one.
func DecodeReply(provider, rfqID string, body []byte, receivedAt time.Time) (rydes.Answer, error) {
	if len(body) > MaxReplyBytes {
		return rydes.Answer{}, rydes.Errorf(rydes.ETOOLARGE, "a reply must be at most %d bytes, got %d", MaxReplyBytes, len(body))
	}
	b, price, err := decodeAnswerBody(body)
	if err != nil {
		return rydes.Answer{}, err
	}
	if b.RFQID != "" && !strings.EqualFold(b.RFQID, rfqID) {
		return rydes.Answer{}, rydes.FieldErrorf("rfq_id", "%q is not the id of the request answered (%s); leave it out or send that id", truncateText(b.RFQID, 80), rfqID)
	}
	return b.answer(rfqID, provider, price, receivedAt)
}

// truncateText shortens s to at most n bytes, on a rune boundary, marking
// the cut, so that echoed input keeps error messages short.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
