package api

import (
	"net/url"

	"github.com/gin-gonic/gin"

	"github.com/herald-fhir/herald/internal/fhir"
)

// checkQuery refuses a query string that is malformed, not plain text or
// over the limits, on every route before any handler reads it. Parameters
// from bodies are held to the same rules by checkParams.
func (s *Server) checkQuery(c *gin.Context) {
	if _, err := fhir.ParseParams(c.Request.URL.RawQuery, s.opts.ParamLimits); err != nil {
		abort(c, err)
		return
	}
	c.Next()
}

// checkParams applies the query string's rules to parameters gathered from
// a body (with the query string's own, as one request's parameters).
func (s *Server) checkParams(c *gin.Context, params url.Values) bool {
	if err := fhir.CheckParams(params, s.opts.ParamLimits); err != nil {
		writeError(c, err)
		return false
	}
	return true
}

// formParams reads a form body's parameters.
func (s *Server) formParams(c *gin.Context, body []byte) (url.Values, bool) {
	params, err := fhir.ParseParams(string(body), s.opts.ParamLimits)
	if err != nil {
		writeError(c, err)
		return nil, false
	}
	return params, true
}
