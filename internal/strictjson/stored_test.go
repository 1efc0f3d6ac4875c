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
