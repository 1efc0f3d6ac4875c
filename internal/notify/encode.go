package notify

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/herald-fhir/herald/internal/fhir"
)

// The wire shapes written out by hand: every notification is encoded once
// per send, and encoding/json's reflection over these types was a visible
// part of a delivery's CPU (issue 13). The output is byte for byte what
// encoding/json writes without HTML escaping (TestEncoderMatchesEncodingJSON);
// stored resources (json.RawMessage) are compacted as encoding/json does.
// Anything else falls back to encoding/json, as does a stored resource
// that is not valid JSON, so that its error is encoding/json's.

// appendValue appends v's JSON and reports whether it knew v's type and v
// was valid.
func appendValue(dst []byte, v any) ([]byte, bool) {
	switch v := v.(type) {
	case *bundle:
		return appendBundle(dst, v)
	case *parameters:
		if v == nil {
			return append(dst, "null"...), true
		}
		return appendParameters(dst, v), true
	case json.RawMessage:
		if v == nil {
			return append(dst, "null"...), true
		}
		buf := bytes.NewBuffer(dst)
		if err := json.Compact(buf, v); err != nil {
			return dst, false
		}
		return buf.Bytes(), true
	}
	return dst, false
}

// sizeHint is about the bytes v encodes to: the stored resources it
// carries and a few hundred bytes for each entry around them, so that the
// output is allocated once.
func sizeHint(v any) int {
	n := 256
	if b, ok := v.(*bundle); ok {
		for _, e := range b.Entry {
			n += 256
			if r, ok := e.Resource.(json.RawMessage); ok {
				n += len(r)
			}
		}
	}
	return n
}

func appendBundle(dst []byte, b *bundle) ([]byte, bool) {
	if b == nil {
		return append(dst, "null"...), true
	}
	dst = append(dst, `{"resourceType":`...)
	dst = appendString(dst, b.ResourceType)
	if b.ID != "" {
		dst = appendString(append(dst, `,"id":`...), b.ID)
	}
	if b.Meta != nil {
		dst = appendMeta(append(dst, `,"meta":`...), b.Meta)
	}
	dst = appendString(append(dst, `,"type":`...), b.Type)
	dst = appendString(append(dst, `,"timestamp":`...), b.Timestamp)
	if b.Total != nil {
		dst = strconv.AppendInt(append(dst, `,"total":`...), int64(*b.Total), 10)
	}
	if len(b.Entry) > 0 {
		dst = append(dst, `,"entry":[`...)
		for i := range b.Entry {
			if i > 0 {
				dst = append(dst, ',')
			}
			var ok bool
			if dst, ok = appendEntry(dst, &b.Entry[i]); !ok {
				return dst, false
			}
		}
		dst = append(dst, ']')
	}
	return append(dst, '}'), true
}

func appendMeta(dst []byte, m *meta) []byte {
	dst = append(dst, `{"profile":`...)
	return append(appendStrings(dst, m.Profile), '}')
}

func appendEntry(dst []byte, e *entry) ([]byte, bool) {
	dst = appendString(append(dst, `{"fullUrl":`...), e.FullURL)
	if e.Resource != nil {
		var ok bool
		if dst, ok = appendValue(append(dst, `,"resource":`...), e.Resource); !ok {
			return dst, false
		}
	}
	if e.Search != nil {
		dst = append(appendString(append(dst, `,"search":{"mode":`...), e.Search.Mode), '}')
	}
	if e.Request != nil {
		dst = appendString(append(dst, `,"request":{"method":`...), e.Request.Method)
		dst = append(appendString(append(dst, `,"url":`...), e.Request.URL), '}')
	}
	if e.Response != nil {
		dst = appendString(append(dst, `,"response":{"status":`...), e.Response.Status)
		if e.Response.Etag != "" {
			dst = appendString(append(dst, `,"etag":`...), e.Response.Etag)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}'), true
}

func appendParameters(dst []byte, p *parameters) []byte {
	dst = appendString(append(dst, `{"resourceType":`...), p.ResourceType)
	dst = appendString(append(dst, `,"id":`...), p.ID)
	dst = appendMeta(append(dst, `,"meta":`...), &p.Meta)
	dst = append(dst, `,"parameter":`...)
	return append(appendParams(dst, p.Parameter), '}')
}

// appendParams appends ps as a JSON array (nil: null, as encoding/json).
func appendParams(dst []byte, ps []param) []byte {
	if ps == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i := range ps {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendParam(dst, &ps[i])
	}
	return append(dst, ']')
}

func appendParam(dst []byte, p *param) []byte {
	dst = appendString(append(dst, `{"name":`...), p.Name)
	if p.ValueReference != nil {
		dst = append(appendString(append(dst, `,"valueReference":{"reference":`...), p.ValueReference.Reference), '}')
	}
	for _, f := range [...]struct{ key, val string }{
		{`,"valueCanonical":`, p.ValueCanonical},
		{`,"valueCode":`, p.ValueCode},
		{`,"valueString":`, p.ValueString},
		{`,"valueInstant":`, p.ValueInstant},
	} {
		if f.val != "" {
			dst = appendString(append(dst, f.key...), f.val)
		}
	}
	if c := p.ValueCodeableConcept; c != nil {
		dst = append(dst, `,"valueCodeableConcept":{`...)
		comma := false
		if len(c.Coding) > 0 {
			dst = append(dst, `"coding":[`...)
			for i := range c.Coding {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = appendCoding(dst, &c.Coding[i])
			}
			dst, comma = append(dst, ']'), true
		}
		if c.Text != "" {
			if comma {
				dst = append(dst, ',')
			}
			dst = appendString(append(dst, `"text":`...), c.Text)
		}
		dst = append(dst, '}')
	}
	if p.ValueCoding != nil {
		dst = appendCoding(append(dst, `,"valueCoding":`...), p.ValueCoding)
	}
	if len(p.Part) > 0 {
		dst = appendParams(append(dst, `,"part":`...), p.Part)
	}
	return append(dst, '}')
}

func appendCoding(dst []byte, c *coding) []byte {
	dst = append(dst, '{')
	if c.System != "" {
		dst = append(appendString(append(dst, `"system":`...), c.System), ',')
	}
	dst = appendString(append(dst, `"code":`...), c.Code)
	if c.Display != "" {
		dst = appendString(append(dst, `,"display":`...), c.Display)
	}
	return append(dst, '}')
}

// appendStrings appends ss as a JSON array (nil: null, as encoding/json).
func appendStrings(dst []byte, ss []string) []byte {
	if ss == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, s)
	}
	return append(dst, ']')
}

// appendString appends s as a JSON string the way encoding/json does with
// HTML escaping off (the one such encoder, fhir.AppendJSONString).
func appendString(dst []byte, s string) []byte { return fhir.AppendJSONString(dst, s) }
