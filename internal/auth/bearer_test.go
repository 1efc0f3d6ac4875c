package auth

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBearerToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		header string
		token  string
		ok     bool
	}{
		{header: "Bearer abc.def.ghi", token: "abc.def.ghi", ok: true},
		{header: "bearer abc", token: "abc", ok: true},
		{header: "BEARER abc", token: "abc", ok: true},
		{header: "  Bearer   abc  ", token: "abc", ok: true},
		{header: ""},
		{header: "Bearer"},
		{header: "Bearer "},
		{header: "Basic dXNlcjpwYXNz"},
		{header: "Bearerabc"},
		{header: "abc"},
		{header: "Bearer a b"},
		{header: "Token abc"},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			t.Parallel()
			token, ok := BearerToken(tt.header)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.token, token)
		})
	}
}
