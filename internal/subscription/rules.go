package subscription

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/herald-fhir/herald/internal/allowlist"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/policy"
	"github.com/herald-fhir/herald/internal/search"
	"github.com/herald-fhir/herald/internal/secrets"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/strictjson"
	"github.com/herald-fhir/herald/internal/topic"
)

// Policy is the server configuration the rules apply.
type Policy struct {
	MaxLease             time.Duration
	DefaultMaxPayload    string
	RequireSigningSecret bool
	// MaxFilters, MaxFilterParams and MaxSubscriptionsPerClient bound what
	// one client may ask for (0: the defaults, 20, 20 and 1,000).
	MaxFilters, MaxFilterParams, MaxSubscriptionsPerClient int
	// MaxReasonBytes, MaxHeaderValueBytes and MaxSubscriptionBytes bound
	// what every stored version and every send carries (0: the defaults,
	// 1,024, 4,096 and 65,536).
	MaxReasonBytes, MaxHeaderValueBytes, MaxSubscriptionBytes int
}

// withDefaults fills the zero limits.
func (p Policy) withDefaults() Policy {
	p.MaxFilters = cmp.Or(p.MaxFilters, 20)
	p.MaxFilterParams = cmp.Or(p.MaxFilterParams, 20)
	p.MaxSubscriptionsPerClient = cmp.Or(p.MaxSubscriptionsPerClient, 1000)
	p.MaxReasonBytes = cmp.Or(p.MaxReasonBytes, 1024)
	p.MaxHeaderValueBytes = cmp.Or(p.MaxHeaderValueBytes, 4096)
	p.MaxSubscriptionBytes = cmp.Or(p.MaxSubscriptionBytes, 64<<10)
	return p
}

// checkBytes refuses a Subscription larger than the policy allows: every
// status change stores a new version of it, and reason and headers travel
// with every send.
func (p Policy) checkBytes(body []byte, sub *Subscription) error {
	if len(body) > p.MaxSubscriptionBytes {
		return invalid("Subscription", "the Subscription is %d bytes; at most %d are allowed", len(body), p.MaxSubscriptionBytes)
	}
	if len(sub.Reason) > p.MaxReasonBytes {
		return invalid("Subscription.reason", "reason is %d bytes; at most %d are allowed", len(sub.Reason), p.MaxReasonBytes)
	}
	for _, h := range sub.Headers {
		if len(h.Value) > p.MaxHeaderValueBytes {
			return invalid("Subscription.channel.header", "the value of header %s is %d bytes; at most %d are allowed", h.Name, len(h.Value), p.MaxHeaderValueBytes)
		}
	}
	return nil
}

// checkSize refuses more filters, or filter parameters, than the policy
// allows: each costs every matching write and every send.
func (p Policy) checkSize(filters []Filter) error {
	if len(filters) > p.MaxFilters {
		return invalid("Subscription._criteria.extension", "at most %d filters are allowed", p.MaxFilters)
	}
	for _, f := range filters {
		if filterValues(f) > p.MaxFilterParams {
			return invalid("Subscription._criteria.extension", "filter %q: at most %d parameters (counting each comma-separated value) are allowed in one filter", clip(f.Raw), p.MaxFilterParams)
		}
	}
	return nil
}

// filterValues counts a filter's parameters by their values: each value
// of "code=a,b,c" is a criterion the matcher evaluates on every write.
func filterValues(f Filter) int {
	n := 0
	for _, fp := range f.Params {
		n += 1 + strings.Count(fp.Value, ",")
	}
	return n
}

// checkQuota refuses a live Subscription beyond its owner's quota. The
// owner is the client in one launch context (a patient's, a user's, the
// system's): one patient of a shared app cannot use up the others' quota,
// and the refusal counts nothing of theirs. Two concurrent creates may both
// pass: the quota bounds abuse, not exact counts, and they overshoot it by
// at most the requests in flight.
func (p Policy) checkQuota(ctx context.Context, tx store.Tx, state store.SubscriptionState, prev *store.SubscriptionState) error {
	live := []string{fhir.StatusRequested, fhir.StatusActive, fhir.StatusError}
	n, err := tx.CountSubscriptions(ctx, store.SubscriptionFilter{Owner: state.Owner, Context: state.Context, Status: live})
	if err != nil {
		return err
	}
	if prev != nil && prev.Owner == state.Owner && prev.Context == state.Context && slices.Contains(live, prev.Status) {
		n-- // the one being updated
	}
	if n >= p.MaxSubscriptionsPerClient {
		return fhir.Errorf(fhir.KindTooMany, "at most %d live Subscriptions are allowed for this client in this launch context; delete or switch off (status off) one it no longer needs", p.MaxSubscriptionsPerClient)
	}
	return nil
}

// Rules are the Subscription lifecycle (package typerules serves them at
// /fhir/Subscription): they validate against the topic library and the
// allow-list, ask the policy whether the owner may have the Subscription,
// keep secrets out of the stored resource, record the state delivery needs,
// and recheck it all before every send.
type Rules struct {
	Topics *topic.Library
	// Compiler caches compiled Subscriptions; nil: one of the Rules' own.
	Compiler *Compiler
	Keys     *secrets.Keyring
	Admin    store.AdminStore
	Policy   Policy
	Now      func() time.Time

	once sync.Once
}

func (r *Rules) compiler() *Compiler {
	r.once.Do(func() {
		if r.Compiler == nil {
			r.Compiler = &Compiler{Topics: r.Topics}
		}
	})
	return r.Compiler
}

// ScopeExempt: Subscriptions are governed by SMART scopes on Subscription.
func (r *Rules) ScopeExempt(auth.Interaction) bool { return false }

// Authorize isolates owners: a client in one launch context sees and
// changes only its own Subscriptions (others are "not found"); admins see
// all. The id of a deleted Subscription stays with its owner: its history
// shows the owner's endpoint, filters and header names.
func (r *Rules) Authorize(ctx context.Context, rd store.View, p *auth.Principal, i auth.Interaction, v *store.Version) error {
	if v == nil || p.Admin {
		return nil
	}
	o, err := rd.SubscriptionOwner(ctx, v.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err // not found: stored before owners were recorded, the admins' alone
	}
	switch {
	case Owns(p, o):
		return nil
	case v.Deleted && i == auth.Create:
		return fhir.Errorf(fhir.KindForbidden, "Subscription/%s was deleted by another owner and its id stays with it; choose another id, or POST to let the server choose", v.ID)
	}
	return fhir.Errorf(fhir.KindNotFound, "Subscription/%s is not known", v.ID)
}

// Owns reports whether p is the owner o: the same client in the same
// launch context (auth.Principal.Context).
func Owns(p *auth.Principal, o store.SubscriptionOwner) bool {
	return p != nil && o.Client == p.ClientID && o.Context == p.Context()
}

// client returns the caller's registry entry, or the defaults.
func (r *Rules) client(ctx context.Context, admin store.AdminReader, id string) (store.Client, error) {
	c, err := admin.Client(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return unregistered(id, r.Policy.DefaultMaxPayload), nil
	}
	return c, err
}

// unregistered is what a client without a registry entry gets.
func unregistered(id, defaultMaxPayload string) store.Client {
	return store.Client{ClientID: id, Status: "active", MaxPayload: defaultMaxPayload}
}

// Written is what a Subscription write stores and what it shows the writer.
type Written struct {
	Store *fhir.Resource // redacted: header values hidden, no secret
	Echo  *fhir.Resource // header values as sent, never the signing secret
}

// Write validates the Subscription the client sent as body for id (prev:
// its current version, nil when none), authorises it for its owner (the
// policy), seals its secrets into the state row and returns the resource
// to store and the one to echo.
func (r *Rules) Write(ctx context.Context, tx store.Tx, p *auth.Principal, id string, prev *store.Version, body []byte) (Written, error) {
	now := r.Now()
	limits := r.Policy.withDefaults()
	sub, err := Parse(body, now)
	if err != nil {
		return Written{}, err
	}
	if err := limits.checkSize(sub.Filters); err != nil {
		return Written{}, err
	}
	if err := limits.checkBytes(body, sub); err != nil {
		return Written{}, err
	}
	if r.Policy.RequireSigningSecret && sub.SigningSecret == "" {
		return Written{}, invalid("Subscription.channel.extension", "a signing secret is required on this server (extension %s, at least %d characters)", fhir.ExtSigningSecret, Limits.MinSecretLen)
	}
	endpoint := "" // websocket: no endpoint to check
	if sub.Channel == fhir.ChannelRestHook {
		if endpoint, _, err = r.checkEndpoint(ctx, tx, sub.Endpoint); err != nil {
			return Written{}, err
		}
	}
	prevState, err := r.previous(ctx, tx, id, prev)
	if err != nil {
		return Written{}, err
	}
	state := r.newState(p, id, sub, endpoint, prevState, now)
	if prevState != nil && p.Admin && !Owns(p, store.SubscriptionOwner{Client: prevState.Owner, Context: prevState.Context}) &&
		store.Redefines(*prevState, state) {
		// herald.admin grants no FHIR access: under the owner's grants, a
		// new endpoint or wider filters would send the owner's data to
		// wherever the admin chose.
		return Written{}, fhir.Errorf(fhir.KindForbidden, "an admin may not change the topic, filters or endpoint of another owner's Subscription (that would send the owner's notifications elsewhere); ask its owner, or switch it off")
	}
	if err := r.authorizeOwner(ctx, tx, state, now); err != nil {
		return Written{}, err
	}
	if state.Status != fhir.StatusOff {
		if err := limits.checkQuota(ctx, tx, state, prevState); err != nil {
			return Written{}, err
		}
	}
	if err := r.seal(&state, sub, prevState); err != nil {
		return Written{}, err
	}
	if err := tx.PutSubscription(ctx, state); err != nil {
		return Written{}, err
	}
	return rendered(body, state)
}

// previous is the state of the Subscription being updated; nil for a create.
func (r *Rules) previous(ctx context.Context, tx store.Tx, id string, prev *store.Version) (*store.SubscriptionState, error) {
	if prev == nil || prev.Deleted {
		return nil, nil
	}
	st, err := tx.Subscription(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// newState is the state the write records (without its sealed secrets).
// An admin's edit keeps the owner and the owner's grants.
func (r *Rules) newState(p *auth.Principal, id string, sub *Subscription, endpoint string, prev *store.SubscriptionState, now time.Time) store.SubscriptionState {
	status := fhir.StatusRequested // the handshake makes it active
	if sub.Status == fhir.StatusOff {
		status = fhir.StatusOff // a client may switch its Subscription off
	}
	state := store.SubscriptionState{
		ID: id, Owner: p.ClientID, Context: p.Context(), Scopes: strings.Join(p.RawScopes, " "), Patient: p.Patient, TokenExp: p.ExpiresAt,
		Status: status, Topic: sub.Topic, Endpoint: endpoint, Content: sub.Content, Payload: sub.Payload, NotificationToken: sub.NotificationToken,
		HeartbeatPeriod: sub.HeartbeatPeriod, Timeout: sub.Timeout, MaxCount: sub.MaxCount,
		CreatedAt: now, UpdatedAt: now,
	}
	for _, f := range sub.Filters {
		state.Filters = append(state.Filters, f.Raw)
	}
	if t, ok := r.Topics.Lookup(sub.Topic); ok {
		state.PatientKey = PatientKey(t, sub.Filters)
	}
	if prev != nil {
		state.CreatedAt = prev.CreatedAt
		// The same client in another launch context is another owner.
		if p.Admin && !Owns(p, store.SubscriptionOwner{Client: prev.Owner, Context: prev.Context}) {
			state.Owner, state.Context, state.Scopes, state.Patient, state.TokenExp = prev.Owner, prev.Context, prev.Scopes, prev.Patient, prev.TokenExp
		}
	}
	// The lease follows the owner's grants, also when an admin edits.
	state.End = r.lease(auth.ParseScopes(state.Scopes), state.TokenExp, sub.End, now)
	return state
}

// authorizeOwner compiles the state and asks the policy whether its owner
// may have it.
func (r *Rules) authorizeOwner(ctx context.Context, admin store.AdminReader, state store.SubscriptionState, now time.Time) error {
	sub, err := r.compiler().Compile(state)
	if err != nil {
		return err
	}
	c, err := r.client(ctx, admin, state.Owner)
	if err != nil {
		return err
	}
	if _, err := policy.Decide(sub, policyClient(c), now, policy.ForWrite); err != nil {
		return fhir.Errorf(fhir.KindForbidden, "Subscription to %s is not allowed: %s", state.Topic, err.(*policy.Denied).Reason)
	}
	return nil
}

// seal encrypts the headers and the signing secret into the state. An
// update keeps the write-only secret, and a header value sent back as
// [redacted], from the stored state, the latter only for the same endpoint.
func (r *Rules) seal(state *store.SubscriptionState, sub *Subscription, prev *store.SubscriptionState) error {
	headers, secret := sub.Headers, sub.SigningSecret
	if prev != nil {
		old, err := r.openHeaders(state.ID, prev.SealedHeaders)
		if err != nil {
			return err
		}
		if prev.Endpoint != state.Endpoint {
			old = nil // a stored credential never follows the Subscription to a new endpoint
		}
		if headers, err = KeepRedactedHeaders(headers, old); err != nil {
			return err
		}
		if secret == "" && prev.SealedSecret != "" {
			if s, err := r.Keys.Open(prev.SealedSecret, secretAD(state.ID)); err == nil {
				secret = string(s)
			}
		}
	} else if slices.ContainsFunc(headers, func(h Header) bool { return h.Value == Redacted }) {
		return invalid("Subscription.channel.header", "a header value of %s can only keep a stored value on update", Redacted)
	}
	var err error
	if state.SealedHeaders, err = r.sealHeaders(state.ID, headers); err != nil {
		return err
	}
	if secret != "" {
		state.SealedSecret, err = r.Keys.Seal([]byte(secret), secretAD(state.ID))
	}
	return err
}

// rendered is the resource to store (redacted) and the one to echo, with
// the status and end the server decided.
func rendered(body []byte, state store.SubscriptionState) (Written, error) {
	endText := ""
	if !state.End.IsZero() {
		endText = fhir.FormatInstant(state.End)
	}
	stored, err := Rewrite(body, state.Status, endText)
	if err != nil {
		return Written{}, err
	}
	echo, err := Echo(body, state.Status, endText)
	if err != nil {
		return Written{}, err
	}
	storedRes, err := fhir.Parse(stored)
	if err != nil {
		return Written{}, err
	}
	echoRes, err := fhir.Parse(echo)
	if err != nil {
		return Written{}, err
	}
	return Written{Store: storedRes, Echo: echoRes}, nil
}

// lease caps end: by HERALD_MAX_LEASE always, and by the token's exp when
// any of the owner's grants is a user's or a patient's (that authority ends
// with the session, whatever system/ scope sits beside it).
func (r *Rules) lease(grants auth.ScopeSet, tokenExp, end, now time.Time) time.Time {
	limit := now.Add(r.Policy.MaxLease).UTC().Truncate(time.Millisecond)
	if sessionBound(grants) && !tokenExp.IsZero() && tokenExp.Before(limit) {
		limit = tokenExp.UTC().Truncate(time.Millisecond)
	}
	if end.IsZero() || end.After(limit) {
		return limit
	}
	return end
}

// sessionBound reports whether any grant belongs to a user's or patient's
// session.
func sessionBound(grants auth.ScopeSet) bool {
	for _, g := range grants {
		if !g.Admin && g.Context != auth.ContextSystem {
			return true
		}
	}
	return false
}

// checkEndpoint normalises endpoint and finds the allow-list entry it
// matches.
func (r *Rules) checkEndpoint(ctx context.Context, admin store.AdminReader, endpoint string) (string, allowlist.Entry, error) {
	entries, err := admin.Endpoints(ctx)
	if err != nil {
		return "", allowlist.Entry{}, err
	}
	return matchEndpoint(CompileAllowList(entries), endpoint)
}

// CompileAllowList compiles the stored allow-list (entries were validated when added).
func CompileAllowList(entries []store.AllowedEndpoint) *allowlist.List {
	list := make([]allowlist.Entry, 0, len(entries))
	for _, e := range entries {
		list = append(list, allowlist.Entry{ID: e.ID, URLPrefix: e.URLPrefix, AllowPrivateNetwork: e.AllowPrivateNetwork, Note: e.Note})
	}
	compiled, _ := allowlist.Compile(list) // entries were validated when added
	return compiled
}

func matchEndpoint(list *allowlist.List, endpoint string) (string, allowlist.Entry, error) {
	ep, err := allowlist.ParseEndpoint(endpoint)
	if err != nil {
		return "", allowlist.Entry{}, invalid("Subscription.channel.endpoint", "%s", err)
	}
	entry, ok := list.Match(ep)
	if !ok {
		return "", allowlist.Entry{}, &fhir.Error{Kind: fhir.KindUnprocessable, Code: "security", Expression: []string{"Subscription.channel.endpoint"},
			Message: "Subscription.channel.endpoint: the endpoint is not on this server's allow-list; ask an administrator to add it (POST /admin/endpoints)"}
	}
	return ep.String(), entry, nil
}

func (r *Rules) sealHeaders(id string, hs []Header) (string, error) {
	if len(hs) == 0 {
		return "", nil
	}
	lines := make([]string, len(hs))
	for i, h := range hs {
		lines[i] = h.Name + ": " + h.Value
	}
	b, _ := json.Marshal(lines)
	return r.Keys.Seal(b, headersAD(id))
}

func (r *Rules) openHeaders(id, sealed string) ([]Header, error) {
	if sealed == "" {
		return nil, nil
	}
	b, err := r.Keys.Open(sealed, headersAD(id))
	if err != nil {
		return nil, fmt.Errorf("subscription %s: stored headers cannot be decrypted (was HERALD_SECRET_KEY changed without keeping the old key?): %w", id, err)
	}
	var lines []string
	if err := strictjson.Unmarshal(b, &lines); err != nil {
		return nil, err
	}
	out := make([]Header, 0, len(lines))
	for _, l := range lines {
		name, value, _ := strings.Cut(l, ":")
		out = append(out, Header{Name: name, Value: strings.TrimSpace(value)})
	}
	return out, nil
}

func secretAD(id string) []byte  { return secrets.AssociatedData("Subscription", id, "signing-secret") }
func headersAD(id string) []byte { return secrets.AssociatedData("Subscription", id, "headers") }

// AfterWrite removes the state of a deleted Subscription, and records an
// admin's change of another owner's Subscription in the admin audit log
// (the stored versions hold neither the signing secret nor header values).
func (r *Rules) AfterWrite(ctx context.Context, tx store.Tx, p *auth.Principal, prev *store.Version, cur store.Version) error {
	if p != nil && p.Admin {
		o, err := tx.SubscriptionOwner(ctx, cur.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err == nil && !Owns(p, o) {
			e := store.AuditEntry{Action: store.AuditPutSubscription, Target: "Subscription/" + cur.ID}
			if prev != nil && !prev.Deleted {
				e.Before = prev.Body
			}
			if cur.Deleted {
				e.Action = store.AuditDeleteSubscription
			} else {
				e.After = cur.Body
			}
			if err := tx.AppendAudit(store.WithActor(ctx, p.ClientID), e); err != nil {
				return err
			}
		}
	}
	if cur.Deleted {
		return tx.DeleteSubscription(ctx, cur.ID)
	}
	return nil
}

// Committed has nothing to do yet; delivery reacts to state changes.
func (r *Rules) Committed(store.Version) {}

// Search applies status, url (the channel endpoint, as in R4) and topic,
// and owner isolation for non-admins.
func (r *Rules) Search(ctx context.Context, rd store.View, p *auth.Principal, params url.Values) ([]string, url.Values, error) {
	f := store.SubscriptionFilter{}
	applied := url.Values{}
	if !p.Admin {
		f.Owner, f.Context = p.ClientID, p.Context()
	}
	if vs := params["status"]; len(vs) > 0 {
		for _, v := range vs {
			f.Status = append(f.Status, strings.Split(v, ",")...)
		}
		applied["status"] = vs
	}
	if v := params.Get("url"); v != "" {
		ep, err := allowlist.ParseEndpoint(v)
		if err != nil {
			f.Endpoint = v
		} else {
			f.Endpoint = ep.String()
		}
		applied["url"] = params["url"]
	}
	if v := params.Get("topic"); v != "" {
		f.Topic = v
		applied["topic"] = params["topic"]
	}
	if f.Owner == "" && len(f.Status) == 0 && f.Endpoint == "" && f.Topic == "" {
		return nil, applied, nil // an admin with no filter: everything
	}
	states, err := rd.Subscriptions(ctx, f)
	if err != nil {
		return nil, nil, err
	}
	ids := make([]string, 0, len(states))
	for _, s := range states {
		ids = append(ids, s.ID)
	}
	return ids, applied, nil
}

func unknownTopic(canonical string) error {
	return &fhir.Error{Kind: fhir.KindUnprocessable, Code: "not-supported", Expression: []string{"Subscription.criteria"},
		Message: fmt.Sprintf("Subscription.criteria: topic %q is not supported here; the CapabilityStatement lists the topics Herald offers", clip(canonical))}
}

func offered(t *topic.Topic, typ string) string {
	var names []string
	for _, fd := range t.CanFilterBy {
		if fd.ResourceType == "" || fd.ResourceType == typ {
			names = append(names, fd.Param)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// referenceTargets names the types a reference search parameter can point to.
func referenceTargets(typ, param string) []string {
	p, ok := search.Lookup(typ, param)
	if !ok {
		return nil
	}
	return p.Targets
}
