package allowlist

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestExplain: each refusal names the part of the rule that failed, and the
// match is List.Match's.
func TestExplain(t *testing.T) {
	l, err := Compile([]Entry{
		{ID: "a", URLPrefix: "https://hooks.example/app"},
		{ID: "b", URLPrefix: "https://hooks.example/app/v2/", AllowPrivateNetwork: true},
		{ID: "c", URLPrefix: "http://other.example:8080/"},
	})
	require.NoError(t, err)

	v := l.Explain("HTTPS://Hooks.Example:443/app/v2/x")
	require.NotNil(t, v.Match)
	require.Equal(t, "b", v.Match.ID, "the longest prefix wins, as in Match")
	require.Equal(t, "https://hooks.example/app/v2/x", v.Endpoint)
	require.Len(t, v.Misses, 1)
	require.Equal(t, "c", v.Misses[0].Entry.ID)
	require.Contains(t, v.Misses[0].Reason, "scheme")

	reasons := func(url string) map[string]string {
		v := l.Explain(url)
		require.Nil(t, v.Match, url)
		out := map[string]string{}
		for _, m := range v.Misses {
			out[m.Entry.ID] = m.Reason
		}
		return out
	}
	r := reasons("https://hooks.example/appx")
	require.Contains(t, r["a"], "within a segment")
	require.Contains(t, r["b"], "does not start with /app/v2/")
	require.Contains(t, reasons("https://evil.example/app")["a"], "host")
	require.Contains(t, reasons("http://other.example:9090/")["c"], "port")

	v = l.Explain("https://user@hooks.example/app")
	require.Error(t, v.Invalid)
	require.Nil(t, v.Match)
	require.Empty(t, v.Endpoint)
}
