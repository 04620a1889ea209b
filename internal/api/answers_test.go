package api_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/api"
	"github.com/wildrydes/rydes/internal/store"
)

const quoteBody = `{"price":{"amount":"45.50","currency":"EUR"}}`

// answering is a harness with two providers, A and B, both asked in one
// open RFQ, and a third, C, asked in none.
type answering struct {
	*harness
	keyA, keyB, keyC string
	rfq              string
}

func newAnswering(t *testing.T) *answering {
	t.Helper()
	h := newHarness(t)
	a := &answering{harness: h}
	a.keyA = h.reg.addProvider(rydes.Provider{ID: "ProviderA", Kind: rydes.ProviderKindNATS})
	a.keyB = h.reg.addProvider(rydes.Provider{ID: "ProviderB", Kind: rydes.ProviderKindWebhook, WebhookURL: "https://b.example/rfqs"})
	a.keyC = h.reg.addProvider(rydes.Provider{ID: "ProviderC", Kind: rydes.ProviderKindNATS})
	a.rfq = h.answers.addRFQ("ProviderA", "ProviderB")
	return a
}

// answer sends an answer of kind ("quotes" or "declines") with key.
func (a *answering) answer(t *testing.T, key, kind, rfq, body string) (*http.Response, []byte) {
	t.Helper()
	return a.as(t, key, http.MethodPost, "/v1/rfqs/"+rfq+"/"+kind, body)
}

// requireResult checks an accepted answer's status and body.
func requireResult(t *testing.T, resp *http.Response, body []byte, status int, outcome, rfqStatus string) {
	t.Helper()
	require.Equal(t, status, resp.StatusCode, "body: %s", body)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.JSONEq(t, `{"outcome":"`+outcome+`","rfq_status":"`+rfqStatus+`"}`, string(body))
}

func TestSubmitQuote(t *testing.T) {
	a := newAnswering(t)
	body := `{"price":{"amount":"45.50","currency":"EUR"},"eta_seconds":300,"expires_at":"2030-07-01T11:45:00+02:00"}`
	resp, b := a.answer(t, a.keyA, "quotes", a.rfq, body)
	requireResult(t, resp, b, http.StatusCreated, "staged", "open")

	got, payload := a.answers.lastStaged()
	eta := 300
	assert.Equal(t, rydes.Answer{
		RFQID: a.rfq, Provider: "ProviderA", Kind: rydes.AnswerQuote,
		Price: rydes.Price{Amount: "45.50", Currency: "EUR"}, ETASeconds: &eta,
		ExpiresAt: time.Date(2030, 7, 1, 9, 45, 0, 0, time.UTC), ReceivedAt: testNow,
	}, got)
	assert.Equal(t, body, string(payload), "the body is passed on as received, for audit")

	// The last asked provider's answer completes the RFQ.
	resp, b = a.answer(t, a.keyB, "declines", a.rfq, `{"reason":"no unicorn free"}`)
	requireResult(t, resp, b, http.StatusCreated, "staged", "complete")
	got, _ = a.answers.lastStaged()
	assert.Equal(t, rydes.Answer{RFQID: a.rfq, Provider: "ProviderB", Kind: rydes.AnswerDecline, Reason: "no unicorn free", ReceivedAt: testNow}, got)
}

func TestSubmitAnswerCanonicalisesRFQID(t *testing.T) {
	a := newAnswering(t)
	resp, b := a.answer(t, a.keyA, "declines", strings.ToUpper(a.rfq), `{}`)
	requireResult(t, resp, b, http.StatusCreated, "staged", "open")
	got, _ := a.answers.lastStaged()
	assert.Equal(t, a.rfq, got.RFQID)
}

func TestSubmitQuoteDuplicate(t *testing.T) {
	a := newAnswering(t)
	resp, b := a.answer(t, a.keyA, "quotes", a.rfq, quoteBody)
	requireResult(t, resp, b, http.StatusCreated, "staged", "open")
	resp, b = a.answer(t, a.keyA, "quotes", a.rfq, quoteBody)
	requireResult(t, resp, b, http.StatusOK, "duplicate", "open")
	staged, rejected := a.answers.recorded()
	assert.Equal(t, 1, staged, "a duplicate stages nothing")
	assert.Zero(t, rejected)
}

func TestSubmitQuoteAlreadyAnswered(t *testing.T) {
	a := newAnswering(t)
	resp, b := a.answer(t, a.keyA, "quotes", a.rfq, quoteBody)
	requireResult(t, resp, b, http.StatusCreated, "staged", "open")
	resp, b = a.answer(t, a.keyA, "quotes", a.rfq, `{"price":{"amount":"40","currency":"EUR"}}`)
	p := requireProblem(t, resp, b, http.StatusConflict, "")
	assert.Equal(t, api.ProblemTypeBase+"conflict", p.Type)
	assert.Equal(t, rydes.RejectAlreadyAnswered, p.Reason)
	staged, _ := a.answers.recorded()
	assert.Equal(t, 1, staged)
}

// TestSubmitAnswerNotAsked: a provider answering an RFQ it was not asked in
// gets 403 and nothing is recorded, not even for audit.
func TestSubmitAnswerNotAsked(t *testing.T) {
	a := newAnswering(t)
	other := a.answers.addRFQ("ProviderB") // A is not asked here
	for _, tc := range []struct{ key, kind, rfq, body string }{
		{a.keyA, "quotes", other, quoteBody},
		{a.keyA, "declines", other, `{}`},
		{a.keyC, "quotes", a.rfq, quoteBody},
	} {
		resp, b := a.answer(t, tc.key, tc.kind, tc.rfq, tc.body)
		p := requireProblem(t, resp, b, http.StatusForbidden, "")
		assert.Equal(t, api.ProblemTypeBase+"forbidden", p.Type)
	}
	staged, rejected := a.answers.recorded()
	assert.Zero(t, staged, "nothing is staged")
	assert.Zero(t, rejected, "nothing is recorded")
}

// TestSubmitAnswerIdentityIsTheKey: a body that names a provider, itself or
// another, is refused as naming an unknown field, and nothing is staged.
func TestSubmitAnswerIdentityIsTheKey(t *testing.T) {
	a := newAnswering(t)
	for _, tc := range []struct{ kind, body string }{
		{"quotes", `{"provider":"ProviderB","price":{"amount":"45.50","currency":"EUR"}}`},
		{"quotes", `{"price":{"amount":"45.50","currency":"EUR"},"provider":"ProviderA"}`},
		{"declines", `{"provider":"ProviderB"}`},
		{"quotes", `{"price":{"amount":"45.50","currency":"EUR"},"rfq_id":"` + rydes.NewID() + `"}`},
	} {
		resp, b := a.answer(t, a.keyA, tc.kind, a.rfq, tc.body)
		field := "provider"
		if strings.Contains(tc.body, "rfq_id") {
			field = "rfq_id"
		}
		requireProblem(t, resp, b, http.StatusBadRequest, field)
	}
	assert.Zero(t, a.answers.callCount(), "the answer service is not called")
	staged, rejected := a.answers.recorded()
	assert.Zero(t, staged)
	assert.Zero(t, rejected)
}

// TestSubmitAnswerAuth: no key, a wrong key, another scheme and the admin
// key all get 401, before the RFQ or the body is looked at.
func TestSubmitAnswerAuth(t *testing.T) {
	a := newAnswering(t)
	for _, kind := range []string{"quotes", "declines"} {
		for _, authz := range []struct{ name, header string }{
			{"no key", ""},
			{"wrong key", "Bearer " + a.keyA + "x"},
			{"revoked-looking key", "Bearer rydes_pk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
			{"key as Basic", "Basic " + a.keyA},
			{"key without scheme", a.keyA},
			{"admin key", "Bearer " + testAdminKey},
		} {
			t.Run(kind+" "+authz.name, func(t *testing.T) {
				resp, b := a.send(t, http.MethodPost, "/v1/rfqs/"+a.rfq+"/"+kind, "application/json", authz.header, []byte(quoteBody))
				requireProblem(t, resp, b, http.StatusUnauthorized, "")
				// Even a malformed request is refused for its key first.
				resp, b = a.send(t, http.MethodPost, "/v1/rfqs/not-a-uuid/"+kind, "text/plain", authz.header, []byte("x"))
				requireProblem(t, resp, b, http.StatusUnauthorized, "")
			})
		}
	}
	assert.Zero(t, a.answers.callCount(), "the answer service is not called")
	staged, rejected := a.answers.recorded()
	assert.Zero(t, staged)
	assert.Zero(t, rejected)
}

func TestSubmitAnswerLate(t *testing.T) {
	a := newAnswering(t)
	a.answers.setRFQ(a.rfq, rydes.StatusOpen, -time.Minute) // deadline passed, not yet expired
	resp, b := a.answer(t, a.keyA, "quotes", a.rfq, quoteBody)
	p := requireProblem(t, resp, b, http.StatusConflict, "")
	assert.Equal(t, api.ProblemTypeBase+"conflict", p.Type)
	assert.Equal(t, rydes.RejectLate, p.Reason)
	assert.Contains(t, p.Detail, "deadline")
	staged, rejected := a.answers.recorded()
	assert.Zero(t, staged)
	assert.Equal(t, 1, rejected, "a late answer is kept for audit")
	assert.Equal(t, rydes.RejectLate, a.answers.lastRejected().Reason)

	a.answers.setRFQ(a.rfq, rydes.StatusExpired, 0)
	resp, b = a.answer(t, a.keyB, "declines", a.rfq, `{}`)
	p = requireProblem(t, resp, b, http.StatusConflict, "")
	assert.Equal(t, rydes.RejectLate, p.Reason)
}

func TestSubmitAnswerClosed(t *testing.T) {
	a := newAnswering(t)
	a.answers.setRFQ(a.rfq, rydes.StatusCancelled, 0)
	resp, b := a.answer(t, a.keyA, "quotes", a.rfq, quoteBody)
	p := requireProblem(t, resp, b, http.StatusConflict, "")
	assert.Equal(t, api.ProblemTypeBase+"conflict", p.Type)
	assert.Equal(t, rydes.RejectClosed, p.Reason)
}

func TestSubmitAnswerWithdrawn(t *testing.T) {
	a := newAnswering(t)
	a.answers.setState(a.rfq, "ProviderA", rydes.ProviderWithdrawn)
	resp, b := a.answer(t, a.keyA, "quotes", a.rfq, quoteBody)
	p := requireProblem(t, resp, b, http.StatusForbidden, "")
	assert.Equal(t, rydes.RejectWithdrawn, p.Reason)
}

func TestSubmitAnswerFailedProviderIsStaged(t *testing.T) {
	a := newAnswering(t)
	a.answers.setState(a.rfq, "ProviderB", rydes.ProviderFailed)
	resp, b := a.answer(t, a.keyB, "quotes", a.rfq, quoteBody)
	requireResult(t, resp, b, http.StatusCreated, "staged", "open")
}

func TestSubmitAnswerUnknownRFQ(t *testing.T) {
	a := newAnswering(t)
	resp, b := a.answer(t, a.keyA, "quotes", rydes.NewID(), quoteBody)
	p := requireProblem(t, resp, b, http.StatusNotFound, "")
	assert.Equal(t, api.ProblemTypeBase+"not_found", p.Type)
	assert.Empty(t, p.Reason, "the engine's error carries no decision")
}

// TestSubmitAnswerRejectionStatuses maps every reason the engine may give
// to its status, with the reason in the problem.
func TestSubmitAnswerRejectionStatuses(t *testing.T) {
	a := newAnswering(t)
	for reason, status := range map[rydes.RejectReason]int{
		rydes.RejectInvalid:         400,
		rydes.RejectUnknownRFQ:      404,
		rydes.RejectNotAsked:        403,
		rydes.RejectWithdrawn:       403,
		rydes.RejectAlreadyAnswered: 409,
		rydes.RejectLate:            409,
		rydes.RejectClosed:          409,
	} {
		a.answers.setHook(func(rydes.Answer) (store.StageResult, error) {
			return store.StageResult{Decision: rydes.Decision{Outcome: rydes.OutcomeRejected, Reason: reason, Message: "refused: " + string(reason)}}, nil
		})
		resp, b := a.answer(t, a.keyA, "quotes", a.rfq, quoteBody)
		p := requireProblem(t, resp, b, status, "")
		assert.Equal(t, reason, p.Reason)
		assert.Equal(t, "refused: "+string(reason), p.Detail)
	}

	// What the API does not know is a bug: 500, logged, nothing shown.
	for name, res := range map[string]store.StageResult{
		"unknown reason":   {Decision: rydes.Decision{Outcome: rydes.OutcomeRejected, Reason: "cosmic_rays"}},
		"unknown outcome":  {Decision: rydes.Decision{Outcome: "maybe"}, Status: rydes.StatusOpen},
		"no status staged": {Decision: rydes.Decision{Outcome: rydes.OutcomeStaged}},
	} {
		a.answers.setHook(func(rydes.Answer) (store.StageResult, error) { return res, nil })
		resp, b := a.answer(t, a.keyA, "quotes", a.rfq, quoteBody)
		p := requireProblem(t, resp, b, http.StatusInternalServerError, "")
		assert.Equal(t, "internal error", p.Detail, name)
		assert.Empty(t, p.Reason, name)
	}

	a.answers.setHook(func(rydes.Answer) (store.StageResult, error) { return store.StageResult{}, errors.New("disk on fire") })
	resp, b := a.answer(t, a.keyA, "quotes", a.rfq, quoteBody)
	p := requireProblem(t, resp, b, http.StatusInternalServerError, "")
	assert.NotContains(t, string(b), "disk")
	assert.Empty(t, p.Reason)
}

// TestAnswerBadInput sends answers the API must refuse: each gets the right
// status and a problem naming the offending field, and the answer service
// is not called.
func TestAnswerBadInput(t *testing.T) {
	a := newAnswering(t)
	long := strings.Repeat("r", rydes.MaxReasonLen+1)
	tests := []struct {
		name        string
		kind        string // "" for quotes
		rfq         string // "" for the answering RFQ
		contentType string // "" for application/json, "-" for none
		body        string
		status      int
		field       string
	}{
		{name: "amount with a comma", body: `{"price":{"amount":"45,50","currency":"EUR"}}`, status: 400, field: "price.amount"},
		{name: "amount a number", body: `{"price":{"amount":45.5,"currency":"EUR"}}`, status: 400, field: "price.amount"},
		{name: "amount negative", body: `{"price":{"amount":"-5","currency":"EUR"}}`, status: 400, field: "price.amount"},
		{name: "amount zero", body: `{"price":{"amount":"0.00","currency":"EUR"}}`, status: 400, field: "price.amount"},
		{name: "amount too precise", body: `{"price":{"amount":"1.23456","currency":"EUR"}}`, status: 400, field: "price.amount"},
		{name: "amount too large", body: `{"price":{"amount":"1000000.01","currency":"EUR"}}`, status: 400, field: "price.amount"},
		{name: "amount missing", body: `{"price":{"currency":"EUR"}}`, status: 400, field: "price.amount"},
		{name: "currency lower case", body: `{"price":{"amount":"45.50","currency":"eur"}}`, status: 400, field: "price.currency"},
		{name: "currency unknown", body: `{"price":{"amount":"45.50","currency":"XYZ"}}`, status: 400, field: "price.currency"},
		{name: "price missing", body: `{"eta_seconds":60}`, status: 400, field: "price"},
		{name: "price null", body: `{"price":null}`, status: 400, field: "price"},
		{name: "price a string", body: `{"price":"45.50 EUR"}`, status: 400, field: "price"},
		{name: "price unknown field", body: `{"price":{"amount":"45.50","currency":"EUR","tip":"5"}}`, status: 400, field: "price.tip"},
		{name: "eta negative", body: `{"price":{"amount":"45.50","currency":"EUR"},"eta_seconds":-1}`, status: 400, field: "eta_seconds"},
		{name: "eta too long", body: `{"price":{"amount":"45.50","currency":"EUR"},"eta_seconds":86401}`, status: 400, field: "eta_seconds"},
		{name: "eta fractional", body: `{"price":{"amount":"45.50","currency":"EUR"},"eta_seconds":1.5}`, status: 400, field: "eta_seconds"},
		{name: "expires_at malformed", body: `{"price":{"amount":"45.50","currency":"EUR"},"expires_at":"soon"}`, status: 400, field: "expires_at"},
		{name: "expires_at past", body: `{"price":{"amount":"45.50","currency":"EUR"},"expires_at":"2030-07-01T09:00:00Z"}`, status: 400, field: "expires_at"},
		{name: "quote with a reason", body: `{"price":{"amount":"45.50","currency":"EUR"},"reason":"cheap"}`, status: 400, field: "reason"},
		{name: "unknown field", body: `{"price":{"amount":"45.50","currency":"EUR"},"colour":"pink"}`, status: 400, field: "colour"},
		{name: "decline with a price", kind: "declines", body: `{"price":{"amount":"45.50","currency":"EUR"}}`, status: 400, field: "price"},
		{name: "decline reason too long", kind: "declines", body: `{"reason":"` + long + `"}`, status: 400, field: "reason"},
		{name: "decline reason control characters", kind: "declines", body: `{"reason":"busy\u0000"}`, status: 400, field: "reason"},
		{name: "decline reason not a string", kind: "declines", body: `{"reason":["busy"]}`, status: 400, field: "reason"},
		{name: "malformed JSON", body: `{"price":`, status: 400},
		{name: "empty body", body: ``, status: 400},
		{name: "array body", body: `[]`, status: 400},
		{name: "two JSON values", body: quoteBody + quoteBody, status: 400},
		{name: "malformed rfq id", rfq: "not-a-uuid", body: quoteBody, status: 400, field: "id"},
		{name: "no content type", contentType: "-", body: quoteBody, status: 415},
		{name: "form content type", contentType: "application/x-www-form-urlencoded", body: "price=45", status: 415},
		{name: "oversized body", kind: "declines", body: `{"reason":"` + strings.Repeat("r", api.DefaultMaxBodyBytes) + `"}`, status: 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kind, rfq, ct := tc.kind, tc.rfq, tc.contentType
			if kind == "" {
				kind = "quotes"
			}
			if rfq == "" {
				rfq = a.rfq
			}
			switch ct {
			case "":
				ct = "application/json"
			case "-":
				ct = ""
			}
			resp, b := a.send(t, http.MethodPost, "/v1/rfqs/"+rfq+"/"+kind, ct, "Bearer "+a.keyA, []byte(tc.body))
			requireProblem(t, resp, b, tc.status, tc.field)
		})
	}
	assert.Zero(t, a.answers.callCount(), "no bad answer reaches the answer service")
	staged, rejected := a.answers.recorded()
	assert.Zero(t, staged)
	assert.Zero(t, rejected)
}

func TestSubmitAnswerWrongMethod(t *testing.T) {
	a := newAnswering(t)
	resp, b := a.as(t, a.keyA, http.MethodGet, "/v1/rfqs/"+a.rfq+"/quotes", "")
	requireProblem(t, resp, b, http.StatusMethodNotAllowed, "")
	assert.Contains(t, resp.Header.Get("Allow"), "POST")
}

func TestSubmitAnswerResultShape(t *testing.T) {
	a := newAnswering(t)
	resp, b := a.answer(t, a.keyA, "declines", a.rfq, `{"reason":null}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", b)
	assert.Equal(t, []string{"outcome", "rfq_status"}, keysOf(t, b))
	var res struct {
		Outcome string `json:"outcome"`
	}
	require.NoError(t, json.Unmarshal(b, &res))
	assert.Equal(t, "staged", res.Outcome)
	assert.Empty(t, resp.Header.Get("Location"))
}
