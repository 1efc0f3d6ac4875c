package notify

import (
	"fmt"
	"testing"

	"github.com/herald-fhir/herald/internal/fhir"
)

// benchEvents returns 10 consecutive events (a max-count batch) on
// distinct Encounters of about 700 bytes each, every one including the same
// Patient.
func benchEvents() []Event {
	events := make([]Event, 10)
	for i := range events {
		id := fmt.Sprintf("enc-%d", i)
		body := fmt.Sprintf(`{"resourceType":"Encounter","id":%q,"meta":{"versionId":"2","lastUpdated":"2026-03-01T10:15:29.000Z"},`+
			`"identifier":[{"system":"urn:oid:1.2.36.146.595.217.0.1","value":"V%06d"}],"status":"in-progress",`+
			`"class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB","display":"ambulatory"},`+
			`"type":[{"coding":[{"system":"http://snomed.info/sct","code":"270427003","display":"Patient-initiated encounter"}]}],`+
			`"subject":{"reference":"Patient/p1","display":"Peter Chalmers"},"participant":[{"individual":{"reference":"Practitioner/pr1"}}],`+
			`"period":{"start":"2026-03-01T10:00:00Z"},"reasonCode":[{"text":"Follow-up <visit> & check"}],`+
			`"serviceProvider":{"reference":"Organization/o1"}}`, id, i)
		events[i] = Event{
			Number: int64(i + 1), Timestamp: at(i), Method: Update,
			Focus: Ref{"Encounter", id, 2}, Resource: []byte(body),
			Additional: []Included{patient},
		}
	}
	return events
}

func benchmarkBuild(b *testing.B, content string) {
	events := benchEvents()
	s := sub(content, fhir.StatusActive, 10)
	newID := seqIDs()
	var size int
	b.ReportAllocs()
	for b.Loop() {
		out, err := Build(base, s, EventNotification, events, clock, newID)
		if err != nil {
			b.Fatal(err)
		}
		size = len(out)
	}
	b.ReportMetric(float64(size), "bytes/bundle")
}

func BenchmarkBuildIDOnly(b *testing.B)       { benchmarkBuild(b, fhir.ContentIDOnly) }
func BenchmarkBuildFullResource(b *testing.B) { benchmarkBuild(b, fhir.ContentFullResource) }
