package auth

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

func TestMintHS256(t *testing.T) {
	t.Parallel()
	tok, err := MintHS256(testSecret, MintClaims{
		ClientID: "client-1",
		Scope:    " system/Subscription.cruds  patient/Observation.rs ",
		Patient:  "p1",
		TTL:      time.Hour,
		Issuer:   "https://herald.example",
		Audience: "herald",
		Now:      testNow,
	})
	require.NoError(t, err)

	var c jwt.MapClaims
	_, _, err = jwt.NewParser().ParseUnverified(tok, &c)
	require.NoError(t, err)
	require.Equal(t, "client-1", c["client_id"])
	require.Equal(t, "client-1", c["sub"])
	require.Equal(t, "system/Subscription.cruds patient/Observation.rs", c["scope"])
	require.Equal(t, "p1", c["patient"])
	require.Equal(t, "https://herald.example", c["iss"])
	require.Equal(t, []any{"herald"}, c["aud"])
	require.EqualValues(t, testNow.Add(time.Hour).Unix(), c["exp"])
	require.EqualValues(t, testNow.Unix(), c["iat"])
	require.NotEmpty(t, c["jti"])

	v := newHSVerifier(t, VerifierConfig{Issuer: "https://herald.example", Audience: "herald"})
	p, err := v.Verify(t.Context(), tok)
	require.NoError(t, err)
	require.Equal(t, &Principal{
		ClientID:  "client-1",
		Scopes:    ParseScopes("system/Subscription.cruds patient/Observation.rs"),
		RawScopes: []string{"system/Subscription.cruds", "patient/Observation.rs"},
		Patient:   "p1",
		User:      "sub:client-1",
		ExpiresAt: testNow.Add(time.Hour),
	}, p)
	require.True(t, p.PatientScoped(Read, "Observation"))
}

func TestMintHS256Minimal(t *testing.T) {
	t.Parallel()
	a, err := MintHS256(testSecret, MintClaims{ClientID: "c", TTL: time.Minute})
	require.NoError(t, err)
	b, err := MintHS256(testSecret, MintClaims{ClientID: "c", TTL: time.Minute})
	require.NoError(t, err)
	require.NotEqual(t, a, b, "jti makes every token unique")

	var c jwt.MapClaims
	_, _, err = jwt.NewParser().ParseUnverified(a, &c)
	require.NoError(t, err)
	for _, absent := range []string{"scope", "patient", "iss", "aud"} {
		require.NotContains(t, c, absent)
	}
	// Now defaults to the wall clock, so a real-time verifier accepts it.
	v, err := NewVerifier(t.Context(), VerifierConfig{HS256Secret: testSecret})
	require.NoError(t, err)
	_, err = v.Verify(t.Context(), a)
	require.NoError(t, err)
}

func TestMintHS256Errors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		secret []byte
		c      MintClaims
		want   string
	}{
		{name: "no secret", c: MintClaims{ClientID: "c", TTL: time.Hour}, want: "at least 32 bytes"},
		{name: "short secret", secret: []byte("short"), c: MintClaims{ClientID: "c", TTL: time.Hour}, want: "at least 32 bytes"},
		{name: "no client", secret: testSecret, c: MintClaims{TTL: time.Hour}, want: "client id"},
		{name: "no ttl", secret: testSecret, c: MintClaims{ClientID: "c"}, want: "positive TTL"},
		{name: "negative ttl", secret: testSecret, c: MintClaims{ClientID: "c", TTL: -time.Second}, want: "positive TTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := MintHS256(tt.secret, tt.c)
			require.ErrorContains(t, err, tt.want)
		})
	}
}
