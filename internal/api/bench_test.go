package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/api"
	"github.com/wildrydes/rydes/internal/auth"
)

// BenchmarkGetFinalRFQ serves GET /v1/rfqs/{id} of a complete RFQ with
// ten quotes, with the admin key, as `rydes bench get` does, through the
// whole handler chain (logging, panic recovery, routing, authentication,
// the rate limit, the cached body) but no network: what rydes's own code
// costs per GET. The admin key's rate is raised past what the loop sends.
func BenchmarkGetFinalRFQ(b *testing.B) {
	fake := newFakeService()
	var providers []string
	for i := range 10 {
		providers = append(providers, fmt.Sprintf("UnicornManagementResource%d", i+1))
	}
	fake.setAsked(providers...)
	rfq, err := fake.CreateRFQ(context.Background(), rydes.RFQRequest{Customer: "c1", From: "Frankfurt", To: "Las Vegas"})
	if err != nil {
		b.Fatal(err)
	}
	for i, p := range providers {
		fake.addQuote(rfq.ID, p, fmt.Sprintf("%d.50", 40+i))
	}
	fake.setStatus(rfq.ID, rydes.StatusComplete)
	rates := api.DefaultRateLimits()
	rates.Admin = api.Rate{PerSecond: 1e9, Burst: 1e9}
	h := api.New(api.Config{
		Service:      fake,
		Providers:    newFakeRegistry(fake.now),
		Answers:      newFakeAnswers(fake.now),
		Customers:    newFakeCustomers(fake.now),
		AdminKeyHash: func() string { return auth.Hash(testAdminKey) },
		Now:          time.Now, // the rate limit's buckets run on it
		RateLimits:   rates,
	})
	req := httptest.NewRequest(http.MethodGet, "/v1/rfqs/"+rfq.ID, nil)
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
