package api_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/api"
)

// fakeCustomers is an in-memory CustomerRegistry. Keys are
// "rydes_ck_<id>_<n>", n counting the keys made.
type fakeCustomers struct {
	mu        sync.Mutex
	now       time.Time
	customers map[string]rydes.Customer
	keys      map[string]string // key → customer id
	made      int
	calls     map[string]int
}

func newFakeCustomers(now time.Time) *fakeCustomers {
	return &fakeCustomers{now: now, customers: map[string]rydes.Customer{}, keys: map[string]string{}, calls: map[string]int{}}
}

func (f *fakeCustomers) newKey(id string) string {
	for k, c := range f.keys {
		if c == id {
			delete(f.keys, k)
		}
	}
	f.made++
	key := fmt.Sprintf("rydes_ck_%s_%d", id, f.made)
	f.keys[key] = id
	return key
}

func (f *fakeCustomers) Create(_ context.Context, id, name string) (rydes.Customer, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Create"]++
	if name == "" {
		name = id
	}
	c := rydes.Customer{ID: id, Name: name, CreatedAt: f.now}
	if err := c.Validate(); err != nil {
		return rydes.Customer{}, "", err
	}
	if _, ok := f.customers[id]; ok {
		return rydes.Customer{}, "", rydes.Errorf(rydes.ECONFLICT, "customer %s exists", id)
	}
	f.customers[id] = c
	return c, f.newKey(id), nil
}

// add registers a customer and returns its key.
func (f *fakeCustomers) add(t *testing.T, id string) string {
	t.Helper()
	_, key, err := f.Create(t.Context(), id, "")
	require.NoError(t, err)
	return key
}

func (f *fakeCustomers) List(context.Context) ([]rydes.Customer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["List"]++
	var cs []rydes.Customer
	for _, c := range f.customers {
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(a, b rydes.Customer) int { return strings.Compare(a.ID, b.ID) })
	return cs, nil
}

func (f *fakeCustomers) Delete(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Delete"]++
	if _, ok := f.customers[id]; !ok {
		return rydes.Errorf(rydes.ENOTFOUND, "customer %s not found", id)
	}
	delete(f.customers, id)
	for k, c := range f.keys {
		if c == id {
			delete(f.keys, k)
		}
	}
	return nil
}

func (f *fakeCustomers) Rotate(_ context.Context, id string) (rydes.Customer, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Rotate"]++
	c, ok := f.customers[id]
	if !ok {
		return rydes.Customer{}, "", rydes.Errorf(rydes.ENOTFOUND, "customer %s not found", id)
	}
	return c, f.newKey(id), nil
}

func (f *fakeCustomers) Authenticate(_ context.Context, apiKey string) (rydes.Customer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Authenticate"]++
	id, ok := f.keys[apiKey]
	if !ok {
		return rydes.Customer{}, rydes.Errorf(rydes.EUNAUTHORIZED, "unknown or revoked customer API key")
	}
	return f.customers[id], nil
}

func (f *fakeCustomers) callCount(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// fakeWatcher is a Watcher the test drives. Each watch gets, at once, the
// scripted events after its afterSeq, and is then announced on watches,
// where the test may send more events on it or end it.
type fakeWatcher struct {
	mu      sync.Mutex
	script  map[string][]rydes.Event
	err     error
	count   int
	watches chan *watch
	// unpublished has the RFQs some of whose events are still on their
	// way: PastEvents has none of theirs.
	unpublished map[string]bool
	pastCount   int
}

// watch is one WatchRFQ call: an api.Watch that returns what the test
// sends, as bus.Watch does, up to the final event.
type watch struct {
	rfqID    string
	afterSeq int64
	ready    chan struct{} // capacity 1

	mu     sync.Mutex
	queue  []rydes.Event
	ended  bool // by the test: Next returns io.EOF once the queue is empty
	over   bool // the final event was returned
	closed bool
}

var _ api.Watch = (*watch)(nil)

func newFakeWatcher() *fakeWatcher {
	return &fakeWatcher{script: map[string][]rydes.Event{}, watches: make(chan *watch, 64), unpublished: map[string]bool{}}
}

// PastEvents returns the script's events after afterSeq, as the broker
// keeps them, unless the RFQ is unpublished.
func (f *fakeWatcher) PastEvents(_ context.Context, rfqID string, afterSeq int64) ([]rydes.Event, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pastCount++
	if f.err != nil {
		return nil, false, f.err
	}
	if f.unpublished[rfqID] {
		return nil, false, nil
	}
	var events []rydes.Event
	for _, ev := range f.script[rfqID] {
		if ev.Seq > afterSeq {
			events = append(events, ev)
		}
	}
	return events, true, nil
}

// setUnpublished marks rfqID's events as still on their way.
func (f *fakeWatcher) setUnpublished(rfqID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unpublished[rfqID] = true
}

func (f *fakeWatcher) pastCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pastCount
}

func (f *fakeWatcher) WatchRFQ(_ context.Context, rfqID string, afterSeq int64) (api.Watch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count++
	if f.err != nil {
		return nil, f.err
	}
	w := &watch{rfqID: rfqID, afterSeq: afterSeq, ready: make(chan struct{}, 1)}
	for _, ev := range f.script[rfqID] {
		if ev.Seq > afterSeq {
			w.send(ev)
		}
	}
	f.watches <- w
	return w, nil
}

// send hands ev to the watch.
func (w *watch) send(ev rydes.Event) {
	w.mu.Lock()
	w.queue = append(w.queue, ev)
	w.mu.Unlock()
	w.wake()
}

// end ends the watch without a final event, as EndWatches does.
func (w *watch) end() {
	w.mu.Lock()
	w.ended = true
	w.mu.Unlock()
	w.wake()
}

func (w *watch) wake() {
	select {
	case w.ready <- struct{}{}:
	default:
	}
}

// isClosed reports whether the handler closed the watch.
func (w *watch) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}

func (w *watch) Ready() <-chan struct{} { return w.ready }

func (w *watch) Next(context.Context) ([]rydes.Event, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.over || w.closed || (w.ended && len(w.queue) == 0) {
		return nil, io.EOF
	}
	events := w.queue
	w.queue = nil
	if w.ended {
		// Ready fires for the end too: the end may have come while a
		// wake-up was pending, which this call consumed.
		w.wake()
	}
	for i, ev := range events {
		if ev.Type.Final() {
			w.over = true
			return events[:i+1], nil
		}
	}
	return events, nil
}

func (w *watch) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
}

// setScript sets the events every watch of rfqID gets at once.
func (f *fakeWatcher) setScript(rfqID string, events ...rydes.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script[rfqID] = events
}

func (f *fakeWatcher) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeWatcher) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count
}

// next returns the next watch, waiting for it at most a few seconds; nil
// if none came (for use off the test goroutine).
func (f *fakeWatcher) next() *watch {
	select {
	case w := <-f.watches:
		return w
	case <-time.After(5 * time.Second):
		return nil
	}
}

// fakeNotifications is an in-memory Notifications.
type fakeNotifications struct {
	mu    sync.Mutex
	byRFQ map[string][]rydes.Notification
	calls int
}

func newFakeNotifications() *fakeNotifications {
	return &fakeNotifications{byRFQ: map[string][]rydes.Notification{}}
}

func (f *fakeNotifications) ListNotifications(_ context.Context, rfqID string) ([]rydes.Notification, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return slices.Clone(f.byRFQ[rfqID]), nil
}

func (f *fakeNotifications) add(n rydes.Notification) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byRFQ[n.RFQID] = append(f.byRFQ[n.RFQID], n)
}

func (f *fakeNotifications) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}
