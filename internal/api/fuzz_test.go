package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wildrydes/rydes/internal/api"
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
		h := api.New(api.Config{Service: fake, MaxBodyBytes: 4096})
		path := "/v1/rfqs"
		if seed {
			path = "/submit-instant-ride-rfq"
		}
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
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
