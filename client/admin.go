package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/wildrydes/rydes"
)

// The methods in this file are rydes's admin API: they manage providers and
// dead letters, and need a Client made WithAPIKey(adminKey). Without the
// admin key the server answers them with a *Problem of status 401.

// CreateProviderRequest is the body of POST /v1/providers: a partner to
// register. ID and Kind are required; the zero value of any other field
// leaves it out, and the server applies its default (the name defaults to
// the id, the status to active, the filter to every request).
type CreateProviderRequest struct {
	// ID names the provider: 1 to 64 letters, digits, '_' or '-'.
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// Kind is rydes.ProviderKindNATS or rydes.ProviderKindWebhook.
	Kind rydes.ProviderKind `json:"kind"`
	// WebhookURL is where rydes POSTs requests; webhook providers only.
	WebhookURL string `json:"webhook_url,omitempty"`
	// Filter says which requests the provider is asked for.
	Filter rydes.Filter `json:"filter,omitzero"`
	// Status is rydes.ProviderPaused to register the provider without
	// asking it for anything yet; "" or rydes.ProviderActive asks it now.
	Status rydes.ProviderStatus `json:"status,omitempty"`
}

// UpdateProviderRequest is the body of PATCH /v1/providers/{id}: the fields
// to change. A nil field stays as it is; a non-nil Filter replaces the whole
// filter (&rydes.Filter{} makes the provider match every request).
type UpdateProviderRequest struct {
	Name *string `json:"name,omitempty"`
	// Status pauses (rydes.ProviderPaused) or resumes (rydes.ProviderActive)
	// the provider.
	Status     *rydes.ProviderStatus `json:"status,omitempty"`
	WebhookURL *string               `json:"webhook_url,omitempty"`
	Filter     *rydes.Filter         `json:"filter,omitempty"`
}

// providerWithCredentials is the answer to creating a provider or rotating
// its credentials.
type providerWithCredentials struct {
	Provider    rydes.Provider            `json:"provider"`
	Credentials rydes.ProviderCredentials `json:"credentials"`
}

// CreateProvider registers a provider and returns it with its credentials.
// The credentials are shown only now: rydes keeps hashes of the API key and
// the NATS password, and never returns the webhook secret again.
// RotateProvider replaces lost ones.
func (c *Client) CreateProvider(ctx context.Context, req CreateProviderRequest) (rydes.Provider, rydes.ProviderCredentials, error) {
	var out providerWithCredentials
	if err := c.do(ctx, http.MethodPost, "/v1/providers", req, &out); err != nil {
		return rydes.Provider{}, rydes.ProviderCredentials{}, err
	}
	return out.Provider, out.Credentials, nil
}

// ListProviders returns every registered provider, ordered by id.
func (c *Client) ListProviders(ctx context.Context) ([]rydes.Provider, error) {
	var out struct {
		Providers []rydes.Provider `json:"providers"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/providers", nil, &out); err != nil {
		return nil, err
	}
	return out.Providers, nil
}

// GetProvider returns the provider with the given id.
func (c *Client) GetProvider(ctx context.Context, id string) (rydes.Provider, error) {
	var p rydes.Provider
	path, err := providerPath(id, "")
	if err != nil {
		return p, err
	}
	err = c.do(ctx, http.MethodGet, path, nil, &p)
	return p, err
}

// UpdateProvider changes the fields of the provider id that req sets and
// returns the provider as it is now. Pausing a provider stops asking it for
// new requests; it may still answer those it was asked.
func (c *Client) UpdateProvider(ctx context.Context, id string, req UpdateProviderRequest) (rydes.Provider, error) {
	var p rydes.Provider
	path, err := providerPath(id, "")
	if err != nil {
		return p, err
	}
	err = c.do(ctx, http.MethodPatch, path, req, &p)
	return p, err
}

// DeleteProvider removes the provider id: it is withdrawn from the open
// requests it was asked in, and its credentials stop working.
func (c *Client) DeleteProvider(ctx context.Context, id string) error {
	path, err := providerPath(id, "")
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, path, nil, nil)
}

// RotateProvider replaces the credentials of the provider id and returns the
// provider with the new ones, shown only now. The old ones stop working at
// once.
func (c *Client) RotateProvider(ctx context.Context, id string) (rydes.Provider, rydes.ProviderCredentials, error) {
	path, err := providerPath(id, "/rotate")
	if err != nil {
		return rydes.Provider{}, rydes.ProviderCredentials{}, err
	}
	var out providerWithCredentials
	if err := c.do(ctx, http.MethodPost, path, nil, &out); err != nil {
		return rydes.Provider{}, rydes.ProviderCredentials{}, err
	}
	return out.Provider, out.Credentials, nil
}

// ProviderStats returns how the provider id has been doing: its answers, its
// response times and the state of its queue.
func (c *Client) ProviderStats(ctx context.Context, id string) (rydes.ProviderStats, error) {
	var st rydes.ProviderStats
	path, err := providerPath(id, "/stats")
	if err != nil {
		return st, err
	}
	err = c.do(ctx, http.MethodGet, path, nil, &st)
	return st, err
}

// providerPath returns the path of the provider with the given id followed
// by suffix, refusing ids that are not provider ids before they reach a URL.
func providerPath(id, suffix string) (string, error) {
	if err := rydes.ValidateProviderID(id); err != nil {
		if len(id) > 64 {
			id = id[:64] + "…"
		}
		return "", fmt.Errorf("rydes client: invalid provider id %q: must be 1 to %d letters, digits, '_' or '-'", id, rydes.MaxProviderIDLen)
	}
	return "/v1/providers/" + url.PathEscape(id) + suffix, nil
}

// DeadLetterQuery selects dead letters for ListDeadLetters. The zero value
// asks for the newest ones of every provider.
type DeadLetterQuery struct {
	// Provider keeps the dead letters of this provider only; "" keeps all.
	Provider string
	// Before keeps the dead letters with a lower id, that is older ones: the
	// NextBefore of the page before; 0 starts at the newest.
	Before int64
	// Limit is the most dead letters returned; 0 asks for the server's
	// default.
	Limit int
}

// DeadLetterPage is one page of dead letters, newest first.
type DeadLetterPage struct {
	DeadLetters []rydes.DeadLetter `json:"dead_letters"`
	// NextBefore is the DeadLetterQuery.Before that reads the next, older
	// page; 0 when there is none.
	NextBefore int64 `json:"next_before,omitzero"`
}

// ListDeadLetters returns one page of the deliveries to webhook providers
// that exhausted their retries, newest first.
func (c *Client) ListDeadLetters(ctx context.Context, q DeadLetterQuery) (DeadLetterPage, error) {
	v := url.Values{}
	if q.Provider != "" {
		v.Set("provider", q.Provider)
	}
	if q.Before != 0 {
		v.Set("before", strconv.FormatInt(q.Before, 10))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	path := "/v1/dead-letters"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var page DeadLetterPage
	err := c.do(ctx, http.MethodGet, path, nil, &page)
	return page, err
}

// ReplayDeadLetter puts the request of the dead letter id back on its
// provider's queue for another round of delivery, and returns the dead
// letter with its ReplayedAt set. The server refuses (409) when the request
// is no longer open, and answers 410 when the provider is gone.
func (c *Client) ReplayDeadLetter(ctx context.Context, id int64) (rydes.DeadLetter, error) {
	var dl rydes.DeadLetter
	if id <= 0 {
		return dl, fmt.Errorf("rydes client: invalid dead letter id %d: must be positive", id)
	}
	err := c.do(ctx, http.MethodPost, "/v1/dead-letters/"+strconv.FormatInt(id, 10)+"/replay", nil, &dl)
	return dl, err
}

// AuditQuery selects audit entries for Audit. The zero value asks for the
// newest entries of every action.
type AuditQuery struct {
	// Action keeps the entries of this action only; "" keeps all.
	Action rydes.AuditAction
	// Before keeps the entries with a lower id, that is older ones: the
	// NextBefore of the page before; 0 starts at the newest.
	Before int64
	// Limit is the most entries returned; 0 asks for the server's default.
	Limit int
}

// AuditPage is one page of the audit log, newest first.
type AuditPage struct {
	Entries []rydes.AuditEntry `json:"entries"`
	// NextBefore is the AuditQuery.Before that reads the next, older page;
	// 0 when there is none.
	NextBefore int64 `json:"next_before,omitzero"`
}

// Audit returns one page of the audit log of administrative changes,
// newest first.
func (c *Client) Audit(ctx context.Context, q AuditQuery) (AuditPage, error) {
	v := url.Values{}
	if q.Action != "" {
		v.Set("action", string(q.Action))
	}
	if q.Before != 0 {
		v.Set("before", strconv.FormatInt(q.Before, 10))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	path := "/v1/audit"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var page AuditPage
	err := c.do(ctx, http.MethodGet, path, nil, &page)
	return page, err
}
