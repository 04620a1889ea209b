package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/wildrydes/rydes"
)

// ProblemTypeBase prefixes the slug of every problem type URI, as in
// "https://rydes.dev/problems/invalid".
const ProblemTypeBase = "https://rydes.dev/problems/"

// ProblemContentType is the media type of every error response.
const ProblemContentType = "application/problem+json"

// Problem is an RFC 9457 problem details body, the shape of every error
// response.
type Problem struct {
	// Type is ProblemTypeBase followed by the problem's slug: a domain error
	// code such as "invalid" or "not_found", or an HTTP-only one such as
	// "unsupported_media_type" or "method_not_allowed".
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Instance string `json:"instance"` // the request path
	// Errors names the offending input fields, if any.
	Errors []ProblemField `json:"errors,omitempty"`
	// Reason is an extension member of the problems of refused answers: why
	// the answer was refused, such as "late" or "already_answered".
	Reason rydes.RejectReason `json:"reason,omitempty"`
}

// ProblemField is one offending field of the input: its JSON name, dotted
// for nested ones ("attributes.fare"), and what is wrong with it.
type ProblemField struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

type problemKind struct {
	status int
	title  string
}

// problemKinds is the one mapping from domain error codes to HTTP statuses
// and problem titles.
var problemKinds = map[rydes.ErrorCode]problemKind{
	rydes.EINVALID:      {http.StatusBadRequest, "Invalid request"},
	rydes.EUNAUTHORIZED: {http.StatusUnauthorized, "Unauthorized"},
	rydes.EFORBIDDEN:    {http.StatusForbidden, "Forbidden"},
	rydes.ENOTFOUND:     {http.StatusNotFound, "Not found"},
	rydes.ECONFLICT:     {http.StatusConflict, "Conflict with the current state"},
	rydes.EGONE:         {http.StatusGone, "Gone"},
	rydes.ETOOLARGE:     {http.StatusRequestEntityTooLarge, "Request too large"},
	rydes.EUNMATCHED:    {http.StatusUnprocessableEntity, "No provider can serve the request"},
	rydes.EINTERNAL:     {http.StatusInternalServerError, "Internal error"},
	rydes.ETIMEOUT:      {http.StatusGatewayTimeout, "Timed out"},
	rydes.ETOOMANY:      {http.StatusTooManyRequests, "Too many requests"},
}

// ErrorStatus returns the HTTP status of a domain error code; unknown codes
// are internal errors (500).
func ErrorStatus(code rydes.ErrorCode) int {
	if k, ok := problemKinds[code]; ok {
		return k.status
	}
	return http.StatusInternalServerError
}

// httpError is an error that only exists at the HTTP layer, where no domain
// error code describes it: an unsupported media type, an unknown method, a
// service that is not ready.
type httpError struct {
	status int
	slug   string
	title  string
	detail string
}

func (e *httpError) Error() string { return e.slug + ": " + e.detail }

// problemOf turns err into the problem the client sees. Internal errors show
// only "internal error".
func problemOf(err error, instance string) Problem {
	if he, ok := errors.AsType[*httpError](err); ok {
		return Problem{Type: ProblemTypeBase + he.slug, Title: he.title, Status: he.status, Detail: he.detail, Instance: instance}
	}
	code := rydes.ErrorCodeOf(err)
	kind, ok := problemKinds[code]
	if !ok {
		code, kind = rydes.EINTERNAL, problemKinds[rydes.EINTERNAL]
	}
	p := Problem{Type: ProblemTypeBase + string(code), Title: kind.title, Status: kind.status, Instance: instance}
	if code == rydes.EINTERNAL {
		p.Detail = "internal error"
		return p
	}
	msg := rydes.ErrorMessageOf(err)
	p.Detail = msg
	if field := rydes.ErrorFieldOf(err); field != "" {
		p.Detail = field + " " + msg
		p.Errors = []ProblemField{{Field: field, Reason: msg}}
	}
	if ra, ok := errors.AsType[*rejectedAnswer](err); ok {
		p.Reason = ra.reason
	}
	return p
}

// writeError answers the request with the problem err maps to; a 401 also
// carries the Bearer challenge (WWW-Authenticate). Errors that map to 5xx
// are logged with their real text, which the client never sees.
func writeError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	p := problemOf(err, r.URL.Path)
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	switch {
	case p.Status >= 500 && r.Context().Err() != nil:
		logger.InfoContext(r.Context(), "request ended by the client", "method", r.Method, "path", r.URL.Path, "err", err)
	case p.Status >= 500:
		logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "status", p.Status, "err", err)
	default:
		logger.DebugContext(r.Context(), "request refused", "method", r.Method, "path", r.URL.Path, "status", p.Status, "err", err)
	}
	writeProblem(w, r, logger, p)
}

func writeProblem(w http.ResponseWriter, r *http.Request, logger *slog.Logger, p Problem) {
	b, err := json.Marshal(p)
	if err != nil { // cannot happen: Problem holds only strings, ints and their slices
		logger.ErrorContext(r.Context(), "encode problem", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ProblemContentType)
	w.WriteHeader(p.Status)
	if _, err := w.Write(append(b, '\n')); err != nil {
		logger.DebugContext(r.Context(), "write problem", "path", r.URL.Path, "err", err)
	}
}

// writeJSON answers the request with status and v as JSON.
func writeJSON(w http.ResponseWriter, r *http.Request, logger *slog.Logger, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		w.Header().Del("Location")
		writeError(w, r, logger, fmt.Errorf("encode %T response: %w", v, err))
		return
	}
	writeJSONBytes(w, r, logger, status, b)
}

// writeJSONBytes writes b, JSON already encoded, as writeJSON does. b is
// not changed (it may be a cached body shared by many responses), nor
// copied: the newline after it is a write of its own into the response's
// buffer.
func writeJSONBytes(w http.ResponseWriter, r *http.Request, logger *slog.Logger, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// With its length known, a body longer than net/http's 2 KB buffer
	// goes out as it is rather than in chunks.
	h.Set("Content-Length", strconv.Itoa(len(b)+len(newline)))
	w.WriteHeader(status)
	_, err := w.Write(b)
	if err == nil {
		_, err = w.Write(newline)
	}
	if err != nil {
		logger.DebugContext(r.Context(), "write response", "path", r.URL.Path, "err", err)
	}
}

// newline ends every JSON body.
var newline = []byte{'\n'}
