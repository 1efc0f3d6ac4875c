package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/herald-fhir/herald/internal/admin"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/strictjson"
)

// The admin API manages the endpoint allow-list and the client registry. It
// speaks plain JSON (documented in api/openapi.yaml) but keeps the FHIR
// surface's single error language: every error is an OperationOutcome
// (application/fhir+json) written by writeError.

// endpointJSON is an allow-list entry as the admin API shows it.
type endpointJSON struct {
	ID                  string    `json:"id"`
	URLPrefix           string    `json:"url_prefix"`
	AllowPrivateNetwork bool      `json:"allow_private_network"`
	Note                string    `json:"note"`
	CreatedAt           time.Time `json:"created_at"`
}

// endpointInput is the body of POST /admin/endpoints.
type endpointInput struct {
	URLPrefix           string `json:"url_prefix"`
	AllowPrivateNetwork bool   `json:"allow_private_network"`
	Note                string `json:"note"`
}

// clientJSON is a client registry entry as the admin API shows it.
type clientJSON struct {
	ClientID     string    `json:"client_id"`
	Status       string    `json:"status"`
	MaxPayload   string    `json:"max_payload"`
	ScopeCeiling string    `json:"scope_ceiling"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// clientInput is the body of PUT /admin/clients/{client_id}.
type clientInput struct {
	Status       string `json:"status"`
	MaxPayload   string `json:"max_payload"`
	ScopeCeiling string `json:"scope_ceiling"`
}

func toEndpointJSON(e store.AllowedEndpoint) endpointJSON {
	return endpointJSON{ID: e.ID, URLPrefix: e.URLPrefix, AllowPrivateNetwork: e.AllowPrivateNetwork, Note: e.Note, CreatedAt: e.CreatedAt.UTC()}
}

func toClientJSON(c store.Client) clientJSON {
	return clientJSON{ClientID: c.ClientID, Status: c.Status, MaxPayload: c.MaxPayload, ScopeCeiling: c.ScopeCeiling, UpdatedAt: c.UpdatedAt.UTC()}
}

// requireAdmin admits only principals holding the herald.admin scope; it
// runs after authenticate.
func (s *Server) requireAdmin(c *gin.Context) {
	p := principal(c)
	if p == nil || !p.Admin {
		abort(c, fhir.Errorf(fhir.KindForbidden, "the admin API requires the %s scope", auth.AdminScope))
		return
	}
	if s.opts.Admin == nil {
		abort(c, errors.New("api: Options.Admin is not set"))
		return
	}
	c.Request = c.Request.WithContext(store.WithActor(c.Request.Context(), p.ClientID)) // the audit log's "who"
	c.Next()
}

// adminJSON requires request bodies of POST and PUT to be application/json
// (UTF-8, the only charset JSON has).
func (s *Server) adminJSON(c *gin.Context) {
	if m := c.Request.Method; m != http.MethodPost && m != http.MethodPut {
		c.Next()
		return
	}
	ct := c.GetHeader("Content-Type")
	if ct == "" {
		abort(c, fhir.Errorf(fhir.KindUnsupportedMedia, "Content-Type is missing: the admin API takes application/json"))
		return
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		abort(c, fhir.Errorf(fhir.KindUnsupportedMedia, "Content-Type %q is not supported: the admin API takes application/json", clipText(ct)))
		return
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		abort(c, fhir.Errorf(fhir.KindUnsupportedMedia, "charset %q is not supported: send UTF-8", clipText(cs)))
		return
	}
	c.Next()
}

// decodeAdminBody reads the body (with the FHIR routes' size limit) into v,
// rejecting unknown fields and trailing data. It writes the error itself.
func (s *Server) decodeAdminBody(c *gin.Context, v any) bool {
	body, ok := s.readBody(c)
	if !ok {
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		writeError(c, fhir.Errorf(fhir.KindInvalid, "the request body is empty: send a JSON object"))
		return false
	}
	if err := strictjson.UnmarshalKnown(body, v); err != nil {
		writeError(c, &fhir.Error{Kind: fhir.KindInvalid, Message: "the request body is not valid: " + err.Error(), Err: err})
		return false
	}
	return true
}

// mapJSON converts a list for an admin answer (never null: [] when empty).
func mapJSON[T, J any](xs []T, to func(T) J) []J {
	out := make([]J, len(xs))
	for i, x := range xs {
		out[i] = to(x)
	}
	return out
}

func (s *Server) listEndpoints(c *gin.Context) {
	es, err := s.admin.Endpoints(c.Request.Context())
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, mapJSON(es, toEndpointJSON))
}

func (s *Server) addEndpoint(c *gin.Context) {
	var in endpointInput
	if !s.decodeAdminBody(c, &in) {
		return
	}
	e, err := s.admin.AddEndpoint(c.Request.Context(), admin.EndpointInput(in))
	if err != nil {
		writeError(c, err)
		return
	}
	c.Header("Location", "/admin/endpoints/"+e.ID)
	c.JSON(http.StatusCreated, toEndpointJSON(e))
}

func (s *Server) removeEndpoint(c *gin.Context) {
	if err := s.admin.RemoveEndpoint(c.Request.Context(), c.Param("id")); err != nil {
		writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// checkInput is the body of POST /admin/allowlist/check.
type checkInput struct {
	URL string `json:"url"`
}

// checkJSON is the verdict of POST /admin/allowlist/check.
type checkJSON struct {
	Allowed  bool             `json:"allowed"`
	Endpoint string           `json:"endpoint,omitempty"` // normalised
	Invalid  string           `json:"invalid,omitempty"`  // why the URL is refused before any entry is tried
	Match    *endpointRefJSON `json:"match,omitempty"`
	Misses   []missJSON       `json:"misses"`
}

type endpointRefJSON struct {
	ID                  string `json:"id"`
	URLPrefix           string `json:"url_prefix"`
	AllowPrivateNetwork bool   `json:"allow_private_network"`
}

type missJSON struct {
	endpointRefJSON
	Reason string `json:"reason"`
}

func (s *Server) checkEndpoint(c *gin.Context) {
	var in checkInput
	if !s.decodeAdminBody(c, &in) {
		return
	}
	v, err := s.admin.CheckEndpoint(c.Request.Context(), in.URL)
	if err != nil {
		writeError(c, err)
		return
	}
	out := checkJSON{Allowed: v.Match != nil, Endpoint: v.Endpoint, Misses: []missJSON{}}
	if v.Invalid != nil {
		out.Invalid = v.Invalid.Error()
	}
	if v.Match != nil {
		out.Match = &endpointRefJSON{ID: v.Match.ID, URLPrefix: v.Match.URLPrefix, AllowPrivateNetwork: v.Match.AllowPrivateNetwork}
	}
	for _, m := range v.Misses {
		out.Misses = append(out.Misses, missJSON{endpointRefJSON{ID: m.Entry.ID, URLPrefix: m.Entry.URLPrefix, AllowPrivateNetwork: m.Entry.AllowPrivateNetwork}, m.Reason})
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) listClients(c *gin.Context) {
	cs, err := s.admin.Clients(c.Request.Context())
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, mapJSON(cs, toClientJSON))
}

// clientIDParam is the {client_id} of a catch-all route (client ids may hold "/").
func clientIDParam(c *gin.Context) string { return strings.TrimPrefix(c.Param("client_id"), "/") }

func (s *Server) getClient(c *gin.Context) {
	cl, err := s.admin.Client(c.Request.Context(), clientIDParam(c))
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, toClientJSON(cl))
}

func (s *Server) putClient(c *gin.Context) {
	id := clientIDParam(c)
	if err := admin.CheckClientID(id); err != nil {
		writeError(c, err)
		return
	}
	var in clientInput
	if !s.decodeAdminBody(c, &in) {
		return
	}
	cl, created, err := s.admin.PutClient(c.Request.Context(), id, admin.ClientInput(in))
	if err != nil {
		writeError(c, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.JSON(status, toClientJSON(cl))
}

// auditJSON is an admin audit log entry as the admin API shows it.
type auditJSON struct {
	Seq    int64           `json:"seq"`
	At     time.Time       `json:"at"`
	Actor  string          `json:"actor"`
	Action string          `json:"action"`
	Target string          `json:"target"`
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
}

const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

func (s *Server) auditLog(c *gin.Context) {
	before, err := auditParam(c, "before", 0, math.MaxInt64)
	if err != nil {
		writeError(c, err)
		return
	}
	limit, err := auditParam(c, "limit", defaultAuditLimit, maxAuditLimit)
	if err != nil {
		writeError(c, err)
		return
	}
	log, err := s.opts.Admin.AuditLog(c.Request.Context(), before, int(limit))
	if err != nil {
		writeError(c, err)
		return
	}
	out := make([]auditJSON, len(log))
	for i, e := range log {
		out[i] = auditJSON{Seq: e.Seq, At: e.At.UTC(), Actor: e.Actor, Action: e.Action, Target: e.Target,
			Before: orNull(e.Before), After: orNull(e.After)}
	}
	c.JSON(http.StatusOK, out)
}

// auditParam reads an optional positive integer query parameter.
func auditParam(c *gin.Context, name string, def, max int64) (int64, error) {
	v, ok := c.GetQuery(name)
	if !ok {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || n > max {
		return 0, fhir.Errorf(fhir.KindInvalid, "%s must be an integer from 1 to %d", name, max)
	}
	return n, nil
}

func orNull(b []byte) json.RawMessage {
	if b == nil {
		return json.RawMessage("null")
	}
	return b
}
