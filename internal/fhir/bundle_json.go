package fhir

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// The Bundle encoder. A searchset or history page is written for every
// request; encoding/json's reflection, and its scanner over every entry's
// raw resource, cost more than the rest of the response. This writes the
// same bytes directly: fields in struct order, omitempty as declared, strings
// escaped as encoding/json escapes them with SetEscapeHTML(false), raw
// members compacted (TestBundleJSONEqualsEncodingJSON holds the two equal).

func (b *Bundle) sizeHint() int {
	n := 256 + 96*len(b.Link)
	for i := range b.Entry {
		n += 160 + len(b.Entry[i].Resource)
		if r := b.Entry[i].Response; r != nil {
			n += len(r.Outcome)
		}
	}
	return n
}

func (b *Bundle) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"resourceType":`...)
	dst = AppendJSONString(dst, b.ResourceType)
	if b.ID != "" {
		dst = append(dst, `,"id":`...)
		dst = AppendJSONString(dst, b.ID)
	}
	if b.Meta != nil {
		dst = append(dst, `,"meta":{`...)
		if b.Meta.LastUpdated != "" {
			dst = append(dst, `"lastUpdated":`...)
			dst = AppendJSONString(dst, b.Meta.LastUpdated)
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `,"type":`...)
	dst = AppendJSONString(dst, b.Type)
	if b.Timestamp != "" {
		dst = append(dst, `,"timestamp":`...)
		dst = AppendJSONString(dst, b.Timestamp)
	}
	if b.Total != nil {
		dst = append(dst, `,"total":`...)
		dst = strconv.AppendInt(dst, int64(*b.Total), 10)
	}
	if len(b.Link) > 0 {
		dst = append(dst, `,"link":[`...)
		for i, l := range b.Link {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"relation":`...)
			dst = AppendJSONString(dst, l.Relation)
			dst = append(dst, `,"url":`...)
			dst = AppendJSONString(dst, l.URL)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	if len(b.Entry) > 0 {
		dst = append(dst, `,"entry":[`...)
		for i := range b.Entry {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = b.Entry[i].appendJSON(dst)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

func (e *BundleEntry) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	if e.FullURL != "" {
		dst = append(dst, `"fullUrl":`...)
		dst = AppendJSONString(dst, e.FullURL)
	}
	if len(e.Resource) > 0 {
		dst = memberSep(dst)
		dst = append(dst, `"resource":`...)
		dst = appendCompactJSON(dst, e.Resource)
	}
	if e.Search != nil {
		dst = memberSep(dst)
		dst = append(dst, `"search":{"mode":`...)
		dst = AppendJSONString(dst, e.Search.Mode)
		dst = append(dst, '}')
	}
	if e.Request != nil {
		dst = memberSep(dst)
		dst = append(dst, `"request":{"method":`...)
		dst = AppendJSONString(dst, e.Request.Method)
		dst = append(dst, `,"url":`...)
		dst = AppendJSONString(dst, e.Request.URL)
		dst = append(dst, '}')
	}
	if r := e.Response; r != nil {
		dst = memberSep(dst)
		dst = append(dst, `"response":{"status":`...)
		dst = AppendJSONString(dst, r.Status)
		if r.Location != "" {
			dst = append(dst, `,"location":`...)
			dst = AppendJSONString(dst, r.Location)
		}
		if r.Etag != "" {
			dst = append(dst, `,"etag":`...)
			dst = AppendJSONString(dst, r.Etag)
		}
		if r.LastModified != "" {
			dst = append(dst, `,"lastModified":`...)
			dst = AppendJSONString(dst, r.LastModified)
		}
		if len(r.Outcome) > 0 {
			dst = append(dst, `,"outcome":`...)
			dst = appendCompactJSON(dst, r.Outcome)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// memberSep separates a member from the one before it, if any: every
// member's value ends in something other than the object's opening brace.
func memberSep(dst []byte) []byte {
	if dst[len(dst)-1] != '{' {
		return append(dst, ',')
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as encoding/json encodes a string without HTML
// escaping: quotes, backslashes and control characters escaped, invalid
// UTF-8 as U+FFFD, U+2028 and U+2029 escaped.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendCompactJSON appends valid JSON without the whitespace outside its
// strings, as encoding/json writes a json.RawMessage (json.Compact).
func appendCompactJSON(dst, src []byte) []byte {
	start := 0
	for i := 0; i < len(src); i++ {
		switch src[i] {
		case '"':
			// Skip the string: to its closing quote, the first not escaped
			// (after an even run of backslashes; the run cannot reach back
			// past the opening quote). IndexByte, not IndexAny over quote
			// and backslash, which was 3.6% of Herald's CPU in the search
			// benchmark (pprof).
			for {
				j := bytes.IndexByte(src[i+1:], '"')
				if j < 0 {
					i = len(src)
					break
				}
				i += 1 + j
				k := i
				for src[k-1] == '\\' {
					k--
				}
				if (i-k)%2 == 0 {
					break
				}
			}
		case ' ', '\t', '\n', '\r':
			dst = append(dst, src[start:i]...)
			start = i + 1
		}
	}
	return append(dst, src[start:]...)
}
