package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jonboulle/clockwork"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/auth"
	"github.com/wildrydes/rydes/internal/store"
)

// PrefixCustomerKey starts every customer API key.
const PrefixCustomerKey = "rydes_ck_"

// Customers manages customer accounts and their API keys. A customer sees
// and cancels only its own requests.
type Customers struct {
	store store.Store
	clock clockwork.Clock
	log   *slog.Logger
}

// NewCustomers returns a customer registry on st.
func NewCustomers(st store.Store, clock clockwork.Clock, logger *slog.Logger) (*Customers, error) {
	if st == nil {
		return nil, errors.New("customers: a store is required")
	}
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Customers{store: st, clock: clock, log: logger}, nil
}

// Create registers a customer and returns it with its API key, shown only
// now (rydes keeps the key's hash).
func (c *Customers) Create(ctx context.Context, id, name string) (rydes.Customer, string, error) {
	if name == "" {
		name = id
	}
	cust := rydes.Customer{ID: id, Name: name}
	if err := cust.Validate(); err != nil {
		return rydes.Customer{}, "", err
	}
	key := auth.NewToken(PrefixCustomerKey)
	created, err := c.store.CreateCustomer(ctx, store.CreateCustomerParams{Customer: cust, APIKeyHash: auth.Hash(key), Now: c.clock.Now().UTC()})
	if err != nil {
		return rydes.Customer{}, "", fmt.Errorf("create customer %s: %w", id, err)
	}
	c.log.Info("customer created", "customer", id)
	return created, key, nil
}

// List returns every customer, ordered by id.
func (c *Customers) List(ctx context.Context) ([]rydes.Customer, error) {
	cs, err := c.store.ListCustomers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list customers: %w", err)
	}
	return cs, nil
}

// Delete removes a customer: its key stops working; its requests stay.
func (c *Customers) Delete(ctx context.Context, id string) error {
	if err := c.store.DeleteCustomer(ctx, id); err != nil {
		return fmt.Errorf("delete customer %s: %w", id, err)
	}
	c.log.Info("customer deleted", "customer", id)
	return nil
}

// Rotate replaces a customer's API key and returns the new one, shown only
// now; the old key stops working at once.
func (c *Customers) Rotate(ctx context.Context, id string) (rydes.Customer, string, error) {
	key := auth.NewToken(PrefixCustomerKey)
	if err := c.store.SetCustomerKey(ctx, id, auth.Hash(key)); err != nil {
		return rydes.Customer{}, "", fmt.Errorf("rotate key of customer %s: %w", id, err)
	}
	cust, err := c.store.CustomerByAPIKeyHash(ctx, auth.Hash(key))
	if err != nil {
		return rydes.Customer{}, "", fmt.Errorf("read customer %s: %w", id, err)
	}
	return cust, key, nil
}

// Authenticate returns the customer an API key belongs to, or an
// EUNAUTHORIZED error.
func (c *Customers) Authenticate(ctx context.Context, apiKey string) (rydes.Customer, error) {
	if apiKey == "" {
		return rydes.Customer{}, rydes.Errorf(rydes.EUNAUTHORIZED, "a customer API key is required (Authorization: Bearer)")
	}
	cust, err := c.store.CustomerByAPIKeyHash(ctx, auth.Hash(apiKey))
	if rydes.ErrorCodeOf(err) == rydes.ENOTFOUND {
		return rydes.Customer{}, rydes.Errorf(rydes.EUNAUTHORIZED, "unknown or revoked customer API key")
	}
	if err != nil {
		return rydes.Customer{}, fmt.Errorf("authenticate customer: %w", err)
	}
	return cust, nil
}
