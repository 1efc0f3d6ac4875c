package config

import (
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

const secret32 = "0123456789abcdef0123456789abcdef"

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(env(map[string]string{"HERALD_DEV": "1"}), nil, io.Discard)
	require.NoError(t, err)
	require.Equal(t, ":8080", c.Addr)
	require.Equal(t, "http://localhost:8080/fhir", c.BaseURL)
	require.Equal(t, "id-only", c.DefaultMaxPayload)
	require.Equal(t, 720*time.Hour, c.MaxLease)
	require.EqualValues(t, 4194304, c.MaxBodyBytes)
	require.Equal(t, 100, c.MaxSearchClauses)
	require.Equal(t, 100, c.MaxSearchValues)
	require.True(t, c.Dev)
	require.False(t, c.AuthConfigured())
}

func TestFlagsOverrideEnv(t *testing.T) {
	t.Parallel()
	c, err := Load(env(map[string]string{"HERALD_ADDR": ":1", "HERALD_AUTH_HS256_SECRET": secret32}),
		[]string{"--addr", ":2", "--base-url", "https://h.example/fhir/", "--no-migrate"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, ":2", c.Addr)
	require.Equal(t, "https://h.example/fhir", c.BaseURL)
	require.True(t, c.NoMigrate)
}

func TestLoadRejectsBadSettingsNamingTheVariable(t *testing.T) {
	t.Parallel()
	base := map[string]string{"HERALD_AUTH_HS256_SECRET": secret32}
	cases := []struct{ variable, value string }{
		{"HERALD_BASE_URL", "not a url"},
		{"HERALD_BASE_URL", "ftp://x/fhir"},
		{"HERALD_DEV", "maybe"},
		{"HERALD_REQUIRE_SIGNING_SECRET", "yes please"},
		{"HERALD_DEFAULT_MAX_PAYLOAD", "everything"},
		{"HERALD_MAX_LEASE", "forever"},
		{"HERALD_MAX_LEASE", "-1h"},
		{"HERALD_MAX_BODY_BYTES", "12"},
		{"HERALD_EVENT_RETENTION", "a while"},
		{"HERALD_MAX_BODY_BYTES", "lots"},
		{"HERALD_MAX_SEARCH_CLAUSES", "0"},
		{"HERALD_MAX_SEARCH_CLAUSES", "many"},
		{"HERALD_MAX_SEARCH_VALUES", "-1"},
		{"HERALD_MAX_SEARCH_VALUES", "100001"},
		{"HERALD_SECRET_KEY", "c2hvcnQ="},
		{"HERALD_AUTH_HS256_SECRET", "short"},
		{"HERALD_AUTH_JWKS_URL", "jwks"},
		{"DATABASE_URL", "mysql://x"},
		{"HERALD_LOG_LEVEL", "loud"},
		{"HERALD_PPROF_ADDR", "0.0.0.0:6060"},
		{"HERALD_SECRET_KEYS_PREVIOUS", "c2hvcnQ="},
		{"HERALD_PPROF_ADDR", "example.org:6060"},
		{"HERALD_SMART_TOKEN_ENDPOINT", "/token"},
		{"HERALD_SMART_AUTHORIZATION_ENDPOINT", "auth.example/authorize"},
		{"HERALD_SMART_CAPABILITIES", "launch-anything"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s=%s", c.variable, c.value), func(t *testing.T) {
			t.Parallel()
			m := map[string]string{}
			for k, v := range base {
				m[k] = v
			}
			m[c.variable] = c.value
			_, err := Load(env(m), nil, io.Discard)
			require.ErrorContains(t, err, c.variable)
			if c.variable == "HERALD_AUTH_HS256_SECRET" {
				require.NotContains(t, err.Error(), c.value, "errors never echo secrets")
			}
		})
	}
}

func TestSecureByDefault(t *testing.T) {
	t.Parallel()
	_, err := Load(env(nil), nil, io.Discard)
	require.ErrorContains(t, err, "no authentication configured")

	_, err = Load(env(map[string]string{"HERALD_AUTH_HS256_SECRET": secret32, "DATABASE_URL": "postgres://x/y"}), nil, io.Discard)
	require.ErrorContains(t, err, "HERALD_SECRET_KEY")

	c, err := Load(env(map[string]string{"HERALD_AUTH_HS256_SECRET": secret32, "DATABASE_URL": "postgres://x/y",
		"HERALD_SECRET_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}), nil, io.Discard)
	require.NoError(t, err)
	require.Len(t, c.SecretKey, 32)
}

func TestSMARTSettings(t *testing.T) {
	t.Parallel()
	c, err := Load(env(map[string]string{"HERALD_AUTH_HS256_SECRET": secret32,
		"HERALD_SMART_TOKEN_ENDPOINT":         "https://auth.example/token",
		"HERALD_SMART_AUTHORIZATION_ENDPOINT": "https://auth.example/authorize",
		"HERALD_SMART_CAPABILITIES":           "launch-standalone  client-confidential-asymmetric"}), nil, io.Discard)
	require.NoError(t, err)
	require.Equal(t, SMART{TokenEndpoint: "https://auth.example/token", AuthorizationEndpoint: "https://auth.example/authorize",
		Capabilities: []string{"launch-standalone", "client-confidential-asymmetric"}}, c.SMART)

	_, err = Load(env(map[string]string{"HERALD_AUTH_HS256_SECRET": secret32,
		"HERALD_SMART_AUTHORIZATION_ENDPOINT": "https://auth.example/authorize"}), nil, io.Discard)
	require.ErrorContains(t, err, "HERALD_SMART_TOKEN_ENDPOINT: is required")
}

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	s := Secret(secret32)
	require.Equal(t, "[redacted]", fmt.Sprint(s))
	require.Equal(t, "[redacted]", fmt.Sprintf("%v %+v", s, struct{ S Secret }{s})[:10])
	require.NotContains(t, fmt.Sprintf("%#v", s), secret32)
}

// TestREADMEDocumentsEverySetting keeps the README's configuration table true.
func TestREADMEDocumentsEverySetting(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	for _, s := range Env() {
		row := fmt.Sprintf("| `%s` | ", s[0])
		require.Contains(t, string(readme), row, "README configuration table lacks %s", s[0])
		if s[1] != "" {
			require.Contains(t, string(readme), row+"`"+s[1]+"`", "README shows the wrong default for %s", s[0])
		}
	}
}
