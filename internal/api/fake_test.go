package api_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/wildrydes/rydes"
)

// fakeService is a small in-memory Service for tests that isolate HTTP. It
// validates requests with the domain's own rules (rydes.NewRFQ), so that it
// returns real domain errors, and counts the calls of each method.
type fakeService struct {
	mu      sync.Mutex
	now     time.Time
	asked   []string
	limits  rydes.Limits
	rfqs    map[string]rydes.RFQ
	calls   map[string]int
	created int // RFQs actually created
	lastReq *rydes.RFQRequest
	lastID  string
	// notifySecret is what CreateRFQ returns as an RFQ's notify secret
	// when it has a notify_url.
	notifySecret string
	// getHook, if set, answers GetRFQ instead of the store.
	getHook func(id string) (rydes.RFQ, error)
}

func newFakeService() *fakeService {
	return &fakeService{
		now:    testNow,
		asked:  []string{"UnicornManagementResource1", "UnicornManagementResource2", "UnicornManagementResource10"},
		limits: rydes.Limits{DefaultTimeout: rydes.DefaultTimeout, MaxTimeout: rydes.DefaultMaxTimeout},
		rfqs:   map[string]rydes.RFQ{},
		calls:  map[string]int{},
	}
}

func (f *fakeService) CreateRFQ(_ context.Context, req rydes.RFQRequest) (rydes.RFQ, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["CreateRFQ"]++
	f.lastReq = &req
	rfq, err := rydes.NewRFQ(rydes.NewID(), req, f.asked, f.now, f.limits)
	if err != nil {
		return rydes.RFQ{}, fmt.Errorf("fake: new rfq: %w", err)
	}
	f.rfqs[rfq.ID] = rfq
	f.created++
	if rfq.NotifyURL != "" {
		rfq.NotifySecret = f.notifySecret // shown once: not stored
	}
	return rfq, nil
}

func (f *fakeService) GetRFQ(_ context.Context, id, customer string) (rydes.RFQ, error) {
	f.mu.Lock()
	f.calls["GetRFQ"]++
	f.lastID = id
	hook := f.getHook
	rfq, ok := f.rfqs[id]
	f.mu.Unlock()
	if hook != nil {
		return hook(id)
	}
	if !ok || (customer != "" && rfq.Customer != customer) {
		return rydes.RFQ{}, rydes.Errorf(rydes.ENOTFOUND, "rfq %s not found", id)
	}
	return rfq, nil
}

func (f *fakeService) CancelRFQ(_ context.Context, id, customer string) (rydes.RFQ, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["CancelRFQ"]++
	f.lastID = id
	rfq, ok := f.rfqs[id]
	if !ok || (customer != "" && rfq.Customer != customer) {
		return rydes.RFQ{}, rydes.Errorf(rydes.ENOTFOUND, "rfq %s not found", id)
	}
	if rfq.Status.Final() {
		return rydes.RFQ{}, rydes.Errorf(rydes.ECONFLICT, "rfq %s is already %s", id, rfq.Status)
	}
	rfq.Status = rydes.StatusCancelled
	rfq.ClosedAt = f.now
	rfq.Seq++
	f.rfqs[id] = rfq
	return rfq, nil
}

// addQuote stages a quote on a stored RFQ, out of order on purpose: the
// API must answer best first whatever order the service gives.
func (f *fakeService) addQuote(id, provider, amount string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rfq := f.rfqs[id]
	rfq.Quotes = append(rfq.Quotes, rydes.Quote{
		Provider:   provider,
		Price:      rydes.Price{Amount: amount, Currency: "EUR"},
		ReceivedAt: f.now.Add(time.Duration(len(rfq.Quotes)+1) * time.Second),
	})
	for i := range rfq.Providers {
		if rfq.Providers[i].Provider == provider {
			rfq.Providers[i].State = rydes.ProviderQuoted
		}
	}
	rfq.Seq++
	f.rfqs[id] = rfq
}

// setStatus moves a stored RFQ to status, as its next event.
func (f *fakeService) setStatus(id string, status rydes.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rfq := f.rfqs[id]
	rfq.Status = status
	if status.Final() {
		rfq.ClosedAt = f.now
	}
	rfq.Seq++
	f.rfqs[id] = rfq
}

// setNotifySecret makes CreateRFQ return RFQs with a notify_url with secret, as
// the engine does.
func (f *fakeService) setNotifySecret(secret string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.notifySecret = secret
}

func (f *fakeService) callCount(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *fakeService) createdCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.created
}

func (f *fakeService) lastRequest() *rydes.RFQRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastReq
}

func (f *fakeService) lastGetID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastID
}

func (f *fakeService) setAsked(providers ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = providers
}

func (f *fakeService) setGetHook(hook func(id string) (rydes.RFQ, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.getHook = hook
}
