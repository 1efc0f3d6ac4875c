package notify

import (
	"errors"
	"strconv"
	"strings"

	"github.com/herald-fhir/herald/internal/strictjson"
)

// Summary is what a receiver needs from a notification Bundle (or a
// $status / $events answer): its first entry, the subscription status
// Parameters, read back.
type Summary struct {
	BundleType       string // history for notifications, searchset for $status
	Subscription     string // the reference, as written
	SubscriptionID   string // its last path segment
	Topic            string
	Status           string
	Type             Type
	EventsSinceStart int64
	Events           []SummaryEvent
	Errors           []Error // the error parameters, at most one coding each
}

// SummaryEvent is one notification-event.
type SummaryEvent struct {
	Number int64
	Focus  string // the focus reference, as written; empty when none
	// AccessToken is the authorization-value part, when the notification
	// carries a notification access token.
	AccessToken string
}

// Numbers lists the event numbers, in order.
func (s Summary) Numbers() []int64 {
	var out []int64
	for _, e := range s.Events {
		out = append(out, e.Number)
	}
	return out
}

// Summarize reads the status Parameters of a notification Bundle. Herald's
// own tools use it (the load generator, the reliability run) as do the tests'
// receivers: one reader for the shape Build writes.
func Summarize(body []byte) (Summary, error) {
	var b struct {
		Type  string `json:"type"`
		Entry []struct {
			Resource struct {
				ResourceType string `json:"resourceType"`
				Parameter    []struct {
					Name           string     `json:"name"`
					ValueCode      string     `json:"valueCode"`
					ValueString    string     `json:"valueString"`
					ValueCanonical string     `json:"valueCanonical"`
					ValueReference *reference `json:"valueReference"`
					ValueCC        *struct {
						Coding []struct {
							System  string `json:"system"`
							Code    string `json:"code"`
							Display string `json:"display"`
						} `json:"coding"`
						Text string `json:"text"`
					} `json:"valueCodeableConcept"`
					Part []struct {
						Name           string     `json:"name"`
						ValueString    string     `json:"valueString"`
						ValueReference *reference `json:"valueReference"`
					} `json:"part"`
				} `json:"parameter"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := strictjson.Unmarshal(body, &b); err != nil {
		return Summary{}, err
	}
	if len(b.Entry) == 0 || b.Entry[0].Resource.ResourceType != "Parameters" {
		return Summary{}, errors.New("notify: the first entry is not the status Parameters")
	}
	s := Summary{BundleType: b.Type}
	for _, p := range b.Entry[0].Resource.Parameter {
		switch p.Name {
		case "subscription":
			if p.ValueReference != nil {
				s.Subscription = p.ValueReference.Reference
				s.SubscriptionID = s.Subscription[strings.LastIndex(s.Subscription, "/")+1:]
			}
		case "topic":
			s.Topic = p.ValueCanonical
		case "status":
			s.Status = p.ValueCode
		case "type":
			s.Type = Type(p.ValueCode)
		case "events-since-subscription-start":
			s.EventsSinceStart, _ = strconv.ParseInt(p.ValueString, 10, 64)
		case "error":
			if cc := p.ValueCC; cc != nil {
				e := Error{Text: cc.Text}
				if len(cc.Coding) > 0 {
					e.System, e.Code, e.Display = cc.Coding[0].System, cc.Coding[0].Code, cc.Coding[0].Display
				}
				s.Errors = append(s.Errors, e)
			}
		case "notification-event":
			var ev SummaryEvent
			for _, part := range p.Part {
				switch part.Name {
				case "event-number":
					ev.Number, _ = strconv.ParseInt(part.ValueString, 10, 64)
				case "authorization-value":
					ev.AccessToken = part.ValueString
				case "focus":
					if part.ValueReference != nil {
						ev.Focus = part.ValueReference.Reference
					}
				}
			}
			s.Events = append(s.Events, ev)
		}
	}
	return s, nil
}
