package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
)

func addDeadLetter(t *testing.T, s store.Store, d rydes.DeadLetter) rydes.DeadLetter {
	t.Helper()
	got, err := s.AddDeadLetter(rydestest.Context(t), d)
	require.NoError(t, err)
	require.Positive(t, got.ID)
	want := d
	want.ID = got.ID
	require.Equal(t, want, got, "the dead letter as given, with its id")
	return got
}

func listDeadLetters(t *testing.T, s store.Store, p store.ListDeadLettersParams) []rydes.DeadLetter {
	t.Helper()
	dls, err := s.ListDeadLetters(rydestest.Context(t), p)
	require.NoError(t, err)
	require.NotNil(t, dls)
	return dls
}

func testDeadLetters(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	r := newRFQ(t, rfqOpts{Passengers: 2, PickupAt: base.Add(time.Hour), Attributes: map[string]string{"pets": "yes"}})
	d1 := addDeadLetter(t, s, rydes.DeadLetter{
		Provider: "hook-a", RFQID: r.ID, Attempts: 8, LastError: "HTTP 503", LastStatus: 503,
		Request: r.ProviderRequest(), CreatedAt: base,
	})
	r2 := newRFQ(t, rfqOpts{})
	d2 := addDeadLetter(t, s, rydes.DeadLetter{
		Provider: "hook-b", RFQID: r2.ID, Attempts: 3, LastError: "dial tcp: connection refused",
		Request: r2.ProviderRequest(), CreatedAt: base.Add(time.Second),
	})
	d3 := addDeadLetter(t, s, rydes.DeadLetter{
		Provider: "hook-a", RFQID: r2.ID, Attempts: 8, LastError: "HTTP 500", LastStatus: 500,
		Request: r2.ProviderRequest(), CreatedAt: base.Add(2 * time.Second),
	})
	require.Less(t, d1.ID, d2.ID)
	require.Less(t, d2.ID, d3.ID)

	got, err := s.GetDeadLetter(ctx, d1.ID)
	require.NoError(t, err)
	require.Equal(t, d1, got, "the request round-trips, attributes and all")
	got, err = s.GetDeadLetter(ctx, d2.ID)
	require.NoError(t, err)
	require.Equal(t, d2, got)
	require.Zero(t, got.LastStatus, "no response came back")
	require.True(t, got.ReplayedAt.IsZero())

	require.Equal(t, []rydes.DeadLetter{d3, d2, d1}, listDeadLetters(t, s, store.ListDeadLettersParams{}), "newest first")
	require.Equal(t, []rydes.DeadLetter{d3, d1}, listDeadLetters(t, s, store.ListDeadLettersParams{Provider: "hook-a"}))
	require.Equal(t, []rydes.DeadLetter{d2}, listDeadLetters(t, s, store.ListDeadLettersParams{Provider: "hook-b"}))
	require.Empty(t, listDeadLetters(t, s, store.ListDeadLettersParams{Provider: "nobody"}))

	// Paging: each page starts below the last id of the one before.
	page := listDeadLetters(t, s, store.ListDeadLettersParams{Limit: 2})
	require.Equal(t, []rydes.DeadLetter{d3, d2}, page)
	page = listDeadLetters(t, s, store.ListDeadLettersParams{Limit: 2, BeforeID: page[1].ID})
	require.Equal(t, []rydes.DeadLetter{d1}, page)
	require.Empty(t, listDeadLetters(t, s, store.ListDeadLettersParams{Limit: 2, BeforeID: page[0].ID}))
	require.Equal(t, []rydes.DeadLetter{d1}, listDeadLetters(t, s, store.ListDeadLettersParams{Provider: "hook-a", BeforeID: d3.ID}))

	replayed := base.Add(time.Hour)
	require.NoError(t, s.MarkDeadLetterReplayed(ctx, d1.ID, replayed))
	got, err = s.GetDeadLetter(ctx, d1.ID)
	require.NoError(t, err)
	want := d1
	want.ReplayedAt = replayed
	require.Equal(t, want, got)
	again := base.Add(2 * time.Hour)
	require.NoError(t, s.MarkDeadLetterReplayed(ctx, d1.ID, again), "a dead letter may be replayed again")
	got, err = s.GetDeadLetter(ctx, d1.ID)
	require.NoError(t, err)
	require.Equal(t, again, got.ReplayedAt)
	require.Equal(t, []rydes.DeadLetter{d3, d2}, listDeadLetters(t, s, store.ListDeadLettersParams{Limit: 2}), "the others are unchanged")

	_, err = s.GetDeadLetter(ctx, d3.ID+1000)
	requireCode(t, rydes.ENOTFOUND, err)
	requireCode(t, rydes.ENOTFOUND, s.MarkDeadLetterReplayed(ctx, d3.ID+1000, replayed))

	for name, mod := range map[string]func(d *rydes.DeadLetter){
		"no provider":       func(d *rydes.DeadLetter) { d.Provider = "" },
		"no RFQ":            func(d *rydes.DeadLetter) { d.RFQID = "" },
		"negative attempts": func(d *rydes.DeadLetter) { d.Attempts = -1 },
		"not an HTTP code":  func(d *rydes.DeadLetter) { d.LastStatus = 42 },
	} {
		d := d1
		d.ID, d.ReplayedAt = 0, time.Time{}
		mod(&d)
		_, err := s.AddDeadLetter(ctx, d)
		require.Equal(t, rydes.EINVALID, rydes.ErrorCodeOf(err), "%s: %v", name, err)
	}
	require.Len(t, listDeadLetters(t, s, store.ListDeadLettersParams{}), 3, "nothing invalid was stored")
}

func testDeadLettersDefaultLimit(t *testing.T, s store.Store) {
	r := newRFQ(t, rfqOpts{})
	req := r.ProviderRequest()
	var last rydes.DeadLetter
	for i := range 105 {
		last = addDeadLetter(t, s, rydes.DeadLetter{
			Provider: "hook", RFQID: req.RFQID, Attempts: 1, LastError: fmt.Sprintf("attempt %d", i),
			Request: req, CreatedAt: base.Add(time.Duration(i) * time.Second),
		})
	}
	got := listDeadLetters(t, s, store.ListDeadLettersParams{})
	require.Len(t, got, 100)
	require.Equal(t, last, got[0])
	require.Equal(t, "attempt 5", got[99].LastError)
}

func testSettings(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	getSetting := func(name string) (string, bool) {
		t.Helper()
		v, ok, err := s.GetSetting(ctx, name)
		require.NoError(t, err)
		return v, ok
	}
	initSetting := func(name, value string) string {
		t.Helper()
		v, err := s.InitSetting(ctx, name, value)
		require.NoError(t, err)
		return v
	}
	v, ok := getSetting("admin_key_hash")
	require.False(t, ok)
	require.Empty(t, v)

	require.Equal(t, "h1", initSetting("admin_key_hash", "h1"))
	require.Equal(t, "h1", initSetting("admin_key_hash", "h2"), "a set setting stays")
	v, ok = getSetting("admin_key_hash")
	require.True(t, ok)
	require.Equal(t, "h1", v)

	require.NoError(t, s.PutSetting(ctx, "admin_key_hash", "h3"))
	v, _ = getSetting("admin_key_hash")
	require.Equal(t, "h3", v)
	require.Equal(t, "h3", initSetting("admin_key_hash", "h4"))

	require.NoError(t, s.PutSetting(ctx, "empty", ""))
	v, ok = getSetting("empty")
	require.True(t, ok, "an empty value is set")
	require.Empty(t, v)
	require.Empty(t, initSetting("empty", "x"))

	require.Equal(t, "fresh", initSetting("other", "fresh"), "settings are independent")
	v, _ = getSetting("admin_key_hash")
	require.Equal(t, "h3", v)
}

// testInitSettingRace races InitSetting with different values: every caller
// gets the one value that won.
func testInitSettingRace(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	const n = 16
	var (
		wg     sync.WaitGroup
		start  = make(chan struct{})
		values [n]string
		errs   [n]error
	)
	for i := range n {
		wg.Go(func() {
			<-start
			values[i], errs[i] = s.InitSetting(ctx, "race", fmt.Sprintf("value-%d", i))
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, values[0], values[i], "caller %d", i)
	}
	require.Regexp(t, `^value-\d+$`, values[0])
	v, ok, err := s.GetSetting(ctx, "race")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, values[0], v)
}
