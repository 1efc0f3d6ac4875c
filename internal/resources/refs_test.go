package resources

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestResolveRefs pins down the transaction reference rewrite: every JSON
// string whose value is a fullUrl of the Bundle becomes Type/id, and every
// other byte (number text, whitespace, member order, escapes) is kept.
func TestResolveRefs(t *testing.T) {
	t.Parallel()
	refs := map[string]string{
		"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a": "Patient/p-new",
		"urn:oid:1.2.3.4": "Organization/o-new",
	}
	const pat = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"
	cases := []struct {
		name, in, want string
		refs           map[string]string // nil: the refs above
	}{
		{
			name: "reference replaced",
			in:   `{"subject":{"reference":"` + pat + `"}}`,
			want: `{"subject":{"reference":"Patient/p-new"}}`,
		},
		{
			name: "urn:oid replaced",
			in:   `{"performer":[{"reference":"urn:oid:1.2.3.4"}]}`,
			want: `{"performer":[{"reference":"Organization/o-new"}]}`,
		},
		{
			name: "number text, whitespace and order kept",
			in:   "{\n  \"valueQuantity\": {\"value\": 1.50, \"x\": 1e2},\n  \"subject\" : { \"reference\" : \"" + pat + "\" },\n  \"n\": -0.0\n}",
			want: "{\n  \"valueQuantity\": {\"value\": 1.50, \"x\": 1e2},\n  \"subject\" : { \"reference\" : \"Patient/p-new\" },\n  \"n\": -0.0\n}",
		},
		{
			name: "no urns at all: unchanged",
			in:   `{"subject":{"reference":"Patient/1"},"v":1.50}`,
			want: `{"subject":{"reference":"Patient/1"},"v":1.50}`,
		},
		{
			name: "urn: present but no key matches: unchanged",
			in:   `{"subject":{"reference":"urn:uuid:00000000-0000-0000-0000-000000000000"}}`,
			want: `{"subject":{"reference":"urn:uuid:00000000-0000-0000-0000-000000000000"}}`,
		},
		{
			name: "empty refs: unchanged",
			in:   `{"subject":{"reference":"` + pat + `"}}`,
			want: `{"subject":{"reference":"` + pat + `"}}`,
			refs: map[string]string{},
		},
		{
			name: "a longer urn with the key as prefix is another urn",
			in:   `{"a":"` + pat + `0","b":"urn:oid:1.2.3.45"}`,
			want: `{"a":"` + pat + `0","b":"urn:oid:1.2.3.45"}`,
		},
		{
			name: "urn inside a longer string (narrative, free text) is not replaced",
			in:   `{"text":{"div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">see ` + pat + `</div>"},"note":[{"text":"` + pat + ` was merged"}]}`,
			want: `{"text":{"div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">see ` + pat + `</div>"},"note":[{"text":"` + pat + ` was merged"}]}`,
		},
		{
			// FHIR asks for uri/url/oid/uuid elements to be rewritten too;
			// Herald rewrites any string element equal to a fullUrl,
			// including a string-typed one such as Identifier.value.
			name: "urn as a non-reference value equal to a fullUrl is replaced too",
			in:   `{"identifier":[{"system":"urn:ietf:rfc:3986","value":"` + pat + `"}]}`,
			want: `{"identifier":[{"system":"urn:ietf:rfc:3986","value":"Patient/p-new"}]}`,
		},
		{
			name: "escaped quotes before the reference do not derail the scanner",
			in:   `{"note":[{"text":"he said \"` + pat + `\" twice"}],"subject":{"reference":"` + pat + `"}}`,
			want: `{"note":[{"text":"he said \"` + pat + `\" twice"}],"subject":{"reference":"Patient/p-new"}}`,
		},
		{
			name: "string ending in an escaped backslash",
			in:   `{"a":"c:\\","subject":{"reference":"` + pat + `"},"b":"\\\\"}`,
			want: `{"a":"c:\\","subject":{"reference":"Patient/p-new"},"b":"\\\\"}`,
		},
		{
			name: "unicode and unicode escapes elsewhere kept",
			in:   `{"name":[{"family":"Ünïcödé","given":["Zo\u00eb"]}],"link":[{"other":{"reference":"` + pat + `"}}]}`,
			want: `{"name":[{"family":"Ünïcödé","given":["Zo\u00eb"]}],"link":[{"other":{"reference":"Patient/p-new"}}]}`,
		},
		{
			name: "several references in arrays",
			in:   `{"performer":[{"reference":"urn:oid:1.2.3.4"},{"reference":"` + pat + `"},{"reference":"Practitioner/x"}]}`,
			want: `{"performer":[{"reference":"Organization/o-new"},{"reference":"Patient/p-new"},{"reference":"Practitioner/x"}]}`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m := c.refs
			if m == nil {
				m = refs
			}
			require.True(t, json.Valid([]byte(c.in)), "test input must be JSON")
			got := resolveRefs([]byte(c.in), m)
			require.Equal(t, c.want, string(got))
			require.True(t, json.Valid(got))
		})
	}
}

// TestResolveRefsEscapedURN: a reference written with a JSON escape is the
// same string as the fullUrl, so it must resolve too.
func TestResolveRefsEscapedURN(t *testing.T) {
	t.Parallel()
	refs := map[string]string{"urn:uuid:abc": "Patient/p"}
	got := resolveRefs([]byte(`{"subject":{"reference":"urn:uuid:\u0061bc"}}`), refs)
	require.Equal(t, `{"subject":{"reference":"Patient/p"}}`, string(got))
}

// FuzzResolveRefs: valid JSON in, valid JSON out, and with nothing to
// resolve the bytes are returned unchanged.
func FuzzResolveRefs(f *testing.F) {
	for _, s := range []string{
		`{"subject":{"reference":"urn:uuid:a"}}`,
		`{"a":"\"urn:uuid:a\"","b":["urn:uuid:a",1.50]}`,
		`{"a":"\\","b":"urn:uuid:a"}`,
		`["urn:uuid:a",{"urn:uuid:a":"x"}]`,
		`"urn:uuid:a"`,
	} {
		f.Add(s)
	}
	refs := map[string]string{"urn:uuid:a": "Patient/1"}
	f.Fuzz(func(t *testing.T, in string) {
		if !json.Valid([]byte(in)) {
			return
		}
		out := resolveRefs([]byte(in), refs)
		if !json.Valid(out) {
			t.Fatalf("resolveRefs(%q) = %q: not JSON", in, out)
		}
		if same := resolveRefs([]byte(in), nil); string(same) != in {
			t.Fatalf("with no refs, %q changed to %q", in, same)
		}
	})
}
