package api_test

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/auth"
	"github.com/wildrydes/rydes/internal/registry"
	"github.com/wildrydes/rydes/internal/store"
)

// testNow is the time of the fakes' clocks.
var testNow = time.Date(2030, 7, 1, 9, 30, 0, 0, time.UTC)

// fakeRegistry is a small in-memory ProviderRegistry for tests that isolate
// HTTP. It checks providers with the domain's own rules, as the registry
// does, so that it returns real domain errors, and counts the changes it
// made, so that tests can see that bad input changed nothing.
type fakeRegistry struct {
	mu          sync.Mutex
	now         time.Time
	providers   map[string]rydes.Provider
	keys        map[string]string // API key → provider id
	deadLetters []rydes.DeadLetter
	calls       map[string]int
	changes     int // providers created, updated, deleted or rotated; dead letters replayed
	lastCreate  *registry.CreateParams
	lastUpdate  *registry.UpdateParams
	lastDLQuery *store.ListDeadLettersParams
	// replayErr, if it holds an error for a dead letter, is what replaying
	// it fails with.
	replayErr map[int64]error
	// getErrAfterRotate, if set, is what Get fails with after a rotation.
	getErrAfterRotate error
	rotated           bool
}

func newFakeRegistry(now time.Time) *fakeRegistry {
	return &fakeRegistry{
		now:       now,
		providers: map[string]rydes.Provider{},
		keys:      map[string]string{},
		calls:     map[string]int{},
		replayErr: map[int64]error{},
	}
}

func (f *fakeRegistry) Create(_ context.Context, p registry.CreateParams) (rydes.Provider, rydes.ProviderCredentials, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Create"]++
	f.lastCreate = &p
	if p.Status == "" {
		p.Status = rydes.ProviderActive
	}
	if p.Name == "" {
		p.Name = p.ID
	}
	prov := rydes.Provider{ID: p.ID, Name: p.Name, Kind: p.Kind, Status: p.Status, WebhookURL: p.WebhookURL, Filter: p.Filter, CreatedAt: f.now, UpdatedAt: f.now}
	if p.Kind == rydes.ProviderKindSimulated {
		return rydes.Provider{}, rydes.ProviderCredentials{}, rydes.FieldErrorf("kind", "simulated providers are rydes's own")
	}
	if err := prov.Validate(); err != nil {
		return rydes.Provider{}, rydes.ProviderCredentials{}, err
	}
	if _, ok := f.providers[p.ID]; ok {
		return rydes.Provider{}, rydes.ProviderCredentials{}, rydes.Errorf(rydes.ECONFLICT, "provider %s exists", p.ID)
	}
	f.providers[p.ID] = prov
	f.changes++
	return prov, f.newCredentials(prov), nil
}

// newCredentials makes credentials for p, replacing its API key.
func (f *fakeRegistry) newCredentials(p rydes.Provider) rydes.ProviderCredentials {
	for k, id := range f.keys {
		if id == p.ID {
			delete(f.keys, k)
		}
	}
	creds := rydes.ProviderCredentials{
		APIKey:       auth.NewToken(auth.PrefixAPIKey),
		NATSUser:     p.ID,
		NATSPassword: auth.NewToken(auth.PrefixNATSPassword),
	}
	if p.Kind == rydes.ProviderKindWebhook {
		creds.WebhookSecret = auth.NewWebhookSecret()
	}
	f.keys[creds.APIKey] = p.ID
	return creds
}

// addProvider registers p directly, with an API key, which it returns.
func (f *fakeRegistry) addProvider(p rydes.Provider) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p.Name == "" {
		p.Name = p.ID
	}
	if p.Status == "" {
		p.Status = rydes.ProviderActive
	}
	p.CreatedAt, p.UpdatedAt = f.now, f.now
	f.providers[p.ID] = p
	return f.newCredentials(p).APIKey
}

func (f *fakeRegistry) Get(_ context.Context, id string) (rydes.Provider, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Get"]++
	if f.rotated && f.getErrAfterRotate != nil {
		return rydes.Provider{}, f.getErrAfterRotate
	}
	p, ok := f.providers[id]
	if !ok {
		return rydes.Provider{}, rydes.Errorf(rydes.ENOTFOUND, "provider %s not found", id)
	}
	return p, nil
}

func (f *fakeRegistry) List(context.Context) ([]rydes.Provider, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["List"]++
	var ps []rydes.Provider
	for _, p := range f.providers {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b rydes.Provider) int { return rydes.CompareProviderIDs(a.ID, b.ID) })
	return ps, nil
}

func (f *fakeRegistry) Update(_ context.Context, p registry.UpdateParams) (rydes.Provider, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Update"]++
	f.lastUpdate = &p
	cur, ok := f.providers[p.ID]
	if !ok {
		return rydes.Provider{}, rydes.Errorf(rydes.ENOTFOUND, "provider %s not found", p.ID)
	}
	if cur.Kind == rydes.ProviderKindSimulated {
		return rydes.Provider{}, rydes.Errorf(rydes.ECONFLICT, "provider %s is simulated", p.ID)
	}
	next := cur
	if p.Name != nil {
		next.Name = *p.Name
	}
	if p.Status != nil {
		next.Status = *p.Status
		if next.Status == rydes.ProviderActive {
			next.PausedReason = ""
		}
	}
	if p.WebhookURL != nil {
		next.WebhookURL = *p.WebhookURL
	}
	if p.Filter != nil {
		next.Filter = *p.Filter
	}
	if err := next.Validate(); err != nil {
		return rydes.Provider{}, err
	}
	next.UpdatedAt = f.now.Add(time.Minute)
	f.providers[p.ID] = next
	f.changes++
	return next, nil
}

func (f *fakeRegistry) Delete(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Delete"]++
	cur, ok := f.providers[id]
	if !ok {
		return rydes.Errorf(rydes.ENOTFOUND, "provider %s not found", id)
	}
	if cur.Kind == rydes.ProviderKindSimulated {
		return rydes.Errorf(rydes.ECONFLICT, "provider %s is simulated", id)
	}
	delete(f.providers, id)
	for k, pid := range f.keys {
		if pid == id {
			delete(f.keys, k)
		}
	}
	f.changes++
	return nil
}

func (f *fakeRegistry) Rotate(_ context.Context, id string) (rydes.ProviderCredentials, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Rotate"]++
	cur, ok := f.providers[id]
	if !ok {
		return rydes.ProviderCredentials{}, rydes.Errorf(rydes.ENOTFOUND, "provider %s not found", id)
	}
	if cur.Kind == rydes.ProviderKindSimulated {
		return rydes.ProviderCredentials{}, rydes.Errorf(rydes.ECONFLICT, "provider %s is simulated", id)
	}
	f.changes++
	f.rotated = true
	return f.newCredentials(cur), nil
}

func (f *fakeRegistry) Authenticate(_ context.Context, apiKey string) (rydes.Provider, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Authenticate"]++
	id, ok := f.keys[apiKey]
	if !ok {
		return rydes.Provider{}, rydes.Errorf(rydes.EUNAUTHORIZED, "unknown or revoked provider API key")
	}
	return f.providers[id], nil
}

func (f *fakeRegistry) Stats(_ context.Context, id string) (rydes.ProviderStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Stats"]++
	if _, ok := f.providers[id]; !ok {
		return rydes.ProviderStats{}, rydes.Errorf(rydes.ENOTFOUND, "provider %s not found", id)
	}
	return rydes.ProviderStats{
		Provider: id, Asked: 10, Pending: 1, Quoted: 6, Declined: 2, TimedOut: 1,
		ResponseP50: rydes.Duration(1500 * time.Millisecond), ResponseP99: rydes.Duration(4*time.Second + 250*time.Millisecond),
		QueueDepth: 3, InFlight: 1, OldestPendingAge: rydes.Duration(2*time.Minute + 3*time.Second),
	}, nil
}

func (f *fakeRegistry) DeadLetters(_ context.Context, p store.ListDeadLettersParams) ([]rydes.DeadLetter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["DeadLetters"]++
	f.lastDLQuery = &p
	limit := cmp.Or(p.Limit, 100)
	var out []rydes.DeadLetter
	for _, dl := range slices.Backward(f.deadLetters) { // newest first
		if (p.Provider != "" && dl.Provider != p.Provider) || (p.BeforeID != 0 && dl.ID >= p.BeforeID) {
			continue
		}
		if len(out) == limit {
			break
		}
		out = append(out, dl)
	}
	return out, nil
}

// addDeadLetter keeps a dead letter for provider, with the next id, which
// it returns.
func (f *fakeRegistry) addDeadLetter(provider string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := int64(len(f.deadLetters) + 1)
	rfq := rydes.NewID()
	f.deadLetters = append(f.deadLetters, rydes.DeadLetter{
		ID: id, Provider: provider, RFQID: rfq, Attempts: 8, LastError: "HTTP 503", LastStatus: 503,
		Request: rydes.ProviderRequest{
			RFQID: rfq, From: "Frankfurt", To: "Las Vegas", Passengers: 2,
			CreatedAt: f.now, Deadline: f.now.Add(30 * time.Second),
		},
		CreatedAt: f.now.Add(time.Duration(id) * time.Second),
	})
	return id
}

func (f *fakeRegistry) Replay(_ context.Context, id int64) (rydes.DeadLetter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Replay"]++
	if err := f.replayErr[id]; err != nil {
		return rydes.DeadLetter{}, err
	}
	for i, dl := range f.deadLetters {
		if dl.ID == id {
			f.deadLetters[i].ReplayedAt = f.now.Add(time.Hour)
			f.changes++
			return f.deadLetters[i], nil
		}
	}
	return rydes.DeadLetter{}, rydes.Errorf(rydes.ENOTFOUND, "dead letter %d not found", id)
}

func (f *fakeRegistry) callCount(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *fakeRegistry) changeCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changes
}

func (f *fakeRegistry) provider(id string) (rydes.Provider, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.providers[id]
	return p, ok
}

func (f *fakeRegistry) lastCreateParams() *registry.CreateParams {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastCreate
}

func (f *fakeRegistry) lastUpdateParams() *registry.UpdateParams {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastUpdate
}

func (f *fakeRegistry) lastDeadLetterQuery() *store.ListDeadLettersParams {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastDLQuery
}

func (f *fakeRegistry) setReplayErr(id int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replayErr[id] = err
}

func (f *fakeRegistry) failGetAfterRotate(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.getErrAfterRotate = err
}

// fakeAnswers is an in-memory AnswerService that behaves as the engine's
// SubmitAnswer does: ENOTFOUND for an unknown RFQ, EFORBIDDEN (recording
// nothing) for a provider not asked, and otherwise the domain's own
// decision (rydes.Decide), staging what it accepts and keeping what it
// refuses for audit.
type fakeAnswers struct {
	mu       sync.Mutex
	now      time.Time
	rfqs     map[string]*fakeRFQ
	calls    int
	staged   []rydes.Answer
	rejected []rydes.Rejection
	payloads [][]byte
	// hook, if set, answers SubmitAnswer instead.
	hook func(a rydes.Answer) (store.StageResult, error)
}

// fakeRFQ is what fakeAnswers knows of an RFQ: its status, deadline and who
// was asked, with what each answered.
type fakeRFQ struct {
	status   rydes.Status
	deadline time.Time
	roster   map[string]*rydes.Prior
}

func newFakeAnswers(now time.Time) *fakeAnswers {
	return &fakeAnswers{now: now, rfqs: map[string]*fakeRFQ{}}
}

// addRFQ makes an open RFQ asking the given providers, with its deadline
// in 30 seconds, and returns its id.
func (f *fakeAnswers) addRFQ(asked ...string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := rydes.NewID()
	r := &fakeRFQ{status: rydes.StatusOpen, deadline: f.now.Add(30 * time.Second), roster: map[string]*rydes.Prior{}}
	for _, p := range asked {
		r.roster[p] = &rydes.Prior{Entry: rydes.RosterEntry{Provider: p, State: rydes.ProviderPending, ChangedAt: f.now}}
	}
	f.rfqs[id] = r
	return id
}

// setRFQ changes an RFQ's status and moves its deadline by shift.
func (f *fakeAnswers) setRFQ(id string, status rydes.Status, shift time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rfqs[id].status = status
	f.rfqs[id].deadline = f.rfqs[id].deadline.Add(shift)
}

// setState sets a provider's state in an RFQ's roster.
func (f *fakeAnswers) setState(id, provider string, state rydes.ProviderState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rfqs[id].roster[provider].Entry.State = state
}

func (f *fakeAnswers) SubmitAnswer(_ context.Context, provider rydes.Provider, a rydes.Answer, payload []byte) (store.StageResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.hook != nil {
		return f.hook(a)
	}
	if a.Provider != provider.ID {
		return store.StageResult{}, rydes.Errorf(rydes.EFORBIDDEN, "a provider answers only as itself")
	}
	r, ok := f.rfqs[a.RFQID]
	if !ok {
		return store.StageResult{}, rydes.Errorf(rydes.ENOTFOUND, "rfq %s not found", a.RFQID)
	}
	prior, ok := r.roster[a.Provider]
	if !ok {
		return store.StageResult{}, rydes.Errorf(rydes.EFORBIDDEN, "provider %s was not asked for rfq %s", a.Provider, a.RFQID)
	}
	d := rydes.Decide(r.status, r.deadline, prior, a, f.now)
	switch d.Outcome {
	case rydes.OutcomeStaged:
		f.staged = append(f.staged, a)
		f.payloads = append(f.payloads, payload)
		prior.Answer = &a
		prior.Entry.State = rydes.ProviderQuoted
		if a.Kind == rydes.AnswerDecline {
			prior.Entry.State = rydes.ProviderDeclined
		}
		done := true
		for _, p := range r.roster {
			done = done && p.Entry.State.Done()
		}
		if done {
			r.status = rydes.StatusComplete
		}
	case rydes.OutcomeRejected:
		f.rejected = append(f.rejected, rydes.Rejection{RFQID: a.RFQID, Provider: a.Provider, Reason: d.Reason, Message: d.Message, ReceivedAt: a.ReceivedAt, Payload: payload})
	}
	return store.StageResult{Decision: d, Status: r.status}, nil
}

func (f *fakeAnswers) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// recorded returns how many answers were staged and how many refused
// answers were kept.
func (f *fakeAnswers) recorded() (staged, rejected int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.staged), len(f.rejected)
}

func (f *fakeAnswers) lastStaged() (rydes.Answer, []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.staged) == 0 {
		return rydes.Answer{}, nil
	}
	return f.staged[len(f.staged)-1], f.payloads[len(f.payloads)-1]
}

func (f *fakeAnswers) lastRejected() rydes.Rejection {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.rejected) == 0 {
		return rydes.Rejection{}
	}
	return f.rejected[len(f.rejected)-1]
}

func (f *fakeAnswers) setHook(hook func(a rydes.Answer) (store.StageResult, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hook = hook
}
