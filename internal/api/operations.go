package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/herald-fhir/herald/internal/fhir"
)

// subscriptionOperations are the operations Herald serves on Subscription,
// with their OperationDefinitions; the CapabilityStatement lists these.
var subscriptionOperations = []struct{ name, definition string }{
	{"status", fhir.OperationSubscriptionStatus},
	{"events", fhir.OperationSubscriptionEvents},
}

// typeOperation serves /fhir/{type}/${op} (GET and POST): $status.
func (s *Server) typeOperation(c *gin.Context) {
	op, isOp := strings.CutPrefix(c.Param("id"), "$")
	if !isOp {
		writeError(c, notAllowed(c))
		return
	}
	if c.Param("type") != "Subscription" || op != "status" {
		writeError(c, fhir.Errorf(fhir.KindNotFound, "operation $%s is not supported on %s", clipText(op), clipText(c.Param("type"))))
		return
	}
	params, ok := s.operationParams(c)
	if !ok {
		return
	}
	body, err := s.opts.Operations.Status(c.Request.Context(), principal(c), "", splitAll(params["id"]), splitAll(params["status"]))
	s.respondJSON(c, body, err)
}

// instanceOperation serves /fhir/{type}/{id}/${op}: $status and $events.
func (s *Server) instanceOperation(c *gin.Context) {
	op, isOp := strings.CutPrefix(c.Param("op"), "$")
	if !isOp || c.Param("type") != "Subscription" || (op != "status" && op != "events") {
		writeError(c, fhir.Errorf(fhir.KindNotFound, "no such endpoint: %s %s", c.Request.Method, clipText(c.Request.URL.Path)))
		return
	}
	params, ok := s.operationParams(c)
	if !ok {
		return
	}
	ctx, p, id := c.Request.Context(), principal(c), c.Param("id")
	var body []byte
	var err error
	if op == "status" {
		body, err = s.opts.Operations.Status(ctx, p, id, nil, nil)
	} else {
		body, err = s.opts.Operations.Events(ctx, p, id, params.Get("eventsSinceNumber"), params.Get("eventsUntilNumber"), params.Get("content"))
	}
	s.respondJSON(c, body, err)
}

// operationParams reads an operation's parameters from the query (GET) or
// from a Parameters resource (POST), as FHIR allows both.
func (s *Server) operationParams(c *gin.Context) (url.Values, bool) {
	params := c.Request.URL.Query()
	if c.Request.Method != http.MethodPost {
		return params, true
	}
	body, ok := s.readBody(c)
	if !ok || len(body) == 0 {
		return params, ok
	}
	var in struct {
		ResourceType string `json:"resourceType"`
		Parameter    []map[string]json.RawMessage
	}
	if err := json.Unmarshal(body, &in); err != nil || in.ResourceType != "Parameters" {
		writeError(c, fhir.Errorf(fhir.KindInvalid, "an operation's POST body must be a Parameters resource"))
		return nil, false
	}
	for _, p := range in.Parameter {
		var name string
		_ = json.Unmarshal(p["name"], &name)
		for k, raw := range p {
			var v string
			if strings.HasPrefix(k, "value") && json.Unmarshal(raw, &v) == nil {
				params.Add(name, v)
			}
		}
	}
	return params, s.checkParams(c, params)
}

func (s *Server) respondJSON(c *gin.Context, body []byte, err error) {
	if err != nil {
		writeError(c, err)
		return
	}
	c.Data(http.StatusOK, fhirJSONType, body)
}

// splitAll flattens repeated and comma-separated values.
func splitAll(values []string) []string {
	var out []string
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			if part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}
