package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
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
}

// Parse reads one resource from JSON. It rejects anything that is not a JSON
// object with a valid R4 resourceType, a valid id (when present) and no
// duplicate top-level or meta member names.
func Parse(body []byte) (*Resource, error) {
	members, err := parseObject(body)
	if err != nil {
		return nil, err
	}
	r := &Resource{members: members}
	for _, m := range members {
		switch m.name {
		case "resourceType":
			if err := json.Unmarshal(m.value, &r.Type); err != nil {
				return nil, Errorf(KindInvalid, "resourceType must be a string")
			}
		case "id":
			if err := json.Unmarshal(m.value, &r.ID); err != nil {
				return nil, Errorf(KindInvalid, "id must be a string")
			}
			if !ValidID(r.ID) {
				return nil, Errorf(KindInvalid, "id %q is not a valid FHIR id ([A-Za-z0-9-.]{1,64})", clip(r.ID))
			}
		case "meta":
			meta, err := parseObject(m.value)
			if err != nil {
				return nil, Errorf(KindInvalid, "meta: %s", AsError(err).Message)
			}
			r.meta = meta
		}
	}
	if r.Type == "" {
		return nil, Errorf(KindInvalid, "resourceType is missing")
	}
	if !IsResourceType(r.Type) {
		return nil, Errorf(KindInvalid, "%q is not a FHIR R4 resource type", clip(r.Type))
	}
	return r, nil
}

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

// parseObject splits a JSON object into its members, keeping each value's
// bytes. It fails on non-objects, trailing data and duplicate names.
func parseObject(data []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, Errorf(KindInvalid, "body is not valid JSON: %s", jsonReason(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, Errorf(KindInvalid, "body must be a JSON object")
	}
	var members []member
	seen := make(map[string]struct{}, 16)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, Errorf(KindInvalid, "body is not valid JSON: %s", jsonReason(err))
		}
		name := tok.(string) // object keys are always strings
		if _, dup := seen[name]; dup {
			return nil, Errorf(KindInvalid, "duplicate member %q", clip(name))
		}
		seen[name] = struct{}{}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, Errorf(KindInvalid, "body is not valid JSON: %s", jsonReason(err))
		}
		members = append(members, member{name: name, value: value})
	}
	if _, err := dec.Token(); err != nil { // closing brace
		return nil, Errorf(KindInvalid, "body is not valid JSON: %s", jsonReason(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, Errorf(KindInvalid, "body has data after the JSON object")
	}
	return members, nil
}

func jsonReason(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("%s (at byte %d)", syn.Error(), syn.Offset)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return err.Error()
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
