package subscription

import (
	"context"
	"errors"
	"strings"

	"github.com/herald-fhir/herald/internal/access"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/notify"
	"github.com/herald-fhir/herald/internal/policy"
	"github.com/herald-fhir/herald/internal/search"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/topic"
)

// Audience is who events are loaded for: every event must be
// policy.Admits for Sub and its Owner (the owner's grants now); full
// resources go only where Reader (the owner when sending, the caller of
// $events) may read them, by the rule REST reads apply (package access).
type Audience struct {
	Sub    *policy.Subscription
	Owner  *auth.Principal
	Reader *auth.Principal
}

// LoadEvents turns stored events into notification events for a payload
// content, keeping only those the audience is admitted to now (the others
// are left out: the IG allows gaps in the numbers). With id-only and
// full-resource, the topic's notificationShape includes become additional
// context; with full-resource, each focus version and included resource
// the reader may read carries its stored JSON; the others appear as
// references only. $events and delivery both build on it. baseURL is
// Herald's own: only references local to it are included.
// budget, when > 0, bounds the bytes of resources carried: the events
// stop before the one that would exceed it (never before the first).
func LoadEvents(ctx context.Context, v store.View, topics *topic.Library, baseURL string, stored []store.Event, content string, a Audience, budget int) ([]notify.Event, error) {
	full := content == fhir.ContentFullResource
	mayRead := func(ver store.Version) bool {
		return access.For(a.Reader, auth.Read, ver.Type, baseURL).Permits(ver)
	}
	events := make([]notify.Event, 0, len(stored))
	used := 0
	for _, e := range stored {
		fv, focus, err := loadFocus(ctx, v, e, baseURL)
		if err != nil {
			return nil, err // not a reason to send less: the caller retries
		}
		if !policy.Admits(a.Sub, a.Owner, policy.Event{Topic: e.Topic, FocusType: e.FocusType, Patients: fv.Patients, Focus: focus}) {
			continue
		}
		ev := notify.Event{Number: e.Number, Timestamp: e.Timestamp, Method: notify.Method(e.Method),
			Focus: notify.Ref{Type: e.FocusType, ID: e.FocusID, VersionID: e.FocusVersion}}
		if content != fhir.ContentEmpty && e.Method != store.MethodDelete {
			if full && mayRead(fv) {
				ev.Resource = fv.Body
			}
			if ev.Additional, err = includes(ctx, v, topics, e, focus, full, mayRead); err != nil {
				return nil, err
			}
		}
		if used += carried(ev); budget > 0 && used > budget && len(events) > 0 {
			break // the caller asks again from the last event it got
		}
		events = append(events, ev)
	}
	return events, nil
}

// loadFocus reads and decodes the version an event is about: for a delete,
// the version before it. A version that is gone or does not decode gives a
// nil resource (no event is admitted without its focus).
func loadFocus(ctx context.Context, v store.View, e store.Event, baseURL string) (store.Version, *search.Resource, error) {
	fv, err := focusVersion(ctx, v, e)
	if errors.Is(err, store.ErrNotFound) || err == nil && fv.Deleted {
		return store.Version{}, nil, nil
	}
	if err != nil {
		return store.Version{}, nil, err
	}
	r, err := search.NewStoredResource(fv.Body)
	if err != nil {
		return fv, nil, nil
	}
	return fv, r.WithBase(baseURL), nil
}

// focusVersion is the version an event shows: read with the event, or now.
func focusVersion(ctx context.Context, v store.View, e store.Event) (store.Version, error) {
	if e.Focus != nil {
		return *e.Focus, nil
	}
	n := e.FocusVersion
	if e.Method == store.MethodDelete {
		n--
	}
	return v.Version(ctx, e.FocusType, e.FocusID, n)
}

// includes are the topic's notificationShape includes of one event, as
// additional context: the versions recorded with the event (those the
// event saw), or for an event written before they were recorded, the
// current ones. With full, each included resource the recipient may read
// carries its stored JSON.
func includes(ctx context.Context, v store.View, topics *topic.Library, e store.Event, r *search.Resource, full bool, mayRead func(store.Version) bool) ([]notify.Included, error) {
	refs := e.Includes
	if refs == nil {
		if topics == nil {
			return nil, nil
		}
		t, ok := topics.Lookup(e.Topic)
		if !ok {
			return nil, nil
		}
		var err error
		if refs, err = ShapeIncludes(ctx, v, t, e.FocusType, r); err != nil {
			return nil, err
		}
	}
	out := make([]notify.Included, 0, len(refs))
	for _, ref := range refs {
		in := notify.Included{Ref: notify.Ref{Type: ref.Type, ID: ref.ID, VersionID: ref.Version}}
		if full {
			ver, err := v.Version(ctx, ref.Type, ref.ID, ref.Version)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
			if err == nil && !ver.Deleted && mayRead(ver) {
				in.Resource = ver.Body
			}
		}
		out = append(out, in)
	}
	return out, nil
}

// ShapeIncludes resolves a topic's notificationShape includes for a focus
// ("Encounter:patient" → the Patient the focus references) to the versions
// current in v; resources that do not exist or are deleted are left out.
// LoadEvents resolves them now only for events written before they were
// recorded with each event (see ShapeTargets).
func ShapeIncludes(ctx context.Context, v store.Reader, t *topic.Topic, focusType string, r *search.Resource) ([]store.VersionRef, error) {
	var out []store.VersionRef
	for _, ref := range ShapeTargets(t, focusType, r) {
		cur, err := v.Current(ctx, ref.Type, ref.ID)
		if errors.Is(err, store.ErrNotFound) || err == nil && cur.Deleted {
			continue // nothing to include
		}
		if err != nil {
			return nil, err
		}
		out = append(out, store.VersionRef{Type: ref.Type, ID: ref.ID, Version: cur.VersionID})
	}
	return out, nil
}

// ShapeTargets are the resources a topic's notificationShape includes
// name for a focus, each once, in the shape's order, with Version 0: the
// publisher records them with each event and the store resolves them to
// the versions current when it appends the event, in the write's
// transaction (store.Event.Includes), without a read of its own. r reads
// references with Herald's base: another server's reference is never
// resolved to a local resource.
func ShapeTargets(t *topic.Topic, focusType string, r *search.Resource) []store.VersionRef {
	if r == nil {
		return nil
	}
	var out []store.VersionRef
	seen := map[string]bool{}
	for _, shape := range t.Shapes {
		if shape.ResourceType != focusType {
			continue
		}
		for _, inc := range shape.Include {
			spec, _, _ := strings.Cut(inc, "&") // iterate is not followed
			parts := strings.Split(spec, ":")
			if len(parts) < 2 || parts[0] != focusType {
				continue
			}
			for _, ref := range r.References(parts[1]) {
				typ, id, ok := strings.Cut(ref, "/")
				if !ok || seen[ref] || len(parts) == 3 && parts[2] != typ {
					continue
				}
				seen[ref] = true
				out = append(out, store.VersionRef{Type: typ, ID: id})
			}
		}
	}
	return out
}

// carried is the bytes of resources an event carries.
func carried(ev notify.Event) int {
	n := len(ev.Resource)
	for _, in := range ev.Additional {
		n += len(in.Resource)
	}
	return n
}
