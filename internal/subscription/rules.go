package subscription

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/herald-fhir/herald/internal/allowlist"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/resources"
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
}

// Rules make /fhir/Subscription a backport Subscription endpoint: they
// validate against the topic library and the allow-list, authorise the
// caller for everything the Subscription could reveal, keep secrets out of
// the stored resource, and record the state delivery needs.
type Rules struct {
	Topics *topic.Library
	Keys   *secrets.Keyring
	Admin  store.AdminStore
	Policy Policy
	Now    func() time.Time
}

var _ resources.TypeRules = (*Rules)(nil)

// ScopeExempt: Subscriptions are governed by SMART scopes on Subscription.
func (r *Rules) ScopeExempt(auth.Interaction) bool { return false }

// Authorize isolates owners: a client sees and changes only its own
// Subscriptions (others are "not found"); admins see all.
func (r *Rules) Authorize(ctx context.Context, rd store.View, p *auth.Principal, _ auth.Interaction, v *store.Version) error {
	if v == nil || p.Admin {
		return nil
	}
	st, err := rd.Subscription(ctx, v.ID)
	if errors.Is(err, store.ErrNotFound) {
		// Deleted Subscriptions have no state: their history is the admins'.
		return fhir.Errorf(fhir.KindNotFound, "Subscription/%s is not known", v.ID)
	}
	if err != nil {
		return err
	}
	if st.Owner != p.ClientID {
		return fhir.Errorf(fhir.KindNotFound, "Subscription/%s is not known", v.ID)
	}
	return nil
}

// client returns the caller's registry entry, or the defaults.
func (r *Rules) client(ctx context.Context, id string) (store.Client, error) {
	c, err := r.Admin.Client(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Client{ClientID: id, Status: "active", MaxPayload: r.Policy.DefaultMaxPayload}, nil
	}
	return c, err
}

// Grants is what a client may receive now: its token's scopes within the
// client's current ceiling.
func Grants(scopes string, c store.Client) auth.ScopeSet {
	set := auth.ParseScopes(scopes)
	if strings.TrimSpace(c.ScopeCeiling) != "" {
		set = set.Intersect(auth.ParseScopes(c.ScopeCeiling))
	}
	return set
}

// Prepare validates the Subscription, authorises the caller, seals its
// secrets into the state row and returns the redacted resource to store and
// the resource to echo (headers as sent, never the signing secret).
func (r *Rules) Prepare(ctx context.Context, tx store.Tx, p *auth.Principal, w resources.Write) (resources.Prepared, error) {
	now := r.Now()
	sub, err := Parse(w.Body, now)
	if err != nil {
		return resources.Prepared{}, err
	}
	c, err := r.client(ctx, p.ClientID)
	if err != nil {
		return resources.Prepared{}, err
	}
	if c.Status != "active" {
		return resources.Prepared{}, fhir.Errorf(fhir.KindForbidden, "client %s is suspended", p.ClientID)
	}
	t, ok := r.Topics.Lookup(sub.Topic)
	if !ok {
		return resources.Prepared{}, &fhir.Error{Kind: fhir.KindUnprocessable, Code: "not-supported", Expression: []string{"Subscription.criteria"},
			Message: fmt.Sprintf("Subscription.criteria: topic %q is not supported here; the CapabilityStatement lists the topics Herald offers", clip(sub.Topic))}
	}
	clauses, err := CheckFilters(t, sub.Filters)
	if err != nil {
		return resources.Prepared{}, err
	}
	if err := mayReceive(t, clauses, sub.Content, strings.Join(p.RawScopes, " "), p.Patient, c); err != nil {
		return resources.Prepared{}, fhir.Errorf(fhir.KindForbidden, "this token may not subscribe to %s: %s", t.URL, err)
	}
	endpoint, _, err := r.checkEndpoint(ctx, sub.Endpoint)
	if err != nil {
		return resources.Prepared{}, err
	}
	if r.Policy.RequireSigningSecret && sub.SigningSecret == "" {
		return resources.Prepared{}, invalid("Subscription.channel.extension", "a signing secret is required on this server (extension %s, at least %d characters)", fhir.ExtSigningSecret, Limits.MinSecretLen)
	}

	var prev *store.SubscriptionState
	if w.Prev != nil && !w.Prev.Deleted {
		st, err := tx.Subscription(ctx, w.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return resources.Prepared{}, err
		}
		if err == nil {
			prev = &st
		}
	}
	headers := sub.Headers
	if prev != nil {
		old, err := r.openHeaders(w.ID, prev.SealedHeaders)
		if err != nil {
			return resources.Prepared{}, err
		}
		if headers, err = KeepRedactedHeaders(headers, old); err != nil {
			return resources.Prepared{}, err
		}
		if sub.SigningSecret == "" && prev.SealedSecret != "" {
			// An update cannot see the write-only secret, so it keeps it.
			if s, err := r.Keys.Open(prev.SealedSecret, secretAD(w.ID)); err == nil {
				sub.SigningSecret = string(s)
			}
		}
	} else if slices.ContainsFunc(headers, func(h Header) bool { return h.Value == Redacted }) {
		return resources.Prepared{}, invalid("Subscription.channel.header", "a header value of %s can only keep a stored value on update", Redacted)
	}

	status := fhir.StatusRequested // the handshake makes it active
	if sub.Status == fhir.StatusOff {
		status = fhir.StatusOff // a client may switch its Subscription off
	}
	end := r.lease(p, sub.End, now)
	state := store.SubscriptionState{
		ID: w.ID, Owner: p.ClientID, Scopes: strings.Join(p.RawScopes, " "), Patient: p.Patient, TokenExp: p.ExpiresAt,
		Status: status, Topic: sub.Topic, Endpoint: endpoint, Content: sub.Content, End: end,
		HeartbeatPeriod: sub.HeartbeatPeriod, Timeout: sub.Timeout, MaxCount: sub.MaxCount,
		PatientKey: PatientKey(t, sub.Filters),
		CreatedAt:  now, UpdatedAt: now,
	}
	if prev != nil {
		state.CreatedAt = prev.CreatedAt
		if p.Admin && prev.Owner != p.ClientID {
			// An admin's edit keeps the owner and the owner's grants.
			state.Owner, state.Scopes, state.Patient, state.TokenExp = prev.Owner, prev.Scopes, prev.Patient, prev.TokenExp
		}
	}
	for _, f := range sub.Filters {
		state.Filters = append(state.Filters, f.Raw)
	}
	if state.SealedHeaders, err = r.sealHeaders(w.ID, headers); err != nil {
		return resources.Prepared{}, err
	}
	if sub.SigningSecret != "" {
		if state.SealedSecret, err = r.Keys.Seal([]byte(sub.SigningSecret), secretAD(w.ID)); err != nil {
			return resources.Prepared{}, err
		}
	}
	if err := tx.PutSubscription(ctx, state); err != nil {
		return resources.Prepared{}, err
	}

	endText := ""
	if !end.IsZero() {
		endText = fhir.FormatInstant(end)
	}
	stored, err := Rewrite(w.Body, status, endText)
	if err != nil {
		return resources.Prepared{}, err
	}
	echo, err := Echo(w.Body, status, endText)
	if err != nil {
		return resources.Prepared{}, err
	}
	storedRes, err := fhir.Parse(stored)
	if err != nil {
		return resources.Prepared{}, err
	}
	echoRes, err := fhir.Parse(echo)
	if err != nil {
		return resources.Prepared{}, err
	}
	return resources.Prepared{Store: storedRes, Echo: echoRes}, nil
}

// lease caps end: by HERALD_MAX_LEASE always, and by the token's exp for
// tokens that act for a user or patient (their authority ends with the session).
func (r *Rules) lease(p *auth.Principal, end, now time.Time) time.Time {
	limit := now.Add(r.Policy.MaxLease).UTC().Truncate(time.Millisecond)
	if userBound(p) && !p.ExpiresAt.IsZero() && p.ExpiresAt.Before(limit) {
		limit = p.ExpiresAt.UTC().Truncate(time.Millisecond)
	}
	if end.IsZero() || end.After(limit) {
		return limit
	}
	return end
}

// userBound reports whether the token acts for a user or patient: it has no
// system/ scope.
func userBound(p *auth.Principal) bool {
	for _, s := range p.Scopes {
		if !s.Admin && s.Context == auth.ContextSystem {
			return false
		}
	}
	return true
}

// mayReceive is the authorization a Subscription needs, at creation and
// before every send: the grants (scopes within the client's ceiling) cover
// every type the topic can notify about with these filters (and, for full
// resources, the types it includes), and the content is within the
// client's payload ceiling.
func mayReceive(t *topic.Topic, clauses []auth.FilterClause, content, scopes, patient string, c store.Client) error {
	notice := auth.Notice{Types: t.ResourceTypes(), Filters: clauses}
	if content == fhir.ContentFullResource {
		notice.Types = appendNew(notice.Types, t.IncludedTypes(referenceTargets)...)
	}
	if err := auth.MayReceive(Grants(scopes, c), patient, notice); err != nil {
		return err
	}
	if !auth.ContentWithin(content, c.MaxPayload) {
		return fmt.Errorf("payload content %s exceeds this client's ceiling (%s)", content, c.MaxPayload)
	}
	return nil
}

// checkEndpoint normalises endpoint and finds the allow-list entry it
// matches.
func (r *Rules) checkEndpoint(ctx context.Context, endpoint string) (string, allowlist.Entry, error) {
	entries, err := r.Admin.Endpoints(ctx)
	if err != nil {
		return "", allowlist.Entry{}, err
	}
	return matchEndpoint(compileAllowList(entries), endpoint)
}

func compileAllowList(entries []store.AllowedEndpoint) *allowlist.List {
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

// AfterWrite removes the state of a deleted Subscription.
func (r *Rules) AfterWrite(ctx context.Context, tx store.Tx, _ *auth.Principal, _ *store.Version, cur store.Version) error {
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
		f.Owner = p.ClientID
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

// CheckFilters checks each filter against the topic's canFilterBy and the
// search table, and returns them as clauses for authorization.
func CheckFilters(t *topic.Topic, filters []Filter) ([]auth.FilterClause, error) {
	var out []auth.FilterClause
	for _, f := range filters {
		types := t.ResourceTypes()
		if f.ResourceType != "" {
			if !t.TriggersOn(f.ResourceType) {
				return nil, invalid("Subscription._criteria.extension", "filter %q names %s, but topic %s triggers on %s", clip(f.Raw), f.ResourceType, t.URL, strings.Join(types, ", "))
			}
			types = []string{f.ResourceType}
		}
		for _, fp := range f.Params {
			for _, typ := range types {
				fd, ok := t.FilterFor(typ, fp.Name)
				if !ok {
					return nil, invalid("Subscription._criteria.extension", "filter parameter %q is not offered by topic %s for %s (canFilterBy: %s)", fp.Name, t.URL, typ, offered(t, typ))
				}
				if fp.Modifier != "" && !slices.Contains(fd.Modifiers, fp.Modifier) {
					return nil, invalid("Subscription._criteria.extension", "modifier :%s is not allowed on filter parameter %s by topic %s", fp.Modifier, fp.Name, t.URL)
				}
				name, value := topic.StandardFilter(typ, fp.Name, fp.Value)
				key := name
				if fp.Modifier != "" {
					key += ":" + fp.Modifier
				}
				crit, err := search.ParseCriteria(typ, criteriaTerm(key, value))
				if err != nil {
					return nil, invalid("Subscription._criteria.extension", "filter %q: %s", clip(f.Raw), err)
				}
				if len(fd.Comparators) == 0 && len(fd.Modifiers) == 0 {
					for _, cl := range crit.Clauses() {
						if cmp := cl.Comparators(); len(cmp) > 0 && !(len(cmp) == 1 && cmp[0] == "eq") {
							return nil, invalid("Subscription._criteria.extension", "comparator %s is not allowed on filter parameter %s by topic %s", cmp[0], fp.Name, t.URL)
						}
					}
				}
			}
			res := f.ResourceType
			out = append(out, auth.FilterClause{ResourceType: res, Param: fp.Name, Modifier: fp.Modifier, Value: fp.Value})
		}
	}
	return out, nil
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

func appendNew(dst []string, more ...string) []string {
	for _, s := range more {
		if !slices.Contains(dst, s) {
			dst = append(dst, s)
		}
	}
	return dst
}
