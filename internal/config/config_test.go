package config

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

const (
	secret32 = "0123456789abcdef0123456789abcdef"
	key32    = "dGVzdC1vbmx5LWtleS10ZXN0LW9ubHkta2V5LXRlc3Q=" // base64 of 32 bytes, not an example secret
)

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
	require.Equal(t, Limits{Filters: 20, FilterParams: 20, SubscriptionsPerClient: 1000, ReasonBytes: 1024, HeaderValueBytes: 4096, SubscriptionBytes: 65536}, c.Limits)
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
		{"HERALD_MAX_REASON_BYTES", "0"},
		{"HERALD_MAX_HEADER_VALUE_BYTES", "big"},
		{"HERALD_MAX_SUBSCRIPTION_BYTES", "-5"},
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
		"HERALD_SECRET_KEY": key32}), nil, io.Discard)
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

func TestTimeouts(t *testing.T) {
	t.Parallel()
	c, err := Load(env(map[string]string{"HERALD_DEV": "1"}), nil, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 30*time.Second, c.RequestTimeout)
	require.Less(t, c.RequestTimeout, WriteTimeout, "a request ends with an answer before the server drops it")
	require.Equal(t, Timeouts{Statement: 25 * time.Second, Lock: 10 * time.Second, Acquire: 10 * time.Second}, c.DB)

	c, err = Load(env(map[string]string{"HERALD_DEV": "1", "HERALD_DB_LOCK_TIMEOUT": "0", "HERALD_REQUEST_TIMEOUT": "5s"}), nil, io.Discard)
	require.NoError(t, err)
	require.Zero(t, c.DB.Lock, "0 turns a database bound off")
	require.Equal(t, 5*time.Second, c.RequestTimeout)

	for _, bad := range []map[string]string{
		{"HERALD_REQUEST_TIMEOUT": "0"},
		{"HERALD_REQUEST_TIMEOUT": WriteTimeout.String()},
		{"HERALD_DB_STATEMENT_TIMEOUT": "soon"},
		{"HERALD_DB_ACQUIRE_TIMEOUT": "-1s"},
	} {
		bad["HERALD_DEV"] = "1"
		_, err := Load(env(bad), nil, io.Discard)
		for k := range bad {
			if k != "HERALD_DEV" {
				require.ErrorContains(t, err, k)
			}
		}
	}
}

// Finding 12: configuration that would run insecurely does not start.
func TestRefusesUnsafeConfiguration(t *testing.T) {
	t.Parallel()
	const (
		composeHS256 = "change-me-to-a-long-random-secret-0123456789"
		composeKey   = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
		pg           = "postgres://herald@db/herald"
		jwks         = "https://idp.example.org/jwks.json"
	)
	cases := []struct {
		name    string
		env     map[string]string
		mention string
	}{
		{"docker-compose HS256 secret", map[string]string{"HERALD_AUTH_HS256_SECRET": composeHS256}, "HERALD_AUTH_HS256_SECRET"},
		{"docker-compose secret key", map[string]string{"HERALD_AUTH_HS256_SECRET": secret32, "HERALD_SECRET_KEY": composeKey}, "HERALD_SECRET_KEY"},
		{"docker-compose key as a previous key", map[string]string{"HERALD_AUTH_HS256_SECRET": secret32, "HERALD_SECRET_KEY": key32, "HERALD_SECRET_KEYS_PREVIOUS": composeKey}, "HERALD_SECRET_KEYS_PREVIOUS"},
		{"dev with PostgreSQL", map[string]string{"HERALD_DEV": "true", "DATABASE_URL": pg, "HERALD_SECRET_KEY": key32}, "HERALD_DEV"},
		{"dev with a JWKS", map[string]string{"HERALD_DEV": "true", "HERALD_AUTH_JWKS_URL": jwks}, "HERALD_DEV"},
		{"dev allowed with PostgreSQL but no key", map[string]string{"HERALD_DEV": "true", "HERALD_DEV_ALLOW_PRODUCTION": "true", "DATABASE_URL": pg}, "HERALD_SECRET_KEY"},
		{"http JWKS", map[string]string{"HERALD_AUTH_JWKS_URL": "http://idp.example.org/jwks.json"}, "HERALD_AUTH_JWKS_URL"},
		{"http JWKS on a private address", map[string]string{"HERALD_AUTH_JWKS_URL": "http://10.0.0.5/jwks.json"}, "HERALD_AUTH_JWKS_URL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(env(c.env), nil, io.Discard)
			require.ErrorContains(t, err, c.mention)
			require.NotContains(t, err.Error(), composeHS256, "errors never echo secrets")
		})
	}

	allowed := []map[string]string{
		{"HERALD_DEV": "true", "HERALD_DEV_ALLOW_PRODUCTION": "true", "DATABASE_URL": pg, "HERALD_SECRET_KEY": key32},
		{"HERALD_DEV": "true", "HERALD_DEV_ALLOW_PRODUCTION": "true", "HERALD_AUTH_JWKS_URL": jwks},
		{"HERALD_AUTH_JWKS_URL": "http://127.0.0.1:9999/jwks.json"},
		{"HERALD_AUTH_JWKS_URL": "http://localhost:9999/jwks.json"},
		{"HERALD_AUTH_JWKS_URL": "http://[::1]:9999/jwks.json"},
	}
	for _, m := range allowed {
		_, err := Load(env(m), nil, io.Discard)
		require.NoError(t, err, "%v", m)
	}
}

// docker-compose.yml must not ship usable secrets: it requires them from
// the environment (${VAR:?message}).
func TestDockerComposeRequiresItsSecrets(t *testing.T) {
	t.Parallel()
	compose, err := os.ReadFile("../../docker-compose.yml")
	require.NoError(t, err)
	for _, name := range []string{"HERALD_SECRET_KEY", "HERALD_AUTH_HS256_SECRET", "POSTGRES_PASSWORD"} {
		re := regexp.MustCompile(`(?m)^\s+` + name + `:\s*(.*)$`)
		m := re.FindStringSubmatch(string(compose))
		require.NotNil(t, m, "%s is set in docker-compose.yml", name)
		require.Regexp(t, `^"?\$\{[A-Z0-9_]+:\?[^}]+\}"?$`, m[1], "%s is required from the environment, not written down", name)
	}
	require.NotContains(t, string(compose), "herald:herald@", "the database password is not written down either")
}
