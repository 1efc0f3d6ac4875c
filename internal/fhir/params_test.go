package fhir

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckParams(t *testing.T) {
	t.Parallel()
	lim := ParamLimits{Clauses: 3, Values: 3}
	for _, ok := range []string{"", "a=1", "a=1,2,3&a=4&b=", `a=1\,2\,3\,4`, "name=J%C3%BCrgen", "a=%E2%80%8B"} {
		_, err := ParseParams(ok, lim)
		require.NoError(t, err, ok)
	}
	for _, bad := range []string{"a=%00", "a=%ff", "a=%09", "a=%0d%0a", "a=%7f", "a=%c2%9b", "%00=1", "a=%zz", "a;b=1",
		"a=1,2,3,4", "a=1&a=2&b=3&c=4", `a=1,2,3\\,4`} {
		_, err := ParseParams(bad, lim)
		require.Error(t, err, bad)
		require.Equal(t, KindInvalid, AsError(err).Kind)
	}
	err := CheckParams(url.Values{"a": {strings.Repeat("x", 10) + "\x00secret"}}, lim)
	require.NotContains(t, err.Error(), "secret", "errors never echo a value")
	require.NoError(t, CheckParams(url.Values{"a": {strings.Repeat(",", 99)}}, ParamLimits{}), "zero limits are the defaults")
	require.Error(t, CheckParams(url.Values{"a": {strings.Repeat(",", 100)}}, ParamLimits{}))
}
