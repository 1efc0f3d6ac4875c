package subscription

import (
	"context"
	"errors"
	"strings"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/notify"
	"github.com/herald-fhir/herald/internal/search"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/topic"
)

// LoadEvents turns stored events into notification events for a payload
// content: with id-only and full-resource, the topic's notificationShape
// includes become additional context; with full-resource, each focus
// version and included resource the recipient may read (mayRead) carries
// its stored JSON; the others appear as references only. $events and delivery both build on it.
// baseURL is Herald's own: only references local to it are included.
func LoadEvents(ctx context.Context, v store.View, topics *topic.Library, baseURL string, stored []store.Event, content string, mayRead func(store.Version) bool) ([]notify.Event, error) {
	full := content == fhir.ContentFullResource
	events := make([]notify.Event, 0, len(stored))
	for _, e := range stored {
		ev := notify.Event{Number: e.Number, Timestamp: e.Timestamp, Method: notify.Method(e.Method),
			Focus: notify.Ref{Type: e.FocusType, ID: e.FocusID, VersionID: e.FocusVersion}}
		if content != fhir.ContentEmpty && e.Method != store.MethodDelete {
			fv, err := v.Version(ctx, e.FocusType, e.FocusID, e.FocusVersion)
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				// Not a reason to send less: the caller retries.
				return nil, err
			case !fv.Deleted:
				if full && mayRead(fv) {
					ev.Resource = fv.Body
				}
				if ev.Additional, err = includes(ctx, v, topics, baseURL, e, fv.Body, full, mayRead); err != nil {
					return nil, err
				}
			}
		}
		events = append(events, ev)
	}
	return events, nil
}

// includes resolves the topic's notificationShape includes for one event
// ("Encounter:patient" → the Patient the focus references), as additional
// context. With full, each included resource the recipient may read
// carries its current stored JSON. Another server's reference is never
// resolved to a local resource.
func includes(ctx context.Context, v store.View, topics *topic.Library, baseURL string, e store.Event, focus []byte, full bool, mayRead func(store.Version) bool) ([]notify.Included, error) {
	if topics == nil {
		return nil, nil
	}
	t, ok := topics.Lookup(e.Topic)
	if !ok {
		return nil, nil
	}
	r, err := search.NewResource(focus)
	if err != nil {
		return nil, nil
	}
	r = r.WithBase(baseURL)
	var out []notify.Included
	seen := map[string]bool{}
	for _, shape := range t.Shapes {
		if shape.ResourceType != e.FocusType {
			continue
		}
		for _, inc := range shape.Include {
			spec, _, _ := strings.Cut(inc, "&") // iterate is not followed
			parts := strings.Split(spec, ":")
			if len(parts) < 2 || parts[0] != e.FocusType {
				continue
			}
			for _, ref := range r.References(parts[1]) {
				typ, id, ok := strings.Cut(ref, "/")
				if !ok || seen[ref] || len(parts) == 3 && parts[2] != typ {
					continue
				}
				seen[ref] = true
				cur, err := v.Current(ctx, typ, id)
				if errors.Is(err, store.ErrNotFound) || err == nil && cur.Deleted {
					continue // nothing to include
				}
				if err != nil {
					return nil, err
				}
				in := notify.Included{Ref: notify.Ref{Type: typ, ID: id, VersionID: cur.VersionID}}
				if full && mayRead(cur) {
					in.Resource = cur.Body
				}
				out = append(out, in)
			}
		}
	}
	return out, nil
}
