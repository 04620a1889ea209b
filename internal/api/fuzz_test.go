package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/api"
	"github.com/wildrydes/rydes/internal/auth"
)

// FuzzCreateBodies checks that no body, however malformed, makes either
// create route fail inside (500, which a panic would also give) or create
// an RFQ without answering 201. Plain `go test` runs the seeds; `go test
// -fuzz FuzzCreateBodies` explores.
func FuzzCreateBodies(f *testing.F) {
	for _, seed := range []string{
		validBody,
		`{"from":"Frankfurt","to":"Las Vegas","customer":"cmr","fare":12.5,"duration":"1h"}`,
		`{"customer":"c","from":"a","to":"b","passengers":2,"pickup_at":"2030-07-01T09:30:00Z","attributes":{"k":"v"},"timeout":"45s"}`,
		`{"customer":"c","from":"a","to":"b","attributes":{"k":null},"timeout":"-1h"}`,
		`{"customer":"\u0000","from":[],"to":{}}`,
		`[1,2`, `null`, `""`, `{}{}`, ``,
	} {
		f.Add(false, []byte(seed))
		f.Add(true, []byte(seed))
	}
	f.Fuzz(func(t *testing.T, seed bool, body []byte) {
		fake := newFakeService()
		h := api.New(api.Config{Service: fake, MaxBodyBytes: 4096, OpenLoopbackCustomers: true})
		path := "/v1/rfqs"
		if seed {
			path = "/submit-instant-ride-rfq"
		}
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = "127.0.0.1:40000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		switch rec.Code {
		case http.StatusCreated:
			if fake.createdCount() != 1 {
				t.Fatalf("201 but %d RFQs created", fake.createdCount())
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
			if fake.createdCount() != 0 {
				t.Fatalf("%d but an RFQ was created", rec.Code)
			}
			var p api.Problem
			if ct := rec.Header().Get("Content-Type"); ct != api.ProblemContentType {
				t.Fatalf("%d with Content-Type %q", rec.Code, ct)
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != rec.Code {
				t.Fatalf("%d with a bad problem %q: %v", rec.Code, rec.Body.Bytes(), err)
			}
		default:
			t.Fatalf("body %q: status %d: %s", body, rec.Code, rec.Body.Bytes())
		}
	})
}

// checkProblem fails the fuzz test unless rec holds a problem of its status.
func checkProblem(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	var p api.Problem
	if ct := rec.Header().Get("Content-Type"); ct != api.ProblemContentType {
		t.Fatalf("%d with Content-Type %q", rec.Code, ct)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != rec.Code {
		t.Fatalf("%d with a bad problem %q: %v", rec.Code, rec.Body.Bytes(), err)
	}
}

// FuzzAnswerBodies checks that no answer body, however malformed, makes the
// answer routes fail inside, or stages an answer without answering 201, or
// reaches the answer service without being a valid answer.
func FuzzAnswerBodies(f *testing.F) {
	for _, seed := range []string{
		quoteBody,
		`{"price":{"amount":"45.50","currency":"EUR"},"eta_seconds":300,"expires_at":"2030-07-01T11:45:00+02:00"}`,
		`{"price":{"amount":"1000000","currency":"JPY"},"eta_seconds":null,"expires_at":null}`,
		`{"price":{"amount":45,"currency":"EUR"},"provider":"x"}`,
		`{"reason":"no unicorn free"}`, `{"reason":null}`, `{}`,
		`{"price":{"amount":"0","currency":"eur","x":1}}`, `{"price":[]}`,
		`[1,2`, `null`, `""`, `{}{}`, ``,
	} {
		f.Add(false, []byte(seed))
		f.Add(true, []byte(seed))
	}
	f.Fuzz(func(t *testing.T, decline bool, body []byte) {
		reg, answers := newFakeRegistry(testNow), newFakeAnswers(testNow)
		key := reg.addProvider(rydes.Provider{ID: "ProviderA", Kind: rydes.ProviderKindNATS})
		rfq := answers.addRFQ("ProviderA", "ProviderB")
		h := api.New(api.Config{
			Service: newFakeService(), Providers: reg, Answers: answers,
			AdminKeyHash: func() string { return auth.Hash(testAdminKey) },
			Now:          func() time.Time { return testNow }, MaxBodyBytes: 4096,
		})
		path := "/v1/rfqs/" + rfq + "/quotes"
		if decline {
			path = "/v1/rfqs/" + rfq + "/declines"
		}
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		staged, _ := answers.recorded()
		switch rec.Code {
		case http.StatusCreated:
			if staged != 1 {
				t.Fatalf("201 but %d answers staged", staged)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if staged != 0 || answers.callCount() != 0 {
				t.Fatalf("%d but the answer service was called", rec.Code)
			}
			checkProblem(t, rec)
		default:
			t.Fatalf("body %q: status %d: %s", body, rec.Code, rec.Body.Bytes())
		}
	})
}

// FuzzProviderBodies checks that no body, however malformed, makes the
// provider create and change routes fail inside, or change a provider
// without answering 201 or 200.
func FuzzProviderBodies(f *testing.F) {
	for _, seed := range []string{
		natsBody,
		`{"id":"hook","name":"Hook","kind":"webhook","webhook_url":"https://hooks.example/a","status":"paused"}`,
		`{"id":"acme","kind":"nats","filter":{"from":["Frankfurt*"],"to":["[x"],"max_passengers":4,"attributes":{"fare":["economy"]}}}`,
		`{"status":"paused"}`, `{"name":"Acme","filter":{}}`, `{"webhook_url":"https://hooks.example/b"}`,
		`{"filter":null}`, `{"filter":{"attributes":{"a":null}}}`, `{"id":"a.b","kind":"sqs"}`,
		`[1,2`, `null`, `""`, `{}{}`, ``, `{}`,
	} {
		f.Add(false, []byte(seed))
		f.Add(true, []byte(seed))
	}
	f.Fuzz(func(t *testing.T, patch bool, body []byte) {
		reg := newFakeRegistry(testNow)
		reg.addProvider(rydes.Provider{ID: "Existing", Kind: rydes.ProviderKindWebhook, WebhookURL: "https://hooks.example/a"})
		h := api.New(api.Config{
			Service: newFakeService(), Providers: reg, Answers: newFakeAnswers(testNow),
			AdminKeyHash: func() string { return auth.Hash(testAdminKey) }, MaxBodyBytes: 4096,
		})
		method, path, ok := http.MethodPost, "/v1/providers", http.StatusCreated
		if patch {
			method, path, ok = http.MethodPatch, "/v1/providers/Existing", http.StatusOK
		}
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testAdminKey)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		switch rec.Code {
		case ok:
			if reg.changeCount() != 1 {
				t.Fatalf("%d but %d changes", rec.Code, reg.changeCount())
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if reg.changeCount() != 0 {
				t.Fatalf("%d but a provider changed", rec.Code)
			}
			checkProblem(t, rec)
		default:
			t.Fatalf("body %q: status %d: %s", body, rec.Code, rec.Body.Bytes())
		}
	})
}
