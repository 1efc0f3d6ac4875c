package api

import (
	"context"
	"errors"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/store"
)

// retryAfter is the Retry-After (seconds) of a 503: long enough for a
// restarting database or a released lock, short for a client that waits.
const retryAfter = 5

// writeError sends err as an OperationOutcome with its status. The cause of
// an internal error is recorded for the log, never sent.
func writeError(c *gin.Context, err error) {
	fe := unavailableError(c, fhir.AsError(err))
	if fe.Kind == fhir.KindInternal && errors.Is(c.Request.Context().Err(), context.Canceled) {
		// The client went away (its work was cancelled and rolled back):
		// nobody reads an answer, and it is not the server's failure, so
		// not a 5xx that monitors alert on. 499 is nginx's "client closed
		// request".
		c.Status(statusClientClosedRequest)
		return
	}
	if fe.Err != nil || fe.Kind == fhir.KindInternal {
		_ = c.Error(err) // logged by logRequests
	}
	if fe.Kind == fhir.KindUnavailable {
		c.Header("Retry-After", strconv.Itoa(retryAfter))
	}
	if fe.Kind == fhir.KindForbidden {
		// RFC 6750 §3.1: the token is valid but its scopes are not enough.
		c.Header("WWW-Authenticate", `Bearer realm="herald", error="insufficient_scope"`)
	}
	c.Data(fe.Status(), fhirJSONType, fhir.OutcomeJSON(fe))
}

// statusClientClosedRequest is logged for a request its client abandoned.
const statusClientClosedRequest = 499

// unavailableError turns an internal error that a passed deadline or an
// unavailable store caused into a 503 the client can act on.
func unavailableError(c *gin.Context, fe *fhir.Error) *fhir.Error {
	if fe.Kind != fhir.KindInternal {
		return fe
	}
	switch {
	case errors.Is(c.Request.Context().Err(), context.DeadlineExceeded):
		return &fhir.Error{Kind: fhir.KindUnavailable, Err: fe,
			Message: "the request did not finish in time and was rolled back; retry it later"}
	case errors.Is(fe, store.ErrUnavailable):
		return &fhir.Error{Kind: fhir.KindUnavailable, Err: fe,
			Message: "the database is unavailable or busy; retry later"}
	}
	return fe
}

func abort(c *gin.Context, err error) {
	writeError(c, err)
	c.Abort()
}

func notFoundRoute(c *gin.Context) error {
	return fhir.Errorf(fhir.KindNotFound, "no such endpoint: %s %s", c.Request.Method, clipText(c.Request.URL.Path))
}

func notAllowed(c *gin.Context) error {
	return fhir.Errorf(fhir.KindNotAllowed, "%s is not allowed on %s", c.Request.Method, clipText(c.Request.URL.Path))
}
