// Package api is Herald's HTTP surface: gin routing and thin handlers that
// translate between HTTP and the domain packages. No *gin.Context leaves
// this package. routes.go lists every route.
package api

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/semaphore"

	"github.com/herald-fhir/herald/internal/admin"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/notifytoken"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/subscription"
	"github.com/herald-fhir/herald/internal/topic"
	"github.com/herald-fhir/herald/internal/wschannel"
)

// Authenticator verifies a bearer token.
type Authenticator interface {
	Verify(ctx context.Context, token string) (*auth.Principal, error)
}

// Pinger reports whether the backing store is ready.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Options are the Server's dependencies.
type Options struct {
	Resources    *resources.Service
	Auth         Authenticator
	Ready        Pinger
	Logger       *slog.Logger
	BaseURL      string
	MaxBodyBytes int64
	// ParamLimits bound the parameters of one request (zero: the defaults).
	ParamLimits fhir.ParamLimits
	Version     string // Herald's version, shown in the CapabilityStatement
	// Admin holds the allow-list and the client registry behind /admin.
	Admin store.AdminStore
	// Topics, when set, are advertised in the CapabilityStatement.
	Topics *topic.Library
	// Operations answers $status and $events.
	Operations *subscription.Operations
	// BindingTokens answers $get-ws-binding-token and Websocket serves the
	// sockets at wschannel.Path (outside gin: a socket outlives every
	// request deadline); nil: the websocket channel is not offered.
	BindingTokens *wschannel.Issuer
	Websocket     http.Handler
	// NotificationTokens verifies notification access tokens (read with
	// the Subscription owner's policy by Operations); nil: they are
	// refused like any unknown token.
	NotificationTokens *notifytoken.Issuer
	// SMART is published at /fhir/.well-known/smart-configuration.
	SMART SMARTConfig
	// Metrics serves GET /metrics (Prometheus exposition); nil: 404.
	Metrics http.Handler
	// Console, when set, serves the admin console (internal/console) at
	// /admin/ui; it authenticates its own requests.
	Console http.Handler
	// RequestTimeout bounds each request's work (its context); when it
	// passes, the request's transaction rolls back and the client gets 503.
	// Zero: no deadline.
	RequestTimeout time.Duration
	// BodyBytesInFlight bounds the request bodies being parsed and acted
	// on at once, in bytes: a JSON body costs many times its size once
	// parsed (a 4 MiB Observation of small components: +214 MiB), so
	// requests beyond it wait for others to finish (until their deadline,
	// then 503). Zero: 4 x MaxBodyBytes.
	BodyBytesInFlight int64
	// SearchesInFlight bounds the searches and history reads worked on at
	// once (the rest wait in line, until their deadline, then 503). Zero:
	// DefaultSearchesPerCPU per CPU.
	SearchesInFlight int
}

// DefaultSearchesPerCPU is Options.SearchesInFlight per CPU by default.
const DefaultSearchesPerCPU = 2

// Server is the HTTP handler of Herald.
type Server struct {
	opts     Options
	admin    *admin.Service
	engine   *gin.Engine
	routes   []route
	draining atomic.Bool
	bodies   *semaphore.Weighted // BodyBytesInFlight
	bodyCap  int64               // its size
	searches *semaphore.Weighted // SearchesInFlight
}

// Drain makes /readyz fail from now on, so load balancers stop sending
// new requests before the listener closes; requests are still served.
func (s *Server) Drain() { s.draining.Store(true) }

// New builds the Server and its routes.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	gin.SetMode(gin.ReleaseMode)
	s := &Server{opts: opts, engine: gin.New(), admin: &admin.Service{Store: opts.Admin}}
	s.bodyCap = cmp.Or(opts.BodyBytesInFlight, 4*opts.MaxBodyBytes, 1)
	s.bodies = semaphore.NewWeighted(s.bodyCap)
	s.searches = semaphore.NewWeighted(int64(cmp.Or(opts.SearchesInFlight, DefaultSearchesPerCPU*runtime.GOMAXPROCS(0))))
	s.engine.HandleMethodNotAllowed = true
	s.engine.RedirectTrailingSlash = false
	s.engine.RedirectFixedPath = false
	s.engine.ContextWithFallback = true
	s.engine.Use(s.requestID, s.logRequests, s.recoverPanics, s.requestDeadline, s.releaseAdmissions, s.checkQuery)
	s.engine.NoRoute(func(c *gin.Context) { writeError(c, notFoundRoute(c)) })
	s.engine.NoMethod(func(c *gin.Context) { writeError(c, notAllowed(c)) })
	s.routes = s.routeTable()
	for _, r := range s.routes {
		s.engine.Handle(r.method, r.path, r.handlers...)
	}
	return s
}

// ServeHTTP makes the Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == wschannel.Path && s.opts.Websocket != nil {
		s.opts.Websocket.ServeHTTP(w, r) // authorized by the binding token it is sent
		return
	}
	s.engine.ServeHTTP(w, r)
}
