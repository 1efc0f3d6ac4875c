package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/notifytoken"
)

const (
	principalKey = "herald.principal"
	requestIDKey = "herald.request_id"
	fhirJSONType = "application/fhir+json; charset=utf-8"
)

// requestID takes a sane X-Request-Id from the client or mints one, and
// echoes it so logs and clients can be correlated.
func (s *Server) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-Id")
	if !saneRequestID(id) {
		var b [12]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	c.Set(requestIDKey, id)
	c.Header("X-Request-Id", id)
	c.Next()
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// logRequests logs one line per request: the route pattern, not the path or
// query (ids and search values can be PHI), and never headers or bodies.
func (s *Server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	level := slog.LevelInfo
	if c.Writer.Status() >= 500 {
		level = slog.LevelError
	}
	if !s.opts.Logger.Enabled(c.Request.Context(), level) {
		return // building the line costs more than the rest of a cached read
	}
	route := c.FullPath()
	if route == "" {
		route = "(no route)"
	}
	attrs := []slog.Attr{
		slog.String("request_id", c.GetString(requestIDKey)),
		slog.String("method", c.Request.Method),
		slog.String("route", route),
		slog.Int("status", c.Writer.Status()),
		slog.Duration("duration", time.Since(start)),
	}
	if p := principal(c); p != nil {
		attrs = append(attrs, slog.String("client_id", p.ClientID))
	}
	for _, e := range c.Errors {
		attrs = append(attrs, slog.String("error", e.Error()))
	}
	s.opts.Logger.LogAttrs(c.Request.Context(), level, "request", attrs...)
}

// requestDeadline gives the request's work a deadline shorter than the
// server's write timeout, so a request stuck behind a lock ends with an
// answer and a rolled-back transaction instead of a dropped connection and
// a commit nobody hears of.
func (s *Server) requestDeadline(c *gin.Context) {
	if s.opts.RequestTimeout <= 0 {
		c.Next()
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)
	c.Next()
}

// recoverPanics turns a panic into a 500 OperationOutcome that reveals nothing.
func (s *Server) recoverPanics(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			s.opts.Logger.Error("panic", "request_id", c.GetString(requestIDKey), "panic", fmt.Sprint(v))
			writeError(c, errors.New("panic"))
			c.Abort()
		}
	}()
	c.Next()
}

// fhirJSON enforces FHIR JSON: XML or other response formats get 406,
// request bodies of another media type get 415.
func (s *Server) fhirJSON(c *gin.Context) {
	if f := c.Query("_format"); f != "" && !jsonMediaType(f) && f != "json" {
		abort(c, fhir.Errorf(fhir.KindNotAcceptable, "_format %q is not supported: Herald speaks FHIR JSON only (use _format=json)", clipText(f)))
		return
	}
	if a := c.GetHeader("Accept"); a != "" && !acceptsJSON(a) {
		abort(c, fhir.Errorf(fhir.KindNotAcceptable, "Accept %q cannot be satisfied: Herald answers application/fhir+json only", clipText(a)))
		return
	}
	if c.Request.Method == "POST" || c.Request.Method == "PUT" {
		if c.Request.Method == "POST" && strings.HasSuffix(c.FullPath(), "/_search") {
			c.Next()
			return
		}
		if c.Request.ContentLength == 0 && c.GetHeader("Content-Type") == "" {
			c.Next() // no body (e.g. POST of an operation without parameters)
			return
		}
		if err := checkContentType(c.GetHeader("Content-Type")); err != nil {
			abort(c, err)
			return
		}
	}
	c.Next()
}

func checkContentType(ct string) error {
	if ct == "" {
		return fhir.Errorf(fhir.KindUnsupportedMedia, "Content-Type is missing: send application/fhir+json")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !jsonMediaType(mt) {
		return fhir.Errorf(fhir.KindUnsupportedMedia, "Content-Type %q is not supported: send application/fhir+json", clipText(ct))
	}
	if v, ok := params["fhirversion"]; ok && v != "4.0" && v != "4.0.1" {
		return fhir.Errorf(fhir.KindUnsupportedMedia, "fhirVersion %q is not supported: Herald serves FHIR R4 (4.0)", clipText(v))
	}
	return nil
}

func jsonMediaType(mt string) bool {
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/fhir+json" || mt == "application/json" || mt == "application/json+fhir"
}

// acceptsJSON reports whether an Accept header admits a JSON response.
func acceptsJSON(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if params["q"] == "0" {
			continue
		}
		if jsonMediaType(mt) || mt == "*/*" || mt == "application/*" {
			return true
		}
	}
	return false
}

// authenticate requires a valid bearer token and stores its Principal.
func (s *Server) authenticate(c *gin.Context) {
	token, ok := auth.BearerToken(c.GetHeader("Authorization"))
	if !ok {
		c.Header("WWW-Authenticate", `Bearer realm="herald"`)
		abort(c, fhir.Errorf(fhir.KindUnauthorized, "a bearer token is required (Authorization: Bearer <JWT>)"))
		return
	}
	if s.opts.NotificationTokens != nil && s.opts.Operations != nil && notifytoken.Is(token) {
		s.authenticateNotification(c, token)
		return
	}
	p, err := s.opts.Auth.Verify(c.Request.Context(), token)
	if err != nil {
		var ae *auth.Error
		reason := "the token is not valid"
		if errors.As(err, &ae) {
			reason = ae.Reason // a fixed phrase; never contains the token
		}
		c.Header("WWW-Authenticate", `Bearer realm="herald", error="invalid_token"`)
		abort(c, &fhir.Error{Kind: fhir.KindUnauthorized, Message: "invalid bearer token: " + reason, Err: err})
		return
	}
	c.Set(principalKey, p)
	c.Next()
}

// authenticateNotification admits a notification access token for what it
// grants and nothing else: a read (GET /fhir/{type}/{id}) of a resource the
// notification named, or a vread of the version it named; then the
// handler's own checks run with the Subscription owner's grants now.
func (s *Server) authenticateNotification(c *gin.Context, token string) {
	g, err := s.opts.NotificationTokens.Verify(s.opts.BaseURL, token)
	if err != nil {
		c.Header("WWW-Authenticate", `Bearer realm="herald", error="invalid_token"`)
		abort(c, &fhir.Error{Kind: fhir.KindUnauthorized, Message: "invalid bearer token: the notification token is not valid (signature, audience or expiry)", Err: err})
		return
	}
	var version int64
	switch c.FullPath() {
	case "/fhir/:type/:id":
	case "/fhir/:type/:id/_history/:vid":
		if version, err = strconv.ParseInt(c.Param("vid"), 10, 64); err != nil || version <= 0 {
			version = -1 // matches no grant
		}
	default:
		version = -1
	}
	if c.Request.Method != http.MethodGet || version < 0 || !g.Allows(c.Param("type"), c.Param("id"), version) {
		abort(c, fhir.Errorf(fhir.KindForbidden, "a notification token reads only the resources its notification names"))
		return
	}
	owner, err := s.opts.Operations.NotificationReader(c.Request.Context(), g)
	if err != nil {
		abort(c, err)
		return
	}
	owner.ExpiresAt = g.ExpiresAt
	c.Set(principalKey, owner)
	c.Next()
}

func principal(c *gin.Context) *auth.Principal {
	v, ok := c.Get(principalKey)
	if !ok {
		return nil
	}
	p, _ := v.(*auth.Principal)
	return p
}

func clipText(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
