package strictjson

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ParseStored must read every body Parse accepts exactly as Parse does.
func TestParseStoredEqualsParse(t *testing.T) {
	docs := []string{
		` {"a" : 1.50, "b":[true,false,null,"x\u00e9"], "c":{"d":"<&>"},"e":-0.0e+1} `,
		`{}`, `[]`, `"s"`, `0`, `null`, `{"a":[],"b":{},"c":[[{}]],"d":"\ud83d\ude00\n\"\\\/"}`,
		`{"resourceType":"Patient","name":[{"family":"Ölgür","given":["Ann","B"]}],"x":1e-7}`,
	}
	paths, _ := filepath.Glob("../r4/testdata/examples/*.json")
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		require.NoError(t, err)
		docs = append(docs, string(raw))
	}
	for _, d := range docs {
		v, err := Parse([]byte(d))
		require.NoError(t, err, clipDoc(d))
		got, err := ParseStored([]byte(d))
		require.NoError(t, err, clipDoc(d))
		assert.Equal(t, v.Any(), got, clipDoc(d))
	}
	assert.Greater(t, len(docs), 100, "the R4 examples were read")
}

// Damaged bodies are errors, not misreadings: every syntax rule of Parse
// still holds. Only the name checks (repeats, case variants) are skipped.
func TestParseStoredRefusesBadSyntax(t *testing.T) {
	for _, in := range []string{
		"{\"a\":\"\xff\"}", `{"a":"\ud800"}`, "{\"a\":\"x\x01\"}", `{} {}`, `{"a":1,}`, `{"a":01}`,
		`{"a":1.}`, `{"a":NaN}`, `{'a':1}`, "\xef\xbb\xbf{}", ``, `{"a":"x`, `{"a":"\x"}`, `[1 2]`, `{"a" 1}`,
		strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
	} {
		_, err := ParseStored([]byte(in))
		assert.Error(t, err, "%q", clipDoc(in))
		_, err = Parse([]byte(in))
		assert.Error(t, err, "%q", clipDoc(in))
	}
}

func clipDoc(s string) string { return Clip(s) }

// ParseStoredMembers keeps exactly the top-level members asked for, as
// ParseStored reads them; whatever it skips still has to be valid JSON.
func TestParseStoredMembers(t *testing.T) {
	docs := []string{
		` {"a" : 1.50, "b":[true,false,null,"x\u00e9"], "c":{"d":"<&>", "e":[{"f":[[]]}, -1e+2]},"e":-0.0e+1, "g":"q\"\\"} `,
		`{}`, `{"a":{}}`, `{"resourceType":"Observation","component":[{"code":{"text":"a b"}},{}],"status":"final"}`,
	}
	paths, _ := filepath.Glob("../r4/testdata/examples/*.json")
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		require.NoError(t, err)
		docs = append(docs, string(raw))
	}
	keep := func(name string) bool {
		return name == "resourceType" || name == "a" || name == "status" || name == "subject"
	}
	for _, d := range docs {
		all, err := ParseStored([]byte(d))
		require.NoError(t, err, clipDoc(d))
		want := map[string]any{}
		for k, v := range all.(map[string]any) {
			if keep(k) {
				want[k] = v
			}
		}
		got, err := ParseStoredMembers([]byte(d), keep)
		require.NoError(t, err, clipDoc(d))
		assert.Equal(t, want, got, clipDoc(d))
		got, err = ParseStoredMembers([]byte(d), nil)
		require.NoError(t, err, clipDoc(d))
		assert.Equal(t, all, got, clipDoc(d))
	}
	for _, in := range []string{
		"{\"b\":\"\xff\"}", `{"b":"\ud800"}`, `{"b":[1,]}`, `{"b":{"c":01}}`, `{"b":{"c" 1}}`, `{"b":{'c':1}}`,
		`{"b":[1 2]}`, `{"b":tru}`, `{"b":{"c":1}`, `{"b":"x`, `{"b":1.}`, `{"b":1} {}`,
		`{"b":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`,
	} {
		_, err := ParseStoredMembers([]byte(in), keep)
		assert.Error(t, err, "%q", clipDoc(in))
		_, err = ParseStored([]byte(in))
		assert.Error(t, err, "%q", clipDoc(in))
	}
}
