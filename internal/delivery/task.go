package delivery

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/notify"
	"github.com/herald-fhir/herald/internal/policy"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/subscription"
	"github.com/herald-fhir/herald/internal/webhook"
)

// notification is one send decided for a leased Subscription.
type notification struct {
	kind   notify.Type
	events []store.Event // event-notification only, ascending
	body   []byte        // the Bundle
	tokens []string      // the notification access tokens in body
}

// queueWait bounds a send's wait for a turn at an endpoint that already has
// its most concurrent sends in flight. A healthy endpoint answers in
// milliseconds, so a fan-out to it waits briefly for turns rather than
// backing off; an endpoint whose turns stay taken this long is slow or
// hanging, and the send backs off ("endpoint busy", see fail). Workers
// waiting here are bounded by the owner's share (MaxPerOwner).
const queueWait = time.Second

// release gives the lease back (at shutdown, or when an outcome could not
// be recorded), so a worker of any instance can take the Subscription over
// at once.
func (e *Engine) release(ctx context.Context, id, lease, why string) {
	if err := e.cfg.Store.ReleaseLease(context.WithoutCancel(ctx), id, lease); err != nil {
		e.log.Warn("delivery: "+why+"; the lease could not be released and will expire", "subscription", id, "err", err)
		return
	}
	e.log.Info("delivery: "+why+"; lease released", "subscription", id)
}

// handle does the work due for one leased Subscription and records it.
func (e *Engine) handle(ctx context.Context, tk store.DeliveryTask, admin *subscription.Admin) {
	now := e.cfg.Now()
	st := tk.State
	res := store.DeliveryResult{SubscriptionID: st.ID, Lease: tk.Lease, Now: now}

	if st.Status == fhir.StatusOff {
		e.record(ctx, res, "", "", "") // nothing is due for it; clear the schedule
		return
	}
	if st.Status == fhir.StatusError && !tk.ErrorSince.IsZero() && now.Sub(tk.ErrorSince) >= e.cfg.ErrorOffAfter {
		e.record(ctx, res, fhir.StatusOff, "delivery kept failing for "+e.cfg.ErrorOffAfter.String()+"; switched off", "")
		return
	}
	send, err := e.cfg.Rules.Recheck(admin, st, now)
	var revoked *policy.Denied
	if errors.As(err, &revoked) {
		e.cfg.Metrics.revoked()
		res.Attempt = e.revokedAttempt(tk, now)
		e.record(ctx, res, fhir.StatusOff, revoked.Reason, "")
		return
	}
	if err != nil {
		e.log.Warn("delivery: cannot check the Subscription before sending; will retry", "subscription", st.ID, "err", err)
		e.fail(ctx, tk, res, "internal error", 0)
		return
	}

	n, err := e.decide(ctx, tk, now)
	var events []notify.Event
	if err == nil && n != nil {
		events, err = e.load(ctx, tk, n, send)
	}
	if err == nil && n != nil && n.kind == notify.EventNotification && len(events) == 0 {
		// None of these events may reach the Subscription as it is now:
		// acknowledge them unsent and look at what follows.
		res.DeliveredThrough, res.Next = n.events[len(n.events)-1].Number, now
		e.record(ctx, res, "", "", "")
		return
	}
	if err == nil && n != nil {
		n.body, err = e.build(tk, n, events, now)
	}
	if ctx.Err() != nil {
		e.release(ctx, st.ID, tk.Lease, "stopped by shutdown") // shutdown: not the subscriber's failure
		return
	}
	if err != nil {
		e.log.Warn("delivery: cannot load or build the notification; will retry", "subscription", st.ID, "err", err)
		e.fail(ctx, tk, res, "internal error", 0)
		return
	}
	if n == nil {
		res.Next = e.idleDue(st, tk.LastSentAt, tk.ErrorSince)
		e.record(ctx, res, "", "", "")
		return
	}

	// The lease must outlast the wait for a turn at the endpoint and the
	// attempt, measured from now (building took time too), or another
	// worker could send this Subscription's next notification meanwhile.
	timeout := webhook.Timeout(st.Timeout)
	leaseUntil := tk.LeaseUntil
	start := e.cfg.Now()
	if need := start.Add(queueWait + timeout + leaseMargin); need.After(leaseUntil) {
		ext := store.DeliveryResult{SubscriptionID: st.ID, Lease: tk.Lease, Now: start, Next: start, KeepFor: need.Sub(start)}
		if err := e.cfg.Store.FinishDelivery(ctx, ext); err != nil {
			if ctx.Err() != nil {
				e.release(ctx, st.ID, tk.Lease, "stopped by shutdown")
				return
			}
			e.log.Debug("delivery: lease not extended; leaving the Subscription to others", "subscription", st.ID, "err", err)
			return
		}
		leaseUntil = need
	}
	sendCtx, cancel := context.WithDeadline(ctx, leaseUntil.Add(-leaseMargin/2))
	defer cancel()
	r, err := e.cfg.Sender.Send(sendCtx, webhook.Request{
		Endpoint: st.Endpoint, ContentType: st.Payload, Body: n.body, Secret: send.Secret, MessageID: messageID(st.ID, tk, n),
		Headers: send.Headers, Timeout: timeout, QueueWait: queueWait, AllowPrivateNetwork: send.AllowPrivateNetwork,
		// The subscriber's own turns at a host: the owner (client id) in its
		// launch context, so neither another client nor another patient or
		// user of the same client can make this endpoint busy (which counts
		// toward error) with hanging sends to a shared host.
		Share: st.Owner + "\x00" + st.Context,
	})
	e.cfg.Metrics.sent(n.kind, r.Duration, err)
	done := e.cfg.Now()
	res.Now = done
	res.Attempt = e.sentAttempt(n, start, r, err, send.Headers)
	if err != nil {
		if ctx.Err() != nil {
			e.release(ctx, st.ID, tk.Lease, "stopped by shutdown") // shutdown cut the send short
			return
		}
		if sendCtx.Err() == nil {
			// An endpoint that is busy (all its slots held by sends that
			// have not finished: a slow or hanging subscriber) backs off
			// like any failure, so its Subscriptions stop taking turns
			// from everyone else's, and counts toward error (see fail).
			e.fail(ctx, tk, res, reason(err), r.RetryAfter)
			return
		}
		// Our lease running out: not the subscriber's failure. Try again a
		// little later without counting it.
		res.Next = done.Add(e.cfg.RetryBase)
		e.record(ctx, res, "", "", "")
		return
	}

	res.Sent = true
	res.Handshaken = n.kind == notify.Handshake
	if len(n.events) > 0 {
		res.DeliveredThrough = n.events[len(n.events)-1].Number
		e.cfg.Metrics.delivered(n.events, done)
	}
	res.Next = e.idleDue(st, done, time.Time{})
	if max(res.DeliveredThrough, tk.DeliveredThrough) < tk.LastEventNumber {
		res.Next = done // events the claim saw still wait: due again at once
	}
	status := ""
	if st.Status != fhir.StatusActive {
		status = fhir.StatusActive // the subscriber answers again
	}
	if recover := tk.ErrorSince.Add(e.cfg.RecoverAfter); n.kind != notify.Handshake && st.Status == fhir.StatusError && !tk.ErrorSince.IsZero() && done.Before(recover) {
		// Too soon after the errors began: it stays error (and the next
		// failures change nothing), and a probe at the end of the wait
		// makes it active if it still answers. A handshake is exempt: the
		// IG makes its success the Subscription's activation, and a
		// handshake is owed only once per (re)activation, so it cannot flap.
		status = ""
		if res.Next.IsZero() || recover.Before(res.Next) {
			res.Next = recover
		}
	}
	e.record(ctx, res, status, "", "")
}

// sentAttempt is the attempt log entry of a send that started at start;
// nil when the log is off or nothing was sent (no turn at the endpoint).
// Only a failure keeps the first bytes of the answer (what the log is
// for), with what the request carried that grants something redacted
// (webhook.LoggableBody): receivers echo their requests, and the log is
// every admin's to read for a week.
func (e *Engine) sentAttempt(n *notification, start time.Time, r webhook.Result, err error, headers []webhook.Header) *store.Attempt {
	class := webhook.Classify(err)
	if e.cfg.NoAttemptLog || class == webhook.ClassBusy {
		return nil
	}
	a := &store.Attempt{At: start, Instance: e.cfg.Instance, Channel: channelRestHook, Kind: string(n.kind),
		Outcome: store.AttemptSuccess, Class: string(class), StatusCode: r.StatusCode, Latency: r.Duration,
		ResponseBytes: r.BodyBytes}
	if err != nil {
		secrets := slices.Clone(n.tokens)
		for _, h := range headers {
			v := h.Value.Reveal()
			secrets = append(secrets, v)
			if _, cred, ok := strings.Cut(v, " "); ok { // "Bearer <token>": receivers quote the token alone
				secrets = append(secrets, strings.TrimSpace(cred))
			}
		}
		a.ResponseBody = webhook.LoggableBody(r.BodyPrefix, store.MaxAttemptBody, secrets...)
	}
	if err != nil {
		a.Outcome = store.AttemptFailure
	}
	if len(n.events) > 0 {
		a.FirstEvent, a.LastEvent = n.events[0].Number, n.events[len(n.events)-1].Number
	}
	return a
}

// revokedAttempt is the attempt log entry of a send the recheck refused:
// what was owed (the handshake, else the waiting events, else a
// heartbeat), and no HTTP fields, since nothing was sent.
func (e *Engine) revokedAttempt(tk store.DeliveryTask, now time.Time) *store.Attempt {
	if e.cfg.NoAttemptLog {
		return nil
	}
	a := &store.Attempt{At: now, Instance: e.cfg.Instance, Channel: channelRestHook, Kind: string(notify.Heartbeat),
		Outcome: store.AttemptFailure, Class: string(webhook.ClassRevoked)}
	switch {
	case tk.HandshakePending:
		a.Kind = string(notify.Handshake)
	case tk.Backlog():
		a.Kind, a.FirstEvent, a.LastEvent = string(notify.EventNotification), tk.DeliveredThrough+1, tk.LastEventNumber
	}
	return a
}

// channelRestHook is the channel type this engine sends on.
const channelRestHook = "rest-hook"

// decide picks what to send: the handshake that is owed, else the next
// events, else a heartbeat when one is due (or as a probe while in error).
// nil: nothing is due yet.
func (e *Engine) decide(ctx context.Context, tk store.DeliveryTask, now time.Time) (*notification, error) {
	st := tk.State
	switch {
	case tk.HandshakePending:
		return &notification{kind: notify.Handshake}, nil
	case tk.Backlog() && len(tk.Events) > 0 && tk.Events[0].Number == tk.DeliveredThrough+1:
		return &notification{kind: notify.EventNotification, events: tk.Events}, nil // read with the claim
	case tk.Backlog():
		limit := e.cfg.MaxEvents
		if st.MaxCount > 0 {
			limit = st.MaxCount
		}
		evs, err := e.cfg.Store.Events(ctx, st.ID, tk.DeliveredThrough+1, tk.LastEventNumber, limit)
		if err != nil {
			return nil, err
		}
		if len(evs) == 0 || evs[0].Number != tk.DeliveredThrough+1 {
			return nil, fmt.Errorf("events %d.. of subscription %s are missing", tk.DeliveredThrough+1, st.ID)
		}
		return &notification{kind: notify.EventNotification, events: evs}, nil
	case st.Status == fhir.StatusError:
		return &notification{kind: notify.Heartbeat}, nil
	case st.HeartbeatPeriod > 0 && !now.Before(heartbeatBase(st, tk.LastSentAt).Add(st.HeartbeatPeriod)):
		return &notification{kind: notify.Heartbeat}, nil
	}
	return nil, nil
}

// load reads the events of an event-notification with the content the
// Subscription asked for, keeping only those the policy admits for it and
// its owner now (the recheck confirmed the owner may still have it), with a
// full resource only where the owner could read that version itself.
func (e *Engine) load(ctx context.Context, tk store.DeliveryTask, n *notification, send subscription.Send) ([]notify.Event, error) {
	if len(n.events) == 0 {
		return nil, nil
	}
	// Decoding shares Config.DecodeBytes with the other workers, weighed
	// by the focus bodies the claim brought (those read now go through
	// the cache, bounded by bytes too).
	var weight int64
	for _, ev := range n.events {
		if ev.Focus != nil {
			weight += int64(len(ev.Focus.Body))
		}
	}
	if weight = min(weight, e.cfg.DecodeBytes); weight > 0 {
		if err := e.decoding.Acquire(ctx, weight); err != nil {
			return nil, err
		}
		defer e.decoding.Release(weight)
	}
	events, err := subscription.LoadEvents(ctx, e.view, e.cfg.Topics, e.cfg.BaseURL, n.events, tk.State.Content,
		subscription.Audience{Sub: send.Sub, Owner: send.Owner, Reader: send.Owner}, e.cfg.MaxBytes)
	if err != nil || len(events) == 0 {
		return events, err
	}
	// The budget may have ended the notification early: it acknowledges
	// only what it carries (the rest is due again at once), and keeps no
	// focus bodies past this point (the claim read them; the Bundle has
	// what it needs).
	last, carried := events[len(events)-1].Number, 0
	for i := range n.events { // shared with the claim's task: cleared there too
		n.events[i].Focus = nil
		if n.events[i].Number <= last {
			carried = i + 1
		}
	}
	n.events = n.events[:carried]
	return events, nil
}

// build renders the notification Bundle. The status it reports is the
// Subscription's now.
func (e *Engine) build(tk store.DeliveryTask, n *notification, events []notify.Event, now time.Time) ([]byte, error) {
	st := tk.State
	sub := notify.Subscription{ID: st.ID, Topic: st.Topic, Status: st.Status, Content: st.Content,
		EventsSinceStart: tk.LastEventNumber}
	sub.Errors = subscription.Errors(st)
	if err := e.withAccessTokens(st, events); err != nil {
		return nil, err
	}
	for _, ev := range events {
		if ev.AccessToken != "" {
			n.tokens = append(n.tokens, ev.AccessToken)
		}
	}
	return notify.Build(e.cfg.BaseURL, sub, n.kind, events, now, uuid.NewString)
}

// fail records a failed attempt: retry after a backoff, or after the
// subscriber's Retry-After (wait) when that is longer, up to RetryCap; and
// status error once the failures (endpoint busy among them) reach
// ErrorAfter, or at a failed handshake (one that was sent).
func (e *Engine) fail(ctx context.Context, tk store.DeliveryTask, res store.DeliveryResult, why string, wait time.Duration) {
	failures := tk.FailureCount + 1
	res.Failed = true
	res.Next = res.Now.Add(max(e.backoff(failures), min(wait, e.cfg.RetryCap)))
	status, reason := "", ""
	switch {
	case tk.State.Status == fhir.StatusError:
	case tk.HandshakePending && webhook.ClassOf(why) != webhook.ClassBusy:
		// The IG: a handshake that fails SHALL put the Subscription in
		// error. Retries go on; the first that succeeds makes it active.
		status, reason = fhir.StatusError, "the handshake failed ("+why+"); retrying"
	case failures >= e.cfg.ErrorAfter:
		// An endpoint busy (nothing sent) counts here like a failed send:
		// the turns at a host are the subscriber's own (webhook.Request.Share:
		// owner and launch context), so only its own slow or hanging sends
		// keep it busy, and an endpoint that cannot keep up with its
		// subscriber's notifications is failing. Not at once, as a failed handshake is: nothing reached
		// the subscriber.
		status, reason = fhir.StatusError, strconv.Itoa(failures)+" consecutive delivery attempts failed (last: "+why+")"
	}
	e.record(ctx, res, status, reason, why)
}

// record commits the outcome, and a status change with it, in one
// transaction. A lost lease means someone else took over: nothing to do.
func (e *Engine) record(ctx context.Context, res store.DeliveryResult, status, reason, failure string) {
	ctx = context.WithoutCancel(ctx) // an outcome is worth keeping through shutdown
	var err error
	if status == "" {
		err = e.cfg.Store.FinishDelivery(ctx, res) // one statement
	} else {
		err = e.cfg.Store.InTx(ctx, func(tx store.Tx) error {
			// The resource first, then the state row: the order a client's
			// update of the Subscription takes them in, so the two never
			// deadlock.
			if _, err := tx.Lock(ctx, "Subscription", res.SubscriptionID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err := tx.FinishDelivery(ctx, res); err != nil {
				return err
			}
			return subscription.SetStatus(ctx, tx, res.SubscriptionID, status, reason, errorCode(status, failure), res.Now)
		})
	}
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		e.log.Debug("delivery: lease lost; the outcome is left to the next holder", "subscription", res.SubscriptionID)
		return
	case err != nil:
		// Holding the lease until it expires would only delay the resend
		// that an unrecorded outcome means anyway (from the cursor, so in
		// order and nothing lost): let the next claim take it now.
		e.log.Warn("delivery: cannot record the outcome; the send will repeat", "subscription", res.SubscriptionID, "err", err)
		e.release(ctx, res.SubscriptionID, res.Lease, "outcome not recorded")
		return
	}
	if failure != "" {
		e.log.Info("delivery failed", "subscription", res.SubscriptionID, "reason", failure, "retry_at", res.Next)
	}
	if status != "" {
		e.log.Info("subscription status changed by delivery", "subscription", res.SubscriptionID, "status", status, "reason", reason)
	}
	e.schedule(res.Next)
}

// idleDue is when work is next due with nothing waiting: the next heartbeat
// of an active Subscription, its end, or the switch-off of one in error.
func (e *Engine) idleDue(st store.SubscriptionState, lastSent, errorSince time.Time) time.Time {
	var next time.Time
	earlier := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if st.HeartbeatPeriod > 0 && st.Status != fhir.StatusOff {
		earlier(heartbeatBase(st, lastSent).Add(st.HeartbeatPeriod))
	}
	earlier(st.End)
	if !errorSince.IsZero() {
		earlier(errorSince.Add(e.cfg.ErrorOffAfter))
	}
	return next
}

// heartbeatBase is when silence started: the last send, or the creation.
func heartbeatBase(st store.SubscriptionState, lastSent time.Time) time.Time {
	if lastSent.IsZero() {
		return st.CreatedAt
	}
	return lastSent
}

// backoff is the delay before attempt failures+1: exponential from
// RetryBase, capped at RetryCap, with "equal jitter" (half fixed, half
// random) so subscribers that failed together do not retry together.
func (e *Engine) backoff(failures int) time.Duration {
	d := e.cfg.RetryBase
	for i := 1; i < failures && d < e.cfg.RetryCap; i++ {
		d *= 2 // doubling step by step cannot overflow: it stops at the cap
	}
	d = min(d, e.cfg.RetryCap)
	half := d / 2
	return half + rand.N(half+1)
}

// messageID is the webhook-id: derived from what is sent, so a retry of the
// same notification (by any instance) carries the same id, and never a FHIR
// id.
func messageID(subID string, tk store.DeliveryTask, n *notification) string {
	key := subID + "\x00" + string(n.kind) + "\x00"
	switch {
	case len(n.events) > 0:
		key += strconv.FormatInt(n.events[0].Number, 10) + "-" + strconv.FormatInt(n.events[len(n.events)-1].Number, 10)
	case n.kind == notify.Handshake:
		key += tk.State.UpdatedAt.UTC().Format(time.RFC3339Nano)
	default:
		key += tk.LastSentAt.UTC().Format(time.RFC3339Nano)
	}
	sum := sha256.Sum256([]byte(key))
	return "msg_" + base64.RawURLEncoding.EncodeToString(sum[:18])
}

// reason is a short, safe description of a failed send for logs and
// Subscription.error.
func reason(err error) string {
	var se *webhook.SendError
	if errors.As(err, &se) {
		return se.Reason
	}
	return "send failed"
}

// errorCode is the subscription-error code (fhir.SubscriptionErrorSystem) of
// a change to status error after a failed send, from the webhook client's
// reason (webhook.SendError.Reason); "" when the failure has none (our own
// errors) or the change is not to error.
func errorCode(status, failure string) string {
	if status != fhir.StatusError || failure == "" || failure == "internal error" {
		return ""
	}
	switch webhook.ClassOf(failure) {
	case webhook.ClassDNS:
		return fhir.SubscriptionErrorDNS
	case webhook.ClassHTTPStatus, webhook.ClassRedirect:
		return fhir.SubscriptionErrorResponse // the endpoint answered, but not with a 2xx
	}
	return fhir.SubscriptionErrorNoResponse // timeouts, refused, reset or failed connections: no answer
}
