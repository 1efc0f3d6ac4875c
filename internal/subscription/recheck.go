package subscription

import (
	"context"
	"errors"
	"time"

	"github.com/herald-fhir/herald/internal/allowlist"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/store"
)

// Revoked reports that a Subscription may no longer receive notifications.
// Reason is recorded on the Subscription (Subscription.error): it names the
// rule, never a secret or PHI.
type Revoked struct{ Reason string }

func (e *Revoked) Error() string { return "subscription revoked: " + e.Reason }

// Send is what one send to a Subscription needs once it is authorized.
type Send struct {
	AllowPrivateNetwork bool // from the matching allow-list entry
	Secret              string
	Headers             []Header
	// Owner holds the owner's grants now (recorded scopes within the
	// current ceiling) and patient: full-resource notifications carry only
	// the versions it MayRead.
	Owner *auth.Principal
}

// Admin is the allow-list and the client registry as read at one moment:
// what Recheck decides against. Delivery reads it once for each batch of
// Subscriptions it claims, just before sending them, instead of twice per
// send.
type Admin struct {
	allowList         *allowlist.List
	clients           map[string]store.Client
	defaultMaxPayload string
}

// ReadAdmin reads the allow-list and the client registry now.
func (r *Rules) ReadAdmin(ctx context.Context) (*Admin, error) {
	entries, err := r.Admin.Endpoints(ctx)
	if err != nil {
		return nil, err
	}
	clients, err := r.Admin.Clients(ctx)
	if err != nil {
		return nil, err
	}
	a := &Admin{allowList: compileAllowList(entries), clients: make(map[string]store.Client, len(clients)),
		defaultMaxPayload: r.Policy.DefaultMaxPayload}
	for _, c := range clients {
		a.clients[c.ClientID] = c
	}
	return a, nil
}

// client is the registry entry, or the defaults for an unregistered client.
func (a *Admin) client(id string) store.Client {
	if c, ok := a.clients[id]; ok {
		return c
	}
	return store.Client{ClientID: id, Status: "active", MaxPayload: a.defaultMaxPayload}
}

// Recheck repeats, before a send, every check the Subscription passed when
// it was created, against admin (read just before) and the current topic
// library (interface.md, "Before every send"): it is requested, active or
// in error and before its end; its owner is not suspended; the scopes
// recorded at creation, within the client's current ceiling, still cover
// the topic and filters; its content is within the client's payload
// ceiling; its endpoint still matches the allow-list. A failed rule is a
// *Revoked; other errors (a key that cannot open the secret) are failures
// to retry.
func (r *Rules) Recheck(admin *Admin, st store.SubscriptionState, now time.Time) (Send, error) {
	switch st.Status {
	case fhir.StatusRequested, fhir.StatusActive, fhir.StatusError:
	default:
		return Send{}, &Revoked{"the Subscription is " + st.Status}
	}
	if !st.End.IsZero() && !now.Before(st.End) {
		return Send{}, &Revoked{"the Subscription's end has passed"}
	}
	c := admin.client(st.Owner)
	if c.Status != "active" {
		return Send{}, &Revoked{"the owning client is suspended"}
	}
	t, ok := r.Topics.Lookup(st.Topic)
	if !ok {
		return Send{}, &Revoked{"the topic is no longer offered"}
	}
	filters := make([]Filter, 0, len(st.Filters))
	for _, raw := range st.Filters {
		f, err := ParseFilter(raw)
		if err != nil {
			return Send{}, &Revoked{"a filter is no longer valid"}
		}
		filters = append(filters, f)
	}
	clauses, err := CheckFilters(t, filters)
	if err != nil {
		return Send{}, &Revoked{"the filters are no longer valid for the topic"}
	}
	if err := mayReceive(t, clauses, st.Content, st.Scopes, st.Patient, c); err != nil {
		return Send{}, &Revoked{"the owner's grants no longer allow it: " + err.Error()}
	}
	_, entry, err := matchEndpoint(admin.allowList, st.Endpoint)
	if err != nil {
		return Send{}, &Revoked{"the endpoint is no longer on the allow-list"}
	}
	send := Send{AllowPrivateNetwork: entry.AllowPrivateNetwork,
		Owner: &auth.Principal{ClientID: st.Owner, Scopes: Grants(st.Scopes, c), Patient: st.Patient}}
	if send.Headers, err = r.openHeaders(st.ID, st.SealedHeaders); err != nil {
		return Send{}, err
	}
	if st.SealedSecret != "" {
		b, err := r.Keys.Open(st.SealedSecret, secretAD(st.ID))
		if err != nil {
			return Send{}, errors.New("subscription " + st.ID + ": the signing secret cannot be decrypted (was HERALD_SECRET_KEY changed without keeping the old key?)")
		}
		send.Secret = string(b)
	}
	return send, nil
}
