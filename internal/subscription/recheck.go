package subscription

import (
	"context"
	"errors"
	"time"

	"github.com/herald-fhir/herald/internal/allowlist"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/policy"
	"github.com/herald-fhir/herald/internal/secrets"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/webhook"
)

// Send is what one send to a Subscription needs once it is authorized.
type Send struct {
	AllowPrivateNetwork bool // from the matching allow-list entry
	Secret              secrets.Secret
	Headers             []webhook.Header
	// Sub is the Subscription compiled; every event sent must be
	// policy.Admits for it and Owner.
	Sub *policy.Subscription
	// Owner holds the owner's grants now (recorded scopes within the
	// current ceiling) and patient: full-resource notifications carry only
	// the versions it may read (package access).
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
	a := &Admin{allowList: CompileAllowList(entries), clients: make(map[string]store.Client, len(clients)),
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
	return unregistered(id, a.defaultMaxPayload)
}

// Recheck decides, before a send, with the policy that admitted the
// Subscription, against admin (read just before) and the current topic
// library (interface.md, "Before every send"), and checks that the endpoint
// still matches the allow-list. A failed rule is a *policy.Denied; other
// errors (a key that cannot open the secret) are failures to retry.
func (r *Rules) Recheck(admin *Admin, st store.SubscriptionState, now time.Time) (Send, error) {
	sub, err := r.compiler().Compile(st)
	if err != nil {
		return Send{}, &policy.Denied{Reason: "the topic or filters are no longer valid: " + fhir.AsError(err).Message}
	}
	owner, err := policy.Decide(sub, policyClient(admin.client(st.Owner)), now, policy.ForSend)
	if err != nil {
		return Send{}, err
	}
	send := Send{Sub: sub, Owner: owner}
	if st.Websocket() {
		return send, nil // no endpoint, no secret, no headers
	}
	_, entry, err := matchEndpoint(admin.allowList, st.Endpoint)
	if err != nil {
		return Send{}, &policy.Denied{Reason: "the endpoint is no longer on the allow-list"}
	}
	send.AllowPrivateNetwork = entry.AllowPrivateNetwork
	headers, err := r.openHeaders(st.ID, st.SealedHeaders)
	if err != nil {
		return Send{}, err
	}
	for _, h := range headers {
		send.Headers = append(send.Headers, webhook.Header{Name: h.Name, Value: secrets.Secret(h.Value)})
	}
	if st.SealedSecret != "" {
		b, err := r.Keys.Open(st.SealedSecret, secretAD(st.ID))
		if err != nil {
			return Send{}, errors.New("subscription " + st.ID + ": the signing secret cannot be decrypted (was HERALD_SECRET_KEY changed without keeping the old key?)")
		}
		send.Secret = secrets.Secret(b)
	}
	return send, nil
}
