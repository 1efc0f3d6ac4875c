package wschannel

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/subscription"
	"github.com/herald-fhir/herald/internal/topic"
)

// DefaultQueueBytes is Limits.QueueBytes when unset: four notifications
// of the default byte budget (subscription.DefaultEventsBytes).
const DefaultQueueBytes = 4 * subscription.DefaultEventsBytes

// Limits bound what one client and one socket may hold. Zero values get the
// defaults.
type Limits struct {
	SocketsPerClient  int           // bound sockets of one client (owner) on one instance; default 20
	BindingsPerSocket int           // Subscriptions bound to one socket; default 100
	MessageBytes      int64         // largest client message; default 16 KiB (a token for 100 Subscriptions is about 6 KiB)
	BindTimeout       time.Duration // a socket with no binding after this is closed; default 10 s
	QueueLength       int           // notifications waiting to be written to one socket; default 256
	// QueueBytes bounds the bytes of those notifications (one larger
	// than this alone may still wait in an empty queue); default 32 MiB.
	QueueBytes int64
}

func (l Limits) withDefaults() Limits {
	if l.SocketsPerClient <= 0 {
		l.SocketsPerClient = 20
	}
	if l.BindingsPerSocket <= 0 {
		l.BindingsPerSocket = 100
	}
	if l.MessageBytes <= 0 {
		l.MessageBytes = 16 << 10
	}
	if l.BindTimeout <= 0 {
		l.BindTimeout = 10 * time.Second
	}
	if l.QueueLength <= 0 {
		l.QueueLength = 256
	}
	if l.QueueBytes <= 0 {
		l.QueueBytes = DefaultQueueBytes
	}
	return l
}

// Config wires a Server.
type Config struct {
	Store   store.Store
	Rules   *subscription.Rules // the send-time authorization rest-hook uses
	Admin   *subscription.AdminCache
	Topics  *topic.Library
	Tokens  *Tokens
	BaseURL string
	Limits  Limits
	// Poll is how often sockets look for events without a wake-up; default 1 s.
	Poll time.Duration
	// HoldFor is how long a socket's hold on its token lasts without
	// renewal (a crashed instance's tokens bind again after it); default 30 s.
	HoldFor time.Duration
	// WriteTimeout bounds one write to a socket; default 10 s.
	WriteTimeout time.Duration
	// MaxEvents is events per notification when maxCount is unset; default 100.
	MaxEvents int
	Logger    *slog.Logger
	Now       func() time.Time
	// MaxBytes bounds the resources one event-notification carries, as
	// $events and rest-hook do (subscription.LoadEvents' budget); default
	// subscription.DefaultEventsBytes.
	MaxBytes int
}

// Server accepts sockets at Path and delivers to them. Run must be running
// for sockets to follow commit wake-ups and to be closed at shutdown.
type Server struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	sockets   map[*socket]struct{}
	perClient map[string]int // bound sockets per client
	closed    bool
}

// New returns a Server with cfg's zero values defaulted.
func New(cfg Config) *Server {
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.HoldFor <= 0 {
		cfg.HoldFor = 30 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = 100
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = subscription.DefaultEventsBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Server{cfg: cfg, log: log, sockets: map[*socket]struct{}{}, perClient: map[string]int{}}
}

// Run passes every commit wake-up to every socket until ctx ends; then it
// closes the sockets (going away) and returns once each has recorded what
// it delivered and released its token holds (before its close frame: the
// client may bind again elsewhere at once), so the store may close after.
func (s *Server) Run(ctx context.Context) {
	wake := s.cfg.Store.DeliveryWake()
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			s.closed = true
			ending := make([]*socket, 0, len(s.sockets))
			for sk := range s.sockets {
				sk.stop(websocket.StatusGoingAway, "server shutting down; reconnect and bind again")
				ending = append(ending, sk)
			}
			s.mu.Unlock()
			for _, sk := range ending {
				<-sk.released
			}
			return
		case <-wake:
			s.mu.Lock()
			for sk := range s.sockets {
				sk.poke()
			}
			s.mu.Unlock()
		}
	}
}

// ServeHTTP upgrades to a websocket. Origin is not checked: the binding
// token, never an ambient credential such as a cookie, authorizes, so a
// page from another origin gains nothing it does not already hold.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The server's read and write timeouts are meant for requests; a
	// socket lives longer and is bounded by its own limits instead.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept answered the client already
	}
	conn.SetReadLimit(s.cfg.Limits.MessageBytes)
	sk := newSocket(s, conn)
	if !s.add(sk) {
		_ = conn.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	defer s.remove(sk)
	sk.run(context.WithoutCancel(r.Context()))
}

func (s *Server) add(sk *socket) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.sockets[sk] = struct{}{}
	return true
}

func (s *Server) remove(sk *socket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sockets, sk)
	if sk.client != "" {
		if s.perClient[sk.client]--; s.perClient[sk.client] <= 0 {
			delete(s.perClient, sk.client)
		}
	}
}

// claimClient counts sk as one of client's sockets, within the limit.
func (s *Server) claimClient(sk *socket, client string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sk.client != "" {
		return sk.client == client // one socket serves one client
	}
	if s.perClient[client] >= s.cfg.Limits.SocketsPerClient {
		return false
	}
	s.perClient[client]++
	sk.client = client
	return true
}

// Sockets is how many sockets are open (for tests and metrics).
func (s *Server) Sockets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sockets)
}

// admin is the allow-list and registry at least as new as the
// configuration committed now, so a suspended client is refused at once.
func (s *Server) admin(ctx context.Context) (*subscription.Admin, error) {
	if s.cfg.Admin == nil {
		return s.cfg.Rules.ReadAdmin(ctx)
	}
	gen, err := s.cfg.Store.ConfigGeneration(ctx)
	if err != nil {
		return nil, err
	}
	return s.cfg.Admin.AtLeast(ctx, gen)
}

var errClosed = errors.New("socket closed")

func newID() string { return uuid.NewString() }
