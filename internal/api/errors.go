package api

import (
	"github.com/gin-gonic/gin"

	"github.com/herald-fhir/herald/internal/fhir"
)

// writeError sends err as an OperationOutcome with its status. The cause of
// an internal error is recorded for the log, never sent.
func writeError(c *gin.Context, err error) {
	fe := fhir.AsError(err)
	if fe.Err != nil || fe.Kind == fhir.KindInternal {
		_ = c.Error(err) // logged by logRequests
	}
	if fe.Kind == fhir.KindForbidden {
		// RFC 6750 §3.1: the token is valid but its scopes are not enough.
		c.Header("WWW-Authenticate", `Bearer realm="herald", error="insufficient_scope"`)
	}
	c.Data(fe.Status(), fhirJSONType, fhir.OutcomeJSON(fe))
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
