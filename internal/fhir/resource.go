package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/herald-fhir/herald/internal/strictjson"
)

// member is one name/value pair of a JSON object, the value kept as sent.
type member struct {
	name  string
	value json.RawMessage
}

// Resource is a parsed FHIR resource that keeps the client's JSON exactly:
// every member other than id and meta.versionId/meta.lastUpdated is written
// back byte for byte (unknown elements, primitive extensions, number text).
type Resource struct {
	Type    string
	ID      string // "" when the client sent none
	members []member
	meta    []member // members of "meta", nil when absent
	root    *strictjson.Value
}

// Parse reads one resource from JSON with strictjson's one exact reading. It
// rejects anything that is not a JSON object with a valid R4 resourceType and
// a valid id (when present).
func Parse(body []byte) (*Resource, error) {
	root, err := parseTree(body)
	if err != nil {
		return nil, err
	}
	return FromTree(root)
}

// FromTree makes a Resource of an object strictjson has parsed (a Bundle
// entry's resource, say), so nothing is parsed twice.
func FromTree(root *strictjson.Value) (*Resource, error) {
	if root.Kind != strictjson.Object {
		return nil, Errorf(KindInvalid, "a resource must be a JSON object")
	}
	r := &Resource{members: members(root), root: root}
	if v := root.Get("resourceType"); v != nil {
		s, ok := v.String()
		if !ok {
			return nil, Errorf(KindInvalid, "resourceType must be a string")
		}
		r.Type = s
	}
	if v := root.Get("id"); v != nil {
		s, ok := v.String()
		if !ok {
			return nil, Errorf(KindInvalid, "id must be a string")
		}
		if !ValidID(s) {
			return nil, Errorf(KindInvalid, "id %q is not a valid FHIR id ([A-Za-z0-9-.]{1,64})", clip(s))
		}
		r.ID = s
	}
	if v := root.Get("meta"); v != nil {
		if v.Kind != strictjson.Object {
			return nil, Errorf(KindInvalid, "meta must be a JSON object")
		}
		r.meta = members(v)
	}
	if r.Type == "" {
		return nil, Errorf(KindInvalid, "resourceType is missing")
	}
	if !IsResourceType(r.Type) {
		return nil, Errorf(KindInvalid, "%q is not a FHIR R4 resource type", clip(r.Type))
	}
	return r, nil
}

// Tree is the parsed form of the resource as the client sent it: what
// validation, the compartment check and the matcher read.
func (r *Resource) Tree() *strictjson.Value { return r.root }

// Has reports whether the resource has a top-level member name.
func (r *Resource) Has(name string) bool {
	for _, m := range r.members {
		if m.name == name {
			return true
		}
	}
	return false
}

// Member returns the raw JSON of a top-level member, or nil.
func (r *Resource) Member(name string) json.RawMessage {
	for _, m := range r.members {
		if m.name == name {
			return m.value
		}
	}
	return nil
}

// Stamp returns the resource JSON with id, meta.versionId and meta.lastUpdated
// set by the server; everything else is kept exactly as sent and in order.
func (r *Resource) Stamp(id string, versionID int64, lastUpdated time.Time) []byte {
	var b bytes.Buffer
	b.Grow(sizeOf(r.members) + 96)
	b.WriteByte('{')
	n := 0
	write := func(name string, value []byte) {
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		writeName(&b, name)
		b.WriteByte(':')
		b.Write(value)
	}
	meta := r.stampMeta(versionID, lastUpdated)
	hasID, hasMeta := r.Has("id"), r.Has("meta")
	for _, m := range r.members {
		switch m.name {
		case "resourceType":
			write(m.name, m.value)
			// A new id and meta go right after resourceType, where readers expect them.
			if !hasID {
				write("id", quote(id))
				if !hasMeta {
					write("meta", meta)
				}
			}
		case "id":
			write("id", quote(id))
			if !hasMeta {
				write("meta", meta)
			}
		case "meta":
			write("meta", meta)
		default:
			write(m.name, m.value)
		}
	}
	b.WriteByte('}')
	return b.Bytes()
}

// StampedMap is what Stamp's bytes decode to (as strictjson.Value.Any
// decodes them), made from the parsed resource without parsing the bytes.
func (r *Resource) StampedMap(id string, versionID int64, lastUpdated time.Time) map[string]any {
	m, _ := r.root.Any().(map[string]any)
	if m == nil {
		return nil
	}
	m["id"] = id
	meta, _ := m["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		m["meta"] = meta
	}
	meta["versionId"] = strconv.FormatInt(versionID, 10)
	meta["lastUpdated"] = FormatInstant(lastUpdated)
	return m
}

func (r *Resource) stampMeta(versionID int64, lastUpdated time.Time) []byte {
	var b bytes.Buffer
	b.WriteString(`{"versionId":`)
	b.Write(quote(strconv.FormatInt(versionID, 10)))
	b.WriteString(`,"lastUpdated":`)
	b.Write(quote(FormatInstant(lastUpdated)))
	for _, m := range r.meta {
		if m.name == "versionId" || m.name == "lastUpdated" {
			continue
		}
		b.WriteByte(',')
		writeName(&b, m.name)
		b.WriteByte(':')
		b.Write(m.value)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// FormatInstant renders t as a FHIR instant with millisecond precision in UTC.
func FormatInstant(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// parseTree reads a JSON object with strictjson; errors become 400s.
func parseTree(data []byte) (*strictjson.Value, error) {
	v, err := strictjson.Parse(data)
	if err != nil {
		return nil, &Error{Kind: KindInvalid, Message: "body is not valid JSON: " + err.Error(), Expression: jsonPath(err)}
	}
	if v.Kind != strictjson.Object {
		return nil, Errorf(KindInvalid, "body must be a JSON object")
	}
	return v, nil
}

// jsonPath is the location strictjson named, when it named one.
func jsonPath(err error) []string {
	var se *strictjson.Error
	if errors.As(err, &se) && se.Path != "" {
		return []string{se.Path}
	}
	return nil
}

// members lists an object's members with their exact bytes.
func members(v *strictjson.Value) []member {
	ms := make([]member, len(v.Members))
	for i := range v.Members {
		ms[i] = member{name: v.Members[i].Name, value: v.Members[i].Value.Raw}
	}
	return ms
}

func sizeOf(ms []member) int {
	n := 2
	for _, m := range ms {
		n += len(m.name) + len(m.value) + 4
	}
	return n
}

// quote renders s as a JSON string without HTML escaping.
func quote(s string) []byte {
	var b bytes.Buffer
	writeName(&b, s)
	return b.Bytes()
}

// writeName writes s as a JSON string: plain ASCII directly (the common
// case, no allocation), anything else through encoding/json without HTML
// escaping so "<" and "&" stay as sent.
func writeName(b *bytes.Buffer, s string) {
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			plain = false
			break
		}
	}
	if plain {
		b.WriteByte('"')
		b.WriteString(s)
		b.WriteByte('"')
		return
	}
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // cannot fail for a string
	b.Truncate(b.Len() - 1) // Encode appends a newline
}

// clip shortens client-supplied text before it is echoed in an error.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
