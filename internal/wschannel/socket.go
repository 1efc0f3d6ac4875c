package wschannel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/notify"
	"github.com/herald-fhir/herald/internal/policy"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/subscription"
)

// bindPrefix is the one message a client sends (IG: "bind-with-token").
const bindPrefix = "bind-with-token "

// socket is one client connection and the Subscriptions bound to it. Only
// its run goroutine touches bindings and tokens; the reader and the writer
// goroutines talk to it through channels.
type socket struct {
	srv    *Server
	conn   *websocket.Conn
	holder string // this socket's id in store.BindingHolds
	client string // set once bound (Server.claimClient, under srv.mu)

	wake chan struct{} // a commit may have added events
	out  chan []byte   // notifications waiting for the writer
	// queued is the bytes in out (Limits.QueueBytes bounds it).
	queued atomic.Int64

	stopOnce   sync.Once
	stopped    chan struct{}
	released   chan struct{} // closed once the holds are released, before the close frame
	stopCode   websocket.StatusCode
	stopReason string

	bindings []*binding
	tokens   []string // ids of the tokens this socket holds

	// acking is the acknowledgement in flight beside run (renew), at most
	// one (ackBusy); release cancels it (ackCancel, run's only) and waits
	// for it before the last one.
	acking    sync.WaitGroup
	ackBusy   atomic.Bool
	ackCancel context.CancelFunc
}

// binding is one Subscription bound to a socket.
type binding struct {
	state    store.SubscriptionState // as last read
	cursor   int64                   // the last event number handled on this socket
	acked    atomic.Int64            // the cursor as last recorded (acknowledge, beside run)
	lastSent time.Time               // for heartbeats
}

func newSocket(s *Server, conn *websocket.Conn) *socket {
	return &socket{srv: s, conn: conn, holder: newID(), wake: make(chan struct{}, 1),
		out: make(chan []byte, s.cfg.Limits.QueueLength), stopped: make(chan struct{}), released: make(chan struct{})}
}

// poke wakes the socket without waiting.
func (sk *socket) poke() {
	select {
	case sk.wake <- struct{}{}:
	default:
	}
}

// stop ends the socket with a close frame carrying code and reason (the
// first stop wins).
func (sk *socket) stop(code websocket.StatusCode, reason string) {
	sk.stopOnce.Do(func() {
		sk.stopCode, sk.stopReason = code, clipReason(reason)
		close(sk.stopped)
	})
}

// clipReason keeps a close reason within the 123 bytes a close frame holds.
func clipReason(r string) string {
	if len(r) <= 123 {
		return r
	}
	r = r[:120]
	for len(r) > 0 && r[len(r)-1]&0xC0 == 0x80 {
		r = r[:len(r)-1] // not inside a UTF-8 sequence
	}
	if len(r) > 0 && r[len(r)-1] >= 0xC0 {
		r = r[:len(r)-1]
	}
	return r + "..."
}

func (sk *socket) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg := sk.srv.cfg
	var wg sync.WaitGroup
	msgs := make(chan string)
	wg.Go(func() { sk.read(ctx, msgs) })
	wg.Go(func() { sk.write(ctx) })

	bindTimer := time.NewTimer(cfg.Limits.BindTimeout)
	defer bindTimer.Stop()
	poll := time.NewTicker(cfg.Poll)
	defer poll.Stop()
	renew := time.NewTicker(cfg.HoldFor / 3)
	defer renew.Stop()
loop:
	for {
		select {
		case <-sk.stopped:
			break loop
		case m := <-msgs:
			sk.bind(ctx, m)
		case <-bindTimer.C:
			if len(sk.bindings) == 0 {
				sk.stop(websocket.StatusPolicyViolation, fmt.Sprintf("no bind-with-token within %s", cfg.Limits.BindTimeout))
			}
		case <-sk.wake:
			sk.deliver(ctx, false)
		case <-poll.C:
			sk.deliver(ctx, true)
		case <-renew.C:
			sk.renew(ctx)
		}
	}
	// Release before the close frame goes out: a client told to bind
	// again (shutdown, too slow) may do so at once, on any instance, and
	// must not find its token still held by this socket. Server.Run waits
	// for this at shutdown, before the store closes.
	sk.release(ctx)
	_ = sk.conn.Close(sk.stopCode, sk.stopReason)
	cancel()
	wg.Wait()
}

// releaseTimeout bounds acknowledging and releasing when a socket ends
// (a store that does not answer must not hold up shutdown).
const releaseTimeout = 5 * time.Second

// release records what went out and gives up the socket's token holds;
// then it closes released. Only run calls it, once the socket stopped. A
// renewal's acknowledgement still running is cut short: this one records
// everything.
func (sk *socket) release(ctx context.Context) {
	defer close(sk.released)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if sk.ackCancel != nil {
		sk.ackCancel()
	}
	sk.acking.Wait()
	sk.acknowledge(ctx, sk.unacknowledged())
	for _, id := range sk.tokens {
		if err := sk.srv.cfg.Store.ReleaseBinding(ctx, id, sk.holder); err != nil {
			sk.srv.log.Warn("websocket: cannot release a binding hold; it expires by itself", "err", err)
		}
	}
}

// read passes text messages to run; anything else ends the socket.
func (sk *socket) read(ctx context.Context, msgs chan<- string) {
	for {
		typ, data, err := sk.conn.Read(ctx)
		if err != nil {
			code := websocket.CloseStatus(err)
			switch {
			case code == -1 && errors.Is(err, context.Canceled):
				sk.stop(websocket.StatusNormalClosure, "")
			case code == -1:
				sk.stop(websocket.StatusMessageTooBig, "client messages are at most bind-with-token <token>")
			default:
				sk.stop(websocket.StatusNormalClosure, "") // the client closed
			}
			return
		}
		if typ != websocket.MessageText {
			sk.stop(websocket.StatusUnsupportedData, "expected the text message bind-with-token <token>")
			return
		}
		select {
		case msgs <- string(data):
		case <-sk.stopped:
			return
		}
	}
}

// write sends queued notifications in order.
func (sk *socket) write(ctx context.Context) {
	for {
		select {
		case <-sk.stopped:
			return
		case b := <-sk.out:
			wctx, cancel := context.WithTimeout(ctx, sk.srv.cfg.WriteTimeout)
			err := sk.conn.Write(wctx, websocket.MessageText, b)
			cancel()
			sk.queued.Add(-int64(len(b)))
			if err != nil {
				sk.stop(websocket.StatusGoingAway, "write failed")
				return
			}
		}
	}
}

// enqueue queues a notification; a full queue (a reader too slow for what
// its Subscriptions receive) closes the socket rather than hold up others.
// Nothing is lost: $events still has every event.
func (sk *socket) enqueue(b []byte) error {
	n := int64(len(b))
	if q := sk.queued.Add(n); q > n && q > sk.srv.cfg.Limits.QueueBytes {
		// Bytes too: a reader that falls behind on large notifications
		// would otherwise hold QueueLength of them (256 x the byte budget).
		sk.queued.Add(-n)
		sk.stop(websocket.StatusTryAgainLater, "too slow: notifications overflowed; fetch missed events with $events and bind again")
		return errClosed
	}
	select {
	case sk.out <- b:
		return nil
	default:
		sk.queued.Add(-n)
		sk.stop(websocket.StatusTryAgainLater, "too slow: notifications overflowed; fetch missed events with $events and bind again")
		return errClosed
	}
}

// bind handles bind-with-token: every Subscription of the token is checked
// as before a send and gets its handshake.
func (sk *socket) bind(ctx context.Context, msg string) {
	cfg := sk.srv.cfg
	tok, ok := strings.CutPrefix(msg, bindPrefix)
	if !ok {
		sk.stop(websocket.StatusUnsupportedData, "expected the text message bind-with-token <token>")
		return
	}
	g, err := cfg.Tokens.Open(strings.TrimSpace(tok))
	if err != nil {
		sk.stop(websocket.StatusPolicyViolation, ErrInvalidToken.Error())
		return
	}
	for _, id := range sk.tokens {
		if id == g.ID {
			return // bound already on this socket
		}
	}
	// Every token taken is a hold renewed while the socket lives; one
	// naming only Subscriptions bound already adds no binding, so the
	// bindings limit alone would let a socket take tokens without end.
	// Each token binds at least one Subscription: the same limit fits both.
	if len(sk.tokens) >= cfg.Limits.BindingsPerSocket {
		sk.stop(websocket.StatusPolicyViolation, fmt.Sprintf("at most %d binding tokens may be bound to one socket", cfg.Limits.BindingsPerSocket))
		return
	}
	if len(sk.bindings)+len(g.Subscriptions) > cfg.Limits.BindingsPerSocket {
		sk.stop(websocket.StatusPolicyViolation, fmt.Sprintf("at most %d Subscriptions may be bound to one socket", cfg.Limits.BindingsPerSocket))
		return
	}
	if !sk.srv.claimClient(sk, g.Client) {
		sk.stop(websocket.StatusTryAgainLater, "too many sockets for this client, or a token of another client")
		return
	}
	held, err := cfg.Store.HoldBinding(ctx, g.ID, sk.holder, cfg.HoldFor)
	if err != nil {
		sk.srv.log.Warn("websocket: cannot take a binding hold", "err", err)
		sk.stop(websocket.StatusTryAgainLater, "the server cannot bind now; try again")
		return
	}
	if !held {
		sk.stop(websocket.StatusPolicyViolation, "this binding token is bound to another live socket")
		return
	}
	sk.tokens = append(sk.tokens, g.ID)
	admin, err := sk.srv.admin(ctx)
	if err != nil {
		sk.srv.log.Warn("websocket: cannot read the client registry", "err", err)
		sk.stop(websocket.StatusTryAgainLater, "the server cannot bind now; try again")
		return
	}
	now := cfg.Now()
	for _, id := range g.Subscriptions {
		if sk.boundTo(id) {
			continue
		}
		st, err := cfg.Store.Subscription(ctx, id)
		if err == nil && !bindable(st, g.Client, g.Context) {
			err = store.ErrNotFound // the token's owner no longer owns it
		}
		if errors.Is(err, store.ErrNotFound) {
			sk.stop(websocket.StatusPolicyViolation, "Subscription/"+id+" is not known")
			return
		}
		if err != nil {
			sk.srv.log.Warn("websocket: cannot read a Subscription to bind", "subscription", id, "err", err)
			sk.stop(websocket.StatusTryAgainLater, "the server cannot bind now; try again")
			return
		}
		if !sk.authorize(ctx, admin, st, now) {
			return
		}
		count, err := cfg.Store.EventCount(ctx, id)
		if err != nil {
			sk.stop(websocket.StatusTryAgainLater, "the server cannot bind now; try again")
			return
		}
		if st.Status != fhir.StatusActive {
			// The handshake goes out now: the channel works.
			if err := sk.setStatus(ctx, id, fhir.StatusActive, "", now); err != nil {
				sk.stop(websocket.StatusTryAgainLater, "the server cannot bind now; try again")
				return
			}
			st.Status, st.Error = fhir.StatusActive, ""
		}
		b := &binding{state: st, cursor: count, lastSent: now}
		sk.bindings = append(sk.bindings, b)
		if sk.notify(b, notify.Handshake, now) != nil {
			return
		}
	}
}

// bindable reports whether st may be bound, or stay bound, for the token
// of client in launch context launch: it is theirs and on the websocket channel. A
// Subscription deleted and created again at the same id by an admin is the
// admin's; a socket that followed it would carry the admin's events.
func bindable(st store.SubscriptionState, client, launch string) bool {
	return st.Owner == client && st.Context == launch && st.Websocket()
}

func (sk *socket) boundTo(id string) bool {
	for _, b := range sk.bindings {
		if b.state.ID == id {
			return true
		}
	}
	return false
}

// authorize is the rest-hook check before a send: the Subscription is not
// off and Rules.Recheck admits it for its owner now. A revoked grant
// switches the Subscription off with the reason, as rest-hook delivery does,
// and closes the socket with that reason; false means the socket stops.
func (sk *socket) authorize(ctx context.Context, admin *subscription.Admin, st store.SubscriptionState, now time.Time) bool {
	_, ok := sk.recheck(ctx, admin, st, now)
	return ok
}

func (sk *socket) recheck(ctx context.Context, admin *subscription.Admin, st store.SubscriptionState, now time.Time) (subscription.Send, bool) {
	if st.Status == fhir.StatusOff {
		sk.stop(websocket.StatusPolicyViolation, "Subscription/"+st.ID+" is off: "+st.Error)
		return subscription.Send{}, false
	}
	send, err := sk.srv.cfg.Rules.Recheck(admin, st, now)
	var denied *policy.Denied
	if errors.As(err, &denied) {
		if err := sk.setStatus(ctx, st.ID, fhir.StatusOff, denied.Reason, now); err != nil {
			sk.srv.log.Warn("websocket: cannot switch a revoked Subscription off", "subscription", st.ID, "err", err)
		}
		sk.srv.log.Info("websocket: binding revoked", "subscription", st.ID, "reason", denied.Reason)
		sk.stop(websocket.StatusPolicyViolation, "Subscription/"+st.ID+" revoked: "+denied.Reason)
		return subscription.Send{}, false
	}
	if err != nil {
		sk.srv.log.Warn("websocket: cannot check a Subscription before sending", "subscription", st.ID, "err", err)
		sk.stop(websocket.StatusTryAgainLater, "the server cannot deliver now; bind again")
		return subscription.Send{}, false
	}
	return send, true
}

// setStatus records a status change as rest-hook delivery does: the
// resource first, then the state, in one transaction.
func (sk *socket) setStatus(ctx context.Context, id, status, reason string, now time.Time) error {
	return sk.srv.cfg.Store.InTx(context.WithoutCancel(ctx), func(tx store.Tx) error {
		return subscription.SetStatus(ctx, tx, id, status, reason, "", now)
	})
}

// deliver sends what is due: new events, then a heartbeat after
// heartbeatPeriod of silence. A commit wake-up (all false) looks only at the
// bindings with new events or a heartbeat due, so a socket bound to a
// hundred Subscriptions pays for one query, not a hundred checks, per
// commit; the poll (all true) rechecks every binding, so a revoked grant
// closes an idle binding within one poll.
func (sk *socket) deliver(ctx context.Context, all bool) {
	if len(sk.bindings) == 0 {
		return
	}
	cfg := sk.srv.cfg
	ids := make([]string, len(sk.bindings))
	for i, b := range sk.bindings {
		ids[i] = b.state.ID
	}
	counts, err := cfg.Store.EventCounts(ctx, ids)
	if err != nil {
		sk.srv.log.Warn("websocket: cannot read the bound Subscriptions; retrying at the next poll", "err", err)
		return
	}
	now := cfg.Now()
	var due []*binding
	for _, b := range sk.bindings {
		count, ok := counts[b.state.ID]
		heartbeat := b.state.HeartbeatPeriod > 0 && now.Sub(b.lastSent) >= b.state.HeartbeatPeriod
		if all || !ok || count > b.cursor || heartbeat {
			due = append(due, b)
		}
	}
	if len(due) == 0 {
		return
	}
	admin, err := sk.srv.admin(ctx)
	if err != nil {
		sk.srv.log.Warn("websocket: cannot read the client registry; retrying at the next poll", "err", err)
		return
	}
	dueIDs := make([]string, len(due))
	for i, b := range due {
		dueIDs[i] = b.state.ID
	}
	states, err := cfg.Store.Subscriptions(ctx, store.SubscriptionFilter{IDs: dueIDs})
	if err != nil {
		sk.srv.log.Warn("websocket: cannot read the bound Subscriptions; retrying at the next poll", "err", err)
		return
	}
	byID := make(map[string]store.SubscriptionState, len(states))
	for _, st := range states {
		byID[st.ID] = st
	}
	// Bindings are independent (order is per Subscription), and their
	// reads are round trips: a few at a time keep one busy Subscription
	// from delaying the others.
	var wg sync.WaitGroup
	slots := make(chan struct{}, parallelBindings)
	for _, b := range due {
		st, ok := byID[b.state.ID]
		if !ok || !bindable(st, b.state.Owner, b.state.Context) || !st.CreatedAt.Equal(b.state.CreatedAt) {
			// Created again at the same id, it numbers its events afresh:
			// the binding's cursor means nothing for it.
			sk.stop(websocket.StatusPolicyViolation, "Subscription/"+b.state.ID+" was deleted, created again, or changed channel or owner; bind again")
			break
		}
		select {
		case <-sk.stopped:
		case slots <- struct{}{}:
			wg.Go(func() {
				defer func() { <-slots }()
				if err := sk.deliverTo(ctx, admin, b, st, counts[st.ID], now); err != nil && !errors.Is(err, errClosed) {
					sk.srv.log.Warn("websocket: delivery failed; retrying at the next poll", "subscription", b.state.ID, "err", err)
				}
			})
		}
	}
	wg.Wait()
}

// parallelBindings is how many bindings of one socket are served at once.
const parallelBindings = 8

// deliverTo sends what is due for b, whose state is st and last event
// number count.
func (sk *socket) deliverTo(ctx context.Context, admin *subscription.Admin, b *binding, st store.SubscriptionState, count int64, now time.Time) error {
	cfg := sk.srv.cfg
	send, ok := sk.recheck(ctx, admin, st, now)
	if !ok {
		return errClosed
	}
	redefined := store.Redefines(b.state, st)
	b.state = st
	if redefined {
		// The update acknowledged the events queued under the old
		// definition (store.SubscriptionWriter): none reach the new one.
		acked, err := cfg.Store.Acknowledged(ctx, st.ID)
		if err != nil {
			return err
		}
		b.cursor = max(b.cursor, acked)
	}
	if st.Status == fhir.StatusRequested || st.Status == fhir.StatusError {
		// Updated (or re-activated) while bound: a new handshake, as
		// rest-hook sends, and the channel is working.
		if err := sk.setStatus(ctx, st.ID, fhir.StatusActive, "", now); err != nil {
			return err
		}
		b.state.Status, b.state.Error = fhir.StatusActive, ""
		if err := sk.notify(b, notify.Handshake, now); err != nil {
			return err
		}
	}
	limit := cfg.MaxEvents
	if st.MaxCount > 0 {
		limit = st.MaxCount
	}
	for b.cursor < count {
		stored, err := cfg.Store.Events(ctx, st.ID, b.cursor+1, 0, limit)
		if err != nil {
			return err
		}
		if len(stored) == 0 {
			break
		}
		events, err := subscription.LoadEvents(ctx, cfg.Store, cfg.Topics, cfg.BaseURL, stored, st.Content,
			subscription.Audience{Sub: send.Sub, Owner: send.Owner, Reader: send.Owner}, cfg.MaxBytes)
		if err != nil {
			return err
		}
		last, end := stored[len(stored)-1].Number, len(stored) < limit
		if len(events) > 0 && events[len(events)-1].Number < last {
			// The byte budget may have ended the notification early: it
			// goes through its last event, and the rest follow.
			last, end = events[len(events)-1].Number, false
		}
		if len(events) > 0 {
			if err := sk.notifyThrough(b, notify.EventNotification, events, last, now); err != nil {
				return err
			}
		}
		b.cursor = last
		if end {
			break
		}
	}
	if st.HeartbeatPeriod > 0 && now.Sub(b.lastSent) >= st.HeartbeatPeriod {
		return sk.notify(b, notify.Heartbeat, now)
	}
	return nil
}

// notify queues a handshake or heartbeat of b.
func (sk *socket) notify(b *binding, kind notify.Type, now time.Time) error {
	return sk.notifyThrough(b, kind, nil, b.cursor, now)
}

// notifyThrough builds and queues one notification of b whose
// events-since-subscription-start is through.
func (sk *socket) notifyThrough(b *binding, kind notify.Type, events []notify.Event, through int64, now time.Time) error {
	st := b.state
	sub := notify.Subscription{ID: st.ID, Topic: st.Topic, Status: st.Status, Content: st.Content, EventsSinceStart: through}
	body, err := notify.Build(sk.srv.cfg.BaseURL, sub, kind, events, now, newID)
	if err != nil {
		return err
	}
	b.lastSent = now
	return sk.enqueue(body)
}

// ack is what acknowledge records for one binding: its Subscription and
// cursor, read by run.
type ack struct {
	b       *binding
	id      string
	through int64
}

// unacknowledged is what went out on the socket and is not recorded yet.
// Only run calls it.
func (sk *socket) unacknowledged() []ack {
	var out []ack
	for _, b := range sk.bindings {
		if b.cursor > b.acked.Load() {
			out = append(out, ack{b: b, id: b.state.ID, through: b.cursor})
		}
	}
	return out
}

// acknowledge records what went out on the socket as delivered (the IG has
// no acknowledgement for websockets), so retention may prune it and the
// queue lag metric stops counting it. It runs with the hold renewals and at
// close, not per message: one commit per notification would cost more than
// the notification. Another socket may be further: that is not an error.
// It is a commit per Subscription, each waiting for the Subscription's row
// lock, which a write firing for it holds until it commits: the renewals
// run it beside run (renew), not in its way.
func (sk *socket) acknowledge(ctx context.Context, acks []ack) {
	for _, a := range acks {
		err := sk.srv.cfg.Store.Acknowledge(ctx, a.id, a.through)
		if errors.Is(ctx.Err(), context.Canceled) {
			return // cut short by release, which records it
		}
		if err != nil && !errors.Is(err, store.ErrCursorRange) && !errors.Is(err, store.ErrNotFound) {
			sk.srv.log.Warn("websocket: cannot record delivered events", "subscription", a.id, "err", err)
			continue
		}
		a.b.acked.Store(a.through)
	}
}

// renew keeps the socket's token holds; a lost hold (this instance was cut
// off from the store for longer than HoldFor) ends the socket. It starts
// recording what went out unless the last renewal's recording is still
// going (the next renewal, or the close, records it then).
func (sk *socket) renew(ctx context.Context) {
	if acks := sk.unacknowledged(); len(acks) > 0 && sk.ackBusy.CompareAndSwap(false, true) {
		actx, cancel := context.WithCancel(ctx)
		sk.ackCancel = cancel
		sk.acking.Go(func() {
			defer cancel()
			defer sk.ackBusy.Store(false)
			sk.acknowledge(actx, acks)
		})
	}
	for _, id := range sk.tokens {
		held, err := sk.srv.cfg.Store.HoldBinding(ctx, id, sk.holder, sk.srv.cfg.HoldFor)
		if err != nil {
			continue // the hold outlasts a few failed renewals
		}
		if !held {
			sk.stop(websocket.StatusPolicyViolation, "this binding token was bound to another socket")
			return
		}
	}
}
