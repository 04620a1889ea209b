package client

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wildrydes/rydes"
)

// Problem is an error response of the rydes API: an RFC 9457 problem
// document, or one made up from the status when the body was not one (a
// proxy's HTML error page, say). Every non-2xx response is returned as a
// *Problem; use errors.As to get at it.
type Problem struct {
	// Status is the HTTP status code of the response.
	Status int `json:"status"`
	// Type is a URI naming the kind of problem, if the server gave one.
	Type string `json:"type,omitempty"`
	// Title is a short summary of the kind of problem. For a response that
	// was not a problem document it is the status text, such as "Bad Gateway".
	Title string `json:"title,omitempty"`
	// Detail explains this occurrence of the problem. For a response that was
	// not a problem document it quotes the start of the body.
	Detail string `json:"detail,omitempty"`
	// Instance is a URI naming this occurrence, if the server gave one.
	Instance string `json:"instance,omitempty"`
	// Errors lists the offending fields of an invalid request.
	Errors []FieldError `json:"errors,omitempty"`
	// RetryAfter is how long the server asked the client to wait before
	// trying again, from the Retry-After header of a 429 (over the rate
	// limit) or a 503: whole seconds, or an HTTP date. Zero when it did not
	// say.
	RetryAfter time.Duration `json:"-"`
}

// FieldError is one offending field of an invalid request.
type FieldError struct {
	Field  string `json:"field"`  // JSON name of the field, dotted for nested ones
	Reason string `json:"reason"` // what is wrong with it
}

// String returns "field: reason", or the reason alone if no field is named.
func (fe FieldError) String() string {
	if fe.Field == "" {
		return clean(fe.Reason)
	}
	return clean(fe.Field) + ": " + clean(fe.Reason)
}

// Code returns the slug that ends the problem's Type, such as "invalid" or
// "not_found" for "https://rydes.dev/problems/not_found": a rydes error code,
// or an HTTP-only one such as "method_not_allowed". It returns "" when the
// problem has no type or is "about:blank".
func (p *Problem) Code() rydes.ErrorCode {
	if p.Type == "" || p.Type == "about:blank" {
		return ""
	}
	return rydes.ErrorCode(p.Type[strings.LastIndexAny(p.Type, "/:#")+1:])
}

// Error returns the status, the code (or, without one, the title) and what
// went wrong: the field errors if there are any, else the detail. For
// example "400 invalid: from: is required and must not be blank".
func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(p.Status))
	name := string(p.Code())
	if name == "" {
		name = p.Title
	}
	if name == "" {
		name = http.StatusText(p.Status)
	}
	if name != "" {
		b.WriteString(" " + clean(name))
	}
	switch {
	case len(p.Errors) > 0:
		b.WriteString(":")
		for i, fe := range p.Errors {
			if i > 0 {
				b.WriteString(";")
			}
			b.WriteString(" " + fe.String())
		}
	case p.Detail != "":
		b.WriteString(": " + clean(p.Detail))
	}
	return b.String()
}

// problemOf makes the *Problem for an error response and its (bounded)
// body, or readErr if reading it failed before anything was read.
func problemOf(resp *http.Response, body []byte, readErr error) *Problem {
	var p *Problem
	if readErr != nil && len(body) == 0 {
		p = &Problem{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode),
			Detail: "reading the error response failed: " + readErr.Error()}
	} else {
		p = problemFrom(resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	p.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return p
}

// maxRetryAfter bounds the wait a Retry-After header may ask for.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter parses a Retry-After value, delay-seconds or an HTTP
// date, into a wait from now: 0 if absent, malformed or in the past, at
// most maxRetryAfter.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// problemFrom makes the *Problem for an error response with the given status,
// Content-Type and (bounded) body.
func problemFrom(status int, contentType string, body []byte) *Problem {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/problem+json" || mt == "application/json" {
		var p Problem
		if err := json.Unmarshal(body, &p); err == nil && (p.Title != "" || p.Detail != "" || p.Type != "" || len(p.Errors) > 0) {
			// The status line is what happened; the body's copy is advisory.
			p.Status = status
			return &p
		}
	}
	p := &Problem{Status: status, Title: http.StatusText(status)}
	if mt == "" {
		mt = "untyped"
	}
	if s := snippet(body); s != "" {
		p.Detail = fmt.Sprintf("unexpected %s response: %s", mt, s)
	} else {
		p.Detail = fmt.Sprintf("unexpected empty %s response", mt)
	}
	return p
}

// snippetLen is how much of an unexpected body an error quotes.
const snippetLen = 200

// snippet returns the start of body as one line of printable text.
func snippet(body []byte) string {
	s := strings.Join(strings.Fields(clean(string(body))), " ")
	if len(s) <= snippetLen {
		return s
	}
	cut := snippetLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// clean makes text from the server safe to print on a terminal: invalid
// UTF-8 and control characters (escape sequences included) become spaces or
// the replacement character.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t' || r == '\r':
			return ' '
		case unicode.IsControl(r):
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(s, string(utf8.RuneError)))
}
