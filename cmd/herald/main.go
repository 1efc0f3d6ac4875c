// Command herald is the Herald FHIR Subscriptions server.
//
//	herald [serve] [flags]               run the server (the default)
//	herald migrate [up|status]           apply or list database migrations
//	herald token --client ID --scope S   mint an HS256 token for local use
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/herald-fhir/herald/internal/admin"
	"github.com/herald-fhir/herald/internal/api"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/config"
	"github.com/herald-fhir/herald/internal/console"
	"github.com/herald-fhir/herald/internal/delivery"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/notifytoken"
	"github.com/herald-fhir/herald/internal/publish"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/retention"
	"github.com/herald-fhir/herald/internal/secrets"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/memory"
	"github.com/herald-fhir/herald/internal/store/postgres"
	"github.com/herald-fhir/herald/internal/strictjson"
	"github.com/herald-fhir/herald/internal/subscription"
	"github.com/herald-fhir/herald/internal/topic"
	"github.com/herald-fhir/herald/internal/typerules"
	"github.com/herald-fhir/herald/internal/webhook"
	"github.com/herald-fhir/herald/internal/wschannel"
	"github.com/herald-fhir/herald/topics"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "herald:", err)
		os.Exit(1)
	}
}

// run is the whole program; tests call it exactly as main does.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && (args[0] == "serve" || args[0] == "migrate" || args[0] == "token") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "migrate":
		return migrate(ctx, getenv, args, stdout, stderr)
	case "token":
		return token(getenv, args, stdout, stderr)
	default:
		return serve(ctx, getenv, args, stdout, stderr)
	}
}

func serve(ctx context.Context, getenv func(string) string, args []string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(getenv, args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))

	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()

	// Retention: acknowledged events older than HERALD_EVENT_RETENTION go.
	janitorCtx, stopJanitor := context.WithCancel(ctx)
	janitor := &retention.Janitor{Store: st, Retention: cfg.EventRetention, Interval: time.Hour, Logger: log.With("component", "retention"),
		Attempts: st, AttemptRetention: cfg.Attempts.Retention, AttemptsPerSubscription: cfg.Attempts.PerSubscription}
	janitorDone := make(chan struct{})
	go func() { defer close(janitorDone); janitor.Run(janitorCtx) }()
	defer func() { stopJanitor(); <-janitorDone }() // before st.Close (deferred earlier, runs later)

	verifier, err := newVerifier(ctx, cfg, log, stdout)
	if err != nil {
		return err
	}
	keys, err := newKeyring(cfg, log)
	if err != nil {
		return err
	}
	library, err := topic.Load(ctx, st, topics.FS, time.Now())
	if err != nil {
		return fmt.Errorf("topic library: %w", err)
	}
	compiler := &subscription.Compiler{Topics: library} // one cache for publish, writes, sends and queries
	publisher := &publish.Publisher{Topics: library, Compiler: compiler, BaseURL: cfg.BaseURL}
	subscriptionRules := &subscription.Rules{
		Topics: library, Compiler: compiler, Keys: keys, Admin: st, Now: time.Now,
		Policy: subscription.Policy{MaxLease: cfg.MaxLease, DefaultMaxPayload: cfg.DefaultMaxPayload, RequireSigningSecret: cfg.RequireSigningSecret,
			MaxFilters: cfg.Limits.Filters, MaxFilterParams: cfg.Limits.FilterParams, MaxSubscriptionsPerClient: cfg.Limits.SubscriptionsPerClient,
			MaxReasonBytes: cfg.Limits.ReasonBytes, MaxHeaderValueBytes: cfg.Limits.HeaderValueBytes, MaxSubscriptionBytes: cfg.Limits.SubscriptionBytes},
	}
	adminCache := &subscription.AdminCache{Rules: subscriptionRules, Generation: st.ConfigGeneration}
	// Other instances change topics, the allow-list and clients too: follow
	// the store's (stopped before the store closes: deferred later, runs
	// earlier).
	followCtx, stopFollowing := context.WithCancel(ctx)
	following := make(chan struct{})
	go func() {
		defer close(following)
		topic.Follow(followCtx, st, library, time.Second, log.With("component", "topics"), adminCache.Refresh)
	}()
	defer func() { stopFollowing(); <-following }()

	paramLimits := fhir.ParamLimits{Clauses: cfg.MaxSearchClauses, Values: cfg.MaxSearchValues}
	svc := resources.New(resources.Config{Store: st, BaseURL: cfg.BaseURL, ParamLimits: paramLimits, MaxBundleEntries: cfg.MaxBundleEntries, MaxResponseBytes: cfg.MaxResponseBytes, MaxCount: cfg.MaxSearchCount, MaxSortMatches: cfg.MaxSortMatches, OnWrite: []resources.WriteHook{publisher.Hook}, Virtual: map[string]resources.Virtual{
		"Basic": &topic.BasicView{Library: library},
	}, Rules: typerules.Rules(subscriptionRules, library)})

	if pg, ok := st.(*postgres.Store); ok {
		// Searches trust the index: resources written without keys get them first.
		n, err := pg.Reindex(ctx, svc.IndexKeysOf)
		if err != nil {
			return fmt.Errorf("search index: %w", err)
		}
		if n > 0 {
			log.Info("search index: indexed resources written without keys", "resources", n)
		}
	}

	tokens, err := notifytoken.New(notifytoken.KeyFrom(cfg.SecretKey), cfg.NotificationTokenTTL, nil)
	if err != nil {
		return err
	}
	registry, metrics := delivery.NewRegistry(st)
	engine := delivery.New(delivery.Config{
		Store: st, Rules: subscriptionRules, Admin: adminCache, Topics: library, BaseURL: cfg.BaseURL, Tokens: tokens,
		Sender:      webhook.New(webhook.Options{UserAgent: "Herald/" + version, MaxPerEndpoint: cfg.Delivery.MaxPerHost}),
		Workers:     cfg.Delivery.Workers,
		MaxPerOwner: cfg.Delivery.MaxPerOwner,
		MaxBytes:    cfg.MaxEventsBytes,
		CacheBytes:  cfg.Delivery.CacheBytes,
		Poll:        cfg.Delivery.Poll,
		Lease:       cfg.Delivery.Lease,
		RetryBase:   cfg.Delivery.RetryBase, RetryCap: cfg.Delivery.RetryMax,
		ErrorOffAfter: cfg.Delivery.ErrorOffAfter,
		RecoverAfter:  cfg.Delivery.RecoverAfter,
		Instance:      cfg.InstanceID, NoAttemptLog: !cfg.Attempts.Log,
		Metrics: metrics,
		Logger:  log.With("component", "delivery"),
	})
	deliveryCtx, stopDelivery := context.WithCancel(ctx)
	deliveryDone := make(chan struct{})
	go func() { defer close(deliveryDone); engine.Run(deliveryCtx) }()
	// Stopped after the HTTP server drained (deferred later, runs earlier
	// than st.Close): sends in flight finish or release their leases.
	defer func() { stopDelivery(); <-deliveryDone }()

	operations := &subscription.Operations{Store: st, Topics: library, Rules: subscriptionRules, BaseURL: cfg.BaseURL, MaxBytes: cfg.MaxEventsBytes}
	wsTokens := &wschannel.Tokens{Keys: keys, TTL: cfg.Websocket.TokenTTL}
	sockets := wschannel.New(wschannel.Config{
		Store: st, Rules: subscriptionRules, Admin: adminCache, Topics: library, Tokens: wsTokens, BaseURL: cfg.BaseURL,
		Poll: cfg.Delivery.Poll, MaxBytes: cfg.MaxEventsBytes,
		Limits: wschannel.Limits{SocketsPerClient: cfg.Websocket.SocketsPerClient, BindingsPerSocket: cfg.Websocket.BindingsPerSocket,
			MessageBytes: int64(cfg.Websocket.MessageBytes), BindTimeout: cfg.Websocket.BindTimeout, QueueLength: cfg.Websocket.QueueLength},
		Logger: log.With("component", "websocket"),
	})
	socketsCtx, stopSockets := context.WithCancel(ctx)
	socketsDone := make(chan struct{})
	go func() { defer close(socketsDone); sockets.Run(socketsCtx) }()
	defer func() { stopSockets(); <-socketsDone }()

	// Stored bodies read back (search, history, includes, $events,
	// delivery) are parsed within a budget of the same size as request
	// bodies, separately: a parsed body costs many times its size.
	strictjson.SetStoredBudget(cmp.Or(cfg.BodyBytesInFlight, 4*cfg.MaxBodyBytes))
	handler := api.New(api.Options{
		Resources:      svc,
		Admin:          st,
		Topics:         library,
		Operations:     operations,
		BindingTokens:  &wschannel.Issuer{Operations: operations, Tokens: wsTokens, BaseURL: cfg.BaseURL},
		Websocket:      sockets,
		Auth:           verifier,
		Ready:          st,
		Logger:         log,
		BaseURL:        cfg.BaseURL,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		ParamLimits:    paramLimits,
		Version:        version,
		Metrics:        delivery.Handler(registry),
		RequestTimeout: cfg.RequestTimeout,

		NotificationTokens: tokens, // notification access tokens, verified with the key delivery signs them with
		Console: console.New(console.Options{
			Auth: verifier, Admin: &admin.Service{Store: st}, Topics: library, Operations: operations,
			InsecureCookies: strings.HasPrefix(cfg.BaseURL, "http://"), // browsers drop Secure cookies over http (dev, tests)
			Logger:          log.With("component", "console"),
		}),
		SMART: api.SMARTConfig{
			Issuer: cfg.AuthIssuer, JWKSURL: cfg.AuthJWKSURL,
			TokenEndpoint: cfg.SMART.TokenEndpoint, AuthorizationEndpoint: cfg.SMART.AuthorizationEndpoint,
			Capabilities: cfg.SMART.Capabilities,
		},

		BodyBytesInFlight: cfg.BodyBytesInFlight, // parsed bodies cost many times their size
		SearchesInFlight:  cfg.SearchesInFlight,
	})

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("HERALD_ADDR: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      config.WriteTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	log.Info("herald listening", "addr", ln.Addr().String(), "base_url", cfg.BaseURL, "version", version)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	drainReadiness(handler, cfg.ShutdownDrain, served, log)
	// Drain: stop accepting, let in-flight requests finish, then the deferred
	// st.Close releases the database pool.
	log.Info("herald shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	stopDelivery()
	<-deliveryDone // the engine drained when ctx ended, alongside the HTTP server
	log.Info("herald stopped")
	return nil
}

// drainReadiness fails /readyz for drain while still serving, so load
// balancers take the instance out before its listener closes.
func drainReadiness(handler *api.Server, drain time.Duration, served <-chan error, log *slog.Logger) {
	handler.Drain()
	log.Info("herald draining: /readyz fails before the listener closes", "drain", drain)
	t := time.NewTimer(drain)
	defer t.Stop()
	select {
	case <-t.C:
	case <-served: // the listener failed: nothing left to drain
	}
}

func openStore(ctx context.Context, cfg config.Config, log *slog.Logger) (store.Store, error) {
	if cfg.DatabaseURL == "" {
		log.Warn("DATABASE_URL is not set: using the embedded in-memory store. ALL DATA IS LOST WHEN HERALD EXITS. Set DATABASE_URL to a PostgreSQL database for anything but a trial.")
		return memory.New(), nil
	}
	if !cfg.NoMigrate {
		if err := postgres.Migrate(ctx, cfg.DatabaseURL); err != nil {
			return nil, err
		}
	}
	st, err := postgres.Open(ctx, cfg.DatabaseURL, postgres.WithTimeouts(postgres.Timeouts(cfg.DB)))
	if err != nil || cfg.Delivery.DBConns == 0 {
		return st, err
	}
	if err := st.SeparateDeliveryPool(ctx, int32(cfg.Delivery.DBConns)); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// newKeyring builds the key that seals signing secrets and channel headers.
// Without HERALD_SECRET_KEY (allowed only with the embedded store) an
// ephemeral key is used: sealed values die with the process, as the store does.
func newKeyring(cfg config.Config, log *slog.Logger) (*secrets.Keyring, error) {
	key := secrets.GenerateKey("")
	if cfg.SecretKey != nil {
		key = secrets.Key{ID: secrets.DeriveKeyID(cfg.SecretKey), Bytes: cfg.SecretKey}
	} else {
		log.Warn("HERALD_SECRET_KEY is not set: Subscription secrets are sealed with an ephemeral key and cannot be read after a restart")
	}
	var old []secrets.Key
	for _, k := range cfg.SecretKeysPrevious {
		old = append(old, secrets.Key{ID: secrets.DeriveKeyID(k), Bytes: k})
	}
	return secrets.NewKeyring(key, old...)
}

// newVerifier builds token verification. In dev mode without configured
// auth it invents a secret for this run and prints tokens ready to paste.
func newVerifier(ctx context.Context, cfg config.Config, log *slog.Logger, stdout io.Writer) (*auth.Verifier, error) {
	vc := auth.VerifierConfig{
		HS256Secret: []byte(cfg.AuthHS256Secret),
		JWKSURL:     cfg.AuthJWKSURL,
		Issuer:      cfg.AuthIssuer,
		Audience:    cfg.AuthAudience,
		Logger:      log,
	}
	if !cfg.AuthConfigured() && cfg.Dev {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		vc.HS256Secret = []byte(base64.RawURLEncoding.EncodeToString(b[:]))
		if err := printDevTokens(stdout, vc); err != nil {
			return nil, err
		}
		log.Warn("development mode: tokens are signed with an ephemeral secret that dies with this process")
	}
	return auth.NewVerifier(ctx, vc)
}

func printDevTokens(w io.Writer, vc auth.VerifierConfig) error {
	tokens := []struct{ name, client, scope string }{
		{"admin", "herald-admin", "herald.admin system/*.cruds"},
		{"client", "dev-client", "system/*.cruds"},
	}
	fmt.Fprintln(w, "Development mode. Tokens valid for 24h with this process (export one and pass it as `Authorization: Bearer $TOKEN`):")
	for _, t := range tokens {
		tok, err := auth.MintHS256(vc.HS256Secret, auth.MintClaims{ClientID: t.client, Scope: t.scope, TTL: 24 * time.Hour, Issuer: vc.Issuer, Audience: vc.Audience})
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "\n  %s (%s: %s)\n  export HERALD_%s_TOKEN=%s\n", t.name, t.client, t.scope, strings.ToUpper(t.name), tok)
	}
	fmt.Fprintln(w)
	return nil
}

func token(getenv func(string) string, args []string, stdout, stderr io.Writer) error {
	t, err := config.LoadToken(getenv, args, stderr)
	if err != nil {
		return err
	}
	tok, err := auth.MintHS256([]byte(t.Secret), auth.MintClaims{
		ClientID: t.ClientID, Scope: t.Scope, Patient: t.Patient, TTL: t.TTL,
		Issuer: t.Issuer, Audience: t.Audience,
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

func migrate(ctx context.Context, getenv func(string) string, args []string, stdout, stderr io.Writer) error {
	m, err := config.LoadMigrate(getenv, args, stderr)
	if err != nil {
		return err
	}
	if m.Action == "up" {
		if err := postgres.Migrate(ctx, m.DatabaseURL); err != nil {
			return err
		}
	}
	states, err := postgres.MigrationStatus(ctx, m.DatabaseURL)
	if err != nil {
		return err
	}
	for _, s := range states {
		state := "pending"
		if s.Applied {
			state = "applied " + s.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(stdout, "%05d  %-40s %s\n", s.Version, s.Source, state)
	}
	return nil
}

// servePprof serves Go's profiler on its own loopback listener and mux,
// never on the API's.
func servePprof(addr string, log *slog.Logger) (func(), error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("HERALD_PPROF_ADDR: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("pprof listening", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}
