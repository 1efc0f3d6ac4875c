package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/fhirtest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	base  = "https://fhir.example.org/r4"
	topic = "http://example.org/fhir/SubscriptionTopic/encounter-start"
)

// clock is not in UTC, so the goldens show FormatInstant converting.
var clock = time.Date(2026, 3, 1, 11, 15, 30, 123456789, time.FixedZone("CET", 3600))

// seqIDs mints predictable UUIDs: ...-000000000001, ...-000000000002, ...
func seqIDs() func() string {
	n := 0
	return func() string {
		n++
		return fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
	}
}

// Stored resources as the store keeps them. observationV3 has odd spacing, a
// decimal with a trailing zero and HTML characters: all must survive.
var (
	encounterV1   = []byte(`{"resourceType":"Encounter","id":"e42","meta":{"versionId":"1","lastUpdated":"2026-03-01T10:15:29.000Z"},"status":"planned","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/p1"}}`)
	encounterV2   = []byte(`{"resourceType":"Encounter","id":"e42","meta":{"versionId":"2","lastUpdated":"2026-03-01T10:15:29.500Z"},"status":"in-progress","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/p1"}}`)
	patientV2     = []byte(`{"resourceType":"Patient","id":"p1","meta":{"versionId":"2","lastUpdated":"2026-02-01T08:00:00.000Z"},"active":true,"name":[{"family":"Chalmers","given":["Peter"]}]}`)
	observationV3 = []byte(`{ "resourceType" : "Observation", "id": "o9",
  "meta": {"versionId": "3", "lastUpdated": "2026-03-01T10:15:29.900Z"},
  "status": "final", "code": {"text": "Potassium <serum> & plasma"},
  "subject": {"reference": "Patient/p1"},
  "valueQuantity": {"value": 1.50, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"} }`)
)

func at(sec int) time.Time { return time.Date(2026, 3, 1, 10, 15, sec, 0, time.UTC) }

func sub(content, status string, count int64) Subscription {
	return Subscription{ID: "sub1", Topic: topic, Status: status, Content: content, EventsSinceStart: count}
}

var (
	patient   = Included{Ref: Ref{Type: "Patient", ID: "p1", VersionID: 2}, Resource: patientV2}
	noResp    = Error{System: "http://terminology.hl7.org/CodeSystem/subscription-error", Code: "no-response", Display: "No Response", Text: "endpoint did not answer within 30 s"}
	evCreate  = Event{Number: 7, Timestamp: at(29), Method: Create, Focus: Ref{"Encounter", "e42", 1}, Resource: encounterV1, Additional: []Included{patient}}
	evUpdate  = Event{Number: 8, Timestamp: at(29).Add(500 * time.Millisecond), Method: Update, Focus: Ref{"Encounter", "e42", 2}, Resource: encounterV2, Additional: []Included{patient}}
	evObs     = Event{Number: 9, Timestamp: at(29).Add(900 * time.Millisecond), Method: Create, Focus: Ref{"Observation", "o9", 3}, Resource: observationV3, Additional: []Included{patient}}
	evDeleted = Event{Number: 10, Timestamp: at(30), Method: Delete, Focus: Ref{"Encounter", "e42", 3}}
)

type buildCase struct {
	name    string
	sub     Subscription
	typ     Type
	events  []Event
	content string
}

func buildCases() []buildCase {
	errSub := sub(fhir.ContentIDOnly, fhir.StatusError, 9)
	errSub.Errors = []Error{noResp}
	multi := []Event{
		{Number: 4, Timestamp: at(1), Method: Create, Focus: Ref{"Encounter", "e50", 1}},
		{Number: 5, Timestamp: at(2), Method: Update, Focus: Ref{"Encounter", "e50", 2}, Additional: []Included{{Ref: Ref{"Patient", "p1", 2}}}},
		{Number: 6, Timestamp: at(3), Method: Delete, Focus: Ref{"Encounter", "e50", 3}},
	}
	return []buildCase{
		{"handshake-id-only", sub(fhir.ContentIDOnly, fhir.StatusRequested, 0), Handshake, nil, fhir.ContentIDOnly},
		{"handshake-empty", sub(fhir.ContentEmpty, fhir.StatusRequested, 0), Handshake, nil, fhir.ContentEmpty},
		{"heartbeat-full-resource", sub(fhir.ContentFullResource, fhir.StatusActive, 8), Heartbeat, nil, fhir.ContentFullResource},
		{"heartbeat-error", errSub, Heartbeat, nil, fhir.ContentIDOnly},
		{"event-empty", sub(fhir.ContentEmpty, fhir.StatusActive, 7), EventNotification, []Event{evCreate}, fhir.ContentEmpty},
		{"event-id-only", sub(fhir.ContentIDOnly, fhir.StatusActive, 7), EventNotification, []Event{evCreate}, fhir.ContentIDOnly},
		{"event-id-only-multi", sub(fhir.ContentIDOnly, fhir.StatusActive, 9), EventNotification, multi, fhir.ContentIDOnly},
		{"event-full-resource", sub(fhir.ContentFullResource, fhir.StatusActive, 8), EventNotification, []Event{evUpdate}, fhir.ContentFullResource},
		{"event-full-resource-multi", sub(fhir.ContentFullResource, fhir.StatusActive, 9), EventNotification, []Event{evCreate, evUpdate, evObs}, fhir.ContentFullResource},
		{"event-full-resource-deleted", sub(fhir.ContentFullResource, fhir.StatusActive, 10), EventNotification, []Event{evDeleted}, fhir.ContentFullResource},
		{"query-status-error", func() Subscription {
			s := sub(fhir.ContentFullResource, fhir.StatusError, 9)
			s.Errors = []Error{noResp}
			return s
		}(), QueryStatus, nil, fhir.ContentFullResource},
		{"query-event-id-only", sub(fhir.ContentIDOnly, fhir.StatusActive, 10), QueryEvent, []Event{evCreate, evUpdate}, fhir.ContentIDOnly},
		{"query-event-full-resource", sub(fhir.ContentFullResource, fhir.StatusActive, 10), QueryEvent, []Event{evCreate, evUpdate}, fhir.ContentFullResource},
		{"query-event-empty", sub(fhir.ContentEmpty, fhir.StatusActive, 10), QueryEvent, []Event{evUpdate, evObs}, fhir.ContentEmpty},
		{"query-event-none", sub(fhir.ContentIDOnly, fhir.StatusActive, 10), QueryEvent, nil, fhir.ContentIDOnly},
	}
}

func statusSubs() []Subscription {
	bad := Subscription{ID: "sub2", Topic: topic, Status: fhir.StatusError, Content: fhir.ContentEmpty, EventsSinceStart: 3,
		Errors: []Error{noResp, {Text: "endpoint no longer on the allow-list"}}}
	return []Subscription{sub(fhir.ContentIDOnly, fhir.StatusActive, 12), bad}
}

// golden compares got, indented, with testdata/name.json, or rewrites the file under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	var pretty bytes.Buffer
	require.NoError(t, json.Indent(&pretty, got, "", "  "))
	pretty.WriteByte('\n')
	path := filepath.Join("testdata", name+".json")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, pretty.Bytes(), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./internal/notify -update")
	require.Equal(t, string(want), pretty.String(), "golden %s differs (go test ./internal/notify -update)", path)
}

func TestBuildGolden(t *testing.T) {
	for _, c := range buildCases() {
		t.Run(c.name, func(t *testing.T) {
			got, err := Build(base, c.sub, c.typ, c.events, clock, seqIDs())
			require.NoError(t, err)
			fhirtest.RequireValidR4(t, got)
			checkBackportRules(t, got, c.content)
			golden(t, c.name, got)
		})
	}
}

func TestStatusGolden(t *testing.T) {
	t.Run("status-bundle", func(t *testing.T) {
		got, err := StatusBundle(base+"/", statusSubs(), clock, seqIDs())
		require.NoError(t, err)
		fhirtest.RequireValidR4(t, got)
		checkStatusBundle(t, got)
		golden(t, "status-bundle", got)
	})
	t.Run("status-bundle-none", func(t *testing.T) {
		got, err := StatusBundle(base, nil, clock, seqIDs())
		require.NoError(t, err)
		fhirtest.RequireValidR4(t, got)
		checkStatusBundle(t, got)
		require.JSONEq(t, `{"resourceType":"Bundle","id":"00000000-0000-4000-8000-000000000001","type":"searchset",
			"timestamp":"2026-03-01T10:15:30.123Z","total":0}`, string(got))
	})
	t.Run("status-parameters", func(t *testing.T) {
		got, err := StatusParameters(base, statusSubs()[1], seqIDs())
		require.NoError(t, err)
		fhirtest.RequireValidR4(t, got)
		golden(t, "status-parameters", got)
		// The same Parameters as the searchset carries.
		bundle, err := StatusBundle(base, statusSubs()[1:], clock, func() string { return "00000000-0000-4000-8000-000000000001" })
		require.NoError(t, err)
		var b struct {
			Entry []struct{ Resource json.RawMessage }
		}
		require.NoError(t, json.Unmarshal(bundle, &b))
		require.Equal(t, string(got), string(b.Entry[0].Resource))
	})
}

// TestStoredBytesSurvive: stored resources are embedded, not re-marshalled:
// number text, HTML characters and member order stay; only whitespace goes.
func TestStoredBytesSurvive(t *testing.T) {
	s := sub(fhir.ContentFullResource, fhir.StatusActive, 9)
	got, err := Build(base, s, EventNotification, []Event{evObs}, clock, seqIDs())
	require.NoError(t, err)
	var compact bytes.Buffer
	require.NoError(t, json.Compact(&compact, observationV3))
	require.Contains(t, string(got), `"resource":`+compact.String()+`,"request":{"method":"POST","url":"Observation"}`)
	require.Contains(t, string(got), `"value":1.50,`)
	require.Contains(t, string(got), `Potassium <serum> & plasma`)

	// Characters Go would otherwise escape stay as stored, too.
	odd := []byte(`{"resourceType":"Patient","id":"p1","name":[{"text":"A\u00e9 \u2028 é <i> ` + "\u2028\u2029" + `"}],"x":1e2}`)
	ev := Event{Number: 1, Method: Create, Focus: Ref{"Patient", "p1", 1}, Resource: odd}
	got, err = Build(base, sub(fhir.ContentFullResource, fhir.StatusActive, 1), EventNotification, []Event{ev}, clock, seqIDs())
	require.NoError(t, err)
	require.Contains(t, string(got), string(odd))
}

func TestBuildDedupesIncludedResources(t *testing.T) {
	// Patient p1 v2 is included by all three events: one entry. A focus
	// version also included by a later event keeps only its focus entry.
	again := evObs
	again.Additional = []Included{patient, {Ref: Ref{"Encounter", "e42", 2}, Resource: encounterV2}}
	got, err := Build(base, sub(fhir.ContentFullResource, fhir.StatusActive, 9), EventNotification, []Event{evCreate, evUpdate, again}, clock, seqIDs())
	require.NoError(t, err)
	checkBackportRules(t, got, fhir.ContentFullResource)
	var b struct {
		Entry []struct {
			FullURL string
			Request struct{ Method, URL string }
		}
	}
	require.NoError(t, json.Unmarshal(got, &b))
	var seq []string
	for _, e := range b.Entry[1:] {
		seq = append(seq, e.Request.Method+" "+e.Request.URL)
	}
	require.Equal(t, []string{"POST Encounter", "GET Patient/p1", "PUT Encounter/e42", "POST Observation"}, seq)

	// A Patient listed twice by one event is one additional-context.
	twice := evCreate
	twice.Additional = []Included{patient, patient}
	got, err = Build(base, sub(fhir.ContentIDOnly, fhir.StatusActive, 7), EventNotification, []Event{twice}, clock, seqIDs())
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(string(got), `"name":"additional-context"`))
	require.Equal(t, 1, strings.Count(string(got), `"fullUrl":"`+base+`/Patient/p1"`))
}

func TestBuildResponses(t *testing.T) {
	for _, c := range []struct {
		ev           Event
		method, url  string
		status, etag string
	}{
		{Event{Method: Create, Focus: Ref{"Encounter", "e1", 1}}, "POST", "Encounter", "201", `W/"1"`},
		{Event{Method: Update, Focus: Ref{"Encounter", "e1", 1}}, "PUT", "Encounter/e1", "201", `W/"1"`}, // update-as-create
		{Event{Method: Update, Focus: Ref{"Encounter", "e1", 4}}, "PUT", "Encounter/e1", "200", `W/"4"`},
		{Event{Method: Update, Focus: Ref{"Encounter", "e1", 0}}, "PUT", "Encounter/e1", "200", ""},
		{Event{Method: Delete, Focus: Ref{"Encounter", "e1", 5}}, "DELETE", "Encounter/e1", "204", `W/"5"`},
	} {
		c.ev.Number = 1
		got, err := Build(base, sub(fhir.ContentIDOnly, fhir.StatusActive, 1), EventNotification, []Event{c.ev}, clock, seqIDs())
		require.NoError(t, err)
		var b struct {
			Entry []struct {
				Request  struct{ Method, URL string }
				Response struct{ Status, Etag string }
			}
		}
		require.NoError(t, json.Unmarshal(got, &b))
		require.Len(t, b.Entry, 2)
		require.Equal(t, []string{c.method, c.url, c.status, c.etag},
			[]string{b.Entry[1].Request.Method, b.Entry[1].Request.URL, b.Entry[1].Response.Status, b.Entry[1].Response.Etag})
	}
}

func TestBuildRandomIDs(t *testing.T) {
	got, err := Build(base, sub(fhir.ContentEmpty, fhir.StatusActive, 7), EventNotification, []Event{evCreate}, clock, nil)
	require.NoError(t, err)
	fhirtest.RequireValidR4(t, got)
	checkBackportRules(t, got, fhir.ContentEmpty)
}

func TestBuildRejects(t *testing.T) {
	ok := sub(fhir.ContentFullResource, fhir.StatusActive, 10)
	with := func(f func(*Subscription)) Subscription { s := ok; f(&s); return s }
	ev := func(f func(*Event)) []Event { e := evUpdate; f(&e); return []Event{e} }
	for _, c := range []struct {
		name   string
		base   string
		sub    Subscription
		typ    Type
		events []Event
		now    time.Time
		want   string
	}{
		{name: "relative base", base: "/fhir", want: "base URL"},
		{name: "zero clock", now: time.Time{}, want: "zero timestamp"},
		{name: "no id", sub: with(func(s *Subscription) { s.ID = "" }), want: "subscription id"},
		{name: "bad id", sub: with(func(s *Subscription) { s.ID = "a/b" }), want: "subscription id"},
		{name: "status", sub: with(func(s *Subscription) { s.Status = "entered-in-error" }), want: "subscription status"},
		{name: "content", sub: with(func(s *Subscription) { s.Content = "full" }), want: "payload content"},
		{name: "no topic", sub: with(func(s *Subscription) { s.Topic = "" }), want: "no topic"},
		{name: "negative count", sub: with(func(s *Subscription) { s.EventsSinceStart = -1 }), want: "events since"},
		{name: "empty error", sub: with(func(s *Subscription) { s.Errors = []Error{{System: "x"}} }), want: "without code or text"},
		{name: "type", typ: "notification", events: []Event{}, want: "notification type"},
		{name: "handshake with events", typ: Handshake, want: "handshake notification with 1 events"},
		{name: "heartbeat with events", typ: Heartbeat, want: "heartbeat notification with 1 events"},
		{name: "query-status with events", typ: QueryStatus, want: "query-status notification with 1 events"},
		{name: "no events", events: []Event{}, want: "without events"},
		{name: "event 0", events: ev(func(e *Event) { e.Number = 0 }), want: "event number 0"},
		{name: "descending", events: []Event{evUpdate, evCreate}, want: "without gaps"},
		{name: "gap", events: []Event{evCreate, evObs}, want: "without gaps"},
		{name: "repeat", events: []Event{evUpdate, evUpdate}, want: "without gaps"},
		{name: "beyond count", events: []Event{evDeleted}, sub: with(func(s *Subscription) { s.EventsSinceStart = 9 }), want: "beyond the 9 events"},
		{name: "no focus", events: ev(func(e *Event) { e.Focus = Ref{} }), want: "focus"},
		{name: "focus type", events: ev(func(e *Event) { e.Focus.Type = "encounter" }), want: "focus"},
		{name: "focus id", events: ev(func(e *Event) { e.Focus.ID = "e 42" }), want: "focus"},
		{name: "method", events: ev(func(e *Event) { e.Method = "PATCH" }), want: `method "PATCH"`},
		{name: "deleted with resource", events: ev(func(e *Event) { e.Method = Delete }), want: "deleted focus"},
		{name: "additional ref", events: ev(func(e *Event) { e.Additional = []Included{{Ref: Ref{Type: "Patient"}}} }), want: "additional resource"},
		{name: "wrong resource", events: ev(func(e *Event) { e.Resource = patientV2 }), want: "stored resource Patient/p1 given for Encounter/e42"},
		{name: "wrong id", events: ev(func(e *Event) { e.Resource = bytes.Replace(encounterV2, []byte(`"e42"`), []byte(`"e43"`), 1) }), want: "given for Encounter/e42"},
		{name: "not JSON", events: ev(func(e *Event) { e.Resource = []byte(`{"resourceType":"Encounter",`) }), want: "not a JSON object"},
		{name: "array", events: ev(func(e *Event) { e.Resource = []byte(`[1]`) }), want: "not a JSON object"},
		{name: "invalid after head", events: ev(func(e *Event) { e.Resource = []byte(`{"resourceType":"Encounter","id":"e42",status}`) }), want: "invalid character"},
		{name: "wrong additional", events: ev(func(e *Event) { e.Additional = []Included{{Ref: Ref{"Patient", "p2", 1}, Resource: patientV2}} }), want: "given for Patient/p2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.base == "" {
				c.base = base
			}
			if c.sub.ID == "" && c.sub.Status == "" {
				c.sub = ok
			}
			if c.typ == "" {
				c.typ = EventNotification
			}
			if c.events == nil {
				c.events = []Event{evUpdate}
			}
			if c.now.IsZero() && c.name != "zero clock" {
				c.now = clock
			}
			got, err := Build(c.base, c.sub, c.typ, c.events, c.now, seqIDs())
			require.Nil(t, got)
			require.ErrorIs(t, err, ErrInvalid)
			require.ErrorContains(t, err, c.want)
		})
	}
}

// TestFullResourceNotLoaded: a focus or included resource that could not be
// loaded keeps its entry with request and response, as the IG requires when
// the resource cannot be sent.
func TestFullResourceNotLoaded(t *testing.T) {
	ev := evUpdate
	ev.Resource = nil
	ev.Additional = []Included{{Ref: patient.Ref}}
	got, err := Build(base, sub(fhir.ContentFullResource, fhir.StatusActive, 8), EventNotification, []Event{ev}, clock, seqIDs())
	require.NoError(t, err)
	fhirtest.RequireValidR4(t, got)
	var b struct {
		Entry []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
			Request  struct{ Method, URL string }
			Response struct{ Status string }
		}
	}
	require.NoError(t, json.Unmarshal(got, &b))
	require.Len(t, b.Entry, 3)
	for _, e := range b.Entry[1:] {
		require.Nil(t, e.Resource)
		require.NotEmpty(t, e.Request.Method)
		require.NotEmpty(t, e.Response.Status)
	}
	require.Equal(t, base+"/Patient/p1", b.Entry[2].FullURL)
}

// TestEmptyIgnoresFocus: with empty content nothing about the focus is read,
// so an event loaded without focus or method is fine.
func TestEmptyIgnoresFocus(t *testing.T) {
	got, err := Build(base, sub(fhir.ContentEmpty, fhir.StatusActive, 3), EventNotification,
		[]Event{{Number: 3, Resource: []byte("not even JSON"), Additional: []Included{{Resource: []byte("{")}}}}, clock, seqIDs())
	require.NoError(t, err)
	fhirtest.RequireValidR4(t, got)
	checkBackportRules(t, got, fhir.ContentEmpty)
	require.NotContains(t, string(got), "not even JSON")
}

func TestStatusRejects(t *testing.T) {
	_, err := StatusBundle(base, []Subscription{sub(fhir.ContentIDOnly, fhir.StatusActive, 1), {ID: "x"}}, clock, nil)
	require.ErrorIs(t, err, ErrInvalid)
	_, err = StatusBundle(base, nil, time.Time{}, nil)
	require.ErrorIs(t, err, ErrInvalid)
	_, err = StatusParameters("fhir.example.org", sub(fhir.ContentIDOnly, fhir.StatusActive, 1), nil)
	require.ErrorIs(t, err, ErrInvalid)
	_, err = StatusParameters(base, Subscription{ID: "x", Status: "active"}, nil)
	require.ErrorIs(t, err, ErrInvalid)
}

// TestRulesCatchBreakage makes sure the rule helpers are not vacuous: each
// mutation of a good Bundle must be reported.
func TestRulesCatchBreakage(t *testing.T) {
	build := func(c buildCase) obj {
		got, err := Build(base, c.sub, c.typ, c.events, clock, seqIDs())
		require.NoError(t, err)
		m, err := decode(got)
		require.NoError(t, err)
		return m
	}
	cases := map[string]buildCase{}
	for _, c := range buildCases() {
		cases[c.name] = c
	}
	entries := func(m obj) []any { return m["entry"].([]any) }
	entry := func(m obj, i int) obj { return entries(m)[i].(obj) }
	params := func(m obj) []any { return entry(m, 0)["resource"].(obj)["parameter"].([]any) }
	param := func(m obj, name string) obj {
		for _, p := range params(m) {
			if p.(obj)["name"] == name {
				return p.(obj)
			}
		}
		t.Fatalf("no %s", name)
		return nil
	}
	dropParam := func(m obj, name string) {
		var kept []any
		for _, p := range params(m) {
			if p.(obj)["name"] != name {
				kept = append(kept, p)
			}
		}
		entry(m, 0)["resource"].(obj)["parameter"] = kept
	}
	for _, c := range []struct {
		name, base, content, want string
		mutate                    func(obj)
	}{
		{"type", "event-id-only", "id-only", "not a history Bundle", func(m obj) { m["type"] = "collection" }},
		{"profile", "event-id-only", "id-only", "does not declare", func(m obj) { delete(m, "meta") }},
		{"no request", "event-id-only", "id-only", "entry 1: no request", func(m obj) { delete(entry(m, 1), "request") }},
		{"no response", "event-id-only", "id-only", "entry 0: response.status", func(m obj) { delete(entry(m, 0), "response") }},
		{"status request", "event-id-only", "id-only", "entry 0 request", func(m obj) { entry(m, 0)["request"].(obj)["url"] = base + "/Subscription/sub1" }},
		{"fullUrl", "event-id-only", "id-only", "entry 0 fullUrl", func(m obj) { entry(m, 0)["fullUrl"] = "urn:uuid:other" }},
		{"status first", "event-full-resource", "full-resource", "not Parameters", func(m obj) {
			e := entries(m)
			e[0], e[1] = e[1], e[0]
		}},
		{"no status", "event-id-only", "id-only", "0 status parameters", func(m obj) { dropParam(m, "status") }},
		{"count", "event-id-only-multi", "id-only", "highest event-number 6", func(m obj) { param(m, "events-since-subscription-start")["valueString"] = "9" }},
		{"topic in empty", "event-id-only", "empty", "topic present", func(m obj) {}},
		{"entry in empty", "event-id-only", "empty", "entries beyond the status", func(m obj) { dropParam(m, "topic") }},
		{"resource in id-only", "event-full-resource", "id-only", "resource with id-only", func(m obj) {}},
		{"no resource in full", "event-id-only", "full-resource", "resource present: false", func(m obj) {}},
		{"no topic in full", "event-full-resource", "full-resource", "no topic", func(m obj) { dropParam(m, "topic") }},
		{"heartbeat entries", "heartbeat-full-resource", "full-resource", "beyond the status", func(m obj) {
			m["entry"] = append(entries(m), obj{"fullUrl": base + "/Patient/p1", "request": obj{"method": "GET", "url": "Patient/p1"}, "response": obj{"status": "200"}})
		}},
		{"no focus", "event-id-only", "id-only", "no focus", func(m obj) {
			ne := param(m, "notification-event")
			ne["part"] = ne["part"].([]any)[:2]
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := build(cases[c.base])
			c.mutate(m)
			body, err := json.Marshal(m)
			require.NoError(t, err)
			probs := backportProblems(body, c.content)
			require.NotEmpty(t, probs)
			require.Contains(t, strings.Join(probs, "\n"), c.want)
		})
	}
}

func TestErrInvalidWraps(t *testing.T) {
	_, err := Build(base, Subscription{}, Handshake, nil, clock, nil)
	require.True(t, errors.Is(err, ErrInvalid))
	require.True(t, strings.HasPrefix(err.Error(), "notify: invalid input: "))
}
