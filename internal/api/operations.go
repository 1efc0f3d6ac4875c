package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/strictjson"
)

// subscriptionOperations are the operations Herald serves on Subscription,
// with their OperationDefinitions; the CapabilityStatement lists these.
var subscriptionOperations = []struct{ name, definition string }{
	{"status", fhir.OperationSubscriptionStatus},
	{"events", fhir.OperationSubscriptionEvents},
	{"attempts", fhir.OperationSubscriptionAttempts},
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

// instanceOperation serves /fhir/{type}/{id}/${op}: $status, $events and
// $attempts.
func (s *Server) instanceOperation(c *gin.Context) {
	if c.Request.Method == http.MethodGet && c.Param("type") == "Patient" && fhir.IsResourceType(c.Param("op")) {
		s.compartmentSearch(c)
		return
	}
	op, isOp := strings.CutPrefix(c.Param("op"), "$")
	if !isOp || c.Param("type") != "Subscription" || (op != "status" && op != "events" && op != "attempts") {
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
	switch op {
	case "status":
		body, err = s.opts.Operations.Status(ctx, p, id, nil, nil)
	case "events":
		body, err = s.opts.Operations.Events(ctx, p, id, params.Get("eventsSinceNumber"), params.Get("eventsUntilNumber"), params.Get("content"))
	default:
		body, err = s.opts.Operations.Attempts(ctx, p, id, params.Get("_count"), params.Get("before"), params.Get("outcome"))
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
	in, err := strictjson.Parse(body)
	if err != nil {
		writeError(c, fhir.Errorf(fhir.KindInvalid, "the body is not valid JSON: %s", err))
		return nil, false
	}
	if rt, _ := in.Get("resourceType").String(); rt != "Parameters" {
		writeError(c, fhir.Errorf(fhir.KindInvalid, "an operation's POST body must be a Parameters resource"))
		return nil, false
	}
	for i, p := range in.Get("parameter").Itemized() {
		name, _ := p.Get("name").String()
		value, err := parameterValue(p)
		if err != nil || name == "" {
			writeError(c, &fhir.Error{Kind: fhir.KindInvalid, Message: "a parameter needs a name and one primitive value[x]", Expression: []string{fmt.Sprintf("Parameters.parameter[%d]", i)}})
			return nil, false
		}
		params.Add(name, value)
	}
	if !s.checkParams(c, params) {
		return nil, false
	}
	// Data first (400 for what no parameter may hold), then R4 (422).
	r, err := fhir.FromTree(in)
	if err == nil {
		err = fhir.Validate(r)
	}
	if err != nil {
		writeError(c, err)
		return nil, false
	}
	return params, true
}

// parameterValue is the text of a parameter's one primitive value[x].
func parameterValue(p *strictjson.Value) (string, error) {
	var out string
	n := 0
	for _, m := range p.Members {
		if !strings.HasPrefix(m.Name, "value") {
			continue
		}
		n++
		switch m.Value.Kind {
		case strictjson.String:
			out = m.Value.Str
		case strictjson.Number, strictjson.Bool:
			out = string(m.Value.Raw)
		default:
			return "", errors.New("not a primitive")
		}
	}
	if n != 1 {
		return "", errors.New("not one value[x]")
	}
	return out, nil
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
