package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/herald-fhir/herald/internal/fhir"
)

// checkBackportRules fails t unless body is a notification Bundle that keeps
// the backport IG's R4 rules as Herald applies them for the given payload
// content (see backportProblems).
func checkBackportRules(t testing.TB, body []byte, content string) {
	t.Helper()
	for _, p := range backportProblems(body, content) {
		t.Errorf("backport rule: %s", p)
	}
}

// checkStatusBundle fails t unless body is a $status searchset Bundle of
// query-status Parameters.
func checkStatusBundle(t testing.TB, body []byte) {
	t.Helper()
	for _, p := range statusBundleProblems(body) {
		t.Errorf("$status rule: %s", p)
	}
}

type obj = map[string]any

func decode(body []byte) (obj, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m obj
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

func str(m obj, path ...string) string {
	var v any = m
	for _, k := range path {
		o, ok := v.(obj)
		if !ok {
			return ""
		}
		v = o[k]
	}
	s, _ := v.(string)
	return s
}

func list(m obj, key string) []obj {
	raw, _ := m[key].([]any)
	out := make([]obj, 0, len(raw))
	for _, r := range raw {
		o, _ := r.(obj)
		out = append(out, o)
	}
	return out
}

func profiles(m obj) []string {
	metaObj, _ := m["meta"].(obj)
	raw, _ := metaObj["profile"].([]any)
	var out []string
	for _, r := range raw {
		s, _ := r.(string)
		out = append(out, s)
	}
	return out
}

var (
	statusCodes       = []string{"requested", "active", "error", "off"}
	notificationTypes = []string{"handshake", "heartbeat", "event-notification", "query-status", "query-event"}
	httpStatus        = regexp.MustCompile(`^[1-5][0-9]{2}( .*)?$`)
	absoluteRef       = regexp.MustCompile(`^https?://[^ ]+/([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$`)
)

// event is a notification-event as read back from the Parameters.
type event struct {
	number     int64
	focus      string
	additional []string
}

// status is a status Parameters as read back.
type status struct {
	id, subscription, topic, status, typ string
	hasTopic, hasCount                   bool
	count                                int64
	events                               []event
}

// parametersProblems checks a status Parameters (backport-subscription-status-r4)
// and reads it back.
func parametersProblems(p obj) (status, []string) {
	var st status
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	if str(p, "resourceType") != "Parameters" {
		bad("status resource is %q, not Parameters", str(p, "resourceType"))
		return st, probs
	}
	st.id = str(p, "id")
	if !slices.Contains(profiles(p), fhir.ProfileStatusR4) {
		bad("Parameters does not declare %s", fhir.ProfileStatusR4)
	}
	seen := map[string]int{}
	for _, prm := range list(p, "parameter") {
		name := str(prm, "name")
		seen[name]++
		switch name {
		case "subscription":
			st.subscription = str(prm, "valueReference", "reference")
			if st.subscription == "" {
				bad("subscription without valueReference.reference")
			}
		case "topic":
			st.hasTopic = true
			if st.topic = str(prm, "valueCanonical"); st.topic == "" {
				bad("topic without valueCanonical")
			}
		case "status":
			if st.status = str(prm, "valueCode"); !slices.Contains(statusCodes, st.status) {
				bad("status %q", st.status)
			}
		case "type":
			if st.typ = str(prm, "valueCode"); !slices.Contains(notificationTypes, st.typ) {
				bad("type %q", st.typ)
			}
		case "events-since-subscription-start":
			st.hasCount = true
			n, err := strconv.ParseInt(str(prm, "valueString"), 10, 64)
			if err != nil || n < 0 {
				bad("events-since-subscription-start %q is not a count", str(prm, "valueString"))
			}
			st.count = n
		case "notification-event":
			ev, evProbs := eventProblems(prm)
			probs = append(probs, evProbs...)
			st.events = append(st.events, ev)
		case "error":
			cc, _ := prm["valueCodeableConcept"].(obj)
			if cc == nil || (len(list(cc, "coding")) == 0 && str(cc, "text") == "") {
				bad("error without valueCodeableConcept coding or text")
			}
		default:
			bad("unexpected parameter %q", name)
		}
	}
	for _, name := range []string{"subscription", "status", "type"} {
		if seen[name] != 1 {
			bad("%d %s parameters, want 1", seen[name], name)
		}
	}
	for _, name := range []string{"topic", "events-since-subscription-start"} {
		if seen[name] > 1 {
			bad("%d %s parameters, want at most 1", seen[name], name)
		}
	}
	if !st.hasCount {
		bad("no events-since-subscription-start") // 0..1 in the profile; Herald always reports it
	}
	return st, probs
}

func eventProblems(prm obj) (event, []string) {
	var ev event
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	seen := map[string]int{}
	for _, part := range list(prm, "part") {
		name := str(part, "name")
		seen[name]++
		switch name {
		case "event-number":
			n, err := strconv.ParseInt(str(part, "valueString"), 10, 64)
			if err != nil || n < 1 {
				bad("event-number %q", str(part, "valueString"))
			}
			ev.number = n
		case "timestamp":
			if str(part, "valueInstant") == "" {
				bad("timestamp without valueInstant")
			}
		case "focus":
			ev.focus = str(part, "valueReference", "reference")
		case "additional-context":
			ev.additional = append(ev.additional, str(part, "valueReference", "reference"))
		default:
			bad("unexpected notification-event part %q", name)
		}
	}
	if seen["event-number"] != 1 {
		bad("%d event-number parts, want 1", seen["event-number"])
	}
	for _, name := range []string{"timestamp", "focus"} {
		if seen[name] > 1 {
			bad("%d %s parts, want at most 1", seen[name], name)
		}
	}
	return ev, probs
}

// backportProblems lists how body breaks the R4 notification rules (digest
// §4–5, S10–S15) for the given payload content:
//   - a history Bundle declaring backport-subscription-notification-r4, with
//     a timestamp;
//   - entry 0 is the status Parameters, fullUrl urn:uuid:<its id>, request
//     GET [subscription]/$status, response 200;
//   - every entry has request and response;
//   - handshake, heartbeat and query-status carry no events and no other
//     entries; event-notification carries at least one event;
//   - event numbers ascend without gaps; an event-notification's count is its
//     highest event number, other types' counts are at least that;
//   - empty: no topic, focus, additional-context or other entries;
//   - id-only: a focus per event; no entry carries a resource;
//   - full-resource: a topic and a focus per event; each focus has its own
//     entry, in event order, with the resource unless the request is a
//     DELETE; each additional-context has an entry with its resource.
func backportProblems(body []byte, content string) []string {
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	b, err := decode(body)
	if err != nil {
		return []string{"not JSON: " + err.Error()}
	}
	if str(b, "resourceType") != "Bundle" || str(b, "type") != "history" {
		bad("not a history Bundle: %s %s", str(b, "resourceType"), str(b, "type"))
	}
	if str(b, "timestamp") == "" {
		bad("no Bundle.timestamp")
	}
	if !slices.Contains(profiles(b), fhir.ProfileNotificationR4) {
		bad("Bundle does not declare %s", fhir.ProfileNotificationR4)
	}
	entries := list(b, "entry")
	if len(entries) == 0 {
		bad("no entries")
		return probs
	}
	for i, e := range entries {
		if str(e, "request", "method") == "" || str(e, "request", "url") == "" {
			bad("entry %d: no request method and url (bdl-3)", i)
		}
		if !httpStatus.MatchString(str(e, "response", "status")) {
			bad("entry %d: response.status %q (bdl-4)", i, str(e, "response", "status"))
		}
		if i > 0 {
			if m := absoluteRef.FindStringSubmatch(str(e, "fullUrl")); m == nil {
				bad("entry %d: fullUrl %q is not an absolute resource URL", i, str(e, "fullUrl"))
			} else if r, ok := e["resource"].(obj); ok && (str(r, "resourceType") != m[1] || str(r, "id") != m[2]) {
				bad("entry %d: resource %s/%s under fullUrl %s", i, str(r, "resourceType"), str(r, "id"), str(e, "fullUrl"))
			}
		}
	}

	p, _ := entries[0]["resource"].(obj)
	st, pprobs := parametersProblems(p)
	probs = append(probs, pprobs...)
	if got, want := str(entries[0], "fullUrl"), "urn:uuid:"+st.id; got != want || st.id == "" {
		bad("entry 0 fullUrl %q, want %q", got, want)
	}
	if m, u := str(entries[0], "request", "method"), str(entries[0], "request", "url"); m != "GET" || u != st.subscription+"/$status" || !strings.Contains(u, "/Subscription/") {
		bad("entry 0 request %s %s, want GET %s/$status", m, u, st.subscription)
	}
	if s := str(entries[0], "response", "status"); !strings.HasPrefix(s, "200") {
		bad("entry 0 response.status %q, want 200", s)
	}

	switch st.typ {
	case "handshake", "heartbeat", "query-status":
		if len(st.events) > 0 {
			bad("%s with %d notification-event parameters", st.typ, len(st.events))
		}
		if len(entries) > 1 {
			bad("%s with %d entries beyond the status", st.typ, len(entries)-1)
		}
	case "event-notification":
		if len(st.events) == 0 {
			bad("event-notification without notification-event")
		}
	}
	for i := 1; i < len(st.events); i++ {
		if st.events[i].number != st.events[i-1].number+1 {
			bad("event %d follows event %d", st.events[i].number, st.events[i-1].number)
		}
	}
	if n := len(st.events); n > 0 {
		highest := st.events[n-1].number
		if st.typ == "event-notification" && st.count != highest {
			bad("events-since-subscription-start %d, highest event-number %d", st.count, highest)
		}
		if st.count < highest {
			bad("events-since-subscription-start %d below event-number %d", st.count, highest)
		}
	}

	switch content {
	case fhir.ContentEmpty:
		if st.hasTopic {
			bad("topic present with empty content")
		}
		for _, ev := range st.events {
			if ev.focus != "" || len(ev.additional) > 0 {
				bad("event %d: focus or additional-context with empty content", ev.number)
			}
		}
		if len(entries) > 1 {
			bad("%d entries beyond the status with empty content", len(entries)-1)
		}
	case fhir.ContentIDOnly:
		for _, ev := range st.events {
			if ev.focus == "" {
				bad("event %d: no focus with id-only content", ev.number)
			}
		}
		for i, e := range entries[1:] {
			if _, ok := e["resource"]; ok {
				bad("entry %d: resource with id-only content", i+1)
			}
		}
	case fhir.ContentFullResource:
		if !st.hasTopic {
			bad("no topic with full-resource content")
		}
		next := 1
		for _, ev := range st.events {
			if ev.focus == "" {
				bad("event %d: no focus with full-resource content", ev.number)
				continue
			}
			i := slices.IndexFunc(entries[next:], func(e obj) bool {
				return str(e, "fullUrl") == ev.focus && str(e, "request", "method") != "GET"
			})
			if i < 0 {
				bad("event %d: no entry for focus %s after entry %d", ev.number, ev.focus, next-1)
				continue
			}
			e := entries[next+i]
			_, has := e["resource"]
			if deleted := str(e, "request", "method") == "DELETE"; has == deleted {
				bad("event %d: focus entry %s (%s) resource present: %v", ev.number, ev.focus, str(e, "request", "method"), has)
			}
			next += i + 1
			for _, ref := range ev.additional {
				if !slices.ContainsFunc(entries[1:], func(e obj) bool { return str(e, "fullUrl") == ref && e["resource"] != nil }) {
					bad("event %d: no entry with resource for additional-context %s", ev.number, ref)
				}
			}
		}
	default:
		bad("unknown payload content %q", content)
	}
	return probs
}

// statusBundleProblems lists how body breaks the $status answer's shape: a
// searchset Bundle whose entries are query-status Parameters with fullUrl
// urn:uuid:<id> and search.mode match, without events.
func statusBundleProblems(body []byte) []string {
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	b, err := decode(body)
	if err != nil {
		return []string{"not JSON: " + err.Error()}
	}
	if str(b, "resourceType") != "Bundle" || str(b, "type") != "searchset" {
		bad("not a searchset Bundle: %s %s", str(b, "resourceType"), str(b, "type"))
	}
	entries := list(b, "entry")
	if total, ok := b["total"].(json.Number); ok && total.String() != strconv.Itoa(len(entries)) {
		bad("total %s with %d entries", total, len(entries))
	}
	for i, e := range entries {
		p, _ := e["resource"].(obj)
		st, pprobs := parametersProblems(p)
		for _, pp := range pprobs {
			bad("entry %d: %s", i, pp)
		}
		if got, want := str(e, "fullUrl"), "urn:uuid:"+st.id; got != want || st.id == "" {
			bad("entry %d: fullUrl %q, want %q", i, got, want)
		}
		if str(e, "search", "mode") != "match" {
			bad("entry %d: search.mode %q", i, str(e, "search", "mode"))
		}
		if st.typ != string(QueryStatus) {
			bad("entry %d: type %q", i, st.typ)
		}
		if len(st.events) > 0 {
			bad("entry %d: notification-event in $status", i)
		}
		if !strings.Contains(st.subscription, "/Subscription/") {
			bad("entry %d: subscription %q", i, st.subscription)
		}
	}
	return probs
}
