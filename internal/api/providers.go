package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/registry"
)

// createProviderBody is the body of POST /v1/providers. Optional fields are
// pointers, or raw for the filter, so that an explicit value can be told
// from an absent one.
type createProviderBody struct {
	ID         string          `json:"id"`
	Name       *string         `json:"name"`
	Kind       string          `json:"kind"`
	WebhookURL *string         `json:"webhook_url"`
	Filter     json.RawMessage `json:"filter"`
	Status     *string         `json:"status"`
}

// params checks the body at the edge, with the domain's rules, and returns
// the provider it asks for.
func (b createProviderBody) params() (registry.CreateParams, error) {
	p := rydes.Provider{ID: b.ID, Name: b.ID, Kind: rydes.ProviderKind(b.Kind), Status: rydes.ProviderActive}
	if err := rydes.ValidateProviderID(b.ID); err != nil {
		return registry.CreateParams{}, rydes.FieldErrorf("id", "%s", rydes.ErrorMessageOf(err))
	}
	if b.Name != nil {
		p.Name = *b.Name
	}
	if p.Kind != rydes.ProviderKindNATS && p.Kind != rydes.ProviderKindWebhook {
		return registry.CreateParams{}, rydes.FieldErrorf("kind", "must be %q or %q", rydes.ProviderKindNATS, rydes.ProviderKindWebhook)
	}
	if b.WebhookURL != nil {
		p.WebhookURL = *b.WebhookURL
	}
	if b.Status != nil {
		p.Status = rydes.ProviderStatus(*b.Status)
	}
	if len(b.Filter) > 0 && !isNull(b.Filter) {
		if err := unmarshalObject("filter", b.Filter, &p.Filter); err != nil {
			return registry.CreateParams{}, err
		}
	}
	if err := p.Validate(); err != nil {
		return registry.CreateParams{}, err
	}
	return registry.CreateParams{ID: p.ID, Name: p.Name, Kind: p.Kind, WebhookURL: p.WebhookURL, Filter: p.Filter, Status: p.Status}, nil
}

// updateProviderBody is the body of PATCH /v1/providers/{id}: the fields to
// change. A filter replaces the whole filter; {} accepts every request.
type updateProviderBody struct {
	Name       *string         `json:"name"`
	Status     *string         `json:"status"`
	WebhookURL *string         `json:"webhook_url"`
	Filter     json.RawMessage `json:"filter"`
}

// params checks the body at the edge and returns the change it asks for.
// Whether the change suits the provider (a webhook URL for a NATS
// provider, say) is the registry's to check.
func (b updateProviderBody) params(id string, raw []byte) (registry.UpdateParams, error) {
	// null could mean "clear" or "leave as is"; neither is guessed.
	if nulls := nullMembers(raw); len(nulls) > 0 {
		return registry.UpdateParams{}, rydes.FieldErrorf(nulls[0], "must not be null; leave it out to keep it")
	}
	p := registry.UpdateParams{ID: id, Name: b.Name, WebhookURL: b.WebhookURL}
	if b.Name == nil && b.Status == nil && b.WebhookURL == nil && b.Filter == nil {
		return registry.UpdateParams{}, rydes.Errorf(rydes.EINVALID, "the body must name at least one of name, status, webhook_url and filter")
	}
	if b.Name != nil {
		// The domain's rules for names, on a provider that is otherwise valid.
		probe := rydes.Provider{ID: id, Name: *b.Name, Kind: rydes.ProviderKindNATS, Status: rydes.ProviderActive}
		if err := probe.Validate(); err != nil {
			return registry.UpdateParams{}, err
		}
	}
	if b.Status != nil {
		s := rydes.ProviderStatus(*b.Status)
		if s != rydes.ProviderActive && s != rydes.ProviderPaused {
			return registry.UpdateParams{}, rydes.FieldErrorf("status", "must be %q or %q", rydes.ProviderActive, rydes.ProviderPaused)
		}
		p.Status = &s
	}
	if b.WebhookURL != nil {
		if err := rydes.ValidateWebhookURL(*b.WebhookURL); err != nil {
			return registry.UpdateParams{}, err
		}
	}
	if b.Filter != nil {
		var f rydes.Filter
		if err := unmarshalObject("filter", b.Filter, &f); err != nil {
			return registry.UpdateParams{}, err
		}
		if err := f.Validate(); err != nil {
			return registry.UpdateParams{}, err
		}
		p.Filter = &f
	}
	return p, nil
}

// providerCredentials is a provider with its credentials, which the API
// shows only when they are made: on create and on rotate.
type providerCredentials struct {
	Provider    rydes.Provider            `json:"provider"`
	Credentials rydes.ProviderCredentials `json:"credentials"`
}

// providerList is the body of GET /v1/providers.
type providerList struct {
	Providers []rydes.Provider `json:"providers"`
}

// handleCreateProvider serves POST /v1/providers: 201 with the provider,
// its credentials and its Location; 409 if the id is taken. A webhook_url
// must pass check, if not nil.
func handleCreateProvider(logger *slog.Logger, providers ProviderRegistry, maxBody int64, check func(context.Context, string) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body createProviderBody
		if err := decodeJSON(w, r, maxBody, &body); err != nil {
			writeError(w, r, logger, err)
			return
		}
		params, err := body.params()
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		if params.WebhookURL != "" {
			if err := checkURL(r.Context(), check, "webhook_url", params.WebhookURL); err != nil {
				writeError(w, r, logger, err)
				return
			}
		}
		p, creds, err := providers.Create(r.Context(), params)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("create provider %s: %w", params.ID, err))
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Location", "/v1/providers/"+p.ID)
		writeJSON(w, r, logger, http.StatusCreated, providerCredentials{Provider: p, Credentials: creds})
	})
}

// handleListProviders serves GET /v1/providers: every provider, by id.
func handleListProviders(logger *slog.Logger, providers ProviderRegistry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ps, err := providers.List(r.Context())
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("list providers: %w", err))
			return
		}
		if ps == nil {
			ps = []rydes.Provider{}
		}
		writeJSON(w, r, logger, http.StatusOK, providerList{Providers: ps})
	})
}

// handleGetProvider serves GET /v1/providers/{id}.
func handleGetProvider(logger *slog.Logger, providers ProviderRegistry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathProviderID(r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		p, err := providers.Get(r.Context(), id)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("get provider %s: %w", id, err))
			return
		}
		writeJSON(w, r, logger, http.StatusOK, p)
	})
}

// handleUpdateProvider serves PATCH /v1/providers/{id}: 200 with the
// provider as changed. Pausing and resuming are changes of status. A new
// webhook_url must pass check, if not nil.
func handleUpdateProvider(logger *slog.Logger, providers ProviderRegistry, maxBody int64, check func(context.Context, string) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathProviderID(r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		raw, err := readJSON(w, r, maxBody)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		var body updateProviderBody
		if err := unmarshalStrict(raw, &body); err != nil {
			writeError(w, r, logger, err)
			return
		}
		params, err := body.params(id, raw)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		if params.WebhookURL != nil {
			if err := checkURL(r.Context(), check, "webhook_url", *params.WebhookURL); err != nil {
				writeError(w, r, logger, err)
				return
			}
		}
		p, err := providers.Update(r.Context(), params)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("update provider %s: %w", id, err))
			return
		}
		writeJSON(w, r, logger, http.StatusOK, p)
	})
}

// handleDeleteProvider serves DELETE /v1/providers/{id}: 204. The provider
// is withdrawn from the open RFQs it was asked in.
func handleDeleteProvider(logger *slog.Logger, providers ProviderRegistry) http.Handler {
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
		if err := providers.Delete(r.Context(), id); err != nil {
			writeError(w, r, logger, fmt.Errorf("delete provider %s: %w", id, err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// handleRotateProvider serves POST /v1/providers/{id}/rotate: 200 with the
// provider and its new credentials; the old ones stop working.
func handleRotateProvider(logger *slog.Logger, providers ProviderRegistry) http.Handler {
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
		// Read first, so that an unknown provider is refused before
		// anything changes, and the answer names the provider even if the
		// read after the rotation fails: the new credentials must not be
		// lost to a failed read.
		before, err := providers.Get(r.Context(), id)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("get provider %s: %w", id, err))
			return
		}
		creds, err := providers.Rotate(r.Context(), id)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("rotate provider %s: %w", id, err))
			return
		}
		p, err := providers.Get(r.Context(), id)
		if err != nil {
			logger.WarnContext(r.Context(), "read provider after rotating its credentials; answering with the one read before",
				"provider", id, "err", err)
			p = before
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, r, logger, http.StatusOK, providerCredentials{Provider: p, Credentials: creds})
	})
}

// handleProviderStats serves GET /v1/providers/{id}/stats.
func handleProviderStats(logger *slog.Logger, providers ProviderRegistry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathProviderID(r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		st, err := providers.Stats(r.Context(), id)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("stats of provider %s: %w", id, err))
			return
		}
		writeJSON(w, r, logger, http.StatusOK, st)
	})
}
