package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/auth"
	"github.com/wildrydes/rydes/internal/store"
)

// AuditLog keeps the audit log of administrative changes; the store
// implements it.
type AuditLog interface {
	// AddAudit appends an entry and returns it with its id.
	AddAudit(ctx context.Context, e rydes.AuditEntry) (rydes.AuditEntry, error)
	// ListAudit returns entries, newest first.
	ListAudit(ctx context.Context, p store.ListAuditParams) ([]rydes.AuditEntry, error)
}

// Audit log page sizes.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 500
)

// AdminActor returns the actor recorded for a request made with the admin
// key key: "admin:" and the first 12 hex digits of the key's SHA-256 hash,
// which tell keys apart without revealing them.
func AdminActor(key string) string { return "admin:" + auth.Hash(key)[:12] }

// auditSpec says how a state-changing admin route is recorded.
type auditSpec struct {
	action rydes.AuditAction
	// bodyTarget takes the target from the request body's "id" (a create);
	// otherwise it is the path's {id}.
	bodyTarget bool
	// requestFields are the request body's members copied into Details,
	// those that are given; none of them is secret. webhook_url loses its
	// credentials (see redactURL).
	requestFields []string
	// responseFields are the response body's members copied into Details.
	responseFields []string
}

// auditSpecs are the admin routes that change state, by route pattern.
// Every other admin route only reads and is not recorded.
var auditSpecs = map[string]auditSpec{
	"POST /v1/providers":                {action: rydes.AuditProviderCreate, bodyTarget: true, requestFields: []string{"name", "kind", "status", "webhook_url", "filter"}},
	"PATCH /v1/providers/{id}":          {action: rydes.AuditProviderUpdate, requestFields: []string{"name", "status", "webhook_url", "filter"}},
	"DELETE /v1/providers/{id}":         {action: rydes.AuditProviderDelete},
	"POST /v1/providers/{id}/rotate":    {action: rydes.AuditProviderRotate},
	"POST /v1/customers":                {action: rydes.AuditCustomerCreate, bodyTarget: true, requestFields: []string{"name"}},
	"DELETE /v1/customers/{id}":         {action: rydes.AuditCustomerDelete},
	"POST /v1/customers/{id}/rotate":    {action: rydes.AuditCustomerRotate},
	"POST /v1/dead-letters/{id}/replay": {action: rydes.AuditDeadLetterReplay, responseFields: []string{"provider", "rfq_id"}},
}

// audited records in log one entry for every request to a state-changing
// admin route (auditSpecs) that succeeds (2xx), after the change and
// before the response goes out: the handler's response is held until the
// entry is stored. Requests that fail change nothing and are not recorded;
// nor are requests refused for their key, which never get here (recording
// them would let anyone fill the log). If the entry cannot be stored, the
// change stands, the response goes out and the loss is logged as an error.
// A nil log records nothing. It must run after requireAdmin.
func audited(logger *slog.Logger, log AuditLog, now func() time.Time, maxBody int64, next http.Handler) http.Handler {
	if log == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		spec, ok := auditSpecs[r.Pattern]
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		var reqBody []byte
		if len(spec.requestFields) > 0 || spec.bodyTarget {
			// Keep a copy of what the handler reads (it bounds the body
			// itself and answers 413 past maxBody).
			var buf bytes.Buffer
			_, _ = io.Copy(&buf, io.LimitReader(r.Body, maxBody+1))
			reqBody = buf.Bytes()
			r.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(reqBody), r.Body), r.Body}
		}
		rec := &heldResponse{header: w.Header()}
		next.ServeHTTP(rec, r)
		if rec.status >= 200 && rec.status < 300 {
			e := rydes.AuditEntry{
				At:         now().UTC(),
				Actor:      AdminActor(bearerToken(r)),
				Action:     spec.action,
				Target:     r.PathValue("id"),
				RemoteAddr: r.RemoteAddr,
				Details:    auditDetails(spec, reqBody, rec.body.Bytes()),
			}
			if spec.bodyTarget {
				e.Target = jsonString(reqBody, "id")
			}
			// The change is made: record it even if the client went away.
			if _, err := log.AddAudit(context.WithoutCancel(r.Context()), e); err != nil {
				logger.Error("audit entry not recorded", "action", e.Action, "target", e.Target, "err", err)
			}
		}
		rec.send(w)
	})
}

// heldResponse holds a handler's response until send.
type heldResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (h *heldResponse) Header() http.Header { return h.header }

func (h *heldResponse) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}

func (h *heldResponse) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	return h.body.Write(b)
}

// send writes the held response to w.
func (h *heldResponse) send(w http.ResponseWriter) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	w.WriteHeader(h.status)
	_, _ = w.Write(h.body.Bytes())
}

// auditDetails builds an entry's Details from the fields spec names in the
// request and response bodies; nil if none is there.
func auditDetails(spec auditSpec, reqBody, respBody []byte) json.RawMessage {
	details := map[string]json.RawMessage{}
	pick := func(body []byte, fields []string) {
		if len(fields) == 0 {
			return
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(body, &obj) != nil {
			return
		}
		for _, f := range fields {
			v, ok := obj[f]
			if !ok {
				continue
			}
			if f == "webhook_url" {
				var s string
				if json.Unmarshal(v, &s) == nil {
					v, _ = json.Marshal(redactURL(s))
				}
			}
			details[f] = v
		}
	}
	pick(reqBody, spec.requestFields)
	pick(respBody, spec.responseFields)
	if len(details) == 0 {
		return nil
	}
	b, err := json.Marshal(details)
	if err != nil || len(b) > rydes.MaxAuditDetailsLen {
		keys := slices.Sorted(maps.Keys(details))
		b, _ = json.Marshal(map[string]any{"fields": keys, "truncated": true})
	}
	return b
}

// redactURL returns u without what may carry a secret: its user info, its
// query and its fragment (a query becomes "redacted").
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	p.User = nil
	if p.RawQuery != "" || p.ForceQuery {
		p.RawQuery, p.ForceQuery = "redacted", false
	}
	p.Fragment, p.RawFragment = "", ""
	return p.String()
}

// jsonString returns the string member name of the JSON object body, or "".
func jsonString(body []byte, name string) string {
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(obj[name], &s) != nil {
		return ""
	}
	return s
}

// auditPage is the body of GET /v1/audit: a page of entries, newest first,
// and the before to ask for the next page with, if there is one.
type auditPage struct {
	Entries    []rydes.AuditEntry `json:"entries"`
	NextBefore int64              `json:"next_before,omitzero"`
}

// auditQuery checks the query of GET /v1/audit: action, before and limit,
// each at most once, and nothing else.
func auditQuery(q url.Values) (store.ListAuditParams, error) {
	p := store.ListAuditParams{Limit: DefaultAuditLimit}
	err := parseListQuery(q, []queryParam{
		{"action", func(v string) error {
			if !slices.Contains(rydes.AuditActions, rydes.AuditAction(v)) {
				return rydes.FieldErrorf("action", "must be one of %v", rydes.AuditActions)
			}
			p.Action = rydes.AuditAction(v)
			return nil
		}},
		{"before", func(v string) (err error) { p.BeforeID, err = parsePositiveID("before", v); return err }},
		{"limit", func(v string) (err error) { p.Limit, err = parseLimit(v, MaxAuditLimit); return err }},
	})
	if err != nil {
		return store.ListAuditParams{}, err
	}
	return p, nil
}

// handleListAudit serves GET /v1/audit: a page of the audit log, newest
// first, optionally of one action. Without a log it answers 503.
func handleListAudit(logger *slog.Logger, log AuditLog) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if log == nil {
			writeError(w, r, logger, unavailable("the audit log is not available on this server"))
			return
		}
		params, err := auditQuery(r.URL.Query())
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("query: %w", err))
			return
		}
		// One more than asked tells whether there is a next page.
		limit := params.Limit
		params.Limit++
		es, err := log.ListAudit(r.Context(), params)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("list audit entries: %w", err))
			return
		}
		page := auditPage{Entries: es}
		if len(es) > limit {
			page.Entries = es[:limit]
			page.NextBefore = es[limit-1].ID
		}
		if page.Entries == nil {
			page.Entries = []rydes.AuditEntry{}
		}
		writeJSON(w, r, logger, http.StatusOK, page)
	})
}
