package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/herald-fhir/herald/internal/allowlist"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/strictjson"
)

// The admin API manages the endpoint allow-list and the client registry. It
// speaks plain JSON (documented in api/openapi.yaml) but keeps the FHIR
// surface's single error language: every error is an OperationOutcome
// (application/fhir+json) written by writeError.

// Limits of admin input, documented in api/openapi.yaml.
const (
	maxClientIDLen = 128
	maxNoteLen     = 1024 // characters
)

// Enumerations of the client registry (the store enforces the same sets).
var (
	clientStatuses    = []string{"active", "suspended"}
	clientMaxPayloads = []string{"empty", "id-only", "full-resource"}
)

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

// adminStoreError maps the store's sentinel errors; anything else is internal.
func adminStoreError(err error, notFound string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &fhir.Error{Kind: fhir.KindNotFound, Message: notFound, Err: err}
	default:
		return err
	}
}

// adminNow is the time admin writes record, to the store's millisecond.
func (s *Server) adminNow() time.Time {
	return time.Now().UTC().Truncate(time.Millisecond)
}

func (s *Server) listEndpoints(c *gin.Context) {
	es, err := s.opts.Admin.Endpoints(c.Request.Context())
	if err != nil {
		writeError(c, err)
		return
	}
	out := make([]endpointJSON, len(es))
	for i, e := range es {
		out[i] = toEndpointJSON(e)
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) addEndpoint(c *gin.Context) {
	var in endpointInput
	if !s.decodeAdminBody(c, &in) {
		return
	}
	prefix, err := allowlist.ParseEntry(in.URLPrefix)
	if err != nil {
		// The *URLError text is meant for API clients and never repeats user information.
		writeError(c, &fhir.Error{Kind: fhir.KindUnprocessable, Message: "url_prefix: " + err.Error()})
		return
	}
	if err := adminNote(in.Note); err != nil {
		writeError(c, err)
		return
	}
	e := store.AllowedEndpoint{
		ID:                  uuid.NewString(),
		URLPrefix:           prefix.String(),
		AllowPrivateNetwork: in.AllowPrivateNetwork,
		Note:                in.Note,
		CreatedAt:           s.adminNow(),
	}
	if err := s.opts.Admin.AddEndpoint(c.Request.Context(), e); err != nil {
		if errors.Is(err, store.ErrConflict) {
			writeError(c, &fhir.Error{Kind: fhir.KindConflict, Message: fmt.Sprintf("an allow-list entry for %s exists already", e.URLPrefix), Err: err})
			return
		}
		writeError(c, err)
		return
	}
	c.Header("Location", "/admin/endpoints/"+e.ID)
	c.JSON(http.StatusCreated, toEndpointJSON(e))
}

func adminNote(note string) error {
	if utf8.RuneCountInString(note) > maxNoteLen {
		return &fhir.Error{Kind: fhir.KindUnprocessable, Message: fmt.Sprintf("note: longer than %d characters", maxNoteLen)}
	}
	for _, r := range note {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return &fhir.Error{Kind: fhir.KindUnprocessable, Message: "note: must not contain control characters other than tab and newline"}
		}
	}
	return nil
}

func (s *Server) removeEndpoint(c *gin.Context) {
	id := c.Param("id")
	if err := s.opts.Admin.RemoveEndpoint(c.Request.Context(), id); err != nil {
		writeError(c, adminStoreError(err, fmt.Sprintf("no allow-list entry has id %q", clipText(id))))
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) listClients(c *gin.Context) {
	cs, err := s.opts.Admin.Clients(c.Request.Context())
	if err != nil {
		writeError(c, err)
		return
	}
	out := make([]clientJSON, len(cs))
	for i, cl := range cs {
		out[i] = toClientJSON(cl)
	}
	c.JSON(http.StatusOK, out)
}

// clientIDParam is the {client_id} of a catch-all route (client ids may hold
// "/"), validated: 1–128 characters of [A-Za-z0-9._:@/-].
func clientIDParam(c *gin.Context) (string, error) {
	id := strings.TrimPrefix(c.Param("client_id"), "/")
	if id == "" || len(id) > maxClientIDLen {
		return "", fhir.Errorf(fhir.KindInvalid, "client_id must be 1 to %d characters long", maxClientIDLen)
	}
	for i := range len(id) {
		if !clientIDChar(id[i]) {
			return "", fhir.Errorf(fhir.KindInvalid, "client_id may contain only letters, digits and . _ : @ / -")
		}
	}
	return id, nil
}

func clientIDChar(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || strings.IndexByte("._:@/-", b) >= 0
}

func (s *Server) getClient(c *gin.Context) {
	id, err := clientIDParam(c)
	if err != nil {
		writeError(c, err)
		return
	}
	cl, err := s.opts.Admin.Client(c.Request.Context(), id)
	if err != nil {
		writeError(c, adminStoreError(err, fmt.Sprintf("client %q has no registry entry (it gets the configured defaults)", id)))
		return
	}
	c.JSON(http.StatusOK, toClientJSON(cl))
}

func (s *Server) putClient(c *gin.Context) {
	id, err := clientIDParam(c)
	if err != nil {
		writeError(c, err)
		return
	}
	var in clientInput
	if !s.decodeAdminBody(c, &in) {
		return
	}
	if err := adminEnum("status", in.Status, clientStatuses); err != nil {
		writeError(c, err)
		return
	}
	if err := adminEnum("max_payload", in.MaxPayload, clientMaxPayloads); err != nil {
		writeError(c, err)
		return
	}
	scopes := strings.Fields(in.ScopeCeiling)
	for _, sc := range scopes {
		if _, err := auth.ParseScope(sc); err != nil {
			writeError(c, &fhir.Error{Kind: fhir.KindUnprocessable, Message: "scope_ceiling: " + err.Error()})
			return
		}
	}
	cl := store.Client{
		ClientID:     id,
		Status:       in.Status,
		MaxPayload:   in.MaxPayload,
		ScopeCeiling: strings.Join(scopes, " "),
		UpdatedAt:    s.adminNow(),
	}
	created, err := s.opts.Admin.PutClient(c.Request.Context(), cl)
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

func adminEnum(field, v string, allowed []string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	what := fmt.Sprintf("%q is not", clipText(v))
	if v == "" {
		what = "is required and must be"
	}
	return &fhir.Error{
		Kind:    fhir.KindUnprocessable,
		Message: fmt.Sprintf("%s: %s one of %s", field, what, strings.Join(allowed, ", ")),
	}
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
