package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/store"
)

// maxPausedReason bounds the reason kept for a provider rydes paused itself;
// longer ones are cut.
const maxPausedReason = rydes.MaxReasonLen

// providerColumns are the columns scanProvider reads.
const providerColumns = `id, name, kind, status, webhook_url, filter, paused_reason, created_at, updated_at`

// UpsertProvider creates the provider or updates its name, kind and status,
// and returns it as stored. It keeps what it does not set: the routing
// filter, the credentials, and the webhook URL unless the provider stops
// being a webhook provider. A provider made active has no paused reason. It
// fails with EINVALID for a malformed id or an unknown kind or status.
func (s *Store) UpsertProvider(ctx context.Context, p store.UpsertProviderParams) (rydes.Provider, error) {
	if err := rydes.ValidateProviderID(p.ID); err != nil {
		return rydes.Provider{}, err
	}
	switch p.Kind {
	case rydes.ProviderKindSimulated, rydes.ProviderKindNATS, rydes.ProviderKindWebhook:
	default:
		return rydes.Provider{}, rydes.FieldErrorf("kind", "must be %q, %q or %q", rydes.ProviderKindSimulated, rydes.ProviderKindNATS, rydes.ProviderKindWebhook)
	}
	if err := validateProviderStatus(p.Status); err != nil {
		return rydes.Provider{}, err
	}
	if len(p.Name) > rydes.MaxTextLen {
		return rydes.Provider{}, rydes.FieldErrorf("name", "must be at most %d bytes", rydes.MaxTextLen)
	}
	if p.Now.IsZero() {
		return rydes.Provider{}, errors.New("upsert provider: Now is required")
	}
	now := micros(utc(p.Now))
	var out rydes.Provider
	err := s.write(ctx, "upsert provider", func(tx *txn) error {
		row := tx.QueryRowContext(ctx, `
			INSERT INTO providers (id, name, kind, status, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET
				name = excluded.name, kind = excluded.kind, status = excluded.status,
				webhook_url = CASE WHEN excluded.kind = 'webhook' THEN providers.webhook_url END,
				paused_reason = CASE WHEN excluded.status = 'paused' THEN providers.paused_reason END,
				updated_at = excluded.updated_at
			RETURNING `+providerColumns,
			p.ID, p.Name, p.Kind, p.Status, now, now)
		var err error
		out, err = scanProvider(row)
		return err
	})
	if err != nil {
		return rydes.Provider{}, err
	}
	return out, nil
}

// ListProviders returns the providers ordered by id, only those of p.Status
// and p.Kind if they are set.
//
// The lists it read are kept with the providers table's version they are
// of (migration 006: triggers raise it at every change): while the version
// is the same, a list costs the read of one row and a copy.
func (s *Store) ListProviders(ctx context.Context, p store.ListProvidersParams) ([]rydes.Provider, error) {
	// The version alone, usually enough: one statement, no transaction.
	var version string
	if err := s.readRow(ctx, sqlSelectSetting, providersVersionSetting).Scan(&version); err != nil {
		return nil, fmt.Errorf("list providers: providers version: %w", err)
	}
	if out, cached := s.providers.get(p, version); cached {
		return out, nil
	}
	out := []rydes.Provider{}
	var cached bool
	err := s.read(ctx, "list providers", func(tx *txn) error {
		if err := tx.QueryRowContext(ctx, sqlSelectSetting, providersVersionSetting).Scan(&version); err != nil {
			return fmt.Errorf("providers version: %w", err)
		}
		if out, cached = s.providers.get(p, version); cached {
			return nil
		}
		out = []rydes.Provider{}
		var (
			where []string
			args  []any
		)
		if p.Status != "" {
			where, args = append(where, "status = ?"), append(args, p.Status)
		}
		if p.Kind != "" {
			where, args = append(where, "kind = ?"), append(args, p.Kind)
		}
		q := `SELECT ` + providerColumns + ` FROM providers`
		if len(where) > 0 {
			q += ` WHERE ` + strings.Join(where, " AND ")
		}
		rows, err := tx.QueryContext(ctx, q+` ORDER BY id`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			pr, err := scanProvider(rows)
			if err != nil {
				return err
			}
			out = append(out, pr)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	if !cached {
		s.providers.put(p, version, out)
	}
	return out, nil
}

// providersVersionSetting is the settings row that holds the providers
// table's version (migration 006).
const providersVersionSetting = "providers.version"

// providerLists are the provider lists ListProviders read, by parameters,
// each with the providers table's version it is of.
type providerLists struct {
	mu    sync.Mutex
	lists map[store.ListProvidersParams]versionedProviders
}

type versionedProviders struct {
	version   string
	providers []rydes.Provider
}

// get returns a copy of the list for p if it is of version.
func (l *providerLists) get(p store.ListProvidersParams, version string) ([]rydes.Provider, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.lists[p]
	if !ok || v.version != version {
		return nil, false
	}
	return cloneProviders(v.providers), true
}

// put keeps a copy of the list for p, of version.
func (l *providerLists) put(p store.ListProvidersParams, version string, providers []rydes.Provider) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lists == nil {
		l.lists = map[store.ListProvidersParams]versionedProviders{}
	}
	l.lists[p] = versionedProviders{version: version, providers: cloneProviders(providers)}
}

// cloneProviders returns a copy of ps that shares nothing with it.
func cloneProviders(ps []rydes.Provider) []rydes.Provider {
	out := make([]rydes.Provider, len(ps))
	for i, p := range ps {
		out[i] = p
		out[i].Filter = p.Filter.Clone()
	}
	return out
}

// CreateProvider registers a new provider with its secrets and returns it as
// stored, created and updated at p.Now. It fails with EINVALID if the
// provider does not pass rydes.Provider.Validate or has a paused reason
// without being paused, and with ECONFLICT if a provider with that id exists
// or another provider has the same API key hash. The id of a deleted
// provider may be used again.
func (s *Store) CreateProvider(ctx context.Context, p store.CreateProviderParams) (rydes.Provider, error) {
	pr := p.Provider
	if err := pr.Validate(); err != nil {
		return rydes.Provider{}, err
	}
	if pr.PausedReason != "" && pr.Status != rydes.ProviderPaused {
		return rydes.Provider{}, rydes.FieldErrorf("paused_reason", "only a paused provider has one")
	}
	if p.Now.IsZero() {
		return rydes.Provider{}, errors.New("create provider: Now is required")
	}
	filter, err := encodeFilter(pr.Filter)
	if err != nil {
		return rydes.Provider{}, fmt.Errorf("create provider: %w", err)
	}
	now := micros(utc(p.Now))
	var secretsAt any
	if p.Secrets != (store.ProviderSecrets{}) {
		secretsAt = now
	}
	var out rydes.Provider
	err = s.write(ctx, "create provider", func(tx *txn) error {
		row := tx.QueryRowContext(ctx, `
			INSERT INTO providers (id, name, kind, status, webhook_url, filter, paused_reason,
				api_key_hash, nats_password_hash, webhook_secret, secrets_changed_at, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			RETURNING `+providerColumns,
			pr.ID, pr.Name, pr.Kind, pr.Status, nullString(pr.WebhookURL), filter,
			nullString(truncate(pr.PausedReason, maxPausedReason)),
			nullString(p.Secrets.APIKeyHash), nullString(p.Secrets.NATSPasswordHash), nullString(p.Secrets.WebhookSecret),
			secretsAt, now, now)
		var err error
		out, err = scanProvider(row)
		switch {
		case isPrimaryKeyViolation(err):
			return rydes.Errorf(rydes.ECONFLICT, "provider %s already exists", pr.ID)
		case isUniqueViolation(err):
			return rydes.Errorf(rydes.ECONFLICT, "the API key of provider %s is already another provider's", pr.ID)
		}
		return err
	})
	if err != nil {
		return rydes.Provider{}, err
	}
	return out, nil
}

// GetProvider returns one provider. ENOTFOUND if there is none.
func (s *Store) GetProvider(ctx context.Context, id string) (rydes.Provider, error) {
	var out rydes.Provider
	err := s.read(ctx, "get provider", func(tx *txn) error {
		var err error
		out, err = loadProvider(ctx, tx, id)
		return err
	})
	if err != nil {
		return rydes.Provider{}, err
	}
	return out, nil
}

// loadProvider reads the provider id. ENOTFOUND if there is none.
func loadProvider(ctx context.Context, tx *txn, id string) (rydes.Provider, error) {
	p, err := scanProvider(tx.QueryRowContext(ctx, `SELECT `+providerColumns+` FROM providers WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return rydes.Provider{}, providerNotFound(id)
	}
	return p, err
}

// UpdateProvider changes the fields of p that are set, and the update time
// if any is, and returns the provider as stored. A provider made active
// loses its paused reason. It fails with ENOTFOUND if there is no such
// provider, and with EINVALID for a blank or oversized name, an unknown
// status, a paused reason for a provider that ends up active, an invalid
// filter, a webhook URL on a provider that is not a webhook provider, or an
// invalid or empty one on a webhook provider. A paused reason longer than
// rydes.MaxReasonLen is cut.
func (s *Store) UpdateProvider(ctx context.Context, p store.UpdateProviderParams) (rydes.Provider, error) {
	if p.Name != nil {
		if err := validateProviderName(*p.Name); err != nil {
			return rydes.Provider{}, err
		}
	}
	if p.Status != nil {
		if err := validateProviderStatus(*p.Status); err != nil {
			return rydes.Provider{}, err
		}
	}
	if p.Filter != nil {
		if err := p.Filter.Validate(); err != nil {
			return rydes.Provider{}, err
		}
	}
	if p.Now.IsZero() {
		return rydes.Provider{}, errors.New("update provider: Now is required")
	}
	var out rydes.Provider
	err := s.write(ctx, "update provider", func(tx *txn) error {
		cur, err := loadProvider(ctx, tx, p.ID)
		if err != nil {
			return err
		}
		if p.Name == nil && p.Status == nil && p.PausedReason == nil && p.WebhookURL == nil && p.Filter == nil {
			out = cur
			return nil
		}
		next := cur
		if p.Name != nil {
			next.Name = *p.Name
		}
		if p.Status != nil {
			next.Status = *p.Status
		}
		if p.PausedReason != nil {
			next.PausedReason = truncate(*p.PausedReason, maxPausedReason)
		}
		if next.Status == rydes.ProviderActive {
			if p.PausedReason != nil && *p.PausedReason != "" {
				return rydes.FieldErrorf("paused_reason", "only a paused provider has one")
			}
			next.PausedReason = ""
		}
		if p.WebhookURL != nil {
			next.WebhookURL = *p.WebhookURL
			if next.Kind == rydes.ProviderKindWebhook {
				if err := rydes.ValidateWebhookURL(next.WebhookURL); err != nil {
					return err
				}
			} else if next.WebhookURL != "" {
				return rydes.FieldErrorf("webhook_url", "is only for webhook providers")
			}
		}
		if p.Filter != nil {
			next.Filter = *p.Filter
		}
		filter, err := encodeFilter(next.Filter)
		if err != nil {
			return err
		}
		out, err = scanProvider(tx.QueryRowContext(ctx, `
			UPDATE providers SET name = ?, status = ?, webhook_url = ?, filter = ?, paused_reason = ?, updated_at = ?
			WHERE id = ?
			RETURNING `+providerColumns,
			next.Name, next.Status, nullString(next.WebhookURL), filter, nullString(next.PausedReason),
			micros(utc(p.Now)), p.ID))
		return err
	})
	if err != nil {
		return rydes.Provider{}, err
	}
	return out, nil
}

// ProviderSecrets returns a provider's stored secrets, "" for those it has
// none of. ENOTFOUND if there is no such provider.
func (s *Store) ProviderSecrets(ctx context.Context, id string) (store.ProviderSecrets, error) {
	var out store.ProviderSecrets
	err := s.read(ctx, "provider secrets", func(tx *txn) error {
		var apiKey, natsPassword, webhook sql.NullString
		err := tx.QueryRowContext(ctx, `
			SELECT api_key_hash, nats_password_hash, webhook_secret FROM providers WHERE id = ?`, id).
			Scan(&apiKey, &natsPassword, &webhook)
		if errors.Is(err, sql.ErrNoRows) {
			return providerNotFound(id)
		}
		out = store.ProviderSecrets{APIKeyHash: apiKey.String, NATSPasswordHash: natsPassword.String, WebhookSecret: webhook.String}
		return err
	})
	if err != nil {
		return store.ProviderSecrets{}, err
	}
	return out, nil
}

// SetProviderSecrets replaces the secrets of p.Secrets that are set
// (non-empty) and keeps the others. ENOTFOUND if there is no such provider;
// ECONFLICT if another provider has the same API key hash.
func (s *Store) SetProviderSecrets(ctx context.Context, p store.SetProviderSecretsParams) error {
	if p.Now.IsZero() {
		return errors.New("set provider secrets: Now is required")
	}
	sec := p.Secrets
	return s.write(ctx, "set provider secrets", func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `
			UPDATE providers SET
				api_key_hash = COALESCE(?, api_key_hash),
				nats_password_hash = COALESCE(?, nats_password_hash),
				webhook_secret = COALESCE(?, webhook_secret),
				secrets_changed_at = ?
			WHERE id = ?`,
			nullString(sec.APIKeyHash), nullString(sec.NATSPasswordHash), nullString(sec.WebhookSecret),
			micros(utc(p.Now)), p.ID)
		if isUniqueViolation(err) {
			return rydes.Errorf(rydes.ECONFLICT, "the API key of provider %s is already another provider's", p.ID)
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return providerNotFound(p.ID)
		}
		return nil
	})
}

// ProviderByAPIKeyHash returns the provider whose API key hashes to hash,
// looked up through the unique index on the hashes. ENOTFOUND if none does.
func (s *Store) ProviderByAPIKeyHash(ctx context.Context, hash string) (rydes.Provider, error) {
	if hash == "" {
		return rydes.Provider{}, rydes.Errorf(rydes.ENOTFOUND, "no provider has that API key")
	}
	var out rydes.Provider
	err := s.read(ctx, "provider by API key hash", func(tx *txn) error {
		var err error
		out, err = scanProvider(tx.QueryRowContext(ctx, sqlSelectProviderByAPIKeyHash, hash))
		if errors.Is(err, sql.ErrNoRows) {
			return rydes.Errorf(rydes.ENOTFOUND, "no provider has that API key")
		}
		return err
	})
	if err != nil {
		return rydes.Provider{}, err
	}
	return out, nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanProvider reads the providerColumns of a provider.
func scanProvider(sc scanner) (rydes.Provider, error) {
	var (
		p                          rydes.Provider
		webhookURL, filter, reason sql.NullString
		created, updated           int64
	)
	if err := sc.Scan(&p.ID, &p.Name, &p.Kind, &p.Status, &webhookURL, &filter, &reason, &created, &updated); err != nil {
		return rydes.Provider{}, err
	}
	p.WebhookURL, p.PausedReason = webhookURL.String, reason.String
	p.CreatedAt, p.UpdatedAt = fromMicros(created), fromMicros(updated)
	if filter.Valid {
		if err := json.Unmarshal([]byte(filter.String), &p.Filter); err != nil {
			return rydes.Provider{}, fmt.Errorf("provider %s: filter: %w", p.ID, err)
		}
	}
	return p, nil
}

// encodeFilter returns f as the database keeps it: a JSON object, or NULL
// for the zero filter.
func encodeFilter(f rydes.Filter) (any, error) {
	if f.IsZero() {
		return nil, nil
	}
	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode filter: %w", err)
	}
	return string(b), nil
}

// validateProviderName checks a provider's name as rydes.Provider.Validate
// does.
func validateProviderName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return rydes.FieldErrorf("name", "is required and must not be blank")
	case len(name) > rydes.MaxProviderNameLen:
		return rydes.FieldErrorf("name", "must be at most %d bytes", rydes.MaxProviderNameLen)
	case !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0:
		return rydes.FieldErrorf("name", "must be valid text without control characters")
	}
	return nil
}

func validateProviderStatus(st rydes.ProviderStatus) error {
	if st != rydes.ProviderActive && st != rydes.ProviderPaused {
		return rydes.FieldErrorf("status", "must be %q or %q", rydes.ProviderActive, rydes.ProviderPaused)
	}
	return nil
}

// providerNotFound is the error for a provider that does not exist.
func providerNotFound(id string) error {
	return rydes.Errorf(rydes.ENOTFOUND, "provider %s not found", truncate(id, maxRejectionID))
}
