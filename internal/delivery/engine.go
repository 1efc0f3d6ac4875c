// Package delivery sends notifications to rest-hook subscribers: it claims
// due Subscriptions from the store's delivery queue, checks again that each
// may still receive, builds the handshake, heartbeat or event-notification
// Bundle, signs and posts it through the SSRF-safe webhook client, and
// records the outcome (cursor, retry schedule, status) in one transaction.
//
// Ordering and exactly-one-sender come from the queue: a Subscription is
// leased to one worker at a time, across processes sharing the database,
// and its cursor moves only after the subscriber acknowledged (2xx). A
// worker that dies loses only its lease; the next holder sends the same
// events again (at least once, never out of order, no gaps).
package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/herald-fhir/herald/internal/notifytoken"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/subscription"
	"github.com/herald-fhir/herald/internal/topic"
	"github.com/herald-fhir/herald/internal/webhook"
)

// Defaults for Config's zero values.
const (
	DefaultWorkers       = 32
	DefaultPoll          = time.Second
	DefaultLease         = 15 * time.Second
	DefaultRetryBase     = time.Second
	DefaultRetryCap      = 5 * time.Minute
	DefaultErrorAfter    = 10
	DefaultErrorOffAfter = 24 * time.Hour
	DefaultRecoverAfter  = 10 * time.Minute
	DefaultMaxEvents     = 100
	DefaultDrain         = 10 * time.Second
	DefaultDecodeBytes   = 16 << 20
	// leaseMargin is kept between the end of a send's timeout and the end
	// of the lease, so a slow send never outlives its lease.
	leaseMargin = 2 * time.Second
)

// Config wires an Engine.
type Config struct {
	Store store.Store
	Rules *subscription.Rules // send-time authorization and secrets
	// Admin caches the allow-list and registry the sends decide against;
	// nil: read both for every claim batch.
	Admin   *subscription.AdminCache
	Topics  *topic.Library // notificationShape includes
	Sender  *webhook.Client
	BaseURL string // the FHIR base notifications refer to
	// Tokens mints the notification access tokens of Subscriptions that ask
	// for them; nil: none are sent.
	Tokens *notifytoken.Issuer

	Workers int // concurrent sends
	// MaxPerOwner caps the Subscriptions of one owner (client) leased at
	// once, across every instance sharing the store, so one owner's slow
	// or hanging endpoints leave workers for everyone else; 0 means three
	// quarters of Workers (24 of 32), negative means no cap. Owners take
	// turns round-robin in every claim either way (store.DeliveryQueue).
	MaxPerOwner   int
	Poll          time.Duration // how often to look for due work without a wake-up
	Lease         time.Duration // how long a claim keeps other workers off
	RetryBase     time.Duration // first retry delay; doubles per failure
	RetryCap      time.Duration // longest retry delay
	ErrorAfter    int           // consecutive failures before status error
	ErrorOffAfter time.Duration // time in error before status off
	// RecoverAfter is the least time a Subscription stays in error before
	// a successful send makes it active again: within it, sends go on and
	// succeed, but the status stays error. So an endpoint that flaps
	// stores at most one error and one active version of the Subscription
	// per RecoverAfter, instead of two per flap (each a copy of the
	// whole resource).
	RecoverAfter time.Duration
	MaxEvents    int           // events per notification when maxCount is unset
	Drain        time.Duration // how long shutdown waits for sends in flight
	// CacheBytes bounds the resource bodies kept for notifications (a
	// write that fires for many Subscriptions reads its focus once);
	// 0 means DefaultCacheBytes.
	CacheBytes int64
	// MaxBytes bounds the resources one event-notification carries (focus
	// and includes, as $events: subscription.LoadEvents' budget): it ends
	// before the event that would exceed it, never before the first, and
	// the rest follow at once. 0 means subscription.DefaultEventsBytes.
	MaxBytes int
	// DecodeBytes bounds the focus bodies being decoded at once, in bytes,
	// across this instance's workers (each event is checked against its
	// Subscription's filters and compartment: a JSON body costs many times
	// its size decoded, and a write that fires for many Subscriptions is
	// decoded once for each). 0 means DefaultDecodeBytes.
	DecodeBytes int64

	// Instance names this process in the attempt log (HERALD_INSTANCE_ID).
	Instance string
	// NoAttemptLog leaves sends out of the attempt log (store.AttemptLog).
	NoAttemptLog bool

	Metrics *Metrics // nil: none
	Logger  *slog.Logger
	Now     func() time.Time
}

var _ store.HandoffReceiver = (*Engine)(nil)

// Engine runs delivery workers.
type Engine struct {
	cfg Config
	log *slog.Logger

	view *cachedView // resource reads for notifications

	decoding *semaphore.Weighted // Config.DecodeBytes

	mu       sync.Mutex
	earliest time.Time     // the earliest retry or heartbeat a worker scheduled
	hint     chan struct{} // a worker finished or scheduled something soon
	// wokenAt is when the last commit wake-up came (Unix ns), and full
	// whether the last claim filled every free slot: a finished send asks
	// for another claim only then, since otherwise it would find nothing.
	wokenAt atomic.Int64
	full    atomic.Bool

	ownersMu sync.Mutex
	owners   map[string]int // leased Subscriptions per owner on this instance

	// slots holds one token per worker busy or reserved (Workers in all):
	// a claim and a hand-off (Reserve) take theirs before leasing, so that
	// every lease taken starts at once.
	slots chan struct{}
	// reserved counts the slots hand-offs hold before their write commits,
	// at most reserveCap: a write may wait inside its COMMIT (behind
	// another write's row lock on a busy Subscription), and however many
	// do, claims keep the other workers.
	reserved   atomic.Int64
	reserveCap int64
	runMu      sync.Mutex
	run        *running // nil unless Run is running and not stopping
}

// running is what Run starts sends with.
type running struct {
	work context.Context // ends after the drain
	wg   *sync.WaitGroup // the sends
}

// New returns an Engine with cfg's zero values defaulted.
func New(cfg Config) *Engine {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.MaxPerOwner == 0 {
		cfg.MaxPerOwner = max(cfg.Workers-cfg.Workers/4, 1)
	}
	def(&cfg.Poll, DefaultPoll)
	def(&cfg.Lease, DefaultLease)
	def(&cfg.RetryBase, DefaultRetryBase)
	def(&cfg.RetryCap, DefaultRetryCap)
	def(&cfg.ErrorOffAfter, DefaultErrorOffAfter)
	def(&cfg.RecoverAfter, DefaultRecoverAfter)
	def(&cfg.Drain, DefaultDrain)
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = DefaultCacheBytes
	}
	if cfg.ErrorAfter <= 0 {
		cfg.ErrorAfter = DefaultErrorAfter
	}
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = DefaultMaxEvents
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = subscription.DefaultEventsBytes
	}
	if cfg.DecodeBytes <= 0 {
		cfg.DecodeBytes = DefaultDecodeBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Engine{cfg: cfg, log: log, hint: make(chan struct{}, 1), owners: map[string]int{}, view: newCachedView(cfg.Store, cfg.Now, cfg.CacheBytes),
		decoding: semaphore.NewWeighted(cfg.DecodeBytes), slots: make(chan struct{}, cfg.Workers),
		reserveCap: int64(max(1, cfg.Workers/4))}
}

// Run delivers until ctx ends. Then it stops claiming, lets sends in flight
// finish for up to Drain, and cancels the rest, whose leases it releases so
// another instance can take over at once.
//
// While it runs, a store that can (store.HandoffQueue) hands it the idle
// Subscriptions its writes lease at commit (Reserve), which it sends as if
// it had claimed them.
func (e *Engine) Run(ctx context.Context) {
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var wg sync.WaitGroup
	defer func() {
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(e.cfg.Drain):
			cancelWork()
			<-done
		}
	}()
	e.runMu.Lock()
	e.run = &running{work: work, wg: &wg}
	e.runMu.Unlock()
	if q, ok := e.cfg.Store.(store.HandoffQueue); ok {
		defer q.HandOffTo(e)()
	}
	defer func() {
		// Before the drain waits: no hand-off starts a send after this.
		e.runMu.Lock()
		e.run = nil
		e.runMu.Unlock()
	}()

	wake := e.cfg.Store.DeliveryWake()
	poll := time.NewTimer(0)
	defer poll.Stop()
	for {
		full, idleLeft := false, false
		claimed := e.cfg.Now()
		if free := e.take(e.cfg.Workers); free > 0 {
			tasks, err := e.cfg.Store.ClaimDue(ctx, claimed, free, e.cfg.Lease, e.cfg.MaxEvents, max(e.cfg.MaxPerOwner, 0))
			if err != nil && ctx.Err() == nil {
				e.log.Warn("delivery: claiming due Subscriptions failed; retrying", "err", err)
			}
			var admin *subscription.Admin
			if len(tasks) > 0 {
				// One read of the allow-list and the registry serves the
				// batch: the check before each send uses it moments later.
				if admin, err = e.admin(ctx, tasks); err != nil {
					e.log.Warn("delivery: cannot read the allow-list and client registry; releasing the claimed Subscriptions", "err", err)
					for _, tk := range tasks {
						_ = e.cfg.Store.ReleaseLease(context.WithoutCancel(ctx), tk.State.ID, tk.Lease)
					}
					tasks = nil
				}
			}
			// Whether the claim was cut short is known, and published, before
			// any of its sends starts: a send that ends looks at it to decide
			// whether to claim again (mayHaveMore), and fast sends can all end
			// before this loop comes round again.
			full = len(tasks) == free || e.ownerAtShare(tasks)
			e.full.Store(full)
			for _, tk := range tasks {
				e.start(work, &wg, tk, admin, claimed)
			}
			e.give(free - len(tasks))
			idleLeft = len(tasks) < free
		} else {
			full = true
		}
		e.full.Store(full)
		if !full || idleLeft {
			// Also when an owner seems at its share (ownerAtShare) while
			// workers are idle: the share is judged loosely (half of it
			// counts), and another of its Subscriptions due later (a retry)
			// must not wait for one of these sends to end, which may take
			// its whole timeout (TestAttackTwoDueTwoIdleWorkers).
			e.resetPoll(poll, claimed)
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
			e.wokenAt.Store(e.cfg.Now().UnixNano())
		case <-e.hint: // a slot freed, or a worker scheduled a retry or heartbeat
		case <-poll.C:
		}
	}
}

// take holds up to n free worker slots, without waiting, and says how many.
func (e *Engine) take(n int) int {
	for i := range n {
		select {
		case e.slots <- struct{}{}:
		default:
			return i
		}
	}
	return n
}

// give frees n slots that take held and no send uses.
func (e *Engine) give(n int) {
	for range n {
		<-e.slots
	}
}

// start sends tk on a slot already held, and frees the slot when done.
// admin nil: read it for tk first (a handed-off task).
func (e *Engine) start(work context.Context, wg *sync.WaitGroup, tk store.DeliveryTask, admin *subscription.Admin, claimed time.Time) {
	e.leased(tk.State.Owner, 1)
	wg.Go(func() {
		defer func() {
			e.leased(tk.State.Owner, -1)
			<-e.slots
			if e.mayHaveMore(claimed) {
				e.poke()
			}
		}()
		defer func() {
			// A bug in one send must not take down the instance
			// (and, through the lease, every instance after it).
			if p := recover(); p != nil {
				e.log.Error("delivery: panic while sending; the lease will expire and the send repeat",
					"subscription", tk.State.ID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
		}()
		if admin == nil {
			var err error
			if admin, err = e.admin(work, []store.DeliveryTask{tk}); err != nil {
				e.log.Warn("delivery: cannot read the allow-list and client registry; releasing the handed-off Subscription", "err", err)
				e.release(work, tk.State.ID, tk.Lease, "cannot check before sending")
				return
			}
		}
		e.handle(work, tk, admin)
	})
}

// Reserve is the engine as a store.HandoffReceiver: it holds up to n free
// slots for a committing write's hand-off, none while Run is not running.
// The write leases at most that many of its idle Subscriptions, as a claim
// now would, and Start sends them like claimed ones. When Run has stopped
// meanwhile, Start releases their leases (a lease it cannot release, or
// whose Start never comes, because the process died, expires, and a claim
// takes the Subscription again).
func (e *Engine) Reserve(n int) store.Reservation {
	e.runMu.Lock()
	up := e.run != nil
	e.runMu.Unlock()
	if !up || n <= 0 {
		return store.Reservation{}
	}
	want := int64(n)
	for {
		had := e.reserved.Load()
		want = min(want, e.reserveCap-had)
		if want <= 0 {
			return store.Reservation{}
		}
		if e.reserved.CompareAndSwap(had, had+want) {
			break
		}
	}
	held := e.take(int(want))
	e.reserved.Add(int64(held) - want)
	if held == 0 {
		return store.Reservation{}
	}
	now := e.cfg.Now()
	return store.Reservation{
		Slots: held, Now: now, LeaseFor: e.cfg.Lease, EventsPerTask: e.cfg.MaxEvents, PerOwner: max(e.cfg.MaxPerOwner, 0),
		Start: func(tasks []store.DeliveryTask) { e.startHandedOff(held, tasks, now) },
	}
}

// startHandedOff sends the tasks a write leased on the held slots, and
// frees the others.
func (e *Engine) startHandedOff(held int, tasks []store.DeliveryTask, leased time.Time) {
	e.reserved.Add(-int64(held))
	e.runMu.Lock()
	r := e.run
	if r != nil {
		for _, tk := range tasks {
			e.start(r.work, r.wg, tk, nil, leased)
		}
	}
	e.runMu.Unlock()
	if r == nil {
		for _, tk := range tasks {
			e.release(context.Background(), tk.State.ID, tk.Lease, "handed off while stopping")
		}
		e.give(held)
		return
	}
	e.give(held - len(tasks))
	if held > len(tasks) {
		// The dispatcher may have found no free worker while these were
		// held (whether it has yet said so in full or not), and then waits
		// for a send to end, which may never come: claim again.
		e.poke()
	}
}

// admin is what the sends of a claim batch decide against: at least as
// new as the configuration the claim saw.
func (e *Engine) admin(ctx context.Context, tasks []store.DeliveryTask) (*subscription.Admin, error) {
	if e.cfg.Admin == nil {
		return e.cfg.Rules.ReadAdmin(ctx)
	}
	var gen int64
	for _, tk := range tasks {
		gen = max(gen, tk.ConfigGeneration)
	}
	return e.cfg.Admin.AtLeast(ctx, gen)
}

// resetPoll arms the poll timer for the next poll or the earliest time a
// worker scheduled, whichever comes first. claimed is when the last claim
// looked: what was due by then it has picked up.
func (e *Engine) resetPoll(t *time.Timer, claimed time.Time) {
	d := e.cfg.Poll
	e.mu.Lock()
	switch {
	case e.earliest.IsZero():
	case !e.earliest.After(claimed):
		e.earliest = time.Time{}
	default:
		d = min(d, max(e.earliest.Sub(claimed), time.Millisecond))
	}
	e.mu.Unlock()
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	t.Reset(d)
}

// leased counts the Subscriptions of owner this instance holds leases on.
func (e *Engine) leased(owner string, n int) {
	e.ownersMu.Lock()
	defer e.ownersMu.Unlock()
	if e.owners[owner] += n; e.owners[owner] <= 0 {
		delete(e.owners, owner)
	}
}

// ownerAtShare reports whether some owner, with the claimed tasks about to
// start, may hold its share (MaxPerOwner) of the workers, so that the claim
// may have left its due Subscriptions behind: a claim cut short by an
// owner's share is no sign the queue is empty, and that owner's next due
// Subscription can be claimed as soon as one of its sends ends, not at the
// next poll. The claim judges the share by the leases in its snapshot, which
// may still count sends that ended while it ran; so an owner with half its
// share in flight here counts as at its share. (A claim that was not cut
// short costs one more claim when the sends end; a missed one would wait
// for the poll.)
func (e *Engine) ownerAtShare(claimed []store.DeliveryTask) bool {
	if e.cfg.MaxPerOwner <= 0 {
		return false
	}
	near := max(e.cfg.MaxPerOwner/2, 1)
	starting := map[string]int{}
	for _, tk := range claimed {
		starting[tk.State.Owner]++
	}
	e.ownersMu.Lock()
	defer e.ownersMu.Unlock()
	for owner, n := range starting {
		if n+e.owners[owner] >= near {
			return true
		}
	}
	for _, n := range e.owners {
		if n >= near {
			return true
		}
	}
	return false
}

// mayHaveMore reports whether, when a send claimed at claimed ends, a claim
// can find work its own claim did not: that claim was full, or a commit
// woke the engine since (its Subscription may have been leased then).
func (e *Engine) mayHaveMore(claimed time.Time) bool {
	return e.full.Load() || e.wokenAt.Load() >= claimed.UnixNano()
}

// schedule records that work is due at t, so the dispatcher wakes for it
// before the next poll; it is woken now only when t comes before that poll
// (each pass of the dispatcher arms its timer for the earliest time).
func (e *Engine) schedule(t time.Time) {
	if t.IsZero() {
		return
	}
	e.mu.Lock()
	if e.earliest.IsZero() || t.Before(e.earliest) {
		e.earliest = t
	}
	e.mu.Unlock()
	if t.Before(e.cfg.Now().Add(e.cfg.Poll)) {
		e.poke()
	}
}

func (e *Engine) poke() {
	select {
	case e.hint <- struct{}{}:
	default:
	}
}
