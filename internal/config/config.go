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
	"os"
	"slices"
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
	// NotificationTokenTTL is the lifetime of notification access tokens.
	NotificationTokenTTL time.Duration
	Limits               Limits
	MaxBodyBytes         int64
	MaxSearchClauses     int           // parameters (name=value pairs) in one request
	MaxSearchValues      int           // comma-separated values in one parameter
	MaxSearchCount       int           // largest _count a search or history page gets
	MaxSortMatches       int           // matches a search sorted by keys in the bodies may rank
	MaxEventsBytes       int           // resources one $events answer may carry
	MaxBundleEntries     int           // entries of one batch or transaction
	MaxResponseBytes     int64         // resource bytes of a search page or a batch/transaction response
	EventRetention       time.Duration // 0: keep forever
	InstanceID           string        // names this process in the attempt log
	Attempts             Attempts
	Delivery             Delivery
	Websocket            Websocket
	SMART                SMART
	RequestTimeout       time.Duration // each request's deadline; under WriteTimeout
	ShutdownDrain        time.Duration // /readyz fails this long before the listener closes
	DB                   Timeouts
	LogLevel             slog.Level
	PprofAddr            string // loopback only; empty: off
	NoMigrate            bool

	// BodyBytesInFlight bounds the request bodies parsed at once (0: 4 x
	// MaxBodyBytes).
	BodyBytesInFlight int64
	// SearchesInFlight bounds the searches worked on at once (0: 2 per CPU).
	SearchesInFlight int
}

// Limits bound what one client may ask of the server.
type Limits struct {
	Filters                int // filters on one Subscription
	FilterParams           int // parameters in one filter
	SubscriptionsPerClient int // live Subscriptions of one client
	ReasonBytes            int // Subscription.reason
	HeaderValueBytes       int // one channel.header value
	SubscriptionBytes      int // one Subscription as sent
}

// WriteTimeout is the HTTP server's write timeout: a request whose answer
// is not written by then loses its connection, so RequestTimeout stays under it.
const WriteTimeout = 60 * time.Second

// Timeouts bound waits on PostgreSQL; zero leaves a bound off.
type Timeouts struct {
	Statement time.Duration // statement_timeout
	Lock      time.Duration // lock_timeout
	Acquire   time.Duration // wait for a free pooled connection
}

// Delivery tunes the delivery engine.
type Delivery struct {
	Workers       int
	MaxPerOwner   int   // Subscriptions of one client in flight across instances; 0: three quarters of Workers
	MaxPerHost    int   // sends to one endpoint (scheme, host, port) of one owner at once, per instance
	CacheBytes    int64 // resource bodies kept for notifications
	DBConns       int   // connections of the delivery pool; 0: share the write pool
	Poll          time.Duration
	Lease         time.Duration
	RetryBase     time.Duration
	RetryMax      time.Duration
	ErrorOffAfter time.Duration
	RecoverAfter  time.Duration // least time in error before a success makes a Subscription active again
}

// Websocket tunes the websocket channel.
type Websocket struct {
	TokenTTL          time.Duration // binding tokens' lifetime
	SocketsPerClient  int
	BindingsPerSocket int
	MessageBytes      int           // largest client message
	BindTimeout       time.Duration // close a socket with no binding after this
	QueueLength       int           // notifications waiting to be written to one socket
}

// Attempts configures the delivery attempt log.
type Attempts struct {
	Log             bool          // false: attempts are not logged
	Retention       time.Duration // how long attempts are kept
	PerSubscription int           // the newest kept of each Subscription
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
	{"HERALD_DEV_ALLOW_PRODUCTION", "dev-allow-production", "false", "let HERALD_DEV run beside production settings (a PostgreSQL DATABASE_URL or a JWKS); refused otherwise"},
	{"HERALD_SECRET_KEY", "secret-key", "", "base64 32-byte key encrypting signing secrets and channel headers at rest"},
	{"HERALD_SECRET_KEYS_PREVIOUS", "secret-keys-previous", "", "comma-separated base64 keys that used to be HERALD_SECRET_KEY: still decrypt, never encrypt (key rotation)"},
	{"HERALD_REQUIRE_SIGNING_SECRET", "require-signing-secret", "false", "reject Subscriptions without a signing secret"},
	{"HERALD_DEFAULT_MAX_PAYLOAD", "default-max-payload", "id-only", "payload ceiling for unregistered clients: empty, id-only or full-resource"},
	{"HERALD_MAX_LEASE", "max-lease", "720h", "longest lifetime of a Subscription"},
	{"HERALD_MAX_FILTERS", "max-filters", "20", "most filters (backport-filter-criteria) on one Subscription"},
	{"HERALD_MAX_FILTER_PARAMS", "max-filter-params", "20", "most parameters in one filter"},
	{"HERALD_MAX_SUBSCRIPTIONS_PER_CLIENT", "max-subscriptions-per-client", "1000", "most live (not off) Subscriptions of one owner: a client in one launch context (system, one user, one patient)"},
	{"HERALD_MAX_REASON_BYTES", "max-reason-bytes", "1024", "largest Subscription.reason in bytes; larger get 422"},
	{"HERALD_MAX_HEADER_VALUE_BYTES", "max-header-value-bytes", "4096", "largest value of one Subscription channel.header in bytes; larger get 422"},
	{"HERALD_MAX_SUBSCRIPTION_BYTES", "max-subscription-bytes", "65536", "largest Subscription resource in bytes; larger get 422"},
	{"HERALD_MAX_BODY_BYTES", "max-body-bytes", "4194304", "larger request bodies get 413"},
	{"HERALD_SEARCHES_IN_FLIGHT", "searches-in-flight", "0", "searches and history reads worked on at once; more wait in line (until their deadline, then 503); 0: 2 per CPU (raise it when PostgreSQL is on another host)"},
	{"HERALD_BODY_BYTES_IN_FLIGHT", "body-bytes-in-flight", "0", "bytes of request bodies parsed and acted on at once (a parsed body costs many times its size); more wait, then 503; 0: 4 x HERALD_MAX_BODY_BYTES"},
	{"HERALD_MAX_SEARCH_CLAUSES", "max-search-clauses", "100", "most parameters (search clauses) in one request; more get 400"},
	{"HERALD_MAX_SEARCH_VALUES", "max-search-values", "100", "most comma-separated values in one parameter; more get 400"},
	{"HERALD_MAX_SEARCH_COUNT", "max-search-count", "1000", "largest page a search or history answers with; a larger _count gets this many"},
	{"HERALD_MAX_SORT_MATCHES", "max-sort-matches", "10000", "most matches a search with _sort may sort (they are held in memory); more get 413"},
	{"HERALD_MAX_EVENTS_BYTES", "max-events-bytes", "8388608", "most bytes of resources one $events answer carries; it ends early (ask again from its last event) rather than exceed them"},
	{"HERALD_MAX_BUNDLE_ENTRIES", "max-bundle-entries", "1000", "most entries in one batch or transaction Bundle; more get 413"},
	{"HERALD_WS_TOKEN_TTL", "ws-token-ttl", "5m", "lifetime of a websocket binding token ($get-ws-binding-token)"},
	{"HERALD_WS_SOCKETS_PER_CLIENT", "ws-sockets-per-client", "20", "most bound websockets of one client on one instance"},
	{"HERALD_WS_BINDINGS_PER_SOCKET", "ws-bindings-per-socket", "100", "most Subscriptions bound to one websocket"},
	{"HERALD_WS_MAX_MESSAGE_BYTES", "ws-max-message-bytes", "16384", "largest message a websocket client may send; larger close the socket"},
	{"HERALD_WS_BIND_TIMEOUT", "ws-bind-timeout", "10s", "a websocket with no bind-with-token after this is closed"},
	{"HERALD_WS_QUEUE_LENGTH", "ws-queue-length", "256", "notifications waiting to be written to one websocket; a reader that falls further behind is disconnected"},
	{"HERALD_MAX_RESPONSE_BYTES", "max-response-bytes", "16777216", "most bytes of resources in one search page (it ends early, with a next link) or one batch or transaction response"},
	{"HERALD_EVENT_RETENTION", "event-retention", "720h", "how long acknowledged notification events are kept for $events (0: forever)"},
	{"HERALD_ATTEMPT_LOG", "attempt-log", "true", "log every delivery attempt (time, instance, events, status or error class, latency, first 1 KiB of the response) for GET /admin/subscriptions/{id}/attempts and $attempts"},
	{"HERALD_ATTEMPT_RETENTION", "attempt-retention", "168h", "how long delivery attempts are kept in the attempt log"},
	{"HERALD_ATTEMPT_MAX_PER_SUBSCRIPTION", "attempt-max-per-subscription", "1000", "most delivery attempts kept per Subscription (the newest)"},
	{"HERALD_INSTANCE_ID", "instance-id", "", "this instance's name in the delivery attempt log (empty: hostname-pid)"},
	{"HERALD_NOTIFICATION_TOKEN_TTL", "notification-token-ttl", "5m", "lifetime of the notification access tokens in id-only notifications of Subscriptions that ask for them (at most 1h)"},
	{"HERALD_ERROR_OFF_AFTER", "error-off-after", "24h", "how long a Subscription stays in error (delivery failing) before it is switched off"},
	{"HERALD_ERROR_RECOVER_AFTER", "error-recover-after", "10m", "least time a Subscription stays in error before a successful delivery makes it active again (deliveries go on meanwhile); bounds the versions a flapping endpoint stores"},
	{"HERALD_DELIVERY_WORKERS", "delivery-workers", "32", "notifications sent at the same time by this instance"},
	{"HERALD_DELIVERY_MAX_PER_OWNER", "delivery-max-per-owner", "0", "Subscriptions of one client being delivered at once, across all instances; 0: three quarters of HERALD_DELIVERY_WORKERS"},
	{"HERALD_DELIVERY_MAX_PER_ENDPOINT", "delivery-max-per-endpoint", "4", "notifications sent to one endpoint (scheme, host, port) for one owner at once by this instance; more due ones back off as \"endpoint busy\""},
	{"HERALD_DELIVERY_CACHE_BYTES", "delivery-cache-bytes", "67108864", "most bytes of resources delivery keeps in memory for notifications (a write that fires for many Subscriptions is read once)"},
	{"HERALD_DELIVERY_DB_CONNS", "delivery-db-conns", "8", "PostgreSQL connections of the delivery queue's own pool (claims, outcomes), apart from the pool of writes and reads (pool_max_conns in DATABASE_URL, default 16); 0: share that pool"},
	{"HERALD_DELIVERY_POLL", "delivery-poll", "1s", "how often to look for due deliveries besides LISTEN/NOTIFY wake-ups"},
	{"HERALD_DELIVERY_LEASE", "delivery-lease", "15s", "how long a claimed Subscription stays with one instance (longer while a send with a longer channel timeout is in flight); a crashed instance's work resumes when its leases expire"},
	{"HERALD_RETRY_BASE", "retry-base", "1s", "first delivery retry delay (doubles per failure, with jitter)"},
	{"HERALD_RETRY_MAX", "retry-max", "5m", "longest delay between delivery retries"},
	{"HERALD_REQUEST_TIMEOUT", "request-timeout", "30s", "deadline of each request's work; when it passes the request's transaction rolls back and the client gets 503 (under the 60s write timeout)"},
	{"HERALD_DB_STATEMENT_TIMEOUT", "db-statement-timeout", "25s", "PostgreSQL statement_timeout of Herald's connections (0: off)"},
	{"HERALD_DB_LOCK_TIMEOUT", "db-lock-timeout", "10s", "PostgreSQL lock_timeout of Herald's connections: a write waiting longer for a row lock fails with 503 (0: off)"},
	{"HERALD_DB_ACQUIRE_TIMEOUT", "db-acquire-timeout", "10s", "longest wait for a free database connection before 503 (0: wait for the request's deadline)"},
	{"HERALD_SHUTDOWN_DRAIN", "shutdown-drain", "5s", "on SIGTERM, how long /readyz fails (requests still served) before the listener closes"},
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
	devAllowProduction := boolean("HERALD_DEV_ALLOW_PRODUCTION")
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
	if c.AuthJWKSURL != "" && !secureJWKSURL(c.AuthJWKSURL) {
		fail("HERALD_AUTH_JWKS_URL", "must be an absolute https URL (http only on a loopback address, for tests): keys fetched over plain http can be swapped in transit")
	}
	c.SMART = loadSMART(get, fail)
	if s := string(c.AuthHS256Secret); s != "" && len(s) < 32 {
		fail("HERALD_AUTH_HS256_SECRET", "must be at least 32 characters")
	}
	if slices.Contains(exampleHS256Secrets, string(c.AuthHS256Secret)) {
		fail("HERALD_AUTH_HS256_SECRET", "is a published example secret: anyone could mint tokens; generate one (openssl rand -base64 32)")
	}
	if k := get("HERALD_SECRET_KEY"); k != "" {
		key, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(key) != 32 {
			fail("HERALD_SECRET_KEY", "must be 32 bytes in standard base64 (e.g. from `openssl rand -base64 32`)")
		} else if slices.Contains(exampleKeys, string(key)) {
			fail("HERALD_SECRET_KEY", "is a published example key: generate one (openssl rand -base64 32)")
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
			if slices.Contains(exampleKeys, string(key)) {
				fail("HERALD_SECRET_KEYS_PREVIOUS", "key %d is a published example key: whatever it sealed is readable by anyone", i+1)
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
	positive("HERALD_ATTEMPT_RETENTION", &c.Attempts.Retention)
	c.Attempts.Log = boolean("HERALD_ATTEMPT_LOG")
	c.InstanceID = get("HERALD_INSTANCE_ID")
	if c.InstanceID == "" {
		c.InstanceID = defaultInstanceID()
	}
	if positive("HERALD_NOTIFICATION_TOKEN_TTL", &c.NotificationTokenTTL); c.NotificationTokenTTL > time.Hour {
		fail("HERALD_NOTIFICATION_TOKEN_TTL", "must be at most 1h: the token travels with the notification")
	}
	positive("HERALD_ERROR_RECOVER_AFTER", &c.Delivery.RecoverAfter)
	if c.Delivery.RecoverAfter >= c.Delivery.ErrorOffAfter {
		fail("HERALD_ERROR_RECOVER_AFTER", "must be shorter than HERALD_ERROR_OFF_AFTER")
	}
	positive("HERALD_DELIVERY_POLL", &c.Delivery.Poll)
	positive("HERALD_DELIVERY_LEASE", &c.Delivery.Lease)
	positive("HERALD_RETRY_BASE", &c.Delivery.RetryBase)
	positive("HERALD_RETRY_MAX", &c.Delivery.RetryMax)
	positive("HERALD_REQUEST_TIMEOUT", &c.RequestTimeout)
	if c.RequestTimeout >= WriteTimeout {
		fail("HERALD_REQUEST_TIMEOUT", "must be shorter than the server's write timeout (%s)", WriteTimeout)
	}
	nonNegative := func(env string, into *time.Duration) {
		if d, err := time.ParseDuration(get(env)); err != nil || d < 0 {
			fail(env, "must be a duration such as %s, or 0 for no bound", lookup(env).def)
		} else {
			*into = d
		}
	}
	nonNegative("HERALD_DB_STATEMENT_TIMEOUT", &c.DB.Statement)
	nonNegative("HERALD_DB_LOCK_TIMEOUT", &c.DB.Lock)
	nonNegative("HERALD_DB_ACQUIRE_TIMEOUT", &c.DB.Acquire)
	nonNegative("HERALD_SHUTDOWN_DRAIN", &c.ShutdownDrain)
	if c.Delivery.RetryMax < c.Delivery.RetryBase {
		fail("HERALD_RETRY_MAX", "must not be shorter than HERALD_RETRY_BASE")
	}
	if n, err := strconv.Atoi(get("HERALD_DELIVERY_WORKERS")); err != nil || n < 1 || n > 4096 {
		fail("HERALD_DELIVERY_WORKERS", "must be an integer from 1 to 4096")
	} else {
		c.Delivery.Workers = n
	}
	if n, err := strconv.Atoi(get("HERALD_DELIVERY_MAX_PER_OWNER")); err != nil || n < 0 || n > 1_000_000 {
		fail("HERALD_DELIVERY_MAX_PER_OWNER", "must be an integer from 0 to 1000000")
	} else {
		c.Delivery.MaxPerOwner = n
	}
	if n, err := strconv.ParseInt(get("HERALD_DELIVERY_CACHE_BYTES"), 10, 64); err != nil || n < 1<<20 || n > 1<<40 {
		fail("HERALD_DELIVERY_CACHE_BYTES", "must be an integer from 1048576 to 1099511627776")
	} else {
		c.Delivery.CacheBytes = n
	}
	if n, err := strconv.Atoi(get("HERALD_DELIVERY_DB_CONNS")); err != nil || n < 0 || n > 1000 {
		fail("HERALD_DELIVERY_DB_CONNS", "must be an integer from 0 to 1000")
	} else {
		c.Delivery.DBConns = n
	}
	count := func(env string, max int, into *int) {
		if n, err := strconv.Atoi(get(env)); err != nil || n < 1 || n > max {
			fail(env, "must be an integer from 1 to %d", max)
		} else {
			*into = n
		}
	}
	count("HERALD_ATTEMPT_MAX_PER_SUBSCRIPTION", 1_000_000, &c.Attempts.PerSubscription)
	count("HERALD_DELIVERY_MAX_PER_ENDPOINT", 4096, &c.Delivery.MaxPerHost)
	count("HERALD_MAX_FILTERS", 1000, &c.Limits.Filters)
	count("HERALD_MAX_FILTER_PARAMS", 1000, &c.Limits.FilterParams)
	count("HERALD_MAX_SUBSCRIPTIONS_PER_CLIENT", 10_000_000, &c.Limits.SubscriptionsPerClient)
	count("HERALD_MAX_REASON_BYTES", 1<<20, &c.Limits.ReasonBytes)
	count("HERALD_MAX_HEADER_VALUE_BYTES", 1<<20, &c.Limits.HeaderValueBytes)
	count("HERALD_MAX_SUBSCRIPTION_BYTES", 1<<30, &c.Limits.SubscriptionBytes)
	if n, err := strconv.ParseInt(get("HERALD_MAX_BODY_BYTES"), 10, 64); err != nil || n < 1024 {
		fail("HERALD_MAX_BODY_BYTES", "must be an integer of at least 1024")
	} else {
		c.MaxBodyBytes = n
	}
	if n, err := strconv.ParseInt(get("HERALD_BODY_BYTES_IN_FLIGHT"), 10, 64); err != nil || n < 0 || n > 0 && n < c.MaxBodyBytes {
		fail("HERALD_BODY_BYTES_IN_FLIGHT", "must be 0 or an integer of at least HERALD_MAX_BODY_BYTES")
	} else {
		c.BodyBytesInFlight = n
	}
	if n, err := strconv.Atoi(get("HERALD_SEARCHES_IN_FLIGHT")); err != nil || n < 0 || n > 100_000 {
		fail("HERALD_SEARCHES_IN_FLIGHT", "must be an integer from 0 to 100000")
	} else {
		c.SearchesInFlight = n
	}
	count("HERALD_MAX_SEARCH_CLAUSES", 10000, &c.MaxSearchClauses)
	count("HERALD_MAX_SEARCH_VALUES", 10000, &c.MaxSearchValues)
	count("HERALD_MAX_SEARCH_COUNT", 10000, &c.MaxSearchCount)
	count("HERALD_MAX_SORT_MATCHES", 1_000_000, &c.MaxSortMatches)
	count("HERALD_MAX_EVENTS_BYTES", 1<<30, &c.MaxEventsBytes)
	count("HERALD_MAX_BUNDLE_ENTRIES", 100_000, &c.MaxBundleEntries)
	positive("HERALD_WS_TOKEN_TTL", &c.Websocket.TokenTTL)
	positive("HERALD_WS_BIND_TIMEOUT", &c.Websocket.BindTimeout)
	count("HERALD_WS_SOCKETS_PER_CLIENT", 100_000, &c.Websocket.SocketsPerClient)
	count("HERALD_WS_BINDINGS_PER_SOCKET", 10_000, &c.Websocket.BindingsPerSocket)
	count("HERALD_WS_MAX_MESSAGE_BYTES", 1<<20, &c.Websocket.MessageBytes)
	count("HERALD_WS_QUEUE_LENGTH", 1<<20, &c.Websocket.QueueLength)
	if n, err := strconv.ParseInt(get("HERALD_MAX_RESPONSE_BYTES"), 10, 64); err != nil || n < 1<<16 || n > 1<<34 {
		fail("HERALD_MAX_RESPONSE_BYTES", "must be an integer from 65536 to 17179869184")
	} else {
		c.MaxResponseBytes = n
	}
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
		if c.Dev && !devAllowProduction && (c.DatabaseURL != "" || c.AuthJWKSURL != "") {
			errs = append(errs, errors.New("HERALD_DEV: development mode beside production settings (DATABASE_URL or HERALD_AUTH_JWKS_URL); unset HERALD_DEV, or set HERALD_DEV_ALLOW_PRODUCTION=true if this really is a development setup"))
		}
		if c.DatabaseURL != "" && c.SecretKey == nil {
			errs = append(errs, errors.New("HERALD_SECRET_KEY: required with a PostgreSQL store, also in development mode (it encrypts signing secrets and channel headers at rest; an ephemeral key would make them unreadable after a restart)"))
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

// Secrets published as examples (in docker-compose.yml) are known to
// everyone. Keys are compared decoded.
var (
	exampleHS256Secrets = []string{"change-me-to-a-long-random-secret-0123456789"}
	exampleKeys         = []string{"0123456789abcdef0123456789abcdef"} // MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
)

// secureJWKSURL: https, or http to a loopback address (a test's key server).
func secureJWKSURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return false
	}
	if u.Scheme == "https" {
		return true
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	return u.Scheme == "http" && (host == "localhost" || ip != nil && ip.IsLoopback())
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

// defaultInstanceID is hostname-pid: stable for the life of the process and
// distinct between processes on one host.
func defaultInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "herald"
	}
	return host + "-" + strconv.Itoa(os.Getpid())
}
