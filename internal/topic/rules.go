package topic

import (
	"context"
	"net/url"
	"slices"
	"strings"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/store"
)

// Rules make /fhir/SubscriptionTopic a topic library: any authenticated
// client may read and search topics, only admins may write them, and what is
// written must be a topic Herald can evaluate.
type Rules struct {
	Library *Library
}

// ScopeExempt: topics are catalogue data, not PHI; access is decided here.
func (r *Rules) ScopeExempt(auth.Interaction) bool { return true }

// Authorize lets every authenticated client read and search, admins write.
func (r *Rules) Authorize(_ context.Context, _ store.View, p *auth.Principal, i auth.Interaction, _ *store.Version) error {
	switch i {
	case auth.Read, auth.Search:
		return nil
	}
	if p == nil || !p.Admin {
		return fhir.Errorf(fhir.KindForbidden, "only admins (scope %s) may change SubscriptionTopics", auth.AdminScope)
	}
	return nil
}

// Check rejects a topic Herald cannot evaluate, to be written under id; a
// valid one is stored as sent.
func (r *Rules) Check(id string, body []byte) error {
	t, err := Parse(body)
	if err != nil {
		return err
	}
	if t.ID != "" && t.ID != id {
		return fhir.Errorf(fhir.KindInvalid, "id %q does not match %q", t.ID, id)
	}
	return nil
}

// AfterWrite unpins the Subscriptions of the topic's URL when the write may
// change the resource types a Subscription on it resolves to: their patient
// keys (store.SubscriptionState.PatientKey) were derived from the types of
// the version they named and would no longer be safe. Unpinned
// Subscriptions are evaluated on every write of the topic, as before
// pinning, until they are written again. Known gap: a Subscription whose
// write commits concurrently with the topic change may keep a key derived
// from the old types until it is written again.
// It also records the change in the admin audit log: topics are admins'
// to write and decide what every subscriber of them is sent.
func (r *Rules) AfterWrite(ctx context.Context, tx store.Tx, p *auth.Principal, prev *store.Version, cur store.Version) error {
	if err := audit(ctx, tx, p, prev, cur); err != nil {
		return err
	}
	var written []*Topic
	for _, v := range []*store.Version{prev, &cur} {
		if v == nil || v.Deleted {
			continue
		}
		if t, err := Parse(v.Body); err == nil {
			written = append(written, t)
		}
	}
	checked := map[string]bool{}
	for _, w := range written {
		if checked[w.URL] {
			continue
		}
		checked[w.URL] = true
		if r.sameTypes(w.URL, written) {
			continue
		}
		if _, err := tx.UnpinSubscriptions(ctx, w.URL); err != nil {
			return err
		}
	}
	return nil
}

// sameTypes reports whether every version of url, in the library and among
// the written ones, triggers on the same resource types.
func (r *Rules) sameTypes(url string, written []*Topic) bool {
	var first []string
	same := true
	for _, t := range append(r.Library.All(), written...) {
		if t.URL != url {
			continue
		}
		types := t.ResourceTypes()
		slices.Sort(types)
		if first == nil {
			first = types
		} else if !slices.Equal(first, types) {
			same = false
		}
	}
	return same
}

// Committed keeps the library in step with what was stored.
func (r *Rules) Committed(v store.Version) {
	if v.Deleted {
		r.Library.Remove(v.ID)
		return
	}
	if t, err := Parse(v.Body); err == nil {
		t.ID = v.ID
		r.Library.Put(t)
	}
}

// Search applies url and status from the library.
func (r *Rules) Search(_ context.Context, _ store.View, _ *auth.Principal, params url.Values) ([]string, url.Values, error) {
	applied := url.Values{}
	urls, statuses := params["url"], params["status"]
	if len(urls) == 0 && len(statuses) == 0 {
		return nil, applied, nil
	}
	ids := []string{}
	for _, t := range r.Library.All() {
		if matchesAll(urls, t.URL) && matchesAll(statuses, t.Status) {
			ids = append(ids, t.ID)
		}
	}
	if len(urls) > 0 {
		applied["url"] = urls
	}
	if len(statuses) > 0 {
		applied["status"] = statuses
	}
	return ids, applied, nil
}

// matchesAll: every repetition of a parameter must match (AND); commas OR.
func matchesAll(values []string, have string) bool {
	for _, v := range values {
		ok := false
		for _, alt := range strings.Split(v, ",") {
			if alt == have {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// audit appends the admin audit entry of a topic write: the stored JSON
// before and after (topics hold no secrets), null for none.
func audit(ctx context.Context, tx store.Tx, p *auth.Principal, prev *store.Version, cur store.Version) error {
	e := store.AuditEntry{Action: store.AuditPutTopic, Target: "SubscriptionTopic/" + cur.ID}
	if prev != nil && !prev.Deleted {
		e.Before = prev.Body
	}
	if cur.Deleted {
		e.Action = store.AuditDeleteTopic
	} else {
		e.After = cur.Body
	}
	if p != nil {
		ctx = store.WithActor(ctx, p.ClientID)
	}
	return tx.AppendAudit(ctx, e)
}
