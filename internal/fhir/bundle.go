package fhir

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Bundle is an R4 Bundle whose entry resources stay raw JSON, so stored
// resources are emitted exactly as kept.
type Bundle struct {
	ResourceType string        `json:"resourceType"`
	ID           string        `json:"id,omitempty"`
	Meta         *BundleMeta   `json:"meta,omitempty"`
	Type         string        `json:"type"`
	Timestamp    string        `json:"timestamp,omitempty"`
	Total        *int          `json:"total,omitempty"`
	Link         []BundleLink  `json:"link,omitempty"`
	Entry        []BundleEntry `json:"entry,omitempty"`
}

// BundleMeta is Bundle.meta.
type BundleMeta struct {
	LastUpdated string `json:"lastUpdated,omitempty"`
}

// BundleLink is Bundle.link.
type BundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

// BundleEntry is Bundle.entry.
type BundleEntry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Search   *EntrySearch    `json:"search,omitempty"`
	Request  *EntryRequest   `json:"request,omitempty"`
	Response *EntryResponse  `json:"response,omitempty"`
}

// EntrySearch is Bundle.entry.search.
type EntrySearch struct {
	Mode string `json:"mode"`
}

// EntryRequest is Bundle.entry.request.
type EntryRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

// EntryResponse is Bundle.entry.response.
type EntryResponse struct {
	Status       string          `json:"status"`
	Location     string          `json:"location,omitempty"`
	Etag         string          `json:"etag,omitempty"`
	LastModified string          `json:"lastModified,omitempty"`
	Outcome      json.RawMessage `json:"outcome,omitempty"`
}

// NewBundle starts a Bundle of the given type stamped with now.
func NewBundle(typ string, now time.Time) *Bundle {
	return &Bundle{ResourceType: "Bundle", Type: typ, Timestamp: FormatInstant(now)}
}

// JSON renders the bundle: the bytes encoding/json would give (with HTML
// escaping off, so stored resources keep their bytes, json.Compact aside),
// written without reflection (appendBundle). Entry resources and outcomes
// must be valid JSON, as stored and built ones are.
func (b *Bundle) JSON() []byte {
	return b.appendJSON(make([]byte, 0, b.sizeHint()))
}

// AppendJSON appends what JSON returns to dst (a buffer to reuse).
func (b *Bundle) AppendJSON(dst []byte) []byte {
	return b.appendJSON(slices.Grow(dst, b.sizeHint()))
}

// StatusText renders an HTTP status as Bundle.entry.response.status wants it: "201 Created".
func StatusText(code int) string {
	return strconv.Itoa(code) + " " + http.StatusText(code)
}

// ETag renders a weak ETag for a version id: W/"3".
func ETag(versionID int64) string {
	return `W/"` + strconv.FormatInt(versionID, 10) + `"`
}
