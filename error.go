// Package rydes holds the domain of the rydes quote broker: requests for
// quotes (RFQs), the providers asked to answer them, their answers, and the
// events each transition emits. It does no I/O; the store, the bus and the
// HTTP API are adapters around it.
package rydes

import (
	"errors"
	"fmt"
)

// ErrorCode classifies an Error so that every adapter can map it once, for
// example to an HTTP status.
type ErrorCode string

// Error codes used across rydes.
const (
	ECONFLICT     ErrorCode = "conflict"          // the action conflicts with the current state
	EFORBIDDEN    ErrorCode = "forbidden"         // the caller may not do this
	EUNAUTHORIZED ErrorCode = "unauthorized"      // the caller did not prove who it is
	EINTERNAL     ErrorCode = "internal"          // a bug or an unavailable dependency
	EINVALID      ErrorCode = "invalid"           // the input is malformed or out of range
	ENOTFOUND     ErrorCode = "not_found"         // the resource does not exist
	ETOOLARGE     ErrorCode = "too_large"         // the input is bigger than allowed
	EUNMATCHED    ErrorCode = "unmatched"         // the request is valid but nobody can serve it
	EGONE         ErrorCode = "gone"              // the resource existed and is no longer usable
	ETIMEOUT      ErrorCode = "timeout"           // a deadline passed
	ETOOMANY      ErrorCode = "too_many_requests" // the caller sent more requests than its rate limit allows
)

// Error is a domain error: a code, a message meant for the caller, and the
// field of the input it is about, if any.
type Error struct {
	Code    ErrorCode
	Field   string // JSON name of the offending field, dotted for nested ones
	Message string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("rydes %s: %s: %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("rydes %s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an EINVALID *Error about one field of the input.
func FieldErrorf(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCodeOf returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCodeOf(err error) ErrorCode {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessageOf returns the caller-facing message of err: the message of an
// *Error, or "internal error" for anything else, whose text may hold details
// that callers must not see.
func ErrorMessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrorFieldOf returns the offending field named by err, or "".
func ErrorFieldOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}
