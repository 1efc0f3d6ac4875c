package fhir

import (
	"bytes"
	"encoding/json"
)

// Object is a JSON object whose member values are kept as the exact bytes
// sent, so a caller can change some members and write the rest back
// untouched (member order, number text, unknown elements).
type Object struct {
	members []member
}

// ParseObject splits a JSON object into members with strictjson's one
// exact reading; it rejects non-objects and whatever strictjson refuses.
func ParseObject(data []byte) (*Object, error) {
	v, err := parseTree(data)
	if err != nil {
		return nil, err
	}
	return &Object{members: members(v)}, nil
}

// Get returns a member's raw value, or nil when absent.
func (o *Object) Get(name string) json.RawMessage {
	for _, m := range o.members {
		if m.name == name {
			return m.value
		}
	}
	return nil
}

// Has reports whether the member is present.
func (o *Object) Has(name string) bool { return o.Get(name) != nil }

// Set replaces a member's value in place, or appends the member.
func (o *Object) Set(name string, value json.RawMessage) {
	for i, m := range o.members {
		if m.name == name {
			o.members[i].value = value
			return
		}
	}
	o.members = append(o.members, member{name: name, value: value})
}

// SetString sets a member to a JSON string.
func (o *Object) SetString(name, value string) { o.Set(name, quote(value)) }

// Delete removes a member if present.
func (o *Object) Delete(name string) {
	for i, m := range o.members {
		if m.name == name {
			o.members = append(o.members[:i], o.members[i+1:]...)
			return
		}
	}
}

// Bytes writes the object back as compact member list with values as kept.
func (o *Object) Bytes() []byte {
	var b bytes.Buffer
	b.Grow(sizeOf(o.members))
	b.WriteByte('{')
	for i, m := range o.members {
		if i > 0 {
			b.WriteByte(',')
		}
		writeName(&b, m.name)
		b.WriteByte(':')
		b.Write(m.value)
	}
	b.WriteByte('}')
	return b.Bytes()
}
