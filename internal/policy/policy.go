// Package policy decides whether a Subscription's owner may have it now and
// whether one event may reach it. It is plain Go over values compiled once
// per Subscription version (package subscription compiles them): no store,
// no REST, no I/O. The same Decide runs when a Subscription is written,
// before every send and before $status/$events answer; Admits runs for
// every event sent or read.
package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/search"
)

// Owner is who a Subscription belongs to and what it was granted.
type Owner struct {
	Client  string
	Context string        // "system", "patient/<id>" or "user/<id>" (auth.Principal.Context)
	Patient string        // the creating token's patient claim
	Scopes  auth.ScopeSet // the creating token's scopes, as recorded
}

// Client is the client registry's word on the owner now.
type Client struct {
	Suspended  bool
	Ceiling    auth.ScopeSet // nil: no ceiling
	MaxPayload string        // empty, id-only or full-resource
}

// Filter is one filter, compiled for each type it applies to.
type Filter struct {
	Raw          string
	ResourceType string                        // "" when the filter names none
	Criteria     map[string][]*search.Criteria // by resource type: every clause must match
}

// Subscription is one version of a Subscription, compiled once: nothing
// deciding or matching with it parses anything again.
type Subscription struct {
	ID       string
	Owner    Owner
	Topic    string      // canonical, as in criteria
	Notice   auth.Notice // the types the topic can notify about and the filters
	Includes []string    // types full-resource notifications may add (notificationShape)
	Filters  []Filter
	Content  string
	Endpoint string
	Status   string
	End      time.Time
}

// Denied says why the owner may not have the Subscription, or an event,
// now. Reason is recorded on the Subscription (Subscription.error): it names
// the rule, never a secret or PHI.
type Denied struct{ Reason string }

func (e *Denied) Error() string { return "not authorized: " + e.Reason }

// Purpose is what a decision is for.
type Purpose int

const (
	// ForWrite: the Subscription is being created or updated.
	ForWrite Purpose = iota
	// ForSend: a notification is about to be sent; the Subscription must
	// also be live and before its end.
	ForSend
	// ForQuery: $status or $events answers about it.
	ForQuery
)

// Decide is the policy: may the owner, with its recorded scopes within the
// client's ceiling, have s now? The owner is not suspended; the grants
// cover every type the topic can notify about with these filters (for
// full-resource also the included types); the content is within the
// client's payload ceiling; for a send, s is live and before its end. It
// returns the owner as a principal holding its grants now, the reader that
// full resources and events are checked against.
func Decide(s *Subscription, c Client, now time.Time, purpose Purpose) (*auth.Principal, error) {
	if purpose == ForSend {
		if err := live(s, now); err != nil {
			return nil, err
		}
	}
	if c.Suspended {
		return nil, &Denied{"the owning client is suspended"}
	}
	grants := s.Owner.Scopes
	if c.Ceiling != nil {
		grants = grants.Intersect(c.Ceiling)
	}
	notice := s.Notice
	if s.Content == fhir.ContentFullResource {
		notice.Types = appendNew(notice.Types, s.Includes...)
	}
	if err := auth.MayReceive(grants, s.Owner.Patient, notice); err != nil {
		return nil, &Denied{"the owner's grants do not allow it: " + err.Error()}
	}
	if !auth.ContentWithin(s.Content, c.MaxPayload) {
		return nil, &Denied{fmt.Sprintf("payload content %s exceeds the client's ceiling (%s)", s.Content, c.MaxPayload)}
	}
	return &auth.Principal{ClientID: s.Owner.Client, Scopes: grants, Patient: s.Owner.Patient}, nil
}

func live(s *Subscription, now time.Time) error {
	switch s.Status {
	case fhir.StatusRequested, fhir.StatusActive, fhir.StatusError:
	default:
		return &Denied{"the Subscription is " + s.Status}
	}
	if !s.End.IsZero() && !now.Before(s.End) {
		return &Denied{"the Subscription's end has passed"}
	}
	return nil
}

// Event is what Admits needs of one stored event: its topic and the focus
// version it is about (for a delete, the version before it), as decoded.
type Event struct {
	Topic     string
	FocusType string
	Patients  []string         // compartments of the focus version
	Focus     *search.Resource // nil when the focus version is gone
}

// Admits reports whether one event may reach the owner (from Decide) under
// s as it is now: it is of s's topic, the focus passes s's current
// filters, and where the owner's grant on the type is patient/ only, the
// focus is in the owner's patient's compartment. An event queued under
// other filters or wider grants is thus never sent or returned.
func Admits(s *Subscription, owner *auth.Principal, e Event) bool {
	if !sameTopic(s.Topic, e.Topic) || e.Focus == nil {
		return false
	}
	if owner.PatientScoped(auth.Read, e.FocusType) && !auth.InCompartment(e.Patients, owner.Patient) {
		return false
	}
	return s.Matches(e.FocusType, e.Focus, nil)
}

// Matches reports whether a resource of type typ passes every filter (the
// backport IG ANDs them); a filter naming another type does not apply.
// memo, when not nil, keeps each criterion's answer for r: Subscriptions
// share compiled criteria, so a write fanning out to many evaluates each
// distinct filter once.
func (s *Subscription) Matches(typ string, r *search.Resource, memo map[*search.Criteria]bool) bool {
	for _, f := range s.Filters {
		if f.ResourceType != "" && f.ResourceType != typ {
			continue
		}
		criteria, ok := f.Criteria[typ]
		if !ok {
			return false // compiled for the topic's types only: fail closed
		}
		for _, c := range criteria {
			if !matches(c, r, memo) {
				return false
			}
		}
	}
	return true
}

func matches(c *search.Criteria, r *search.Resource, memo map[*search.Criteria]bool) bool {
	if ok, known := memo[c]; known {
		return ok
	}
	ok, err := c.Match(r)
	ok = ok && err == nil
	if memo != nil {
		memo[c] = ok
	}
	return ok
}

// sameTopic: an event carries the canonical it fired under (url|version);
// a Subscription may name the bare url.
func sameTopic(subscribed, fired string) bool {
	return subscribed == fired || !strings.Contains(subscribed, "|") && strings.HasPrefix(fired, subscribed+"|")
}

func appendNew(dst []string, more ...string) []string {
	out := append([]string(nil), dst...)
	for _, s := range more {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
