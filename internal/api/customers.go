package api

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/wildrydes/rydes"
)

// createCustomerBody is the body of POST /v1/customers.
type createCustomerBody struct {
	ID   string  `json:"id"`
	Name *string `json:"name"`
}

// customerWithKey is a customer with its API key, shown only when the
// customer is created or its key rotated.
type customerWithKey struct {
	Customer rydes.Customer `json:"customer"`
	APIKey   string         `json:"api_key"`
}

// noCustomers is the error of the customer administration routes on a
// server without a customer registry.
func noCustomers() error {
	return unavailable("customer accounts are not available on this server")
}

// handleCreateCustomer serves POST /v1/customers: 201 with the customer and
// its API key, shown only now.
func handleCreateCustomer(logger *slog.Logger, customers CustomerRegistry, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body createCustomerBody
		if err := decodeJSON(w, r, maxBody, &body); err != nil {
			writeError(w, r, logger, err)
			return
		}
		c := rydes.Customer{ID: body.ID, Name: body.ID}
		if body.Name != nil {
			c.Name = *body.Name
		}
		if err := c.Validate(); err != nil {
			writeError(w, r, logger, err)
			return
		}
		if customers == nil {
			writeError(w, r, logger, noCustomers())
			return
		}
		created, key, err := customers.Create(r.Context(), c.ID, c.Name)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("create customer %s: %w", c.ID, err))
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, r, logger, http.StatusCreated, customerWithKey{Customer: created, APIKey: key})
	})
}

// handleListCustomers serves GET /v1/customers: every customer, by id.
func handleListCustomers(logger *slog.Logger, customers CustomerRegistry) http.Handler {
	type customerList struct {
		Customers []rydes.Customer `json:"customers"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if customers == nil {
			writeError(w, r, logger, noCustomers())
			return
		}
		cs, err := customers.List(r.Context())
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("list customers: %w", err))
			return
		}
		if cs == nil {
			cs = []rydes.Customer{}
		}
		writeJSON(w, r, logger, http.StatusOK, customerList{Customers: cs})
	})
}

// handleDeleteCustomer serves DELETE /v1/customers/{id}: 204. The key stops
// working; the customer's RFQs stay.
func handleDeleteCustomer(logger *slog.Logger, customers CustomerRegistry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathProviderID(r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		if err := requireNoBody(r); err != nil {
			writeError(w, r, logger, err)
			return
		}
		if customers == nil {
			writeError(w, r, logger, noCustomers())
			return
		}
		if err := customers.Delete(r.Context(), id); err != nil {
			writeError(w, r, logger, fmt.Errorf("delete customer %s: %w", id, err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// handleRotateCustomer serves POST /v1/customers/{id}/rotate: 200 with the
// customer and its new API key; the old key stops working.
func handleRotateCustomer(logger *slog.Logger, customers CustomerRegistry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathProviderID(r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		if err := requireNoBody(r); err != nil {
			writeError(w, r, logger, err)
			return
		}
		if customers == nil {
			writeError(w, r, logger, noCustomers())
			return
		}
		c, key, err := customers.Rotate(r.Context(), id)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("rotate key of customer %s: %w", id, err))
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, r, logger, http.StatusOK, customerWithKey{Customer: c, APIKey: key})
	})
}
