package subscription

import (
	"net/textproto"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/webhook"
)

// FuzzParseFilter parses arbitrary backport-filter-criteria values. What
// parses has at least one param=value, a known R4 type or none, parameter
// names of the search-name alphabet (so no "=", "&", ":" or "?" can hide in
// one), non-empty values, and means the same when written back in the
// "Type?name:modifier=value&..." form (as Recheck re-parses the raw value
// stored at create).
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		"Encounter?patient=Patient/p1",
		"patient=Patient/p1",
		"Encounter.patient=Patient/p1&class=http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB",
		"Encounter?status:not=finished&patient=Patient%2Fp1",
		"patient=Patient/1&Observation.code=http://loinc.org|1234-5",
		"Observation?code:in=http://x&value=%zz",
		"Encounter?patient=Patient/p1&patient=Patient/p2",
		"?a=b", "a=", "=b", "&", "Encounter?", "Nope?x=1", "x:y:z=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		flt, err := ParseFilter(raw)
		if err != nil {
			return
		}
		if flt.Raw != raw {
			t.Fatalf("Raw %q, want %q", flt.Raw, raw)
		}
		if flt.ResourceType != "" && !fhir.IsR4ResourceType(flt.ResourceType) {
			t.Fatalf("%q: resource type %q", raw, flt.ResourceType)
		}
		if len(flt.Params) == 0 {
			t.Fatalf("%q: accepted without a parameter", raw)
		}
		var b strings.Builder
		if flt.ResourceType != "" {
			b.WriteString(flt.ResourceType + "?")
		}
		for i, p := range flt.Params {
			if !validParamName(p.Name) {
				t.Fatalf("%q: parameter name %q", raw, p.Name)
			}
			if p.Value == "" {
				t.Fatalf("%q: empty value for %q", raw, p.Name)
			}
			if strings.ContainsAny(p.Modifier, "&=") {
				t.Fatalf("%q: modifier %q", raw, p.Modifier)
			}
			if i > 0 {
				b.WriteByte('&')
			}
			b.WriteString(p.Name)
			if p.Modifier != "" {
				b.WriteString(":" + p.Modifier)
			}
			b.WriteString("=" + url.QueryEscape(p.Value))
		}
		again, err := ParseFilter(raw)
		if err != nil || !reflect.DeepEqual(again, flt) {
			t.Fatalf("%q parses differently the second time: %+v, %v", raw, again, err)
		}
		canonical := b.String()
		back, err := ParseFilter(canonical)
		if err != nil {
			t.Fatalf("%q written back as %q does not parse: %v", raw, canonical, err)
		}
		if back.ResourceType != flt.ResourceType || !reflect.DeepEqual(back.Params, flt.Params) {
			t.Fatalf("%q written back as %q means %+v, not %+v", raw, canonical, back, flt)
		}
	})
}

// FuzzParseHeader parses arbitrary channel.header lines. What parses is a
// header net/http sends as one line (valid name, canonical, a value without
// CR, LF, NUL or other controls and without surrounding space), is not one
// Herald or the transport owns, and survives the "Name: value" form it is
// sealed in. Refusals never repeat the value, which may be a credential.
func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{
		"Authorization: Bearer abc",
		"x-api-key:   k3y  ",
		"X-A: b\r\nX-Injected: 1",
		"X-A: b\x00",
		"Host: evil.example",
		"proxy-authorization: x",
		"Sec-WebSocket-Key: x",
		"X A: b",
		"no colon here",
		"X-A: \t tab\t",
		"X-Ü: v",
		"X-A: caf\u00e9 \u0085",
		": v",
		"X-A:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		h, err := ParseHeader(line)
		if err != nil {
			name, value, ok := strings.Cut(line, ":")
			value = strings.TrimSpace(value)
			if ok && len(value) >= 12 && !strings.Contains(name, value) && strings.Contains(err.Error(), value) {
				t.Fatalf("the refusal of %q repeats the value: %v", line, err)
			}
			if h != (Header{}) {
				t.Fatalf("error with a header: %+v", h)
			}
			return
		}
		if !httpguts.ValidHeaderFieldName(h.Name) || textproto.CanonicalMIMEHeaderKey(h.Name) != h.Name {
			t.Fatalf("%q: name %q", line, h.Name)
		}
		if strings.ContainsAny(h.Name+h.Value, "\r\n\x00") || !httpguts.ValidHeaderFieldValue(h.Value) {
			t.Fatalf("%q: value %q would inject", line, h.Value)
		}
		if h.Value != strings.TrimSpace(h.Value) {
			t.Fatalf("%q: value %q not trimmed", line, h.Value)
		}
		if webhook.Reserved(h.Name) {
			t.Fatalf("%q: reserved header %s accepted", line, h.Name)
		}
		// The sealed form ("Name: value", see Rules.sealHeaders) reads back
		// the same, as openHeaders and a later ParseHeader see it.
		again, err := ParseHeader(h.Name + ": " + h.Value)
		if err != nil || again != h {
			t.Fatalf("%q: sealed form %q reads back as %+v, %v", line, h.Name+": "+h.Value, again, err)
		}
		name, value, _ := strings.Cut(h.Name+": "+h.Value, ":")
		if name != h.Name || strings.TrimSpace(value) != h.Value {
			t.Fatalf("%q: openHeaders would read %q %q", line, name, value)
		}
	})
}
