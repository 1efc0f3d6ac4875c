// Package publish turns committed resource writes into Subscription events.
// Its Hook runs inside every write's transaction (a resources.WriteHook):
// it evaluates each active topic against the previous and new versions,
// applies each Subscription's filters, and appends one numbered event per
// matching Subscription, so a write and its events commit or vanish together.
package publish

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/search"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/subscription"
	"github.com/herald-fhir/herald/internal/topic"
)

// Publisher evaluates topics for writes.
type Publisher struct {
	Topics *topic.Library
	// BaseURL is Herald's own base: references under it are local, like
	// relative ones; other absolute references never match a local filter.
	BaseURL string
	// Compiler caches compiled Subscriptions; nil: one of the Publisher's own.
	Compiler *subscription.Compiler
	Now      func() time.Time

	once sync.Once
}

func (p *Publisher) compiler() *subscription.Compiler {
	p.once.Do(func() {
		if p.Compiler == nil {
			p.Compiler = &subscription.Compiler{Topics: p.Topics}
		}
	})
	return p.Compiler
}

// receiving are the statuses whose Subscriptions still get events: events
// keep their numbers while a Subscription waits for its handshake or is in
// error (the backport IG's counting rule); an off Subscription gets none.
var receiving = []string{fhir.StatusRequested, fhir.StatusActive, fhir.StatusError}

// Hook is the resources.WriteHook that appends events for a write.
func (p *Publisher) Hook(ctx context.Context, tx store.Tx, prev *store.Version, cur store.Version) error {
	if cur.Type == "Subscription" || cur.Type == "SubscriptionTopic" {
		return nil // Herald's own configuration is not a clinical event
	}
	watching := p.Topics.Watching(cur.Type)
	if len(watching) == 0 {
		return nil // most writes: no topic watches the type, nothing to decode
	}
	change, focus, err := describe(prev, cur, p.BaseURL)
	if err != nil {
		return err
	}
	keys := patients(cur.Type, change)
	now := p.now()
	memo := map[*search.Criteria]bool{} // each distinct filter evaluated once for this write
	var events []store.Event
	for _, t := range watching {
		fires, err := t.Fires(change)
		if err != nil {
			return fmt.Errorf("topic %s: %w", t.Canonical(), err)
		}
		if !fires {
			continue
		}
		subs, err := p.subscribers(ctx, tx, t, keys)
		if err != nil {
			return err
		}
		var included []store.VersionRef // named once per topic, when a match needs them
		resolved := false
		for _, s := range subs {
			if !s.End.IsZero() && !now.Before(s.End) {
				continue // the lease is over; delivery switches it off
			}
			if compiled, err := p.compiler().Compile(s); err != nil || !compiled.Matches(cur.Type, focus, memo) {
				continue // filters the topic no longer accepts match nothing
			}
			ev := store.Event{
				SubscriptionID: s.ID, Timestamp: cur.LastUpdated, Topic: t.Canonical(),
				FocusType: cur.Type, FocusID: cur.ID, FocusVersion: cur.VersionID, Method: cur.Method,
			}
			if s.Content != fhir.ContentEmpty && !cur.Deleted {
				// The includes as they are when the event is appended (the
				// store resolves the targets, store.Event.Includes), so that
				// $events and a late delivery show what this event saw.
				if !resolved {
					included = subscription.ShapeTargets(t, cur.Type, focus)
					included, resolved = append(make([]store.VersionRef, 0, len(included)), included...), true
				}
				ev.Includes = included
			}
			events = append(events, ev)
		}
	}
	// Appending locks each Subscription's counter until commit; one global
	// order keeps concurrent writes from deadlocking on them.
	slices.SortStableFunc(events, func(a, b store.Event) int { return strings.Compare(a.SubscriptionID, b.SubscriptionID) })
	// They travel with the commit (or the write's next statement): their
	// numbers are not needed here, and the write and its events commit
	// together or not at all.
	return tx.AppendEventsAtCommit(ctx, events)
}

// patients selects, when the written type can have patient-pinned
// Subscriptions, those that are not pinned or pinned to a patient of the
// write (store.SubscriptionState.PatientKey): a write then costs in
// proportion to the Subscriptions it can match, not to all of a topic's.
// The compiled filters still decide; the key only skips Subscriptions whose filters
// cannot pass. Only the focus is filtered, so its patients would do; the
// union with the other version's patients (the patient an update moved the
// resource from or to) is a superset that stays correct should filters ever
// look at both versions, for at most one more key.
func patients(typ string, c topic.Change) store.SubscriptionFilter {
	f := store.SubscriptionFilter{ByPatient: true, PatientKeys: []string{}}
	for _, r := range []*search.Resource{c.Prev, c.Cur} {
		if r == nil {
			continue
		}
		keys, ok := subscription.PatientKeys(typ, r)
		if !ok {
			return store.SubscriptionFilter{} // no pinning on this type: load all
		}
		for _, k := range keys {
			if !slices.Contains(f.PatientKeys, k) {
				f.PatientKeys = append(f.PatientKeys, k)
			}
		}
	}
	return f
}

// subscribers are the receiving Subscriptions of a topic: those naming its
// url|version, and those naming its bare url while it is the version that
// url resolves to; of those, only the ones keys (see patients) select. One
// query for both names.
func (p *Publisher) subscribers(ctx context.Context, tx store.Tx, t *topic.Topic, keys store.SubscriptionFilter) ([]store.SubscriptionState, error) {
	f := keys
	f.Topics, f.Status = []string{t.Canonical()}, receiving
	if current, ok := p.Topics.Lookup(t.URL); t.Version != "" && ok && current == t {
		f.Topics = append(f.Topics, t.URL)
	}
	return tx.Subscriptions(ctx, f)
}

// describe decodes the versions once for every topic and filter. The focus
// of a delete is the last version before it.
func describe(prev *store.Version, cur store.Version, baseURL string) (topic.Change, *search.Resource, error) {
	c := topic.Change{Type: cur.Type}
	existed := prev != nil && !prev.Deleted
	var err error
	if existed {
		// Stored: read within the stored-body budget (a small update of a
		// large resource holds a small share of the request-body budget).
		if c.Prev, err = search.NewStoredResource(prev.Body); err != nil {
			return c, nil, err
		}
		c.Prev = c.Prev.WithBase(baseURL)
	}
	switch {
	case cur.Deleted:
		c.Interaction = topic.Delete
		return c, c.Prev, nil
	case existed:
		c.Interaction = topic.Update
	default:
		c.Interaction = topic.Create
	}
	if c.Cur, err = decoded(cur); err != nil {
		return c, nil, err
	}
	c.Cur = c.Cur.WithBase(baseURL)
	return c, c.Cur, nil
}

// decoded is the version as the matcher reads it: what the writer already
// parsed when it has it, else Body parsed.
func decoded(v store.Version) (*search.Resource, error) {
	if v.Decoded != nil {
		return search.ResourceFromMap(v.Decoded)
	}
	return search.NewResource(v.Body)
}

func (p *Publisher) now() time.Time {
	if p.Now == nil {
		return time.Now()
	}
	return p.Now()
}
