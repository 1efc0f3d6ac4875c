package fhir

import (
	"errors"
	"fmt"
	"net/http"
)

// Kind classifies an Error; each kind has one HTTP status and one
// OperationOutcome issue type.
type Kind int

const (
	KindInternal         Kind = iota // 500; details never reach the client
	KindInvalid                      // 400 malformed request
	KindUnauthorized                 // 401 missing or bad credentials
	KindForbidden                    // 403 authenticated but not permitted
	KindNotFound                     // 404
	KindNotAllowed                   // 405 method not allowed on the path
	KindNotAcceptable                // 406 response media type not producible
	KindConflict                     // 409
	KindGone                         // 410 deleted
	KindPrecondition                 // 412 If-Match failed
	KindTooLarge                     // 413 body over the limit
	KindUnsupportedMedia             // 415
	KindUnprocessable                // 422 well-formed but breaks a rule
	KindTooMany                      // 429 over a quota
	KindUnavailable                  // 503
)

var kindStatus = map[Kind]int{
	KindInternal:         http.StatusInternalServerError,
	KindInvalid:          http.StatusBadRequest,
	KindUnauthorized:     http.StatusUnauthorized,
	KindForbidden:        http.StatusForbidden,
	KindNotFound:         http.StatusNotFound,
	KindNotAllowed:       http.StatusMethodNotAllowed,
	KindNotAcceptable:    http.StatusNotAcceptable,
	KindConflict:         http.StatusConflict,
	KindGone:             http.StatusGone,
	KindPrecondition:     http.StatusPreconditionFailed,
	KindTooLarge:         http.StatusRequestEntityTooLarge,
	KindUnsupportedMedia: http.StatusUnsupportedMediaType,
	KindUnprocessable:    http.StatusUnprocessableEntity,
	KindTooMany:          http.StatusTooManyRequests,
	KindUnavailable:      http.StatusServiceUnavailable,
}

// issueType is the OperationOutcome issue.code (http://hl7.org/fhir/issue-type) for a kind.
var issueType = map[Kind]string{
	KindInternal:         "exception",
	KindInvalid:          "invalid",
	KindUnauthorized:     "login",
	KindForbidden:        "forbidden",
	KindNotFound:         "not-found",
	KindNotAllowed:       "not-supported",
	KindNotAcceptable:    "not-supported",
	KindConflict:         "conflict",
	KindGone:             "deleted",
	KindPrecondition:     "conflict",
	KindTooLarge:         "too-costly",
	KindUnsupportedMedia: "not-supported",
	KindUnprocessable:    "processing",
	KindTooMany:          "throttled",
	KindUnavailable:      "transient",
}

// Error is the one error type the FHIR surface speaks. Message is shown to the
// client; Err (the cause) is only for logs.
type Error struct {
	Kind       Kind
	Code       string   // issue type; empty means the kind's default
	Message    string   // safe to show to the client
	Expression []string // FHIRPath of the offending element, when known
	Err        error    // cause, never shown to clients
	// Problems, when set, are every problem found (validation reports all
	// of them); each becomes its own OperationOutcome issue.
	Problems []Problem
}

// Problem is one of several things wrong with a request.
type Problem struct {
	Code       string // issue type (http://hl7.org/fhir/issue-type)
	Message    string
	Expression string // FHIRPath of the element
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Status is the HTTP status for the error.
func (e *Error) Status() int { return kindStatus[e.Kind] }

// IssueCode is the OperationOutcome issue.code for the error.
func (e *Error) IssueCode() string {
	if e.Code != "" {
		return e.Code
	}
	return issueType[e.Kind]
}

// Errorf returns an *Error of kind with a client-facing message.
func Errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// AsError converts any error into an *Error; unknown errors become an
// internal error whose message hides the cause.
func AsError(err error) *Error {
	var fe *Error
	if errors.As(err, &fe) {
		return fe
	}
	return &Error{Kind: KindInternal, Message: "internal server error", Err: err}
}

// StatusOf is the HTTP status for any error.
func StatusOf(err error) int { return AsError(err).Status() }
