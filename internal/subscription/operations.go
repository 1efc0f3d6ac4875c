package subscription

import (
	"cmp"
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/notify"
	"github.com/herald-fhir/herald/internal/notifytoken"
	"github.com/herald-fhir/herald/internal/policy"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/topic"
)

// MaxEventsPerQuery caps one $events answer; ask again from the last number.
const MaxEventsPerQuery = 100

// MaxStatusEntries caps a type-level $status answer: each entry costs a
// query, and an owner's Subscriptions switched off are not bounded by the
// live quota (nor an admin's view by anything). More get 413 asking for
// ids or statuses (admins page /admin/subscriptions instead).
const MaxStatusEntries = 1000

// Operations answers $status and $events.
type Operations struct {
	Store   store.Store
	Topics  *topic.Library // for notificationShape includes; nil: none
	Rules   *Rules         // the policy's compiler and client registry
	BaseURL string
	Now     func() time.Time
	// MaxBytes bounds the resources one $events answer carries (0:
	// DefaultEventsBytes): it ends early rather than build a huge answer.
	MaxBytes int
}

// NotificationReader is who a notification access token (its grant g)
// reads as: the owner of its Subscription, with the grants the policy
// gives the owner now, as before a send (the Subscription live and still
// the token's owner's, the owner not suspended, its grants still covering
// the topic). A revoked owner's tokens stop working.
func (o *Operations) NotificationReader(ctx context.Context, g notifytoken.Grant) (*auth.Principal, error) {
	st, err := o.Store.Subscription(ctx, g.Subscription)
	if errors.Is(err, store.ErrNotFound) || err == nil && !g.OwnedBy(store.SubscriptionOwner{Client: st.Owner, Context: st.Context}) {
		return nil, fhir.Errorf(fhir.KindUnauthorized, "invalid bearer token: the notification's Subscription is gone")
	}
	if err != nil {
		return nil, err
	}
	c, err := o.Rules.client(ctx, o.Rules.Admin, st.Owner)
	if err != nil {
		return nil, err
	}
	sub, err := o.Rules.compiler().Compile(st)
	if err != nil {
		return nil, fhir.Errorf(fhir.KindForbidden, "the notification's Subscription is no longer valid")
	}
	owner, err := policy.Decide(sub, policyClient(c), o.now(), policy.ForSend)
	var denied *policy.Denied
	if errors.As(err, &denied) {
		return nil, fhir.Errorf(fhir.KindForbidden, "the notification's Subscription may no longer be read: %s", denied.Reason)
	}
	return owner, err
}

// DefaultEventsBytes is $events' budget when Operations.MaxBytes is 0.
const DefaultEventsBytes = 8 << 20

// mayQuery allows the owner (with a read scope on Subscription) and, unless
// the answer reveals events, admins: $status is the operators' business, but
// $events names the resources and patients a change was about, which
// herald.admin alone grants no right to read.
func mayQuery(p *auth.Principal, st store.SubscriptionState, revealsEvents bool) bool {
	if p == nil {
		return false
	}
	owner := Owns(p, store.SubscriptionOwner{Client: st.Owner, Context: st.Context}) && p.Can(auth.Read, "Subscription")
	return owner || p.Admin && !revealsEvents
}

// queried is a Subscription the caller may query now: its owner or an
// admin asks, and the policy still lets the owner have it.
type queried struct {
	state store.SubscriptionState
	sub   *policy.Subscription
	owner *auth.Principal // the owner's grants now
}

// state finds the Subscription for p; events says the answer reveals them.
// withPolicy also runs the policy: always for $events (what the owner may
// receive), for $status unless an admin asks (its status is the operators'
// business).
func (o *Operations) state(ctx context.Context, p *auth.Principal, id string, events, withPolicy bool) (queried, error) {
	if !fhir.ValidID(id) {
		return queried{}, fhir.Errorf(fhir.KindNotFound, "Subscription/%s is not known", clip(id))
	}
	st, err := o.Store.Subscription(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && !mayQuery(p, st, events) {
		return queried{}, fhir.Errorf(fhir.KindNotFound, "Subscription/%s is not known", id)
	}
	if err != nil || !withPolicy {
		return queried{state: st}, err
	}
	return o.decide(ctx, st)
}

// decide asks the policy whether the owner may have st now.
func (o *Operations) decide(ctx context.Context, st store.SubscriptionState) (queried, error) {
	c, err := o.Rules.client(ctx, o.Rules.Admin, st.Owner)
	if err != nil {
		return queried{}, err
	}
	return o.decideFor(st, c)
}

// decideFor is decide with the owner's registry entry c.
func (o *Operations) decideFor(st store.SubscriptionState, c store.Client) (queried, error) {
	sub, err := o.Rules.compiler().Compile(st)
	if err != nil {
		return queried{}, fhir.Errorf(fhir.KindForbidden, "Subscription/%s cannot be queried now: its topic or filters are no longer valid", st.ID)
	}
	owner, err := policy.Decide(sub, policyClient(c), o.now(), policy.ForQuery)
	var denied *policy.Denied
	if errors.As(err, &denied) {
		return queried{}, fhir.Errorf(fhir.KindForbidden, "Subscription/%s cannot be queried now: %s", st.ID, denied.Reason)
	}
	return queried{state: st, sub: sub, owner: owner}, err
}

func (o *Operations) describe(ctx context.Context, st store.SubscriptionState) (notify.Subscription, error) {
	n, err := o.Store.EventCount(ctx, st.ID)
	if err != nil {
		return notify.Subscription{}, err
	}
	s := notify.Subscription{ID: st.ID, Topic: st.Topic, Status: st.Status, Content: st.Content, EventsSinceStart: n}
	s.Errors = Errors(st)
	return s, nil
}

// Status answers $status: a searchset Bundle of status Parameters, one per
// Subscription the caller may see. With id set (the instance operation) it is
// that Subscription; otherwise ids and statuses narrow the caller's own.
func (o *Operations) Status(ctx context.Context, p *auth.Principal, id string, ids, statuses []string) ([]byte, error) {
	var states []store.SubscriptionState
	if id != "" {
		q, err := o.state(ctx, p, id, false, !p.Admin)
		if err != nil {
			return nil, err
		}
		states = []store.SubscriptionState{q.state}
	} else {
		if p == nil || !p.Admin && !p.Can(auth.Read, "Subscription") {
			return nil, fhir.Errorf(fhir.KindForbidden, "$status needs a read scope on Subscription")
		}
		f := store.SubscriptionFilter{IDs: ids, Status: statuses}
		if !p.Admin {
			f.Owner, f.Context = p.ClientID, p.Context()
		}
		var err error
		if states, err = o.Store.Subscriptions(ctx, f); err != nil {
			return nil, err
		}
		if len(states) > MaxStatusEntries {
			return nil, fhir.Errorf(fhir.KindTooLarge, "$status would answer for %d Subscriptions, more than %d: name them with id parameters, or narrow by status", len(states), MaxStatusEntries)
		}
		if !p.Admin {
			if states, err = o.allowed(ctx, p.ClientID, states); err != nil {
				return nil, err
			}
		}
	}
	subs := make([]notify.Subscription, 0, len(states))
	for _, st := range states {
		s, err := o.describe(ctx, st)
		if err != nil {
			return nil, err
		}
		subs = append(subs, s)
	}
	return notify.StatusBundle(o.BaseURL, subs, o.now(), uuid.NewString)
}

// Events answers $events: the stored events from since to until (inclusive;
// at most MaxEventsPerQuery) as a query-event notification Bundle. content
// may lower the Subscription's payload content, never raise it; full
// resources are included only when the caller may read their type.
func (o *Operations) Events(ctx context.Context, p *auth.Principal, id, since, until, content string) ([]byte, error) {
	q, err := o.state(ctx, p, id, true, true)
	if err != nil {
		return nil, err
	}
	from, err := eventNumber("eventsSinceNumber", since, 1)
	if err != nil {
		return nil, err
	}
	to, err := eventNumber("eventsUntilNumber", until, 0)
	if err != nil {
		return nil, err
	}
	sub, err := o.describe(ctx, q.state)
	if err != nil {
		return nil, err
	}
	if content != "" {
		if !auth.ContentWithin(content, fhir.ContentFullResource) {
			return nil, fhir.Errorf(fhir.KindInvalid, "content must be empty, id-only or full-resource")
		}
		if auth.ContentWithin(content, sub.Content) {
			sub.Content = content
		}
	}
	stored, err := o.Store.Events(ctx, id, from, to, MaxEventsPerQuery)
	if err != nil {
		return nil, err
	}
	events, err := LoadEvents(ctx, o.Store, o.Topics, o.BaseURL, stored, sub.Content, Audience{Sub: q.sub, Owner: q.owner, Reader: p}, cmp.Or(o.MaxBytes, DefaultEventsBytes))
	if err != nil {
		return nil, err
	}
	if sub.Content == fhir.ContentFullResource {
		for _, ev := range events {
			if ev.Resource == nil && ev.Method != notify.Delete {
				sub.Content = fhir.ContentIDOnly // this caller may not read them: ids only
				break
			}
		}
	}
	return notify.Build(o.BaseURL, sub, notify.QueryEvent, events, o.now(), uuid.NewString)
}

// allowed keeps the states of client whose owner the policy lets have them
// now.
func (o *Operations) allowed(ctx context.Context, client string, states []store.SubscriptionState) ([]store.SubscriptionState, error) {
	c, err := o.Rules.client(ctx, o.Rules.Admin, client)
	if err != nil {
		return nil, err
	}
	out := states[:0]
	for _, st := range states {
		_, err := o.decideFor(st, c)
		switch {
		case err == nil:
			out = append(out, st)
		case fhir.AsError(err).Kind != fhir.KindForbidden:
			return nil, err
		}
	}
	return out, nil
}

func eventNumber(name, v string, def int64) (int64, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, fhir.Errorf(fhir.KindInvalid, "%s must be a positive integer", name)
	}
	return n, nil
}

func (o *Operations) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

// Bindable answers who may bind a websocket to which Subscriptions
// ($get-ws-binding-token): each of ids, or with none every websocket
// Subscription of p's that is not off (none is a 404). Each must be p's own
// under the $events rule (a socket reveals events, so an admin may not),
// admitted by the policy now, on the websocket channel and not off.
func (o *Operations) Bindable(ctx context.Context, p *auth.Principal, ids []string) ([]store.SubscriptionState, error) {
	if len(ids) == 0 {
		if p == nil || !p.Can(auth.Read, "Subscription") {
			return nil, fhir.Errorf(fhir.KindForbidden, "a binding token needs a read scope on Subscription")
		}
		states, err := o.Store.Subscriptions(ctx, store.SubscriptionFilter{Owner: p.ClientID, Context: p.Context(),
			Status: []string{fhir.StatusRequested, fhir.StatusActive, fhir.StatusError}})
		if err != nil {
			return nil, err
		}
		for _, st := range states {
			if st.Websocket() {
				ids = append(ids, st.ID)
			}
		}
		if len(ids) == 0 {
			return nil, fhir.Errorf(fhir.KindNotFound, "you have no websocket Subscription that is not off: create one with channel.type websocket, or name the ids")
		}
	}
	out := make([]store.SubscriptionState, 0, len(ids))
	for _, id := range ids {
		q, err := o.state(ctx, p, id, true, true)
		if err != nil {
			return nil, err
		}
		switch {
		case !q.state.Websocket():
			return nil, fhir.Errorf(fhir.KindUnprocessable, "Subscription/%s is not on the websocket channel", id)
		case q.state.Status == fhir.StatusOff:
			return nil, fhir.Errorf(fhir.KindUnprocessable, "Subscription/%s is off: switch it on before binding a socket", id)
		}
		out = append(out, q.state)
	}
	return out, nil
}
