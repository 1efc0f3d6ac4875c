package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/strictjson"
)

// Build returns the notification Bundle (type history, profile
// backport-subscription-notification-r4) for s, as JSON.
//
// baseURL is the absolute FHIR base ("https://example.org/fhir"); now stamps
// Bundle.timestamp; newID mints the ids of the Bundle and the status
// Parameters (nil: random UUIDs; the Parameters fullUrl is urn:uuid:<id>, so
// ids should be UUIDs).
//
// events must be consecutive, ascending, and no later than
// s.EventsSinceStart: at least one for event-notification, any number for
// query-event ($events), none for handshake, heartbeat and query-status. An
// event-notification reports the highest event number it carries as
// events-since-subscription-start; the other types report
// s.EventsSinceStart.
//
// The payload content decides the rest:
//   - empty: no topic, focus, additional-context or entries beyond the status;
//   - id-only: focus and additional-context references, and one entry per
//     focus and included resource with fullUrl, request and response but no
//     resource;
//   - full-resource: the same entries carrying the stored resources as given.
//
// Focus entries mirror the trigger (POST Type → 201, PUT Type/id → 200, or
// 201 when it created version 1, DELETE Type/id → 204); included resources
// read as GET Type/id → 200. An included resource that is also the focus of
// an event in the Bundle, or included twice at the same version, gets one
// entry.
func Build(baseURL string, s Subscription, typ Type, events []Event, now time.Time, newID func() string) ([]byte, error) {
	base, err := checkBase(baseURL)
	if err != nil {
		return nil, err
	}
	if now.IsZero() {
		return nil, invalid("zero timestamp")
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	if err := validateEvents(&s, typ, events); err != nil {
		return nil, err
	}
	if newID == nil {
		newID = uuid.NewString
	}

	b := bundle{
		ResourceType: "Bundle",
		ID:           newID(),
		Meta:         &meta{Profile: []string{fhir.ProfileNotificationR4}},
		Type:         "history",
		Timestamp:    fhir.FormatInstant(now),
		Entry:        make([]entry, 1, 1+entryCount(s.Content, events)),
	}
	count := s.EventsSinceStart
	if typ == EventNotification {
		count = events[len(events)-1].Number
	}
	p := statusParameters(base, &s, typ, count, events, newID())
	b.Entry[0] = entry{
		FullURL:  "urn:uuid:" + p.ID,
		Resource: p,
		Request:  &request{Method: "GET", URL: base + "/Subscription/" + s.ID + "/$status"},
		Response: &response{Status: "200"},
	}
	if s.Content != fhir.ContentEmpty {
		if err := appendEntries(&b, base, s.Content == fhir.ContentFullResource, events); err != nil {
			return nil, err
		}
	}
	return encode(&b)
}

// StatusParameters returns the status Parameters (profile
// backport-subscription-status-r4, type query-status) for s, as JSON, with
// an id from newID (nil: a random UUID). It is the resource $status reports
// per Subscription; StatusBundle wraps several in the $status searchset.
func StatusParameters(baseURL string, s Subscription, newID func() string) ([]byte, error) {
	base, err := checkBase(baseURL)
	if err != nil {
		return nil, err
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	if newID == nil {
		newID = uuid.NewString
	}
	return encode(statusParameters(base, &s, QueryStatus, s.EventsSinceStart, nil, newID()))
}

// StatusBundle returns the $status answer for subs, as JSON: a searchset
// Bundle with one query-status Parameters per Subscription, in the given
// order, each entry with fullUrl urn:uuid:<id> and search.mode match. now
// stamps Bundle.timestamp; newID mints the Bundle and Parameters ids (nil:
// random UUIDs).
func StatusBundle(baseURL string, subs []Subscription, now time.Time, newID func() string) ([]byte, error) {
	base, err := checkBase(baseURL)
	if err != nil {
		return nil, err
	}
	if now.IsZero() {
		return nil, invalid("zero timestamp")
	}
	for i := range subs {
		if err := subs[i].validate(); err != nil {
			return nil, err
		}
	}
	if newID == nil {
		newID = uuid.NewString
	}
	total := len(subs)
	b := bundle{
		ResourceType: "Bundle",
		ID:           newID(),
		Type:         "searchset",
		Timestamp:    fhir.FormatInstant(now),
		Total:        &total,
		Entry:        make([]entry, len(subs)),
	}
	for i := range subs {
		p := statusParameters(base, &subs[i], QueryStatus, subs[i].EventsSinceStart, nil, newID())
		b.Entry[i] = entry{FullURL: "urn:uuid:" + p.ID, Resource: p, Search: &search{Mode: "match"}}
	}
	return encode(&b)
}

// checkBase returns the absolute base URL without trailing slashes.
func checkBase(baseURL string) (string, error) {
	base := strings.TrimRight(baseURL, "/")
	if !strings.HasPrefix(base, "https://") && !strings.HasPrefix(base, "http://") || strings.ContainsAny(base, " ?#") {
		return "", invalid("base URL %q is not absolute", baseURL)
	}
	return base, nil
}

// statusParameters builds the status Parameters. Parameter order follows the
// IG's notification examples: subscription, topic, status, type,
// events-since-subscription-start, notification-event*, error*.
func statusParameters(base string, s *Subscription, typ Type, count int64, events []Event, id string) *parameters {
	p := &parameters{
		ResourceType: "Parameters",
		ID:           id,
		Meta:         meta{Profile: []string{fhir.ProfileStatusR4}},
		Parameter:    make([]param, 0, 5+len(events)+len(s.Errors)),
	}
	p.Parameter = append(p.Parameter, param{Name: "subscription", ValueReference: &reference{Reference: base + "/Subscription/" + s.ID}})
	if s.Content != fhir.ContentEmpty { // topic: SHOULD NOT for empty, MAY for id-only, SHOULD for full-resource
		p.Parameter = append(p.Parameter, param{Name: "topic", ValueCanonical: s.Topic})
	}
	p.Parameter = append(p.Parameter,
		param{Name: "status", ValueCode: s.Status},
		param{Name: "type", ValueCode: string(typ)},
		param{Name: "events-since-subscription-start", ValueString: strconv.FormatInt(count, 10)},
	)
	showFocus := s.Content != fhir.ContentEmpty
	for i := range events {
		e := &events[i]
		parts := make([]param, 0, 3+len(e.Additional))
		parts = append(parts, param{Name: "event-number", ValueString: strconv.FormatInt(e.Number, 10)})
		if !e.Timestamp.IsZero() {
			parts = append(parts, param{Name: "timestamp", ValueInstant: fhir.FormatInstant(e.Timestamp)})
		}
		if showFocus {
			parts = append(parts, param{Name: "focus", ValueReference: &reference{Reference: fullURL(base, e.Focus)}})
			for j, a := range e.Additional {
				if !repeated(e.Additional[:j], a.Ref) {
					parts = append(parts, param{Name: "additional-context", ValueReference: &reference{Reference: fullURL(base, a.Ref)}})
				}
			}
			if e.AccessToken != "" {
				parts = append(parts,
					param{Name: "authorization-type", ValueCoding: &coding{System: fhir.NotificationAuthType, Code: "bearer-token"}},
					param{Name: "authorization-value", ValueString: e.AccessToken})
			}
		}
		p.Parameter = append(p.Parameter, param{Name: "notification-event", Part: parts})
	}
	for _, e := range s.Errors {
		cc := &codeableConcept{Text: e.Text}
		if e.Code != "" {
			cc.Coding = []coding{{System: e.System, Code: e.Code, Display: e.Display}}
		}
		p.Parameter = append(p.Parameter, param{Name: "error", ValueCodeableConcept: cc})
	}
	return p
}

// repeated reports whether seen already includes r's resource (any version:
// additional-context references are version-independent).
func repeated(seen []Included, r Ref) bool {
	for _, a := range seen {
		if a.Type == r.Type && a.ID == r.ID {
			return true
		}
	}
	return false
}

func entryCount(content string, events []Event) int {
	if content == fhir.ContentEmpty {
		return 0
	}
	n := len(events)
	for i := range events {
		n += len(events[i].Additional)
	}
	return n
}

// appendEntries adds, per event, the focus entry and then the entries of its
// included resources not already in the Bundle at the same version.
func appendEntries(b *bundle, base string, full bool, events []Event) error {
	type key struct {
		typ, id string
		version int64
	}
	var seen map[key]bool
	for i := range events {
		e := &events[i]
		fe := entry{
			FullURL:  fullURL(base, e.Focus),
			Request:  &request{Method: string(e.Method), URL: e.Focus.Type + "/" + e.Focus.ID},
			Response: &response{Status: "200", Etag: etag(e.Focus.VersionID)},
		}
		switch {
		case e.Method == Create:
			fe.Request.URL = e.Focus.Type
			fe.Response.Status = "201"
		case e.Method == Delete:
			fe.Response.Status = "204"
		case e.Focus.VersionID == 1: // an update that created the resource
			fe.Response.Status = "201"
		}
		if full && e.Resource != nil {
			if err := checkResource(e.Resource, e.Focus); err != nil {
				return err
			}
			fe.Resource = json.RawMessage(e.Resource)
		}
		b.Entry = append(b.Entry, fe)
		if len(e.Additional) == 0 {
			continue
		}
		if seen == nil {
			seen = make(map[key]bool)
			for j := range events { // focus versions already have their entries
				f := &events[j]
				if f.Focus.VersionID > 0 && f.Method != Delete && (!full || f.Resource != nil) {
					seen[key{f.Focus.Type, f.Focus.ID, f.Focus.VersionID}] = true
				}
			}
		}
		for _, a := range e.Additional {
			k := key{a.Type, a.ID, a.VersionID} // version 0 (unknown) matches only itself
			if seen[k] {
				continue
			}
			seen[k] = true
			ae := entry{
				FullURL:  fullURL(base, a.Ref),
				Request:  &request{Method: "GET", URL: a.Type + "/" + a.ID},
				Response: &response{Status: "200", Etag: etag(a.VersionID)},
			}
			if full && a.Resource != nil {
				if err := checkResource(a.Resource, a.Ref); err != nil {
					return err
				}
				ae.Resource = json.RawMessage(a.Resource)
			}
			b.Entry = append(b.Entry, ae)
		}
	}
	return nil
}

// checkResource makes sure the stored bytes are a JSON object of the
// referenced resource, so a notification never carries the wrong resource.
// It reads members only until resourceType and id are known (stored
// resources start with them); the encoder validates the rest as it embeds
// the bytes.
func checkResource(body []byte, r Ref) error {
	if startsWith(body, r) {
		return nil
	}
	typ, id, err := resourceHead(body)
	if err != nil {
		return invalid("stored %s/%s is not a JSON object: %v", r.Type, r.ID, err)
	}
	if typ != r.Type || id != r.ID {
		return invalid("stored resource %s/%s given for %s/%s", typ, id, r.Type, r.ID)
	}
	return nil
}

// startsWith reports whether body begins {"resourceType":"<Type>","id":"<id>",
// as resources stored by Herald do. Types and ids need no JSON escaping.
func startsWith(body []byte, r Ref) bool {
	for _, part := range [...]string{`{"resourceType":"`, r.Type, `","id":"`, r.ID, `"`} {
		if !bytes.HasPrefix(body, []byte(part)) {
			return false
		}
		body = body[len(part):]
	}
	return len(body) > 0 && (body[0] == ',' || body[0] == '}')
}

var errNotObject = errors.New("not an object")

// resourceHead returns the resourceType and id members of a JSON object.
func resourceHead(body []byte) (typ, id string, err error) {
	v, err := strictjson.Parse(body)
	if err != nil {
		return "", "", err
	}
	if v.Kind != strictjson.Object {
		return "", "", errNotObject
	}
	typ, _ = v.Get("resourceType").String()
	id, _ = v.Get("id").String()
	return typ, id, nil
}

func fullURL(base string, r Ref) string { return base + "/" + r.Type + "/" + r.ID }

func etag(version int64) string {
	if version <= 0 {
		return ""
	}
	return fhir.ETag(version)
}

// encode marshals v without HTML escaping, so embedded stored resources keep
// their characters; json.RawMessage values are only compacted. The wire
// shapes are written by hand (encode.go); encodeReflect is the same
// through encoding/json, for what encode.go does not know.
func encode(v any) ([]byte, error) {
	if out, ok := appendValue(make([]byte, 0, sizeHint(v)), v); ok {
		return out, nil
	}
	return encodeReflect(v)
}

func encodeReflect(v any) ([]byte, error) {
	var buf bytes.Buffer // the encoder writes once, from its pooled state
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, invalid("%v", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// The wire shapes. Stored resources are json.RawMessage; everything else is
// built here.

type bundle struct {
	ResourceType string  `json:"resourceType"`
	ID           string  `json:"id,omitempty"`
	Meta         *meta   `json:"meta,omitempty"`
	Type         string  `json:"type"`
	Timestamp    string  `json:"timestamp"`
	Total        *int    `json:"total,omitempty"`
	Entry        []entry `json:"entry,omitempty"` // FHIR JSON has no empty arrays
}

type meta struct {
	Profile []string `json:"profile"`
}

type entry struct {
	FullURL  string    `json:"fullUrl"`
	Resource any       `json:"resource,omitempty"` // *parameters or json.RawMessage; nil when absent
	Search   *search   `json:"search,omitempty"`
	Request  *request  `json:"request,omitempty"`
	Response *response `json:"response,omitempty"`
}

type search struct {
	Mode string `json:"mode"`
}

type request struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

type response struct {
	Status string `json:"status"`
	Etag   string `json:"etag,omitempty"`
}

type parameters struct {
	ResourceType string  `json:"resourceType"`
	ID           string  `json:"id"`
	Meta         meta    `json:"meta"`
	Parameter    []param `json:"parameter"`
}

type param struct {
	Name                 string           `json:"name"`
	ValueReference       *reference       `json:"valueReference,omitempty"`
	ValueCanonical       string           `json:"valueCanonical,omitempty"`
	ValueCode            string           `json:"valueCode,omitempty"`
	ValueString          string           `json:"valueString,omitempty"`
	ValueInstant         string           `json:"valueInstant,omitempty"`
	ValueCodeableConcept *codeableConcept `json:"valueCodeableConcept,omitempty"`
	ValueCoding          *coding          `json:"valueCoding,omitempty"`
	Part                 []param          `json:"part,omitempty"`
}

type reference struct {
	Reference string `json:"reference"`
}

type codeableConcept struct {
	Coding []coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

type coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}
