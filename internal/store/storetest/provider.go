package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
)

// natsProvider returns an active NATS provider that wants every request.
func natsProvider(id string) rydes.Provider {
	return rydes.Provider{ID: id, Name: "NATS " + id, Kind: rydes.ProviderKindNATS, Status: rydes.ProviderActive}
}

// webhookProvider returns an active webhook provider with a routing filter.
func webhookProvider(id string) rydes.Provider {
	return rydes.Provider{
		ID: id, Name: "Webhook " + id, Kind: rydes.ProviderKindWebhook, Status: rydes.ProviderActive,
		WebhookURL: "https://" + id + ".example/rydes/requests?v=1",
		Filter: rydes.Filter{
			From:          []string{"Frank*", "* Airport"},
			To:            []string{"Main Street 1"},
			MaxPassengers: 4,
			Attributes:    map[string][]string{"vehicle": {"van", "car"}, "pets": {"yes"}},
		},
	}
}

// secretsFor returns the secrets of provider id's generation gen, hashed
// as rydes hashes them.
func secretsFor(id, gen string) store.ProviderSecrets {
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return hex.EncodeToString(sum[:])
	}
	return store.ProviderSecrets{
		APIKeyHash:       hash("api key " + id + " " + gen),
		NATSPasswordHash: hash("nats password " + id + " " + gen),
		WebhookSecret:    "whsec_" + id + "_" + gen,
	}
}

// createProvider registers p with secrets at now and returns it as stored.
func createProvider(t *testing.T, s store.Store, p rydes.Provider, secrets store.ProviderSecrets, now time.Time) rydes.Provider {
	t.Helper()
	got, err := s.CreateProvider(rydestest.Context(t), store.CreateProviderParams{Provider: p, Secrets: secrets, Now: now})
	require.NoError(t, err)
	return got
}

// stored returns p as a store keeps it, created and updated at at.
func stored(p rydes.Provider, at time.Time) rydes.Provider {
	p.CreatedAt, p.UpdatedAt = at, at
	return p
}

func getProvider(t *testing.T, s store.Store, id string) rydes.Provider {
	t.Helper()
	p, err := s.GetProvider(rydestest.Context(t), id)
	require.NoError(t, err)
	return p
}

func listProviders(t *testing.T, s store.Store, p store.ListProvidersParams) []rydes.Provider {
	t.Helper()
	ps, err := s.ListProviders(rydestest.Context(t), p)
	require.NoError(t, err)
	require.NotNil(t, ps)
	return ps
}

func secretsOf(t *testing.T, s store.Store, id string) store.ProviderSecrets {
	t.Helper()
	sec, err := s.ProviderSecrets(rydestest.Context(t), id)
	require.NoError(t, err)
	return sec
}

func testCreateAndGetProvider(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	hook := webhookProvider("hook-1")
	in := hook
	in.CreatedAt, in.UpdatedAt = base.Add(-time.Hour), base.Add(-time.Hour) // set from Now, not from here
	got, err := s.CreateProvider(ctx, store.CreateProviderParams{Provider: in, Secrets: secretsFor("hook-1", "1"), Now: base.Add(999 * time.Nanosecond)})
	require.NoError(t, err)
	require.Equal(t, stored(hook, base), got, "times are kept to the microsecond")
	require.Equal(t, got, getProvider(t, s, "hook-1"))

	paused := natsProvider("nats-1")
	paused.Status, paused.PausedReason = rydes.ProviderPaused, "maintenance"
	t1 := base.Add(time.Second)
	require.Equal(t, stored(paused, t1), createProvider(t, s, paused, secretsFor("nats-1", "1"), t1))
	gotNATS := getProvider(t, s, "nats-1")
	require.Equal(t, stored(paused, t1), gotNATS)
	require.True(t, gotNATS.Filter.IsZero())
	require.Equal(t, rydes.Filter{}, gotNATS.Filter, "no filter reads back as the zero Filter")
	require.Empty(t, gotNATS.WebhookURL)

	bare := natsProvider("nats-2")
	bare.Filter = rydes.Filter{MaxPassengers: 2}
	t2 := base.Add(2 * time.Second)
	require.Equal(t, stored(bare, t2), createProvider(t, s, bare, store.ProviderSecrets{}, t2), "a provider may have no secrets")

	sim, err := s.UpsertProvider(ctx, store.UpsertProviderParams{ID: "sim-1", Name: "Sim", Kind: rydes.ProviderKindSimulated, Status: rydes.ProviderActive, Now: base})
	require.NoError(t, err)
	require.Equal(t, rydes.Filter{}, sim.Filter)

	h, n1, n2 := stored(hook, base), stored(paused, t1), stored(bare, t2)
	for _, tc := range []struct {
		params store.ListProvidersParams
		want   []rydes.Provider
	}{
		{store.ListProvidersParams{}, []rydes.Provider{h, n1, n2, sim}},
		{store.ListProvidersParams{Kind: rydes.ProviderKindWebhook}, []rydes.Provider{h}},
		{store.ListProvidersParams{Kind: rydes.ProviderKindNATS}, []rydes.Provider{n1, n2}},
		{store.ListProvidersParams{Kind: rydes.ProviderKindSimulated}, []rydes.Provider{sim}},
		{store.ListProvidersParams{Status: rydes.ProviderPaused}, []rydes.Provider{n1}},
		{store.ListProvidersParams{Status: rydes.ProviderActive}, []rydes.Provider{h, n2, sim}},
		{store.ListProvidersParams{Status: rydes.ProviderActive, Kind: rydes.ProviderKindNATS}, []rydes.Provider{n2}},
		{store.ListProvidersParams{Status: rydes.ProviderPaused, Kind: rydes.ProviderKindWebhook}, []rydes.Provider{}},
	} {
		require.Equal(t, tc.want, listProviders(t, s, tc.params), "%+v", tc.params)
	}

	_, err = s.GetProvider(ctx, "nobody")
	requireCode(t, rydes.ENOTFOUND, err)
}

func testCreateProviderConflicts(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	first := createProvider(t, s, webhookProvider("dup"), secretsFor("dup", "1"), base)

	again := natsProvider("dup")
	_, err := s.CreateProvider(ctx, store.CreateProviderParams{Provider: again, Secrets: secretsFor("dup", "2"), Now: base.Add(time.Second)})
	requireCode(t, rydes.ECONFLICT, err)
	require.Equal(t, first, getProvider(t, s, "dup"), "the first provider is untouched")
	require.Equal(t, secretsFor("dup", "1"), secretsOf(t, s, "dup"))

	sameKey := secretsFor("other", "1")
	sameKey.APIKeyHash = secretsFor("dup", "1").APIKeyHash
	_, err = s.CreateProvider(ctx, store.CreateProviderParams{Provider: natsProvider("other"), Secrets: sameKey, Now: base})
	requireCode(t, rydes.ECONFLICT, err)
	_, err = s.GetProvider(ctx, "other")
	requireCode(t, rydes.ENOTFOUND, err)

	_, err = s.UpsertProvider(ctx, store.UpsertProviderParams{ID: "sim", Name: "Sim", Kind: rydes.ProviderKindSimulated, Status: rydes.ProviderActive, Now: base})
	require.NoError(t, err)
	_, err = s.CreateProvider(ctx, store.CreateProviderParams{Provider: natsProvider("sim"), Now: base})
	requireCode(t, rydes.ECONFLICT, err)
	require.Equal(t, rydes.ProviderKindSimulated, getProvider(t, s, "sim").Kind)
}

func testCreateProviderInvalid(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	for name, mod := range map[string]func(p *rydes.Provider){
		"dotted id":              func(p *rydes.Provider) { p.ID = "uni.corn" },
		"blank name":             func(p *rydes.Provider) { p.Name = "  " },
		"unknown kind":           func(p *rydes.Provider) { p.Kind = "pigeon" },
		"no status":              func(p *rydes.Provider) { p.Status = "" },
		"webhook without URL":    func(p *rydes.Provider) { p.WebhookURL = "" },
		"webhook ftp URL":        func(p *rydes.Provider) { p.WebhookURL = "ftp://unicorns.example/" },
		"NATS with URL":          func(p *rydes.Provider) { p.Kind = rydes.ProviderKindNATS },
		"malformed pattern":      func(p *rydes.Provider) { p.Filter.From = []string{"[unclosed"} },
		"negative passengers":    func(p *rydes.Provider) { p.Filter.MaxPassengers = -1 },
		"active with a reason":   func(p *rydes.Provider) { p.PausedReason = "410 Gone" },
		"attribute no values":    func(p *rydes.Provider) { p.Filter.Attributes = map[string][]string{"vehicle": {}} },
		"bad attribute key name": func(p *rydes.Provider) { p.Filter.Attributes = map[string][]string{"a b": {"x"}} },
	} {
		p := webhookProvider("hook")
		mod(&p)
		_, err := s.CreateProvider(ctx, store.CreateProviderParams{Provider: p, Secrets: secretsFor("hook", "1"), Now: base})
		require.Equal(t, rydes.EINVALID, rydes.ErrorCodeOf(err), "%s: %v", name, err)
	}
	require.Empty(t, listProviders(t, s, store.ListProvidersParams{}), "nothing invalid was stored")
	_, err := s.ProviderByAPIKeyHash(ctx, secretsFor("hook", "1").APIKeyHash)
	requireCode(t, rydes.ENOTFOUND, err)
}

func testProviderIDReuse(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	old := secretsFor("phoenix", "1")
	createProvider(t, s, webhookProvider("phoenix"), old, base)
	r := createRFQ(t, s, rfqOpts{Providers: []string{"phoenix", "p2"}})
	withdrawn, err := s.DeleteProvider(ctx, store.DeleteProviderParams{ID: "phoenix", Now: base.Add(time.Second)})
	require.NoError(t, err)
	require.Equal(t, []string{r.ID}, withdrawn)

	_, err = s.GetProvider(ctx, "phoenix")
	requireCode(t, rydes.ENOTFOUND, err)
	_, err = s.ProviderSecrets(ctx, "phoenix")
	requireCode(t, rydes.ENOTFOUND, err)
	_, err = s.ProviderByAPIKeyHash(ctx, old.APIKeyHash)
	requireCode(t, rydes.ENOTFOUND, err) // a deleted provider's API key no longer works

	reborn := natsProvider("phoenix")
	later := base.Add(time.Hour)
	require.Equal(t, stored(reborn, later), createProvider(t, s, reborn, secretsFor("phoenix", "2"), later), "a deleted provider's id may be used again")
	require.Equal(t, stored(reborn, later), getProvider(t, s, "phoenix"), "nothing of the old provider is left")
	require.Equal(t, secretsFor("phoenix", "2"), secretsOf(t, s, "phoenix"))
	_, err = s.ProviderByAPIKeyHash(ctx, old.APIKeyHash)
	requireCode(t, rydes.ENOTFOUND, err)

	// The new provider is not the one withdrawn: it cannot answer in its place.
	now := base.Add(2 * time.Second)
	requireRejected(t, rydes.RejectWithdrawn, stage(t, s, now, quote(r, "phoenix", "10", now))[0])
}

func testUpdateProvider(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	cur := createProvider(t, s, webhookProvider("hook"), secretsFor("hook", "1"), base)
	step := 0
	update := func(p store.UpdateProviderParams, change func(p *rydes.Provider)) {
		t.Helper()
		step++
		p.ID, p.Now = "hook", base.Add(time.Duration(step)*time.Minute)
		got, err := s.UpdateProvider(ctx, p)
		require.NoError(t, err)
		want := cur
		change(&want)
		want.UpdatedAt = p.Now
		require.Equal(t, want, got, "step %d", step)
		require.Equal(t, got, getProvider(t, s, "hook"), "step %d", step)
		cur = got
	}
	ptr := func(s string) *string { return &s }
	status := func(s rydes.ProviderStatus) *rydes.ProviderStatus { return &s }

	update(store.UpdateProviderParams{Name: ptr("Renamed Unicorns")}, func(p *rydes.Provider) { p.Name = "Renamed Unicorns" })
	newFilter := rydes.Filter{To: []string{"* Airport"}, MaxPassengers: 8}
	update(store.UpdateProviderParams{Filter: &newFilter}, func(p *rydes.Provider) { p.Filter = newFilter })
	update(store.UpdateProviderParams{Filter: &rydes.Filter{}}, func(p *rydes.Provider) { p.Filter = rydes.Filter{} })
	update(store.UpdateProviderParams{WebhookURL: ptr("http://hook.example:8080/v2")}, func(p *rydes.Provider) { p.WebhookURL = "http://hook.example:8080/v2" })
	update(store.UpdateProviderParams{Status: status(rydes.ProviderPaused)}, func(p *rydes.Provider) { p.Status = rydes.ProviderPaused })
	update(store.UpdateProviderParams{PausedReason: ptr("endpoint answered 410 Gone")}, func(p *rydes.Provider) { p.PausedReason = "endpoint answered 410 Gone" })
	update(store.UpdateProviderParams{Status: status(rydes.ProviderActive)}, func(p *rydes.Provider) {
		p.Status, p.PausedReason = rydes.ProviderActive, "" // an active provider has no paused reason
	})
	update(store.UpdateProviderParams{Status: status(rydes.ProviderPaused), PausedReason: ptr("410 Gone")}, func(p *rydes.Provider) {
		p.Status, p.PausedReason = rydes.ProviderPaused, "410 Gone"
	})
	update(store.UpdateProviderParams{Status: status(rydes.ProviderActive), PausedReason: ptr("")}, func(p *rydes.Provider) {
		p.Status, p.PausedReason = rydes.ProviderActive, ""
	})

	before := cur
	got, err := s.UpdateProvider(ctx, store.UpdateProviderParams{ID: "hook", Now: base.Add(time.Hour)})
	require.NoError(t, err)
	require.Equal(t, before, got, "nothing to change changes nothing, not even the update time")

	for name, p := range map[string]store.UpdateProviderParams{
		"blank name":            {Name: ptr(" ")},
		"unknown status":        {Status: status("sleeping")},
		"no URL for a webhook":  {WebhookURL: ptr("")},
		"relative URL":          {WebhookURL: ptr("/rydes")},
		"malformed filter":      {Filter: &rydes.Filter{To: []string{"[x"}}},
		"reason but active":     {PausedReason: ptr("because")},
		"reason with resuming":  {Status: status(rydes.ProviderActive), PausedReason: ptr("because")},
		"name of control chars": {Name: ptr("a\x00b")},
	} {
		p.ID, p.Now = "hook", base.Add(2*time.Hour)
		_, err := s.UpdateProvider(ctx, p)
		require.Equal(t, rydes.EINVALID, rydes.ErrorCodeOf(err), "%s: %v", name, err)
	}
	require.Equal(t, before, getProvider(t, s, "hook"), "refused updates change nothing")

	createProvider(t, s, natsProvider("natty"), secretsFor("natty", "1"), base)
	_, err = s.UpdateProvider(ctx, store.UpdateProviderParams{ID: "natty", WebhookURL: ptr("https://natty.example/"), Now: base.Add(time.Hour)})
	requireCode(t, rydes.EINVALID, err)
	_, err = s.UpdateProvider(ctx, store.UpdateProviderParams{ID: "nobody", Name: ptr("x"), Now: base})
	requireCode(t, rydes.ENOTFOUND, err)

	require.Equal(t, secretsFor("hook", "1"), secretsOf(t, s, "hook"), "updates keep the secrets")
}

func testUpsertKeepsRegisteredFields(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	hook := webhookProvider("hook")
	hook.Status, hook.PausedReason = rydes.ProviderPaused, "410 Gone"
	want := createProvider(t, s, hook, secretsFor("hook", "1"), base)

	upsert := func(id, name string, kind rydes.ProviderKind, st rydes.ProviderStatus, now time.Time) rydes.Provider {
		t.Helper()
		got, err := s.UpsertProvider(ctx, store.UpsertProviderParams{ID: id, Name: name, Kind: kind, Status: st, Now: now})
		require.NoError(t, err)
		require.Equal(t, got, getProvider(t, s, id))
		return got
	}
	t1 := base.Add(time.Minute)
	want.Name, want.UpdatedAt = "Renamed", t1
	require.Equal(t, want, upsert("hook", "Renamed", rydes.ProviderKindWebhook, rydes.ProviderPaused, t1),
		"an upsert keeps the webhook URL, filter and paused reason")

	t2 := base.Add(2 * time.Minute)
	want.Status, want.PausedReason, want.UpdatedAt = rydes.ProviderActive, "", t2
	require.Equal(t, want, upsert("hook", "Renamed", rydes.ProviderKindWebhook, rydes.ProviderActive, t2),
		"an active provider has no paused reason")

	t3 := base.Add(3 * time.Minute)
	want.Kind, want.WebhookURL, want.UpdatedAt = rydes.ProviderKindNATS, "", t3
	require.Equal(t, want, upsert("hook", "Renamed", rydes.ProviderKindNATS, rydes.ProviderActive, t3),
		"only webhook providers have a webhook URL; the filter stays")

	require.Equal(t, secretsFor("hook", "1"), secretsOf(t, s, "hook"), "an upsert keeps the secrets")
	p, err := s.ProviderByAPIKeyHash(ctx, secretsFor("hook", "1").APIKeyHash)
	require.NoError(t, err)
	require.Equal(t, want, p)
}

func testProviderSecrets(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	sec1 := secretsFor("p", "1")
	p := createProvider(t, s, webhookProvider("p"), sec1, base)
	q := createProvider(t, s, natsProvider("q"), secretsFor("q", "1"), base)
	require.Equal(t, sec1, secretsOf(t, s, "p"))

	byKey := func(hash string) (rydes.Provider, error) {
		t.Helper()
		return s.ProviderByAPIKeyHash(ctx, hash)
	}
	got, err := byKey(sec1.APIKeyHash)
	require.NoError(t, err)
	require.Equal(t, p, got, "the whole provider, filter and all")
	got, err = byKey(secretsFor("q", "1").APIKeyHash)
	require.NoError(t, err)
	require.Equal(t, q, got)

	set := func(id string, sec store.ProviderSecrets, now time.Time) error {
		return s.SetProviderSecrets(ctx, store.SetProviderSecretsParams{ID: id, Secrets: sec, Now: now})
	}
	sec2 := secretsFor("p", "2")
	require.NoError(t, set("p", store.ProviderSecrets{NATSPasswordHash: sec2.NATSPasswordHash}, base.Add(time.Second)))
	require.Equal(t, store.ProviderSecrets{APIKeyHash: sec1.APIKeyHash, NATSPasswordHash: sec2.NATSPasswordHash, WebhookSecret: sec1.WebhookSecret},
		secretsOf(t, s, "p"), "only the secrets set are replaced")

	sec3 := secretsFor("p", "3")
	require.NoError(t, set("p", sec3, base.Add(2*time.Second)))
	require.Equal(t, sec3, secretsOf(t, s, "p"))
	_, err = byKey(sec1.APIKeyHash)
	requireCode(t, rydes.ENOTFOUND, err) // a rotated API key no longer works
	got, err = byKey(sec3.APIKeyHash)
	require.NoError(t, err)
	require.Equal(t, "p", got.ID)

	require.NoError(t, set("p", store.ProviderSecrets{}, base.Add(3*time.Second)))
	require.Equal(t, sec3, secretsOf(t, s, "p"), "no secrets set, none replaced")

	taken := store.ProviderSecrets{APIKeyHash: secretsFor("q", "1").APIKeyHash}
	requireCode(t, rydes.ECONFLICT, set("p", taken, base.Add(4*time.Second)))
	require.Equal(t, sec3, secretsOf(t, s, "p"), "a refused rotation changes nothing")
	got, err = byKey(taken.APIKeyHash)
	require.NoError(t, err)
	require.Equal(t, "q", got.ID)

	requireCode(t, rydes.ENOTFOUND, set("nobody", sec1, base))
	_, err = s.ProviderSecrets(ctx, "nobody")
	requireCode(t, rydes.ENOTFOUND, err)
	_, err = byKey("")
	requireCode(t, rydes.ENOTFOUND, err)
	_, err = byKey(secretsFor("nobody", "1").APIKeyHash)
	requireCode(t, rydes.ENOTFOUND, err)

	_, err = s.UpsertProvider(ctx, store.UpsertProviderParams{ID: "sim", Name: "Sim", Kind: rydes.ProviderKindSimulated, Status: rydes.ProviderActive, Now: base})
	require.NoError(t, err)
	require.Equal(t, store.ProviderSecrets{}, secretsOf(t, s, "sim"), "a simulated provider has no secrets")
}
