package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/store"
)

// customerColumns are the columns scanCustomer reads.
const customerColumns = `id, name, created_at`

// CreateCustomer registers a customer with the hash of its API key and
// returns it as stored, created at p.Now. It fails with EINVALID for a
// customer that rydes.Customer.Validate refuses or an empty key hash, and
// with ECONFLICT if the id exists or another customer has the same key hash.
func (s *Store) CreateCustomer(ctx context.Context, p store.CreateCustomerParams) (rydes.Customer, error) {
	c := p.Customer
	if err := c.Validate(); err != nil {
		return rydes.Customer{}, err
	}
	if p.APIKeyHash == "" {
		return rydes.Customer{}, rydes.FieldErrorf("api_key", "is required")
	}
	if p.Now.IsZero() {
		return rydes.Customer{}, errors.New("create customer: Now is required")
	}
	var out rydes.Customer
	err := s.write(ctx, "create customer", func(tx *txn) error {
		var err error
		out, err = scanCustomer(tx.QueryRowContext(ctx, `
			INSERT INTO customers (id, name, api_key_hash, created_at) VALUES (?, ?, ?, ?)
			RETURNING `+customerColumns,
			c.ID, c.Name, p.APIKeyHash, micros(utc(p.Now))))
		switch {
		case isPrimaryKeyViolation(err):
			return rydes.Errorf(rydes.ECONFLICT, "customer %s already exists", c.ID)
		case isUniqueViolation(err):
			return rydes.Errorf(rydes.ECONFLICT, "the API key of customer %s is already another customer's", c.ID)
		}
		return err
	})
	if err != nil {
		return rydes.Customer{}, err
	}
	return out, nil
}

// ListCustomers returns the customers ordered by id.
func (s *Store) ListCustomers(ctx context.Context) ([]rydes.Customer, error) {
	out := []rydes.Customer{}
	err := s.read(ctx, "list customers", func(tx *txn) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+customerColumns+` FROM customers ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			c, err := scanCustomer(rows)
			if err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteCustomer removes a customer and with it its key; its RFQs stay.
// ENOTFOUND if there is none.
func (s *Store) DeleteCustomer(ctx context.Context, id string) error {
	return s.write(ctx, "delete customer", func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM customers WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return customerNotFound(id)
		}
		return nil
	})
}

// SetCustomerKey replaces a customer's API key hash; the old key stops
// working. ENOTFOUND if there is no such customer; EINVALID for an empty
// hash; ECONFLICT if another customer has the same hash.
func (s *Store) SetCustomerKey(ctx context.Context, id, apiKeyHash string) error {
	if apiKeyHash == "" {
		return rydes.FieldErrorf("api_key", "is required")
	}
	return s.write(ctx, "set customer key", func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE customers SET api_key_hash = ? WHERE id = ?`, apiKeyHash, id)
		if isUniqueViolation(err) {
			return rydes.Errorf(rydes.ECONFLICT, "the API key of customer %s is already another customer's", truncate(id, maxRejectionID))
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return customerNotFound(id)
		}
		return nil
	})
}

// CustomerByAPIKeyHash returns the customer whose API key hashes to hash,
// looked up through the unique index on the hashes. ENOTFOUND if none does.
func (s *Store) CustomerByAPIKeyHash(ctx context.Context, hash string) (rydes.Customer, error) {
	if hash == "" {
		return rydes.Customer{}, rydes.Errorf(rydes.ENOTFOUND, "no customer has that API key")
	}
	var out rydes.Customer
	err := s.read(ctx, "customer by API key hash", func(tx *txn) error {
		var err error
		out, err = scanCustomer(tx.QueryRowContext(ctx, sqlSelectCustomerByAPIKeyHash, hash))
		if errors.Is(err, sql.ErrNoRows) {
			return rydes.Errorf(rydes.ENOTFOUND, "no customer has that API key")
		}
		return err
	})
	if err != nil {
		return rydes.Customer{}, err
	}
	return out, nil
}

// scanCustomer reads the customerColumns of a customer.
func scanCustomer(sc scanner) (rydes.Customer, error) {
	var (
		c       rydes.Customer
		created int64
	)
	if err := sc.Scan(&c.ID, &c.Name, &created); err != nil {
		return rydes.Customer{}, err
	}
	c.CreatedAt = fromMicros(created)
	return c, nil
}

// customerNotFound is the error for a customer that does not exist.
func customerNotFound(id string) error {
	return rydes.Errorf(rydes.ENOTFOUND, "customer %s not found", truncate(id, maxRejectionID))
}
