package jsonpatch

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRFC6902Examples: the examples of RFC 6902 appendix A (those whose
// documents strictjson accepts), with results compared byte for byte:
// member order and untouched values' text are kept.
func TestRFC6902Examples(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, doc, patch, want string }{
		{"A.1 add member", `{"foo":"bar"}`, `[{"op":"add","path":"/baz","value":"qux"}]`, `{"foo":"bar","baz":"qux"}`},
		{"A.2 add element", `{"foo":["bar","baz"]}`, `[{"op":"add","path":"/foo/1","value":"qux"}]`, `{"foo":["bar","qux","baz"]}`},
		{"A.3 remove member", `{"baz":"qux","foo":"bar"}`, `[{"op":"remove","path":"/baz"}]`, `{"foo":"bar"}`},
		{"A.4 remove element", `{"foo":["bar","qux","baz"]}`, `[{"op":"remove","path":"/foo/1"}]`, `{"foo":["bar","baz"]}`},
		{"A.5 replace", `{"baz":"qux","foo":"bar"}`, `[{"op":"replace","path":"/baz","value":"boo"}]`, `{"baz":"boo","foo":"bar"}`},
		{"A.6 move member", `{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}`, `[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]`, `{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}`},
		{"A.7 move element", `{"foo":["all","grass","cows","eat"]}`, `[{"op":"move","from":"/foo/1","path":"/foo/3"}]`, `{"foo":["all","cows","eat","grass"]}`},
		{"A.8 test", `{"baz":"qux","foo":["a",2,"c"]}`, `[{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2.0}]`, `{"baz":"qux","foo":["a",2,"c"]}`},
		{"A.10 add nested", `{"foo":"bar"}`, `[{"op":"add","path":"/child","value":{"grandchild":{}}}]`, `{"foo":"bar","child":{"grandchild":{}}}`},
		{"A.12 add to nonexistent target", `{"foo":"bar"}`, `[{"op":"add","path":"/baz/bat","value":"qux"}]`, ""},
		{"A.14 ~ escapes", `{"/":9,"~1":10}`, `[{"op":"test","path":"/~01","value":10}]`, `{"/":9,"~1":10}`},
		{"A.16 add array value", `{"foo":["bar"]}`, `[{"op":"add","path":"/foo/-","value":["abc","def"]}]`, `{"foo":["bar",["abc","def"]]}`},
		{"A.9 test fails", `{"baz":"qux"}`, `[{"op":"test","path":"/baz","value":"bar"}]`, ""},
		{"copy", `{"a":{"b":1.50}}`, `[{"op":"copy","from":"/a","path":"/c"},{"op":"replace","path":"/c/b","value":2}]`, `{"a":{"b":1.50},"c":{"b":2}}`},
		{"replace missing", `{"a":1}`, `[{"op":"replace","path":"/b","value":2}]`, ""},
		{"index out of range", `{"a":[1]}`, `[{"op":"add","path":"/a/2","value":2}]`, ""},
		{"leading zero index", `{"a":[1,2]}`, `[{"op":"remove","path":"/a/01"}]`, ""},
		{"move into itself", `{"a":{"b":{}}}`, `[{"op":"move","from":"/a","path":"/a/b/c"}]`, ""},
		{"unknown op", `{}`, `[{"op":"merge","path":"/a"}]`, ""},
		{"not an array", `{}`, `{"op":"add","path":"/a","value":1}`, ""},
		{"duplicate member in the patch", `{}`, `[{"op":"add","path":"/a","value":1,"value":2}]`, ""},
	}
	for _, c := range cases {
		got, err := Apply([]byte(c.doc), []byte(c.patch))
		if c.want == "" {
			require.Error(t, err, c.name)
			continue
		}
		require.NoError(t, err, c.name)
		require.Equal(t, c.want, string(got), c.name)
	}
}

func TestTestFailureIsReported(t *testing.T) {
	t.Parallel()
	_, err := Apply([]byte(`{"a":1}`), []byte(`[{"op":"add","path":"/b","value":1},{"op":"test","path":"/a","value":2}]`))
	var pe *Error
	require.True(t, errors.As(err, &pe))
	require.True(t, pe.TestFailed)
	require.Equal(t, 1, pe.Op)
	require.Contains(t, err.Error(), "operation 1")
}
