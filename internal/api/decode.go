package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wildrydes/rydes"
)

// edgeLimits lets the API run the domain's request validation before calling
// the Service, so that errors are clear whatever the Service is. Its maximum
// timeout is unbounded: the API checks the minimum itself and the real
// maximum is the engine's to enforce.
var edgeLimits = rydes.Limits{DefaultTimeout: rydes.DefaultTimeout, MaxTimeout: math.MaxInt64}

// decodeJSON decodes the body of r, which must be application/json, at most
// maxBytes long and exactly one JSON value with no field unknown to dst,
// into dst. Its errors are *rydes.Error values naming the offending field,
// or an *httpError for a wrong media type.
func decodeJSON(w http.ResponseWriter, r *http.Request, maxBytes int64, dst any) error {
	body, err := readJSON(w, r, maxBytes)
	if err != nil {
		return err
	}
	return unmarshalStrict(body, dst)
}

// readJSON returns the body of r, which must be application/json and at
// most maxBytes long, as received, for handlers that keep it.
func readJSON(w http.ResponseWriter, r *http.Request, maxBytes int64) ([]byte, error) {
	if err := requireJSON(r); err != nil {
		return nil, err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
	if err != nil {
		if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, tooLarge(mbe)
		}
		return nil, rydes.Errorf(rydes.EINVALID, "the body could not be read whole")
	}
	// JSON is UTF-8 (RFC 8259); the decoder would quietly turn invalid
	// bytes into U+FFFD, storing what the client never sent.
	if !utf8.Valid(body) {
		return nil, rydes.Errorf(rydes.EINVALID, "the body is not valid UTF-8")
	}
	// Likewise a \ud800 escape that is not half of a surrogate pair.
	if loneSurrogate(body) {
		return nil, rydes.Errorf(rydes.EINVALID, "the body holds a \\u escape of a lone UTF-16 surrogate, which is no character")
	}
	return body, nil
}

// loneSurrogate reports whether body, JSON text, holds a \uXXXX escape of a
// UTF-16 surrogate (D800-DFFF) that is not part of a high-low pair. It
// looks only inside strings and stops at anything malformed, which the
// decoder reports better.
func loneSurrogate(body []byte) bool {
	inString := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !inString {
			inString = c == '"'
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 >= len(body) {
				return false
			}
			if body[i+1] != 'u' {
				i++ // skip the escaped character
				continue
			}
			r, ok := hex4(body[i+2:])
			if !ok {
				return false
			}
			i += 5
			switch {
			case r >= 0xDC00 && r <= 0xDFFF:
				return true // a low half without a high one before it
			case r >= 0xD800 && r <= 0xDBFF:
				if i+6 >= len(body) || body[i+1] != '\\' || body[i+2] != 'u' {
					return true
				}
				low, ok := hex4(body[i+3:])
				if !ok || low < 0xDC00 || low > 0xDFFF {
					return true
				}
				i += 6
			}
		}
	}
	return false
}

// hex4 parses the 4 hex digits that start b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// unmarshalStrict decodes body, which must be exactly one JSON value with no
// field unknown to dst, into dst. Its errors are *rydes.Error values naming
// the offending field.
func unmarshalStrict(body []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return rydes.Errorf(rydes.EINVALID, "the body must hold exactly one JSON value")
	}
	return nil
}

// unmarshalObject decodes raw, the value of the body's member field, which
// must be a JSON object with no member unknown to dst, into dst. Offending
// members are named under field, as in "filter.from": the decoder alone
// would name a nested unknown member without its parent.
func unmarshalObject(field string, raw json.RawMessage, dst any) error {
	if len(raw) == 0 || raw[0] != '{' {
		return rydes.FieldErrorf(field, "must be an object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		err = decodeError(err)
		if inner := rydes.ErrorFieldOf(err); inner != "" {
			return rydes.FieldErrorf(field+"."+inner, "%s", rydes.ErrorMessageOf(err))
		}
		return rydes.FieldErrorf(field, "must be an object")
	}
	return nil
}

// nullMembers returns the names of the members of body, a JSON object, whose
// value is null, sorted.
func nullMembers(body []byte) []string {
	var members map[string]json.RawMessage
	if json.Unmarshal(body, &members) != nil {
		return nil
	}
	var nulls []string
	for k, v := range members {
		if isNull(v) {
			nulls = append(nulls, k)
		}
	}
	sort.Strings(nulls)
	return nulls
}

// requireNoBody refuses a request to a route that takes no body yet carries
// one, so that nothing a client meant to say is silently ignored.
func requireNoBody(r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	var one [1]byte
	if n, _ := io.ReadFull(r.Body, one[:]); n > 0 {
		return rydes.Errorf(rydes.EINVALID, "this route takes no body")
	}
	return nil
}

func requireJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "application/json" {
		return nil
	}
	got := "none"
	if ct != "" {
		got = strconv.Quote(ct)
	}
	return &httpError{
		status: http.StatusUnsupportedMediaType,
		slug:   "unsupported_media_type",
		title:  "Unsupported media type",
		detail: "the body must be JSON with Content-Type application/json; the request's Content-Type is " + got,
	}
}

func tooLarge(e *http.MaxBytesError) error {
	return rydes.Errorf(rydes.ETOOLARGE, "the body must be at most %d bytes", e.Limit)
}

// decodeError turns an error of json.Decoder.Decode into a domain error that
// names the offending field where there is one.
func decodeError(err error) error {
	if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return tooLarge(mbe)
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return rydes.Errorf(rydes.EINVALID, "the body must be a JSON object, not %s", jsonKind(te.Value))
		}
		return rydes.FieldErrorf(te.Field, "must be %s, not %s", goTypeName(te.Type), jsonKind(te.Value))
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return rydes.Errorf(rydes.EINVALID, "the body is not valid JSON: %s (at byte %d)", strings.TrimPrefix(se.Error(), "json: "), se.Offset)
	}
	switch {
	case errors.Is(err, io.EOF):
		return rydes.Errorf(rydes.EINVALID, "the body is empty; it must be a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return rydes.Errorf(rydes.EINVALID, "the body is not valid JSON: it ends too early")
	}
	// DisallowUnknownFields reports an unknown field only as text.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if unq, uerr := strconv.Unquote(name); uerr == nil {
			name = unq
		}
		return rydes.FieldErrorf(name, "is not a known field")
	}
	return rydes.Errorf(rydes.EINVALID, "the body is not valid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind names the kind of a JSON value from UnmarshalTypeError.Value,
// which is "string", "number", "number 2.5", "object", "array" or "bool".
func jsonKind(value string) string {
	kind, _, _ := strings.Cut(value, " ")
	switch kind {
	case "object", "array":
		return "an " + kind
	case "bool":
		return "a boolean"
	case "":
		return "this value"
	}
	return "a " + kind
}

func goTypeName(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "a boolean"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "of type " + t.String()
}

// stringValue decodes raw, a JSON value that must be a string, naming field
// if it is not.
func stringValue(field string, raw json.RawMessage) (string, error) {
	var s string
	if isNull(raw) || json.Unmarshal(raw, &s) != nil {
		return "", rydes.FieldErrorf(field, "must be a string")
	}
	return s, nil
}

// scalarValue decodes raw, a JSON string or number, as text: a string's
// value or a number's literal. ok is false when raw is absent or null.
func scalarValue(field string, raw json.RawMessage) (s string, ok bool, err error) {
	if len(raw) == 0 || isNull(raw) {
		return "", false, nil
	}
	switch c := raw[0]; {
	case c == '"':
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false, rydes.FieldErrorf(field, "must be a string or a number")
		}
		return s, true, nil
	case c == '-' || c >= '0' && c <= '9':
		return string(raw), true, nil
	}
	return "", false, rydes.FieldErrorf(field, "must be a string or a number")
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// parseTimeout parses a request's timeout, a Go duration of at least
// rydes.MinTimeout. The maximum is the engine's to check.
func parseTimeout(s string) (time.Duration, error) {
	if len(s) > rydes.MaxTimeTextLen {
		return 0, rydes.FieldErrorf("timeout", "must be at most %d bytes", rydes.MaxTimeTextLen)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, rydes.FieldErrorf("timeout", "must be a duration such as \"45s\" or \"2m\"")
	}
	if d < rydes.MinTimeout {
		return 0, rydes.FieldErrorf("timeout", "must be at least %s", rydes.MinTimeout)
	}
	return d, nil
}

// parsePickupAt parses a request's pickup time, an RFC 3339 timestamp.
func parsePickupAt(s string) (time.Time, error) {
	if len(s) > rydes.MaxTimeTextLen {
		return time.Time{}, rydes.FieldErrorf("pickup_at", "must be at most %d bytes", rydes.MaxTimeTextLen)
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, rydes.FieldErrorf("pickup_at", "must be an RFC 3339 time such as \"2030-07-01T09:30:00Z\"")
	}
	return t, nil
}

// pathID returns the {id} path value of r, checked and in canonical (lower
// case) form.
func pathID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if err := rydes.ValidateID(id); err != nil {
		return "", fmt.Errorf("path: %w", err)
	}
	return strings.ToLower(id), nil
}

// pathProviderID returns the {id} path value of r, checked as a provider id.
func pathProviderID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if err := rydes.ValidateProviderID(id); err != nil {
		return "", fmt.Errorf("path: %w", rydes.FieldErrorf("id", "%s", rydes.ErrorMessageOf(err)))
	}
	return id, nil
}

// parsePositiveID parses s, the value of field, as a positive decimal
// integer id: digits only, no sign, no leading zero.
func parsePositiveID(field, s string) (int64, error) {
	bad := rydes.FieldErrorf(field, "must be a positive integer id such as 42")
	if s == "" || s[0] == '0' || !allDigits(s) {
		return 0, bad
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, bad
	}
	return n, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkURL vets rawURL, the value of field, with check (Config.CheckURL),
// if there is one: an EINVALID error becomes a problem naming field.
func checkURL(ctx context.Context, check func(context.Context, string) error, field, rawURL string) error {
	if check == nil {
		return nil
	}
	err := check(ctx, rawURL)
	if err == nil {
		return nil
	}
	if rydes.ErrorCodeOf(err) == rydes.EINVALID {
		return rydes.FieldErrorf(field, "%s", rydes.ErrorMessageOf(err))
	}
	return fmt.Errorf("check %s: %w", field, err)
}
