// Package config turns the environment and command-line flags into one typed
// Config. It is the only package that reads configuration; flags override
// environment variables, and every error names the variable to fix.
package config

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is Herald's whole configuration.
type Config struct {
	Addr                 string
	BaseURL              string // no trailing slash
	DatabaseURL          string // empty: embedded in-memory store
	AuthJWKSURL          string
	AuthIssuer           string
	AuthAudience         string
	AuthHS256Secret      Secret
	Dev                  bool
	SecretKey            []byte   // 32 bytes, or nil
	SecretKeysPrevious   [][]byte // older keys, for rotation
	RequireSigningSecret bool
	DefaultMaxPayload    string
	MaxLease             time.Duration
	MaxBodyBytes         int64
	MaxSearchClauses     int           // parameters (name=value pairs) in one request
	MaxSearchValues      int           // comma-separated values in one parameter
	EventRetention       time.Duration // 0: keep forever
	Delivery             Delivery
	SMART                SMART
	LogLevel             slog.Level
	PprofAddr            string // loopback only; empty: off
	NoMigrate            bool
}

// Delivery tunes the delivery engine.
type Delivery struct {
	Workers       int
	Poll          time.Duration
	Lease         time.Duration
	RetryBase     time.Duration
	RetryMax      time.Duration
	ErrorOffAfter time.Duration
}

// SMART is what /.well-known/smart-configuration publishes about the
// authorization server that issues Herald's tokens. Empty TokenEndpoint: not
// configured (the document answers 404).
type SMART struct {
	TokenEndpoint         string
	AuthorizationEndpoint string   // empty: no authorization-code grant
	Capabilities          []string // beyond the permission-* ones Herald itself honours
}

// Secret is a string that never prints.
type Secret string

func (Secret) String() string                 { return "[redacted]" }
func (Secret) LogValue() slog.Value           { return slog.StringValue("[redacted]") }
func (s Secret) GoString() string             { return s.String() }
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// setting is one variable: its environment name, flag name, default and help.
type setting struct {
	env, flag, def, help string
}

var settings = []setting{
	{"HERALD_ADDR", "addr", ":8080", "listen address"},
	{"HERALD_BASE_URL", "base-url", "http://localhost:8080/fhir", "public FHIR base URL (fullUrl, Location, CapabilityStatement)"},
	{"DATABASE_URL", "database-url", "", "PostgreSQL URL; empty uses the embedded in-memory store (data is lost on exit)"},
	{"HERALD_AUTH_JWKS_URL", "auth-jwks-url", "", "JWKS URL for RS256/ES256 bearer tokens"},
	{"HERALD_AUTH_ISSUER", "auth-issuer", "", "required token iss, when set"},
	{"HERALD_AUTH_AUDIENCE", "auth-audience", "", "required token aud, when set"},
	{"HERALD_AUTH_HS256_SECRET", "auth-hs256-secret", "", "shared secret for HS256 tokens (development and tests)"},
	{"HERALD_SMART_TOKEN_ENDPOINT", "smart-token-endpoint", "", "token endpoint of the authorization server, published in /fhir/.well-known/smart-configuration (empty: that document answers 404)"},
	{"HERALD_SMART_AUTHORIZATION_ENDPOINT", "smart-authorization-endpoint", "", "authorization endpoint of the authorization server (authorization-code grant), published with the token endpoint"},
	{"HERALD_SMART_CAPABILITIES", "smart-capabilities", "", "space-separated SMART capabilities of the authorization server (e.g. client-confidential-asymmetric launch-standalone), published beside Herald's permission-v1 permission-v2 permission-patient permission-user"},
	{"HERALD_DEV", "dev", "false", "development mode: with no auth configured, mint an ephemeral secret and print tokens"},
	{"HERALD_SECRET_KEY", "secret-key", "", "base64 32-byte key encrypting signing secrets and channel headers at rest"},
	{"HERALD_SECRET_KEYS_PREVIOUS", "secret-keys-previous", "", "comma-separated base64 keys that used to be HERALD_SECRET_KEY: still decrypt, never encrypt (key rotation)"},
	{"HERALD_REQUIRE_SIGNING_SECRET", "require-signing-secret", "false", "reject Subscriptions without a signing secret"},
	{"HERALD_DEFAULT_MAX_PAYLOAD", "default-max-payload", "id-only", "payload ceiling for unregistered clients: empty, id-only or full-resource"},
	{"HERALD_MAX_LEASE", "max-lease", "720h", "longest lifetime of a Subscription"},
	{"HERALD_MAX_BODY_BYTES", "max-body-bytes", "4194304", "larger request bodies get 413"},
	{"HERALD_MAX_SEARCH_CLAUSES", "max-search-clauses", "100", "most parameters (search clauses) in one request; more get 400"},
	{"HERALD_MAX_SEARCH_VALUES", "max-search-values", "100", "most comma-separated values in one parameter; more get 400"},
	{"HERALD_EVENT_RETENTION", "event-retention", "720h", "how long acknowledged notification events are kept for $events (0: forever)"},
	{"HERALD_ERROR_OFF_AFTER", "error-off-after", "24h", "how long a Subscription stays in error (delivery failing) before it is switched off"},
	{"HERALD_DELIVERY_WORKERS", "delivery-workers", "32", "notifications sent at the same time by this instance"},
	{"HERALD_DELIVERY_POLL", "delivery-poll", "1s", "how often to look for due deliveries besides LISTEN/NOTIFY wake-ups"},
	{"HERALD_DELIVERY_LEASE", "delivery-lease", "15s", "how long a claimed Subscription stays with one instance (longer while a send with a longer channel timeout is in flight); a crashed instance's work resumes when its leases expire"},
	{"HERALD_RETRY_BASE", "retry-base", "1s", "first delivery retry delay (doubles per failure, with jitter)"},
	{"HERALD_RETRY_MAX", "retry-max", "5m", "longest delay between delivery retries"},
	{"HERALD_LOG_LEVEL", "log-level", "info", "debug, info, warn or error"},
	{"HERALD_PPROF_ADDR", "pprof-addr", "", "loopback address for a Go pprof listener (profiling); empty: off"},
}

// lookup returns the setting of an environment variable.
func lookup(env string) setting {
	for _, s := range settings {
		if s.env == env {
			return s
		}
	}
	panic("config: unknown setting " + env)
}

// Load reads the configuration of `herald serve` from getenv and args (the
// arguments after the subcommand). stderr receives flag usage on -h.
func Load(getenv func(string) string, args []string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("herald serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	values := make(map[string]*string, len(settings))
	for _, s := range settings {
		def := s.def
		if v := getenv(s.env); v != "" {
			def = v
		}
		values[s.env] = fs.String(s.flag, def, s.help+" ($"+s.env+")")
	}
	noMigrate := fs.Bool("no-migrate", false, "do not apply pending database migrations at start")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	get := func(env string) string { return strings.TrimSpace(*values[env]) }

	var errs []error
	fail := func(env, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", env, fmt.Sprintf(format, args...)))
	}
	c := Config{
		Addr:              get("HERALD_ADDR"),
		BaseURL:           strings.TrimRight(get("HERALD_BASE_URL"), "/"),
		DatabaseURL:       get("DATABASE_URL"),
		AuthJWKSURL:       get("HERALD_AUTH_JWKS_URL"),
		AuthIssuer:        get("HERALD_AUTH_ISSUER"),
		AuthAudience:      get("HERALD_AUTH_AUDIENCE"),
		AuthHS256Secret:   Secret(*values["HERALD_AUTH_HS256_SECRET"]),
		DefaultMaxPayload: get("HERALD_DEFAULT_MAX_PAYLOAD"),
		NoMigrate:         *noMigrate,
	}
	boolean := func(env string) bool {
		b, err := strconv.ParseBool(get(env))
		if err != nil {
			fail(env, "must be true or false, not %q", get(env))
		}
		return b
	}
	c.Dev = boolean("HERALD_DEV")
	c.RequireSigningSecret = boolean("HERALD_REQUIRE_SIGNING_SECRET")

	if c.Addr == "" {
		fail("HERALD_ADDR", "must not be empty")
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		fail("HERALD_BASE_URL", "must be an absolute http(s) URL without query, such as https://herald.example.org/fhir")
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		fail("DATABASE_URL", "must be a postgres:// URL")
	}
	if c.AuthJWKSURL != "" {
		if u, err := url.Parse(c.AuthJWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			fail("HERALD_AUTH_JWKS_URL", "must be an absolute https URL")
		}
	}
	c.SMART = loadSMART(get, fail)
	if s := string(c.AuthHS256Secret); s != "" && len(s) < 32 {
		fail("HERALD_AUTH_HS256_SECRET", "must be at least 32 characters")
	}
	if k := get("HERALD_SECRET_KEY"); k != "" {
		key, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(key) != 32 {
			fail("HERALD_SECRET_KEY", "must be 32 bytes in standard base64 (e.g. from `openssl rand -base64 32`)")
		}
		c.SecretKey = key
	}
	if prev := get("HERALD_SECRET_KEYS_PREVIOUS"); prev != "" {
		if c.SecretKey == nil {
			fail("HERALD_SECRET_KEYS_PREVIOUS", "needs HERALD_SECRET_KEY (the new key) as well")
		}
		for i, k := range strings.Split(prev, ",") {
			key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k))
			if err != nil || len(key) != 32 {
				fail("HERALD_SECRET_KEYS_PREVIOUS", "key %d must be 32 bytes in standard base64", i+1)
				continue
			}
			c.SecretKeysPrevious = append(c.SecretKeysPrevious, key)
		}
	}
	switch c.DefaultMaxPayload {
	case "empty", "id-only", "full-resource":
	default:
		fail("HERALD_DEFAULT_MAX_PAYLOAD", "must be empty, id-only or full-resource, not %q", c.DefaultMaxPayload)
	}
	if d, err := time.ParseDuration(get("HERALD_MAX_LEASE")); err != nil || d <= 0 {
		fail("HERALD_MAX_LEASE", "must be a positive duration such as 720h")
	} else {
		c.MaxLease = d
	}
	if d, err := time.ParseDuration(get("HERALD_EVENT_RETENTION")); err != nil || d < 0 {
		fail("HERALD_EVENT_RETENTION", "must be a duration such as 720h, or 0 to keep events forever")
	} else {
		c.EventRetention = d
	}
	positive := func(env string, into *time.Duration) {
		if d, err := time.ParseDuration(get(env)); err != nil || d <= 0 {
			fail(env, "must be a positive duration such as %s", lookup(env).def)
		} else {
			*into = d
		}
	}
	positive("HERALD_ERROR_OFF_AFTER", &c.Delivery.ErrorOffAfter)
	positive("HERALD_DELIVERY_POLL", &c.Delivery.Poll)
	positive("HERALD_DELIVERY_LEASE", &c.Delivery.Lease)
	positive("HERALD_RETRY_BASE", &c.Delivery.RetryBase)
	positive("HERALD_RETRY_MAX", &c.Delivery.RetryMax)
	if c.Delivery.RetryMax < c.Delivery.RetryBase {
		fail("HERALD_RETRY_MAX", "must not be shorter than HERALD_RETRY_BASE")
	}
	if n, err := strconv.Atoi(get("HERALD_DELIVERY_WORKERS")); err != nil || n < 1 || n > 4096 {
		fail("HERALD_DELIVERY_WORKERS", "must be an integer from 1 to 4096")
	} else {
		c.Delivery.Workers = n
	}
	if n, err := strconv.ParseInt(get("HERALD_MAX_BODY_BYTES"), 10, 64); err != nil || n < 1024 {
		fail("HERALD_MAX_BODY_BYTES", "must be an integer of at least 1024")
	} else {
		c.MaxBodyBytes = n
	}
	count := func(env string, into *int) {
		if n, err := strconv.Atoi(get(env)); err != nil || n < 1 || n > 10000 {
			fail(env, "must be an integer from 1 to 10000")
		} else {
			*into = n
		}
	}
	count("HERALD_MAX_SEARCH_CLAUSES", &c.MaxSearchClauses)
	count("HERALD_MAX_SEARCH_VALUES", &c.MaxSearchValues)
	if c.PprofAddr = get("HERALD_PPROF_ADDR"); c.PprofAddr != "" {
		host, _, err := net.SplitHostPort(c.PprofAddr)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			fail("HERALD_PPROF_ADDR", "must be a loopback address such as 127.0.0.1:6060 (profiles reveal internals)")
		}
	}
	if err := c.LogLevel.UnmarshalText([]byte(get("HERALD_LOG_LEVEL"))); err != nil {
		fail("HERALD_LOG_LEVEL", "must be debug, info, warn or error")
	}
	if len(errs) == 0 {
		if !c.AuthConfigured() && !c.Dev {
			errs = append(errs, errors.New("no authentication configured: set HERALD_AUTH_JWKS_URL or HERALD_AUTH_HS256_SECRET, or HERALD_DEV=true for local development (Herald is secure by default and will not serve without it)"))
		}
		if c.DatabaseURL != "" && c.SecretKey == nil && !c.Dev {
			errs = append(errs, errors.New("HERALD_SECRET_KEY: required with a PostgreSQL store outside development mode (it encrypts signing secrets and channel headers at rest)"))
		}
	}
	return c, errors.Join(errs...)
}

// loadSMART reads the HERALD_SMART_* settings.
func loadSMART(get func(string) string, fail func(env, format string, args ...any)) SMART {
	sm := SMART{
		TokenEndpoint:         get("HERALD_SMART_TOKEN_ENDPOINT"),
		AuthorizationEndpoint: get("HERALD_SMART_AUTHORIZATION_ENDPOINT"),
		Capabilities:          strings.Fields(get("HERALD_SMART_CAPABILITIES")),
	}
	for _, env := range []string{"HERALD_SMART_TOKEN_ENDPOINT", "HERALD_SMART_AUTHORIZATION_ENDPOINT"} {
		if v := get(env); v != "" && !absoluteHTTP(v) {
			fail(env, "must be an absolute http(s) URL without fragment")
		}
	}
	if sm.TokenEndpoint == "" && (sm.AuthorizationEndpoint != "" || len(sm.Capabilities) > 0) {
		fail("HERALD_SMART_TOKEN_ENDPOINT", "is required when HERALD_SMART_AUTHORIZATION_ENDPOINT or HERALD_SMART_CAPABILITIES is set")
	}
	for _, c := range sm.Capabilities {
		if !smartCapabilities[c] {
			fail("HERALD_SMART_CAPABILITIES", "%q is not a SMART App Launch 2.0 capability", c)
		}
	}
	return sm
}

func absoluteHTTP(v string) bool {
	u, err := url.Parse(v)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.Fragment == ""
}

// smartCapabilities are the capability codes of SMART App Launch 2.0.
var smartCapabilities = map[string]bool{
	"launch-ehr": true, "launch-standalone": true, "authorize-post": true,
	"client-public": true, "client-confidential-symmetric": true, "client-confidential-asymmetric": true,
	"sso-openid-connect": true, "context-banner": true, "context-style": true,
	"context-ehr-patient": true, "context-ehr-encounter": true,
	"context-standalone-patient": true, "context-standalone-encounter": true,
	"permission-offline": true, "permission-online": true, "permission-patient": true, "permission-user": true,
	"permission-v1": true, "permission-v2": true,
}

// AuthConfigured reports whether any token verification is configured.
func (c Config) AuthConfigured() bool {
	return c.AuthJWKSURL != "" || c.AuthHS256Secret != ""
}

// Env lists every environment variable Load reads with its default and
// meaning, for documentation and --help.
func Env() [][3]string {
	out := make([][3]string, 0, len(settings))
	for _, s := range settings {
		out = append(out, [3]string{s.env, s.def, s.help})
	}
	return out
}
