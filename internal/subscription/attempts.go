package subscription

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strconv"

	"github.com/google/uuid"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/webhook"
)

// $attempts shows a Subscription's owner its delivery attempt log as a
// searchset Bundle of AuditEvents, newest first. AuditEvent is R4's record
// of a transmission ("Export" of data out of the system), so FHIR tooling
// reads and validates it as is, and a Bundle pages with a next link; a
// Parameters resource would need a private shape for the same fields.

// Attempts per $attempts answer.
const (
	DefaultAttemptsPerQuery = 50
	MaxAttemptsPerQuery     = 100
)

// Codes of the AuditEvents.
const (
	auditTypeSystem     = "http://dicom.nema.org/resources/ontology/DCM"
	notificationSystem  = "http://hl7.org/fhir/subscription-notification-type"
	sourceTypeSystem    = "http://terminology.hl7.org/CodeSystem/security-source-type"
	entityTypeSystem    = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	auditOutcomeSuccess = "0"
	auditOutcomeMinor   = "4" // the send failed; delivery retries
	auditOutcomeSerious = "8" // revoked: the Subscription was switched off
)

// Attempts answers $attempts: the Subscription's attempts, newest first, at
// most count (default DefaultAttemptsPerQuery), before the attempt numbered
// before (paging; "" from the newest), only with outcome when it is set
// (success or failure). Owner only, with the rules of $events.
func (o *Operations) Attempts(ctx context.Context, p *auth.Principal, id, count, before, outcome string) ([]byte, error) {
	q, err := o.state(ctx, p, id, true, true)
	if err != nil {
		return nil, err
	}
	n, err := bounded("_count", count, DefaultAttemptsPerQuery, MaxAttemptsPerQuery)
	if err != nil {
		return nil, err
	}
	beforeSeq, err := eventNumber("before", before, 0)
	if err != nil {
		return nil, err
	}
	if outcome != "" && outcome != store.AttemptSuccess && outcome != store.AttemptFailure {
		return nil, fhir.Errorf(fhir.KindInvalid, "outcome must be success or failure")
	}
	as, err := o.Store.Attempts(ctx, store.AttemptQuery{SubscriptionID: q.state.ID, Outcome: outcome, BeforeSeq: beforeSeq, Limit: n + 1})
	if err != nil {
		return nil, err
	}
	self := url.Values{"_count": {strconv.Itoa(n)}}
	if outcome != "" {
		self.Set("outcome", outcome)
	}
	link := o.BaseURL + "/Subscription/" + q.state.ID + "/$attempts?"
	b := fhir.NewBundle("searchset", o.now())
	b.ID = uuid.NewString()
	if beforeSeq > 0 {
		self.Set("before", before)
	}
	b.Link = append(b.Link, fhir.BundleLink{Relation: "self", URL: link + self.Encode()})
	if len(as) > n {
		as = as[:n]
		self.Set("before", strconv.FormatInt(as[n-1].Seq, 10))
		b.Link = append(b.Link, fhir.BundleLink{Relation: "next", URL: link + self.Encode()})
	}
	for _, a := range as {
		eid := uuid.NewString()
		body, err := json.Marshal(auditEvent(eid, q.state.ID, a))
		if err != nil {
			return nil, err
		}
		b.Entry = append(b.Entry, fhir.BundleEntry{FullURL: "urn:uuid:" + eid, Resource: body, Search: &fhir.EntrySearch{Mode: "match"}})
	}
	return b.JSON(), nil
}

// bounded reads an optional integer parameter from 1 to max.
func bounded(name, v string, def, max int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, fhir.Errorf(fhir.KindInvalid, "%s must be an integer from 1 to %d", name, max)
	}
	return n, nil
}

type coding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

type reference struct {
	Reference string `json:"reference,omitempty"`
	Display   string `json:"display,omitempty"`
}

type auditDetail struct {
	Type              string `json:"type"`
	ValueString       string `json:"valueString,omitempty"`
	ValueBase64Binary string `json:"valueBase64Binary,omitempty"`
}

type auditAgent struct {
	Who       reference `json:"who"`
	Requestor bool      `json:"requestor"`
}

type auditSource struct {
	Site     string    `json:"site,omitempty"`
	Observer reference `json:"observer"`
	Type     []coding  `json:"type"`
}

type auditEntity struct {
	What   reference     `json:"what"`
	Type   coding        `json:"type"`
	Detail []auditDetail `json:"detail,omitempty"`
}

type period struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type auditEventJSON struct {
	ResourceType string        `json:"resourceType"`
	ID           string        `json:"id"`
	Type         coding        `json:"type"`
	Subtype      []coding      `json:"subtype"`
	Action       string        `json:"action"`
	Period       period        `json:"period"`
	Recorded     string        `json:"recorded"`
	Outcome      string        `json:"outcome"`
	OutcomeDesc  string        `json:"outcomeDesc,omitempty"`
	Agent        []auditAgent  `json:"agent"`
	Source       auditSource   `json:"source"`
	Entity       []auditEntity `json:"entity"`
}

// auditEvent renders one attempt. Every field of the log is there: the
// kind (subtype), the time and latency (period), the outcome and class
// (outcome, outcomeDesc), the instance (source.site), and the events, HTTP
// status and response (entity details; the body prefix as base64).
func auditEvent(id, subID string, a store.Attempt) auditEventJSON {
	var e auditEventJSON
	e.ResourceType, e.ID, e.Action = "AuditEvent", id, "E"
	e.Type = coding{System: auditTypeSystem, Code: "110106", Display: "Export"}
	e.Subtype = []coding{{System: notificationSystem, Code: a.Kind}}
	e.Period = period{Start: fhir.FormatInstant(a.At), End: fhir.FormatInstant(a.At.Add(a.Latency))}
	e.Recorded = fhir.FormatInstant(a.At.Add(a.Latency))
	switch {
	case a.Outcome == store.AttemptSuccess:
		e.Outcome = auditOutcomeSuccess
	case a.Class == string(webhook.ClassRevoked):
		e.Outcome, e.OutcomeDesc = auditOutcomeSerious, "revoked: the owner may no longer have this Subscription; nothing was sent"
	default:
		e.Outcome, e.OutcomeDesc = auditOutcomeMinor, a.Class
	}
	if a.StatusCode != 0 && a.Outcome != store.AttemptSuccess {
		e.OutcomeDesc += " (HTTP " + strconv.Itoa(a.StatusCode) + ")"
	}
	e.Agent = []auditAgent{{Who: reference{Display: "Herald"}, Requestor: true}}
	e.Source = auditSource{Site: a.Instance, Observer: reference{Display: "Herald"},
		Type: []coding{{System: sourceTypeSystem, Code: "4", Display: "Application Server"}}}
	details := []auditDetail{{Type: "channel", ValueString: a.Channel}}
	if a.LastEvent > 0 {
		details = append(details,
			auditDetail{Type: "first-event", ValueString: strconv.FormatInt(a.FirstEvent, 10)},
			auditDetail{Type: "last-event", ValueString: strconv.FormatInt(a.LastEvent, 10)})
	}
	if a.StatusCode != 0 {
		details = append(details, auditDetail{Type: "http-status", ValueString: strconv.Itoa(a.StatusCode)})
	}
	details = append(details, auditDetail{Type: "latency-ms", ValueString: strconv.FormatFloat(float64(a.Latency.Microseconds())/1000, 'f', -1, 64)})
	if a.ResponseBytes > 0 {
		details = append(details, auditDetail{Type: "response-bytes", ValueString: strconv.FormatInt(a.ResponseBytes, 10)})
	}
	if a.ResponseBody != "" {
		details = append(details, auditDetail{Type: "response-body", ValueBase64Binary: base64.StdEncoding.EncodeToString([]byte(a.ResponseBody))})
	}
	e.Entity = []auditEntity{{What: reference{Reference: "Subscription/" + subID},
		Type: coding{System: entityTypeSystem, Code: "2", Display: "System Object"}, Detail: details}}
	return e
}
