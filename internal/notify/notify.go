// Package notify builds the notification Bundles of the Subscriptions R5
// Backport IG for FHIR R4: history Bundles whose first entry is the
// subscription status Parameters (backport-subscription-status-r4), shaped
// by the Subscription's payload content (empty, id-only, full-resource), and
// the searchset Bundle that answers $status.
//
// The package is pure: callers load the Subscription state, the events and
// the stored resource bytes, and notify only arranges them. Stored resources
// are embedded as raw JSON, so their bytes survive (only insignificant
// whitespace is removed); nothing is re-marshalled.
package notify

import (
	"errors"
	"fmt"
	"time"

	"github.com/herald-fhir/herald/internal/fhir"
)

// Type is a notification type (http://hl7.org/fhir/subscription-notification-type).
type Type string

// Notification types.
const (
	Handshake         Type = "handshake"
	Heartbeat         Type = "heartbeat"
	EventNotification Type = "event-notification"
	QueryStatus       Type = "query-status" // $status
	QueryEvent        Type = "query-event"  // $events
)

// Method is the interaction that made a focus version: its notification
// entry mirrors it in request.method.
type Method string

// Interactions that can trigger an event.
const (
	Create Method = "POST"
	Update Method = "PUT"
	Delete Method = "DELETE"
)

// ErrInvalid is wrapped by every error Build, StatusParameters and
// StatusBundle return: the caller's input breaks a rule the notification
// must keep. These are programming or data errors, never client errors.
var ErrInvalid = errors.New("notify: invalid input")

// Subscription is the state of a Subscription as a notification reports it.
type Subscription struct {
	ID      string // logical id of the Subscription
	Topic   string // topic canonical (Subscription.criteria); omitted for empty content
	Status  string // requested, active, error or off, when the notification is generated
	Content string // fhir.ContentEmpty, fhir.ContentIDOnly or fhir.ContentFullResource

	// EventsSinceStart is the number of events generated for the
	// Subscription so far, delivered or not (the last assigned event number).
	EventsSinceStart int64

	// Errors are reported as error parameters (valueCodeableConcept), whatever
	// the notification type.
	Errors []Error
}

// Error is one subscription error, rendered as a CodeableConcept with at most
// one coding. Code or Text is required.
type Error struct {
	System  string // e.g. http://terminology.hl7.org/CodeSystem/subscription-error
	Code    string // e.g. no-response
	Display string
	Text    string
}

// Ref names a resource version on this server.
type Ref struct {
	Type      string
	ID        string
	VersionID int64 // 0: unknown; otherwise reported as response.etag
}

// Event is one numbered event of the Subscription.
type Event struct {
	Number    int64     // 1, 2, ... per Subscription
	Timestamp time.Time // when the event happened; zero omits it
	Method    Method    // the interaction on the focus
	Focus     Ref       // the focus version that fired

	// Resource is the exact stored JSON of Focus at the version that fired.
	// Only full-resource notifications carry it; nil when the focus was
	// deleted or could not be loaded (the entry then keeps only its
	// request and response, as the IG requires).
	Resource []byte

	// Additional are the related resources the topic's notificationShape
	// includes for this event. They become additional-context references
	// (id-only and full-resource) and extra entries; the Resource bytes are
	// used only by full-resource notifications.
	Additional []Included

	// AccessToken, when set, is a notification access token for reading
	// Focus and Additional from Herald (internal/notifytoken), sent as the
	// notification-event's authorization-type (bearer-token) and
	// authorization-value parts, the places the IG's 1.2 ballot gives an
	// authorization hint in R4.
	AccessToken string
}

// Included is a resource included with an event.
type Included struct {
	Ref
	Resource []byte // exact stored JSON; nil when not loaded
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

func (s *Subscription) validate() error {
	if !fhir.ValidID(s.ID) {
		return invalid("subscription id %q", s.ID)
	}
	switch s.Status {
	case fhir.StatusRequested, fhir.StatusActive, fhir.StatusError, fhir.StatusOff:
	default:
		return invalid("subscription status %q", s.Status)
	}
	switch s.Content {
	case fhir.ContentEmpty:
	case fhir.ContentIDOnly, fhir.ContentFullResource:
		if s.Topic == "" {
			return invalid("subscription %s: no topic", s.ID)
		}
	default:
		return invalid("payload content %q", s.Content)
	}
	if s.EventsSinceStart < 0 {
		return invalid("events since subscription start %d", s.EventsSinceStart)
	}
	for _, e := range s.Errors {
		if e.Code == "" && e.Text == "" {
			return invalid("subscription error without code or text")
		}
	}
	return nil
}

func (r Ref) validate(what string) error {
	if !fhir.IsResourceType(r.Type) || !fhir.ValidID(r.ID) {
		return invalid("%s %s/%s is not a resource reference", what, r.Type, r.ID)
	}
	if r.VersionID < 0 {
		return invalid("%s %s/%s: version %d", what, r.Type, r.ID, r.VersionID)
	}
	return nil
}

// validateEvents checks the events against the type and the Subscription:
// strictly consecutive numbers from at least 1 up to at most
// EventsSinceStart, and, when the content shows them, well-formed focus and
// additional references.
func validateEvents(s *Subscription, typ Type, events []Event) error {
	switch typ {
	case Handshake, Heartbeat, QueryStatus:
		if len(events) > 0 {
			return invalid("%s notification with %d events", typ, len(events))
		}
		return nil
	case EventNotification:
		if len(events) == 0 {
			return invalid("event-notification without events")
		}
	case QueryEvent:
	default:
		return invalid("notification type %q", typ)
	}
	for i := range events {
		e := &events[i]
		switch {
		case e.Number < 1:
			return invalid("event number %d", e.Number)
		case i > 0 && e.Number != events[i-1].Number+1:
			return invalid("event %d follows event %d: numbers must ascend without gaps", e.Number, events[i-1].Number)
		case e.Number > s.EventsSinceStart:
			return invalid("event %d is beyond the %d events generated", e.Number, s.EventsSinceStart)
		}
		if s.Content == fhir.ContentEmpty {
			continue // nothing about the focus is shown
		}
		if err := e.Focus.validate("focus"); err != nil {
			return err
		}
		switch e.Method {
		case Create, Update:
		case Delete:
			if e.Resource != nil {
				return invalid("event %d: deleted focus %s/%s with a resource", e.Number, e.Focus.Type, e.Focus.ID)
			}
		default:
			return invalid("event %d: method %q", e.Number, e.Method)
		}
		for _, a := range e.Additional {
			if err := a.Ref.validate("additional resource"); err != nil {
				return err
			}
		}
	}
	return nil
}
