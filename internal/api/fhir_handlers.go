package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/semaphore"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store"
)

func (s *Server) create(c *gin.Context) {
	body, ok := s.readBody(c)
	if !ok {
		return
	}
	if h := c.GetHeader("If-None-Exist"); h != "" {
		condition, err := fhir.ParseParams(strings.TrimPrefix(h, "?"), s.opts.ParamLimits)
		if err != nil {
			writeError(c, err)
			return
		}
		res, err := s.opts.Resources.ConditionalCreate(c.Request.Context(), principal(c), c.Param("type"), body, condition)
		s.respondWrite(c, res, err)
		return
	}
	res, err := s.opts.Resources.Create(c.Request.Context(), principal(c), c.Param("type"), body)
	s.respondWrite(c, res, err)
}

// conditionalUpdate is PUT /{type}?query.
func (s *Server) conditionalUpdate(c *gin.Context) {
	body, ok := s.readBody(c)
	if !ok {
		return
	}
	res, err := s.opts.Resources.ConditionalUpdate(c.Request.Context(), principal(c), c.Param("type"), c.Request.URL.Query(), body, c.GetHeader("If-Match"))
	s.respondWrite(c, res, err)
}

// conditionalDelete is DELETE /{type}?query.
func (s *Server) conditionalDelete(c *gin.Context) {
	_, err := s.opts.Resources.ConditionalDelete(c.Request.Context(), principal(c), c.Param("type"), c.Request.URL.Query(), c.GetHeader("If-Match"))
	if err != nil {
		writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// patch is PATCH /{type}/{id} with a JSON Patch (application/json-patch+json).
func (s *Server) patch(c *gin.Context) {
	if mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type")); err != nil || mt != "application/json-patch+json" {
		writeError(c, fhir.Errorf(fhir.KindUnsupportedMedia, "PATCH takes a JSON Patch (Content-Type: application/json-patch+json)"))
		return
	}
	body, ok := s.readBody(c)
	if !ok {
		return
	}
	res, err := s.opts.Resources.Patch(c.Request.Context(), principal(c), c.Param("type"), c.Param("id"), body, c.GetHeader("If-Match"))
	s.respondWrite(c, res, err)
}

func (s *Server) update(c *gin.Context) {
	body, ok := s.readBody(c)
	if !ok {
		return
	}
	res, err := s.opts.Resources.Update(c.Request.Context(), principal(c), c.Param("type"), c.Param("id"), body, c.GetHeader("If-Match"))
	s.respondWrite(c, res, err)
}

func (s *Server) delete(c *gin.Context) {
	_, err := s.opts.Resources.Delete(c.Request.Context(), principal(c), c.Param("type"), c.Param("id"), c.GetHeader("If-Match"))
	if err != nil {
		writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) read(c *gin.Context) {
	if strings.HasPrefix(c.Param("id"), "$") {
		s.typeOperation(c)
		return
	}
	v, err := s.opts.Resources.Read(c.Request.Context(), principal(c), c.Param("type"), c.Param("id"))
	if err == nil && notModified(c, v) {
		versionHeaders(c, v)
		c.Status(http.StatusNotModified)
		return
	}
	s.respondVersion(c, v, err)
}

// notModified applies If-None-Match (the version's ETag, weak comparison,
// or *) and, without it, If-Modified-Since (RFC 9110 §13.1.3).
func notModified(c *gin.Context, v store.Version) bool {
	if inm := c.GetHeader("If-None-Match"); inm != "" {
		for _, tag := range strings.Split(inm, ",") {
			tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
			if tag == "*" || tag == strings.TrimPrefix(fhir.ETag(v.VersionID), "W/") {
				return true
			}
		}
		return false
	}
	since, err := http.ParseTime(c.GetHeader("If-Modified-Since"))
	return err == nil && !v.LastUpdated.Truncate(time.Second).After(since)
}

func (s *Server) vread(c *gin.Context) {
	v, err := s.opts.Resources.VRead(c.Request.Context(), principal(c), c.Param("type"), c.Param("id"), c.Param("vid"))
	s.respondVersion(c, v, err)
}

func (s *Server) history(c *gin.Context) {
	b, err := s.opts.Resources.History(c.Request.Context(), principal(c), c.Param("type"), c.Param("id"), c.Request.URL.Query())
	s.respondBundle(c, b, err)
}

func (s *Server) typeHistory(c *gin.Context) {
	if !s.admitSearch(c) {
		return
	}
	b, err := s.opts.Resources.TypeHistory(c.Request.Context(), principal(c), c.Param("type"), c.Request.URL.Query())
	s.respondBundle(c, b, err)
}

func (s *Server) systemHistory(c *gin.Context) {
	if !s.admitSearch(c) {
		return
	}
	b, err := s.opts.Resources.SystemHistory(c.Request.Context(), principal(c), c.Request.URL.Query())
	s.respondBundle(c, b, err)
}

func (s *Server) search(c *gin.Context) {
	if !s.admitSearch(c) {
		return
	}
	b, err := s.opts.Resources.Search(c.Request.Context(), principal(c), c.Param("type"), c.Request.URL.Query(), strictHandling(c))
	s.respondBundle(c, b, err)
}

// compartmentSearch is GET /Patient/{id}/{type}; it shares the route of
// instance operations (GET /{type}/{id}/{op}).
func (s *Server) compartmentSearch(c *gin.Context) {
	if !s.admitSearch(c) {
		return
	}
	b, err := s.opts.Resources.CompartmentSearch(c.Request.Context(), principal(c), c.Param("id"), c.Param("op"), c.Request.URL.Query(), strictHandling(c))
	s.respondBundle(c, b, err)
}

// searchPost is search with the parameters in a form body, as FHIR allows.
func (s *Server) searchPost(c *gin.Context) {
	if mt := c.ContentType(); mt != "application/x-www-form-urlencoded" && mt != "" {
		writeError(c, fhir.Errorf(fhir.KindUnsupportedMedia, "POST _search takes application/x-www-form-urlencoded parameters"))
		return
	}
	body, ok := s.readBody(c)
	if !ok {
		return
	}
	params, ok := s.formParams(c, body)
	if !ok {
		return
	}
	for k, vs := range c.Request.URL.Query() {
		params[k] = append(params[k], vs...)
	}
	if !s.checkParams(c, params) {
		return
	}
	if !s.admitSearch(c) {
		return
	}
	b, err := s.opts.Resources.Search(c.Request.Context(), principal(c), c.Param("type"), params, strictHandling(c))
	s.respondBundle(c, b, err)
}

func (s *Server) bundle(c *gin.Context) {
	body, ok := s.readBody(c)
	if !ok {
		return
	}
	b, err := s.opts.Resources.Bundle(c.Request.Context(), principal(c), body, preferMinimal(c))
	s.respondBundle(c, b, err)
}

// readBody reads the request body up to the configured limit; over it, the
// request fails with 413 before anything is parsed or stored.
func (s *Server) readBody(c *gin.Context) ([]byte, bool) {
	limit := s.opts.MaxBodyBytes
	if c.Request.ContentLength > limit {
		writeError(c, tooLarge(limit))
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(c, tooLarge(limit))
		} else {
			writeError(c, &fhir.Error{Kind: fhir.KindInvalid, Message: "the request body could not be read", Err: err})
		}
		return nil, false
	}
	if !s.admitBody(c, int64(len(body))) {
		return nil, false
	}
	return body, true
}

// Keys of what a request took from the Server's admission semaphores.
const (
	bodyWeightKey = "herald.bodyWeight" // bytes of Server.bodies
	searchSlotKey = "herald.searchSlot" // one of Server.searches
)

// admitBody waits until the body's bytes fit Options.BodyBytesInFlight
// (released when the request ends: releaseAdmissions); a request whose
// deadline passes first gets 503 with Retry-After.
func (s *Server) admitBody(c *gin.Context, n int64) bool {
	if n == 0 {
		return true
	}
	return s.admit(c, s.bodies, min(n, s.bodyCap), bodyWeightKey, "the server is busy with other large requests; retry later")
}

// admitSearch waits for one of Options.SearchesInFlight, in arrival order:
// beyond what the cores can work on at once, more concurrent searches only
// share them ever more thinly, and every answer comes later; waiting in line
// instead keeps the slowest answers close to the typical one.
func (s *Server) admitSearch(c *gin.Context) bool {
	return s.admit(c, s.searches, 1, searchSlotKey, "the server is busy with other searches; retry later")
}

// admit takes n of sem for the request until its answer starts (or the
// request ends: releaseAdmissions), under key; a request whose deadline
// passes first gets 503 with Retry-After and busy as the reason.
func (s *Server) admit(c *gin.Context, sem *semaphore.Weighted, n int64, key, busy string) bool {
	if err := sem.Acquire(c.Request.Context(), n); err != nil {
		writeError(c, &fhir.Error{Kind: fhir.KindUnavailable, Err: err, Message: busy})
		return false
	}
	var once sync.Once
	release := func() { once.Do(func() { sem.Release(n) }) }
	c.Set(key, release)
	// The answer starts once the work is done: a client that reads it
	// slowly must not hold the semaphore (up to the write timeout).
	c.Writer = &releasingWriter{ResponseWriter: c.Writer, release: release}
	return true
}

// releaseAdmissions gives back what admit took, once the request is done
// (if the answer has not already).
func (s *Server) releaseAdmissions(c *gin.Context) {
	c.Next()
	for _, key := range []string{bodyWeightKey, searchSlotKey} {
		if release, ok := c.Get(key); ok {
			release.(func())()
		}
	}
}

// releasingWriter releases what a request was admitted with when its answer starts.
type releasingWriter struct {
	gin.ResponseWriter
	release func()
}

func (w *releasingWriter) WriteHeader(code int) { w.release(); w.ResponseWriter.WriteHeader(code) }
func (w *releasingWriter) WriteHeaderNow()      { w.release(); w.ResponseWriter.WriteHeaderNow() }
func (w *releasingWriter) Write(b []byte) (int, error) {
	w.release()
	return w.ResponseWriter.Write(b)
}
func (w *releasingWriter) WriteString(s string) (int, error) {
	w.release()
	return w.ResponseWriter.WriteString(s)
}

func tooLarge(limit int64) error {
	return fhir.Errorf(fhir.KindTooLarge, "the request body exceeds the limit of %d bytes", limit)
}

func (s *Server) respondWrite(c *gin.Context, res resources.Result, err error) {
	if err != nil {
		writeError(c, err)
		return
	}
	v := res.Version
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	c.Header("Location", fmt.Sprintf("%s/%s/%s/_history/%d", s.opts.BaseURL, v.Type, v.ID, v.VersionID))
	versionHeaders(c, v)
	switch preferReturn(c) {
	case "minimal":
		c.Status(status)
	case "OperationOutcome":
		oo := fhir.OperationOutcome{ResourceType: "OperationOutcome", Issue: []fhir.Issue{{
			Severity: "information", Code: "informational",
			Diagnostics: fmt.Sprintf("%s/%s version %d stored", v.Type, v.ID, v.VersionID),
		}}}
		body, _ := json.Marshal(oo)
		c.Data(status, fhirJSONType, body)
	default:
		c.Data(status, fhirJSONType, res.Echo)
	}
}

func (s *Server) respondVersion(c *gin.Context, v store.Version, err error) {
	if err != nil {
		writeError(c, err)
		return
	}
	body, err := resources.ShapeRead(v.Type, c.Request.URL.Query(), v.Body)
	if err != nil {
		writeError(c, err)
		return
	}
	versionHeaders(c, v)
	c.Data(http.StatusOK, fhirJSONType, body)
}

func (s *Server) respondBundle(c *gin.Context, b *fhir.Bundle, err error) {
	if err != nil {
		writeError(c, err)
		return
	}
	buf := bundleBuffers.Get().(*[]byte)
	*buf = b.AppendJSON((*buf)[:0])
	c.Data(http.StatusOK, fhirJSONType, *buf)
	if cap(*buf) <= maxPooledBundle {
		bundleBuffers.Put(buf)
	}
}

// bundleBuffers are Bundle renderings' buffers, reused once written (a
// response writer keeps no slice it is given): the buffers were 19% of
// the bytes allocated in the search benchmark (pprof -sample_index=alloc_space).
// Larger ones than maxPooledBundle go to the collector.
var bundleBuffers = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledBundle = 1 << 20

func versionHeaders(c *gin.Context, v store.Version) {
	c.Header("ETag", fhir.ETag(v.VersionID))
	c.Header("Last-Modified", v.LastUpdated.UTC().Format(http.TimeFormat))
}

// preferReturn is the return preference of the Prefer header: minimal,
// representation or OperationOutcome ("" when absent).
func preferReturn(c *gin.Context) string { return preference(c, "return") }

func preferMinimal(c *gin.Context) bool { return preferReturn(c) == "minimal" }

// strictHandling is Prefer: handling=strict, which makes unknown search
// parameters an error instead of being ignored.
func strictHandling(c *gin.Context) bool {
	return strings.EqualFold(preference(c, "handling"), "strict")
}

// preference is the value of one token of the Prefer header.
func preference(c *gin.Context, name string) string {
	for _, part := range strings.Split(c.GetHeader("Prefer"), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		if strings.EqualFold(k, name) {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}
