package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
)

// createCustomer registers customer id named name with key hash hash at now
// and returns it as stored.
func createCustomer(t *testing.T, s store.Store, id, name, hash string, now time.Time) rydes.Customer {
	t.Helper()
	c, err := s.CreateCustomer(rydestest.Context(t), store.CreateCustomerParams{
		Customer: rydes.Customer{ID: id, Name: name}, APIKeyHash: hash, Now: now,
	})
	require.NoError(t, err)
	return c
}

func listCustomers(t *testing.T, s store.Store) []rydes.Customer {
	t.Helper()
	cs, err := s.ListCustomers(rydestest.Context(t))
	require.NoError(t, err)
	require.NotNil(t, cs)
	return cs
}

// requireKey checks that hash authenticates want, or nobody if want is nil.
func requireKey(t *testing.T, s store.Store, hash string, want *rydes.Customer) {
	t.Helper()
	got, err := s.CustomerByAPIKeyHash(rydestest.Context(t), hash)
	if want == nil {
		requireCode(t, rydes.ENOTFOUND, err)
		return
	}
	require.NoError(t, err)
	require.Equal(t, *want, got)
}

func testCustomers(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	require.Empty(t, listCustomers(t, s))

	later := base.Add(time.Hour)
	zed := createCustomer(t, s, "zed-app", "Zed App", "hash-zed", base)
	require.Equal(t, rydes.Customer{ID: "zed-app", Name: "Zed App", CreatedAt: base}, zed)
	acme := createCustomer(t, s, "acme", "ACME Rides ✓", "hash-acme", later)
	require.Equal(t, rydes.Customer{ID: "acme", Name: "ACME Rides ✓", CreatedAt: later}, acme)
	require.Equal(t, []rydes.Customer{acme, zed}, listCustomers(t, s), "ordered by id")

	requireKey(t, s, "hash-acme", &acme)
	requireKey(t, s, "hash-zed", &zed)
	requireKey(t, s, "hash-nobody", nil)
	requireKey(t, s, "", nil)

	// Deleting a customer stops its key and keeps its RFQs.
	r := createRFQ(t, s, rfqOpts{Customer: "acme"})
	require.NoError(t, s.DeleteCustomer(ctx, "acme"))
	require.Equal(t, []rydes.Customer{zed}, listCustomers(t, s))
	requireKey(t, s, "hash-acme", nil)
	requireKey(t, s, "hash-zed", &zed)
	require.Equal(t, r, get(t, s, r.ID), "its RFQs stay")
	requireCode(t, rydes.ENOTFOUND, s.DeleteCustomer(ctx, "acme"))
	requireCode(t, rydes.ENOTFOUND, s.DeleteCustomer(ctx, "never"))

	// The id and the key of a deleted customer may be used again.
	again := createCustomer(t, s, "acme", "ACME Again", "hash-acme", later.Add(time.Hour))
	requireKey(t, s, "hash-acme", &again)
	require.Equal(t, []rydes.Customer{again, zed}, listCustomers(t, s))
}

func testCustomerConflicts(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	first := createCustomer(t, s, "acme", "ACME", "hash-1", base)
	create := func(id, name, hash string) error {
		_, err := s.CreateCustomer(ctx, store.CreateCustomerParams{
			Customer: rydes.Customer{ID: id, Name: name}, APIKeyHash: hash, Now: base.Add(time.Minute),
		})
		return err
	}
	requireCode(t, rydes.ECONFLICT, create("acme", "Other", "hash-2"))
	requireCode(t, rydes.ECONFLICT, create("other", "Other", "hash-1"))
	requireCode(t, rydes.EINVALID, create("", "Nameless id", "hash-3"))
	requireCode(t, rydes.EINVALID, create("dotted.id", "Dotted", "hash-3"))
	requireCode(t, rydes.EINVALID, create("ok", "   ", "hash-3"))
	require.Equal(t, []rydes.Customer{first}, listCustomers(t, s), "nothing refused was stored")
	requireKey(t, s, "hash-1", &first)
	requireKey(t, s, "hash-2", nil)
	requireKey(t, s, "hash-3", nil)
}

func testCustomerKeyRotation(t *testing.T, s store.Store) {
	ctx := rydestest.Context(t)
	acme := createCustomer(t, s, "acme", "ACME", "hash-old", base)
	zed := createCustomer(t, s, "zed", "Zed", "hash-zed", base)

	require.NoError(t, s.SetCustomerKey(ctx, "acme", "hash-new"))
	requireKey(t, s, "hash-old", nil)
	requireKey(t, s, "hash-new", &acme)
	require.Equal(t, []rydes.Customer{acme, zed}, listCustomers(t, s), "rotation changes nothing else")

	requireCode(t, rydes.ENOTFOUND, s.SetCustomerKey(ctx, "nobody", "hash-x"))
	requireKey(t, s, "hash-x", nil)
	requireCode(t, rydes.ECONFLICT, s.SetCustomerKey(ctx, "acme", "hash-zed"))
	requireKey(t, s, "hash-new", &acme)
	requireKey(t, s, "hash-zed", &zed)

	// The old key may be given to another customer.
	require.NoError(t, s.SetCustomerKey(ctx, "zed", "hash-old"))
	requireKey(t, s, "hash-old", &zed)
	requireKey(t, s, "hash-zed", nil)
}
