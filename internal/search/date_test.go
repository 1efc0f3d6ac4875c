package search

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseDateRange(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		return v
	}
	cases := []struct {
		in       string
		inside   []string
		outside  []string
		wantFail bool
	}{
		{in: "2026", inside: []string{"2026-01-01T00:00:00Z", "2026-12-31T23:59:59.999Z"}, outside: []string{"2025-12-31T23:59:59.999Z", "2027-01-01T00:00:00Z"}},
		{in: "2026-02", inside: []string{"2026-02-28T12:00:00Z"}, outside: []string{"2026-03-01T00:00:00Z", "2026-01-31T23:59:59Z"}},
		{in: "eq2026-11-25", inside: []string{"2026-11-25T00:00:00Z", "2026-11-25T23:59:59.999Z"}, outside: []string{"2026-11-26T00:00:00Z"}},
		{in: "ne2026-11-25", inside: []string{"2026-11-26T00:00:00Z", "2026-11-24T23:59:59.999Z"}, outside: []string{"2026-11-25T10:00:00Z"}},
		{in: "gt2026-11-25", inside: []string{"2026-11-26T00:00:00Z"}, outside: []string{"2026-11-25T23:59:59.999Z"}},
		{in: "ge2026-11-25", inside: []string{"2026-11-25T00:00:00Z"}, outside: []string{"2026-11-24T23:59:59.999Z"}},
		{in: "lt2026-11-25", inside: []string{"2026-11-24T23:59:59.999Z"}, outside: []string{"2026-11-25T00:00:00Z"}},
		{in: "le2026-11-25", inside: []string{"2026-11-25T23:59:59.999Z"}, outside: []string{"2026-11-26T00:00:00Z"}},
		{in: "sa2026-11-25", inside: []string{"2026-11-26T00:00:00Z"}, outside: []string{"2026-11-25T12:00:00Z"}},
		{in: "eb2026-11-25", inside: []string{"2026-11-24T12:00:00Z"}, outside: []string{"2026-11-25T00:00:00Z"}},
		{in: "ge2026-11-25T10:00:00+02:00", inside: []string{"2026-11-25T08:00:00Z"}, outside: []string{"2026-11-25T07:59:59.999Z"}},
		{in: "2026-11-25T10:00:00.123Z", inside: []string{"2026-11-25T10:00:00.123Z"}, outside: []string{"2026-11-25T10:00:00.124Z", "2026-11-25T10:00:00.122Z"}},
		{in: "2026-11-25T10:00", inside: []string{"2026-11-25T10:00:59Z"}, outside: []string{"2026-11-25T10:01:00Z"}},
		{in: "ap2026", wantFail: true},
		{in: "yesterday", wantFail: true},
		{in: "26", wantFail: true},
		{in: "", wantFail: true},
	}
	for _, c := range cases {
		r, err := ParseDateRange(c.in)
		if c.wantFail {
			require.Error(t, err, c.in)
			continue
		}
		require.NoError(t, err, c.in)
		for _, s := range c.inside {
			require.True(t, r.Contains(at(s)), "%s should contain %s", c.in, s)
		}
		for _, s := range c.outside {
			require.False(t, r.Contains(at(s)), "%s should not contain %s", c.in, s)
		}
	}
}
