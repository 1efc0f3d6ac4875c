package subscription

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/fhir"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// example is a Subscription as a new user writes it, following the IG.
const example = `{
 "resourceType": "Subscription",
 "meta": {"profile": ["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"]},
 "status": "requested",
 "reason": "Alert care app about encounters for patient p1",
 "end": "2026-12-31T23:59:59Z",
 "criteria": "http://example.org/fhir/SubscriptionTopic/encounter-start",
 "_criteria": {"extension": [{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria",
  "valueString": "Encounter?patient=Patient/p1"}]},
 "channel": {
  "extension": [
   {"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period", "valueUnsignedInt": 3600},
   {"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-timeout", "valueUnsignedInt": 30},
   {"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-max-count", "valuePositiveInt": 10},
   {"url": "https://herald.dev/fhir/StructureDefinition/signing-secret", "valueString": "0123456789abcdef0123456789abcdef-secret"}],
  "type": "rest-hook",
  "endpoint": "https://app.example.net/fhir-hooks/7c1e",
  "payload": "application/fhir+json",
  "_payload": {"extension": [{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content",
   "valueCode": "id-only"}]},
  "header": ["Authorization: Bearer s3cr3t-per-subscription", "X-Trace: abc"]
 }
}`

func TestParseExample(t *testing.T) {
	t.Parallel()
	s, err := Parse([]byte(example), now)
	require.NoError(t, err)
	require.Equal(t, "http://example.org/fhir/SubscriptionTopic/encounter-start", s.Topic)
	require.Equal(t, []Filter{{Raw: "Encounter?patient=Patient/p1", ResourceType: "Encounter", Params: []FilterParam{{Name: "patient", Value: "Patient/p1"}}}}, s.Filters)
	require.Equal(t, "https://app.example.net/fhir-hooks/7c1e", s.Endpoint)
	require.Equal(t, "id-only", s.Content)
	require.Equal(t, time.Hour, s.HeartbeatPeriod)
	require.Equal(t, 30*time.Second, s.Timeout)
	require.Equal(t, 10, s.MaxCount)
	require.Equal(t, "0123456789abcdef0123456789abcdef-secret", s.SigningSecret)
	require.Equal(t, []Header{{"Authorization", "Bearer s3cr3t-per-subscription"}, {"X-Trace", "abc"}}, s.Headers)
	require.Equal(t, time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), s.End)
}

// TestParseKeepsThePayloadAsWritten: the rest-hook Content-Type SHALL equal
// channel.payload, so the parse keeps its exact text, parameters included,
// and accepts plain application/json beside application/fhir+json.
func TestParseKeepsThePayloadAsWritten(t *testing.T) {
	t.Parallel()
	for _, payload := range []string{"application/fhir+json", "application/fhir+json;fhirVersion=4.0", "application/fhir+json; fhirVersion=4.0.1", "application/json"} {
		body := strings.Replace(example, `"payload": "application/fhir+json"`, `"payload": "`+payload+`"`, 1)
		s, err := Parse([]byte(body), now)
		require.NoError(t, err, payload)
		require.Equal(t, payload, s.Payload)
	}
}

func TestParseFilterForms(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want Filter
	}{
		{"Encounter?patient=Patient/1", Filter{ResourceType: "Encounter", Params: []FilterParam{{Name: "patient", Value: "Patient/1"}}}},
		{"patient=Patient/1", Filter{Params: []FilterParam{{Name: "patient", Value: "Patient/1"}}}},
		{"Encounter.patient=Patient/1", Filter{ResourceType: "Encounter", Params: []FilterParam{{Name: "patient", Value: "Patient/1"}}}},
		{"Observation?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory&status:not=cancelled",
			Filter{ResourceType: "Observation", Params: []FilterParam{
				{Name: "category", Value: "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"},
				{Name: "status", Modifier: "not", Value: "cancelled"}}}},
		{"Encounter?date=ge2026-01-01", Filter{ResourceType: "Encounter", Params: []FilterParam{{Name: "date", Value: "ge2026-01-01"}}}},
		{"code=a%2Cb", Filter{Params: []FilterParam{{Name: "code", Value: "a,b"}}}},
	}
	for _, c := range cases {
		got, err := ParseFilter(c.in)
		require.NoError(t, err, c.in)
		c.want.Raw = c.in
		require.Equal(t, c.want, got, c.in)
	}
	for _, bad := range []string{"", "Encounter?", "Encountr?patient=1", "patient", "=x", "patient=", "a b=c", "Encounter?patient=%zz"} {
		_, err := ParseFilter(bad)
		require.Error(t, err, bad)
	}
}

// TestParseWebsocket: a websocket Subscription has no endpoint, no signing
// secret and no headers; the rest is read as for rest-hook.
func TestParseWebsocket(t *testing.T) {
	t.Parallel()
	ws := strings.Replace(example, `"type": "rest-hook",
  "endpoint": "https://app.example.net/fhir-hooks/7c1e",`, `"type": "websocket",`, 1)
	ws = strings.Replace(ws, `,
   {"url": "https://herald.dev/fhir/StructureDefinition/signing-secret", "valueString": "0123456789abcdef0123456789abcdef-secret"}`, ``, 1)
	_, err := Parse([]byte(ws), now)
	require.Error(t, err, "headers are refused on websocket")
	require.Contains(t, fhir.AsError(err).Message, "channel.header")

	noHeaders := strings.Replace(ws, `,
  "header": ["Authorization: Bearer s3cr3t-per-subscription", "X-Trace: abc"]`, ``, 1)
	s, err := Parse([]byte(noHeaders), now)
	require.NoError(t, err)
	require.Equal(t, fhir.ChannelWebsocket, s.Channel)
	require.Empty(t, s.Endpoint)
	require.Equal(t, fhir.ContentIDOnly, s.Content)
	require.Equal(t, time.Hour, s.HeartbeatPeriod)
}

// TestParseRejects: every rule has a case that asserts the status and that
// the OperationOutcome names what to fix.
func TestParseRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, from, to string
		status         int
		mention        string
	}{
		{"look-alike filter extension", "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria", "http://hl7.org/fhir/5.0/StructureDefinition/backport-filter-criteria", 422, "_criteria"},
		{"filter as valueCode", `"valueString": "Encounter?patient=Patient/p1"`, `"valueCode": "Encounter?patient=Patient/p1"`, 422, "valueString"},
		{"malformed filter", `"valueString": "Encounter?patient=Patient/p1"`, `"valueString": "Encounter?patient"`, 422, "param=value"},
		{"unknown content code", `"valueCode": "id-only"`, `"valueCode": "everything"`, 422, "empty, id-only or full-resource"},
		{"unknown payload extension", "backport-payload-content", "backport-payload-contents", 422, "_payload"},
		{"XML payload", `"payload": "application/fhir+json"`, `"payload": "application/fhir+xml"`, 422, "JSON only"},
		{"unknown MIME", `"payload": "application/fhir+json"`, `"payload": "text/plain"`, 422, "payload"},
		{"R4B payload version", `"payload": "application/fhir+json"`, `"payload": "application/fhir+json; fhirVersion=4.3"`, 422, "fhirVersion"},
		{"no payload", `"payload": "application/fhir+json",`, ``, 422, "payload"},
		{"websocket with an endpoint", `"type": "rest-hook"`, `"type": "websocket"`, 422, "websocket-url"},
		{"unknown channel type", `"type": "rest-hook"`, `"type": "email"`, 422, "rest-hook or websocket"},
		{"custom channel type", `"type": "rest-hook",`, `"type": "rest-hook", "_type": {"extension": [{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-channel-type", "valueCoding": {"code": "zulip"}}]},`, 422, "custom channel"},
		{"no endpoint", `"endpoint": "https://app.example.net/fhir-hooks/7c1e",`, ``, 422, "endpoint"},
		{"no criteria", `"criteria": "http://example.org/fhir/SubscriptionTopic/encounter-start",`, ``, 422, "criteria"},
		{"R4 query as criteria", `"criteria": "http://example.org/fhir/SubscriptionTopic/encounter-start"`, `"criteria": "Encounter?patient=Patient/p1"`, 422, "canonical"},
		{"no reason", `"reason": "Alert care app about encounters for patient p1",`, ``, 422, "reason"},
		{"end in the past", `"end": "2026-12-31T23:59:59Z"`, `"end": "2020-01-01T00:00:00Z"`, 422, "future"},
		{"end without zone", `"end": "2026-12-31T23:59:59Z"`, `"end": "2026-12-31"`, 422, "instant"},
		{"heartbeat too short", `"valueUnsignedInt": 3600`, `"valueUnsignedInt": 1`, 422, "between"},
		{"heartbeat wrong type", `"valueUnsignedInt": 3600`, `"valueString": "3600"`, 422, "valueUnsignedInt"},
		{"timeout too long", `"valueUnsignedInt": 30`, `"valueUnsignedInt": 600`, 422, "between"},
		{"max-count zero", `"valuePositiveInt": 10`, `"valuePositiveInt": 0`, 422, "max-count"},
		{"short signing secret", `"0123456789abcdef0123456789abcdef-secret"`, `"short"`, 422, "at least 32"},
		{"unknown channel extension", "backport-timeout", "backport-timeouts", 422, "channel.extension"},
		{"header injection", `"X-Trace: abc"`, `"X-Trace: abc\r\nX-Evil: 1"`, 422, "CR, LF"},
		{"forbidden header", `"X-Trace: abc"`, `"Host: evil.example"`, 422, "Host"},
		{"signature header", `"X-Trace: abc"`, `"webhook-signature: v1,x"`, 422, "Webhook-Signature"},
		{"header without colon", `"X-Trace: abc"`, `"X-Trace abc"`, 422, "Name: value"},
		{"bad header name", `"X-Trace: abc"`, `"X Trace: abc"`, 422, "header name"},
		{"bad status", `"status": "requested"`, `"status": "on"`, 422, "status"},
		{"modifier extension", `"reason":`, `"modifierExtension": [{"url": "http://x", "valueBoolean": true}], "reason":`, 422, "modifier"},
		{"channel wrong type", `"channel": {`, `"channel": "rest-hook", "x": {`, 400, "channel"},
		{"header not a string", `"X-Trace: abc"`, `{"X-Trace": "abc"}`, 400, "header"},
		{"duplicate channel member", `"type": "rest-hook",`, `"type": "rest-hook", "type": "rest-hook",`, 400, "duplicate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			body := strings.Replace(example, c.from, c.to, 1)
			require.NotEqual(t, example, body, "the case must change the example")
			_, err := Parse([]byte(body), now)
			require.Error(t, err)
			fe := fhir.AsError(err)
			require.Equal(t, c.status, fe.Status(), fe.Message)
			require.Contains(t, strings.ToLower(fe.Message), strings.ToLower(c.mention))
			require.NotContains(t, fe.Message, "s3cr3t", "errors never echo header values")
			require.NotContains(t, fe.Message, "abcdef-secret")
		})
	}
}

func TestRewriteRedactsSecretsAndKeepsTheRest(t *testing.T) {
	t.Parallel()
	stored, err := Rewrite([]byte(example), "requested", "")
	require.NoError(t, err)
	require.True(t, json.Valid(stored))
	out := string(stored)
	require.NotContains(t, out, "s3cr3t")
	require.NotContains(t, out, "abcdef-secret")
	require.NotContains(t, out, fhir.ExtSigningSecret)
	require.Contains(t, out, `"header":["Authorization: [redacted]","X-Trace: [redacted]"]`)
	require.Contains(t, out, `"valuePositiveInt": 10}`, "other extensions keep their exact bytes")
	require.Contains(t, out, `"_criteria":{"extension": [{"url"`)

	echo, err := Echo([]byte(example), "requested", "2026-12-01T00:00:00Z")
	require.NoError(t, err)
	require.Contains(t, string(echo), "Bearer s3cr3t-per-subscription", "the create response echoes headers as sent")
	require.NotContains(t, string(echo), "abcdef-secret", "the signing secret is never echoed")
	require.Contains(t, string(echo), `"end":"2026-12-01T00:00:00Z"`)

	// What was stored parses again (a client may PUT back what it read).
	_, err = Parse(stored, now)
	require.NoError(t, err)
}

func TestKeepRedactedHeaders(t *testing.T) {
	t.Parallel()
	stored := []Header{{"Authorization", "Bearer old"}, {"X-A", "1"}}
	got, err := KeepRedactedHeaders([]Header{{"Authorization", Redacted}, {"X-A", "2"}}, stored)
	require.NoError(t, err)
	require.Equal(t, []Header{{"Authorization", "Bearer old"}, {"X-A", "2"}}, got)
	_, err = KeepRedactedHeaders([]Header{{"X-New", Redacted}}, stored)
	require.Error(t, err)
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte(`{"resourceType":"Subscription","channel":{}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := Parse(body, now)
		if err != nil {
			if k := fhir.AsError(err).Kind; k != fhir.KindInvalid && k != fhir.KindUnprocessable {
				t.Fatalf("unexpected error kind %v: %v", k, err)
			}
			return
		}
		if s.Content == "" || s.Endpoint == "" || s.Topic == "" {
			t.Fatalf("accepted a Subscription without content, endpoint or topic")
		}
		for _, h := range s.Headers {
			if strings.ContainsAny(h.Name+h.Value, "\r\n") {
				t.Fatalf("accepted header injection")
			}
		}
		stored, err := Rewrite(body, "requested", "")
		if err != nil {
			t.Fatalf("Rewrite failed on an accepted Subscription: %v", err)
		}
		if s.SigningSecret != "" && strings.Contains(string(stored), s.SigningSecret) {
			t.Fatalf("stored form leaks the signing secret")
		}
	})
}
