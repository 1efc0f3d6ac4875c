package strictjson

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseKeepsExactBytes(t *testing.T) {
	in := ` {"a" : 1.50, "b":[true,false,null,"x\u00e9"], "c":{"d":"<&>"},"e":-0.0e+1} `
	v, err := Parse([]byte(in))
	require.NoError(t, err)
	assert.Equal(t, Object, v.Kind)
	assert.Equal(t, strings.TrimSpace(in), string(v.Raw))
	assert.Equal(t, "1.50", string(v.Get("a").Raw))
	b := v.Get("b")
	require.Len(t, b.Items, 4)
	assert.True(t, b.Items[0].True)
	assert.Equal(t, Null, b.Items[2].Kind)
	assert.Equal(t, "xé", b.Items[3].Str)
	assert.Equal(t, `"<&>"`, string(v.Get("c").Get("d").Raw))
	assert.Nil(t, v.Get("A"), "names are exact")
	assert.Equal(t, json.Number("-0.0e+1"), v.Get("e").Any())
}

func TestParseRefuses(t *testing.T) {
	cases := map[string]struct{ in, msg, path string }{
		"duplicate":             {`{"a":1,"a":2}`, `duplicate member "a"`, ""},
		"duplicate by escape":   {`{"a":1,"\u0061":2}`, `duplicate member`, ""},
		"case variant":          {`{"subject":{"reference":"Patient/p2","Reference":"Patient/p1"}}`, `differ only in case`, "subject"},
		"case variant unicode":  {`{"k":1,"\u212a":2}`, `differ only in case`, ""}, // KELVIN SIGN folds to k
		"case variant large":    {`{"a0":0,"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"a7":7,"a8":8,"a9":9,"b0":0,"b1":1,"b2":2,"B1":3}`, `differ only in case`, ""},
		"duplicate large":       {`{"a0":0,"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"a7":7,"a8":8,"a9":9,"b0":0,"b1":1,"b2":2,"b1":3}`, `duplicate member`, ""},
		"nested duplicate path": {`{"entry":[{},{"resource":{"id":"1","id":"2"}}]}`, `duplicate`, "entry[1].resource"},
		"invalid utf8":          {"{\"a\":\"\xff\"}", "invalid UTF-8", "a"},
		"utf8 surrogate":        {"{\"a\":\"\xed\xa0\x80\"}", "invalid UTF-8", "a"},
		"lone high surrogate":   {`{"a":"\ud800"}`, "unpaired surrogate", "a"},
		"lone low surrogate":    {`{"a":"\udc00x"}`, "unpaired surrogate", "a"},
		"control char":          {"{\"a\":\"x\x01\"}", "control character", "a"},
		"trailing data":         {`{} {}`, "data after", ""},
		"trailing comma":        {`{"a":1,}`, "expected a member name", ""},
		"bad number":            {`{"a":01}`, "expected ','", ""},
		"bare dot":              {`{"a":1.}`, "digits must follow", "a"},
		"nan":                   {`{"a":NaN}`, "invalid character", "a"},
		"single quotes":         {`{'a':1}`, "expected a member name", ""},
		"bom":                   {"\xef\xbb\xbf{}", "invalid character", ""},
		"empty":                 {``, "unexpected end", ""},
		"unterminated":          {`{"a":"x`, "unterminated", "a"},
		"bad escape":            {`{"a":"\x"}`, "invalid escape", "a"},
		"deep":                  {strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), "nested deeper", ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(c.in))
			require.Error(t, err)
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Contains(t, e.Msg, c.msg)
			if c.path != "" {
				assert.Equal(t, c.path, e.Path)
			}
		})
	}
}

func TestParseAcceptsWhatEncodingJSONAccepts(t *testing.T) {
	for _, in := range []string{`{}`, `[]`, `"x"`, `0`, `-1.5E-3`, `true`, `null`, `{"a":{"b":[[],{}]}}`, `"\ud83d\ude00"`, `"\u00e9\/\b\f\n\r\t"`} {
		v, err := Parse([]byte(in))
		require.NoError(t, err, in)
		var want any
		require.NoError(t, json.Unmarshal([]byte(in), &want))
		got := v.Any()
		wantJSON, _ := json.Marshal(want)
		gotJSON, _ := json.Marshal(got)
		assert.JSONEq(t, string(wantJSON), string(gotJSON), in)
	}
}

func TestUnmarshalIsCaseSensitive(t *testing.T) {
	var ref struct {
		Reference string `json:"reference"`
	}
	require.NoError(t, Unmarshal([]byte(`{"Reference":"Patient/p1"}`), &ref))
	assert.Empty(t, ref.Reference, "a case variant is not the field")
	require.NoError(t, Unmarshal([]byte(`{"reference":"Patient/p2"}`), &ref))
	assert.Equal(t, "Patient/p2", ref.Reference)
	err := Unmarshal([]byte(`{"reference":"Patient/p2","Reference":"Patient/p1"}`), &ref)
	assert.ErrorContains(t, err, "differ only in case")
	err = Unmarshal([]byte(`{"reference":1}`), &ref)
	assert.ErrorContains(t, err, "reference: must be a JSON string, not a JSON number")
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"a":[1,"x",{"b":null}]}`, `{"a":1,"A":2}`, `"\ud800\udc00"`, `[1e5,-0.1]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Parse(data)
		if err != nil {
			return
		}
		// Whatever is accepted is valid JSON that encoding/json reads the same way.
		var want any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if jerr := dec.Decode(&want); jerr != nil {
			t.Fatalf("accepted what encoding/json refuses: %v", jerr)
		}
		a, _ := json.Marshal(want)
		b, _ := json.Marshal(v.Any())
		if string(a) != string(b) {
			t.Fatalf("read differently:\n%s\n%s", a, b)
		}
	})
}
