// Package registry manages providers at run time: it registers them with
// their credentials and queues, pauses and resumes them, changes their
// routing filters, rotates their keys, removes them (withdrawing them from
// the requests they were asked in), authenticates them, and reports their
// health and dead letters. Nothing restarts.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/auth"
	"github.com/wildrydes/rydes/internal/store"
)

// Queues is the broker side of providers: each provider's durable queue.
type Queues interface {
	EnsureProviderQueue(ctx context.Context, provider string) error
	DeleteProviderQueue(ctx context.Context, provider string) error
	// QueueInfo describes a provider's queue.
	QueueInfo(ctx context.Context, provider string) (QueueInfo, error)
	// Redispatch puts a request on a provider's queue again, unless the
	// queue still holds it.
	Redispatch(ctx context.Context, provider string, req rydes.ProviderRequest) error
}

// QueueInfo is the state of one provider's queue.
type QueueInfo struct {
	Pending  int       // waiting, not yet delivered
	InFlight int       // delivered, not yet acknowledged
	Oldest   time.Time // when the oldest waiting request was queued; zero if none
}

// Hooks tell the rest of the process what the registry changed. Every field
// is optional.
type Hooks struct {
	// Changed is called after a provider was created, updated or deleted
	// (deleted true), e.g. to start or stop its webhook dispatcher on every
	// instance.
	Changed func(ctx context.Context, p rydes.Provider, deleted bool)
	// Disconnect is called when a provider's NATS credentials stop being
	// valid (rotated or deleted), to close its open connections.
	Disconnect func(natsUser string)
	// Emitted is called after a change wrote events to the outbox.
	Emitted func()
}

// Config holds what a Registry needs. Store and Queues are required.
type Config struct {
	Store  store.Store
	Queues Queues
	Clock  clockwork.Clock
	Logger *slog.Logger
	Hooks  Hooks
}

// Registry manages providers.
type Registry struct {
	store  store.Store
	queues Queues
	clock  clockwork.Clock
	log    *slog.Logger
	hooks  Hooks
}

// New returns a Registry for cfg.
func New(cfg Config) (*Registry, error) {
	if cfg.Store == nil || cfg.Queues == nil {
		return nil, errors.New("registry: Store and Queues are required")
	}
	r := &Registry{store: cfg.Store, queues: cfg.Queues, clock: cfg.Clock, log: cfg.Logger, hooks: cfg.Hooks}
	if r.clock == nil {
		r.clock = clockwork.NewRealClock()
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	return r, nil
}

// CreateParams describe a new provider.
type CreateParams struct {
	ID         string
	Name       string
	Kind       rydes.ProviderKind
	WebhookURL string
	Filter     rydes.Filter
	Status     rydes.ProviderStatus // "" for active
}

// Create registers a provider, makes its queue and returns it with its
// credentials, which are shown only now.
func (r *Registry) Create(ctx context.Context, p CreateParams) (rydes.Provider, rydes.ProviderCredentials, error) {
	if p.Status == "" {
		p.Status = rydes.ProviderActive
	}
	if p.Name == "" {
		p.Name = p.ID
	}
	prov := rydes.Provider{ID: p.ID, Name: p.Name, Kind: p.Kind, Status: p.Status, WebhookURL: p.WebhookURL, Filter: p.Filter}
	if p.Kind == rydes.ProviderKindSimulated {
		return rydes.Provider{}, rydes.ProviderCredentials{}, rydes.FieldErrorf("kind", "simulated providers are rydes's own; use %q or %q", rydes.ProviderKindNATS, rydes.ProviderKindWebhook)
	}
	if err := prov.Validate(); err != nil {
		return rydes.Provider{}, rydes.ProviderCredentials{}, err
	}
	creds := rydes.ProviderCredentials{
		APIKey:       auth.NewToken(auth.PrefixAPIKey),
		NATSUser:     prov.ID,
		NATSPassword: auth.NewToken(auth.PrefixNATSPassword),
	}
	if prov.Kind == rydes.ProviderKindWebhook {
		creds.WebhookSecret = auth.NewWebhookSecret()
	}
	// The queue first: a provider that is in the store is asked for
	// requests, so its queue must exist by then. A queue left behind by a
	// failed create is harmless and reused.
	if err := r.queues.EnsureProviderQueue(ctx, prov.ID); err != nil {
		return rydes.Provider{}, rydes.ProviderCredentials{}, fmt.Errorf("create queue of provider %s: %w", prov.ID, err)
	}
	created, err := r.store.CreateProvider(ctx, store.CreateProviderParams{
		Provider: prov,
		Secrets: store.ProviderSecrets{
			APIKeyHash:       auth.Hash(creds.APIKey),
			NATSPasswordHash: auth.Hash(creds.NATSPassword),
			WebhookSecret:    creds.WebhookSecret,
		},
		Now: r.now(),
	})
	if err != nil {
		return rydes.Provider{}, rydes.ProviderCredentials{}, fmt.Errorf("create provider %s: %w", prov.ID, err)
	}
	r.log.Info("provider created", "provider", created.ID, "kind", created.Kind)
	r.changed(ctx, created, false)
	return created, creds, nil
}

// Get returns one provider.
func (r *Registry) Get(ctx context.Context, id string) (rydes.Provider, error) {
	if err := rydes.ValidateProviderID(id); err != nil {
		return rydes.Provider{}, &rydes.Error{Code: rydes.EINVALID, Field: "id", Message: err.(*rydes.Error).Message}
	}
	p, err := r.store.GetProvider(ctx, id)
	if err != nil {
		return rydes.Provider{}, fmt.Errorf("get provider %s: %w", id, err)
	}
	return p, nil
}

// List returns every provider, ordered by id.
func (r *Registry) List(ctx context.Context) ([]rydes.Provider, error) {
	ps, err := r.store.ListProviders(ctx, store.ListProvidersParams{})
	if err != nil {
		return nil, fmt.Errorf("list providers: %w", err)
	}
	return ps, nil
}

// UpdateParams change a provider: nil fields stay as they are.
type UpdateParams struct {
	ID         string
	Name       *string
	Status     *rydes.ProviderStatus
	WebhookURL *string
	Filter     *rydes.Filter
}

// Update changes a provider's name, status (pause, resume), webhook URL or
// routing filter. A paused provider is asked for nothing new; it may still
// answer what it was asked.
func (r *Registry) Update(ctx context.Context, p UpdateParams) (rydes.Provider, error) {
	cur, err := r.Get(ctx, p.ID)
	if err != nil {
		return rydes.Provider{}, err
	}
	if cur.Kind == rydes.ProviderKindSimulated {
		return rydes.Provider{}, rydes.Errorf(rydes.ECONFLICT, "provider %s is simulated; --sim-* flags configure it", p.ID)
	}
	next := cur
	if p.Name != nil {
		next.Name = *p.Name
	}
	if p.Status != nil {
		next.Status = *p.Status
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
	params := store.UpdateProviderParams{ID: p.ID, Name: p.Name, Status: p.Status, WebhookURL: p.WebhookURL, Filter: p.Filter, Now: r.now()}
	if p.Status != nil && *p.Status == rydes.ProviderActive {
		none := ""
		params.PausedReason = &none
	}
	updated, err := r.store.UpdateProvider(ctx, params)
	if err != nil {
		return rydes.Provider{}, fmt.Errorf("update provider %s: %w", p.ID, err)
	}
	r.changed(ctx, updated, false)
	return updated, nil
}

// PauseForGone pauses a webhook provider whose endpoint answered 410 Gone,
// recording why.
func (r *Registry) PauseForGone(ctx context.Context, id, reason string) error {
	paused := rydes.ProviderPaused
	updated, err := r.store.UpdateProvider(ctx, store.UpdateProviderParams{ID: id, Status: &paused, PausedReason: &reason, Now: r.now()})
	if err != nil {
		return fmt.Errorf("pause provider %s: %w", id, err)
	}
	r.log.Warn("provider paused by its endpoint", "provider", id, "reason", reason)
	r.changed(ctx, updated, false)
	return nil
}

// Delete removes a provider: it is withdrawn from every open request it was
// asked in (which may complete them), its credentials stop working and its
// queue is removed.
func (r *Registry) Delete(ctx context.Context, id string) error {
	cur, err := r.Get(ctx, id)
	if err != nil {
		return err
	}
	if cur.Kind == rydes.ProviderKindSimulated {
		return rydes.Errorf(rydes.ECONFLICT, "provider %s is simulated; run with fewer --sim-providers instead", id)
	}
	withdrawn, err := r.store.DeleteProvider(ctx, store.DeleteProviderParams{ID: id, Now: r.now()})
	r.emitted(withdrawn) // all of them, or those before a failure
	if err != nil {
		return fmt.Errorf("delete provider %s: %w", id, err)
	}
	if r.hooks.Disconnect != nil {
		r.hooks.Disconnect(id)
	}
	r.changed(ctx, cur, true)
	// The store is the truth: the provider is gone. A queue that fails to
	// go is removed by the next start's reconciliation.
	if err := r.queues.DeleteProviderQueue(ctx, id); err != nil && rydes.ErrorCodeOf(err) != rydes.ENOTFOUND {
		r.log.Warn("delete provider queue; the next start removes it", "provider", id, "err", err)
	}
	r.log.Info("provider deleted", "provider", id, "withdrawn_from", len(withdrawn))
	return nil
}

// Rotate replaces a provider's API key and NATS password (and, for a
// webhook provider, its signing secret) and returns the new ones, shown only
// now. Open NATS connections with the old password are closed.
func (r *Registry) Rotate(ctx context.Context, id string) (rydes.ProviderCredentials, error) {
	cur, err := r.Get(ctx, id)
	if err != nil {
		return rydes.ProviderCredentials{}, err
	}
	if cur.Kind == rydes.ProviderKindSimulated {
		return rydes.ProviderCredentials{}, rydes.Errorf(rydes.ECONFLICT, "provider %s is simulated and has no credentials", id)
	}
	creds := rydes.ProviderCredentials{
		APIKey:       auth.NewToken(auth.PrefixAPIKey),
		NATSUser:     cur.ID,
		NATSPassword: auth.NewToken(auth.PrefixNATSPassword),
	}
	if cur.Kind == rydes.ProviderKindWebhook {
		creds.WebhookSecret = auth.NewWebhookSecret()
	}
	if err := r.store.SetProviderSecrets(ctx, store.SetProviderSecretsParams{ID: id, Now: r.now(), Secrets: store.ProviderSecrets{
		APIKeyHash: auth.Hash(creds.APIKey), NATSPasswordHash: auth.Hash(creds.NATSPassword), WebhookSecret: creds.WebhookSecret,
	}}); err != nil {
		return rydes.ProviderCredentials{}, fmt.Errorf("rotate credentials of provider %s: %w", id, err)
	}
	if r.hooks.Disconnect != nil {
		r.hooks.Disconnect(id)
	}
	r.changed(ctx, cur, false)
	r.log.Info("provider credentials rotated", "provider", id)
	return creds, nil
}

// Authenticate returns the provider an API key belongs to, or an
// EUNAUTHORIZED error.
func (r *Registry) Authenticate(ctx context.Context, apiKey string) (rydes.Provider, error) {
	if apiKey == "" {
		return rydes.Provider{}, rydes.Errorf(rydes.EUNAUTHORIZED, "a provider API key is required (Authorization: Bearer)")
	}
	// The lookup is by hash through an index; hashes of high-entropy keys
	// leak nothing through timing.
	p, err := r.store.ProviderByAPIKeyHash(ctx, auth.Hash(apiKey))
	if rydes.ErrorCodeOf(err) == rydes.ENOTFOUND {
		return rydes.Provider{}, rydes.Errorf(rydes.EUNAUTHORIZED, "unknown or revoked provider API key")
	}
	if err != nil {
		return rydes.Provider{}, fmt.Errorf("authenticate provider: %w", err)
	}
	return p, nil
}

// CheckNATSPassword reports whether password is the NATS password of the
// provider named user.
func (r *Registry) CheckNATSPassword(ctx context.Context, user, password string) (bool, error) {
	if rydes.ValidateProviderID(user) != nil || password == "" {
		return false, nil
	}
	s, err := r.store.ProviderSecrets(ctx, user)
	if rydes.ErrorCodeOf(err) == rydes.ENOTFOUND {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read secrets of provider %s: %w", user, err)
	}
	return s.NATSPasswordHash != "" && auth.Matches(password, s.NATSPasswordHash), nil
}

// WebhookSecret returns the signing secret of a webhook provider.
func (r *Registry) WebhookSecret(ctx context.Context, id string) (string, error) {
	s, err := r.store.ProviderSecrets(ctx, id)
	if err != nil {
		return "", fmt.Errorf("read secrets of provider %s: %w", id, err)
	}
	return s.WebhookSecret, nil
}

// Stats reports how a provider has been doing, with its queue's state.
func (r *Registry) Stats(ctx context.Context, id string) (rydes.ProviderStats, error) {
	if _, err := r.Get(ctx, id); err != nil {
		return rydes.ProviderStats{}, err
	}
	st, err := r.store.ProviderStats(ctx, id)
	if err != nil {
		return rydes.ProviderStats{}, fmt.Errorf("stats of provider %s: %w", id, err)
	}
	q, err := r.queues.QueueInfo(ctx, id)
	if err != nil {
		return rydes.ProviderStats{}, fmt.Errorf("queue of provider %s: %w", id, err)
	}
	st.Provider = id
	st.QueueDepth, st.InFlight = q.Pending, q.InFlight
	if !q.Oldest.IsZero() {
		st.OldestPendingAge = rydes.Duration(max(r.clock.Since(q.Oldest), 0))
	}
	return st, nil
}

// DeadLetters lists dead letters, newest first.
func (r *Registry) DeadLetters(ctx context.Context, p store.ListDeadLettersParams) ([]rydes.DeadLetter, error) {
	dls, err := r.store.ListDeadLetters(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	return dls, nil
}

// Replay puts a dead letter's request back on its provider's queue, for
// another round of delivery. The request must still be open and the
// provider still registered.
func (r *Registry) Replay(ctx context.Context, id int64) (rydes.DeadLetter, error) {
	dl, err := r.store.GetDeadLetter(ctx, id)
	if err != nil {
		return rydes.DeadLetter{}, fmt.Errorf("get dead letter %d: %w", id, err)
	}
	if _, err := r.store.GetProvider(ctx, dl.Provider); err != nil {
		if rydes.ErrorCodeOf(err) == rydes.ENOTFOUND {
			return rydes.DeadLetter{}, rydes.Errorf(rydes.EGONE, "provider %s no longer exists", dl.Provider)
		}
		return rydes.DeadLetter{}, fmt.Errorf("get provider %s: %w", dl.Provider, err)
	}
	rfq, err := r.store.GetRFQ(ctx, store.GetRFQParams{ID: dl.RFQID})
	if err != nil {
		return rydes.DeadLetter{}, fmt.Errorf("get rfq %s: %w", dl.RFQID, err)
	}
	if rfq.Status != rydes.StatusOpen || !r.now().Before(rfq.Deadline) {
		return rydes.DeadLetter{}, rydes.Errorf(rydes.ECONFLICT, "rfq %s is %s: nothing to replay", dl.RFQID, rfq.Status)
	}
	now := r.now()
	if err := r.queues.Redispatch(ctx, dl.Provider, dl.Request); err != nil {
		return rydes.DeadLetter{}, fmt.Errorf("replay dead letter %d: %w", id, err)
	}
	if err := r.store.MarkDeadLetterReplayed(ctx, id, now); err != nil {
		return rydes.DeadLetter{}, fmt.Errorf("mark dead letter %d replayed: %w", id, err)
	}
	dl.ReplayedAt = now
	return dl, nil
}

// Reconcile makes the broker match the store: every registered provider has
// its queue. It runs at start, so what a crash left half done is finished.
// It returns the providers.
func (r *Registry) Reconcile(ctx context.Context) ([]rydes.Provider, error) {
	ps, err := r.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if err := r.queues.EnsureProviderQueue(ctx, p.ID); err != nil {
			return nil, fmt.Errorf("queue of provider %s: %w", p.ID, err)
		}
	}
	return ps, nil
}

// FinishDeletes withdraws providers deleted by a Delete that stopped
// half-way (the store withdraws a deleted provider from its open RFQs a
// chunk at a time) from the open RFQs they were left in. Run it at start.
func (r *Registry) FinishDeletes(ctx context.Context) error {
	ids, err := r.store.WithdrawDeleted(ctx, store.WithdrawDeletedParams{Now: r.now()})
	r.emitted(ids)
	if err != nil {
		return fmt.Errorf("finish deletes of providers: %w", err)
	}
	return nil
}

// emitted tells the Emitted hook that the store wrote events, if withdrawing
// from the RFQs ids did.
func (r *Registry) emitted(ids []string) {
	if len(ids) > 0 && r.hooks.Emitted != nil {
		r.hooks.Emitted()
	}
}

func (r *Registry) changed(ctx context.Context, p rydes.Provider, deleted bool) {
	if r.hooks.Changed != nil {
		r.hooks.Changed(ctx, p, deleted)
	}
}

func (r *Registry) now() time.Time { return r.clock.Now().UTC() }
