package auth

import "errors"

// ErrUnauthenticated is wrapped by every error [Verifier.Verify] returns;
// callers map it to 401 with WWW-Authenticate: Bearer.
var ErrUnauthenticated = errors.New("unauthenticated")

// Error is why a token was refused.
//
// Its message is only a fixed, short reason ("token expired", "signature
// invalid"): never the token and never attacker-chosen text from it, so it
// is safe to log and to return to the client.
type Error struct {
	// Reason is one of a small fixed set of phrases.
	Reason string
	cause  error
}

func (e *Error) Error() string { return "unauthenticated: " + e.Reason }

// Unwrap exposes ErrUnauthenticated and the underlying cause (for errors.Is
// against jwt errors); the cause's own text may quote token contents, so log
// e itself, not the cause.
func (e *Error) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrUnauthenticated}
	}
	return []error{ErrUnauthenticated, e.cause}
}

func unauthenticated(reason string, cause error) *Error {
	return &Error{Reason: reason, cause: cause}
}
