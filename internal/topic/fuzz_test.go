package topic

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/search"
	"github.com/herald-fhir/herald/topics"
)

// FuzzTopicParse parses arbitrary SubscriptionTopic JSON (what an admin may
// PUT at /fhir/SubscriptionTopic). A refusal is a 400 or 422 *fhir.Error.
// What parses is a topic Herald can evaluate: a canonical URL without
// version, query or space; a known status; at least one trigger, each on an
// R4 type with create/update/delete interactions (no duplicates) and query
// criteria that compile; canFilterBy entries on triggered types with a
// parameter; shapes on R4 types. Parsing is deterministic, and evaluating
// the triggers on real resources of their types never fails or panics.
func FuzzTopicParse(f *testing.F) {
	_, raws, err := Builtin(topics.FS)
	if err != nil {
		f.Fatal(err)
	}
	for _, raw := range raws {
		// Compact: large seeds make minimising new inputs slow.
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Add([]byte(sample))
	f.Add([]byte(`{"resourceType":"SubscriptionTopic","url":"http://x/t","status":"active","resourceTrigger":[{"resource":"Patient"}]}`))
	f.Add([]byte(`{"resourceType":"SubscriptionTopic","url":"http://x/t","status":"active","resourceTrigger":[{"resource":"Observation","queryCriteria":{"current":"code:in=http://x&value-quantity=gt5"}}],"canFilterBy":[{"filterParameter":"patient","modifier":["not"]}]}`))
	f.Add([]byte(`{"resourceType":"SubscriptionTopic","url":"http://x/t","status":"active","eventTrigger":[{}],"resourceTrigger":[]}`))

	f.Fuzz(func(t *testing.T, body []byte) {
		tp, err := Parse(body)
		if err != nil {
			if k := fhir.AsError(err).Kind; k != fhir.KindInvalid && k != fhir.KindUnprocessable {
				t.Fatalf("error kind %v: %v", k, err)
			}
			return
		}
		if tp.URL == "" || strings.ContainsAny(tp.URL, "|? ") || !strings.Contains(tp.URL, "://") {
			t.Fatalf("url %q", tp.URL)
		}
		if want := tp.URL; tp.Version != "" && tp.Canonical() != want+"|"+tp.Version || tp.Version == "" && tp.Canonical() != want {
			t.Fatalf("canonical %q of %q|%q", tp.Canonical(), tp.URL, tp.Version)
		}
		if !slices.Contains([]string{"draft", "active", "retired"}, tp.Status) {
			t.Fatalf("status %q", tp.Status)
		}
		if len(tp.Triggers) == 0 {
			t.Fatalf("no trigger")
		}
		for _, tr := range tp.Triggers {
			if !fhir.IsR4ResourceType(tr.ResourceType) {
				t.Fatalf("trigger type %q", tr.ResourceType)
			}
			if len(tr.Interactions) == 0 {
				t.Fatalf("trigger without interactions")
			}
			seen := map[Interaction]bool{}
			for _, in := range tr.Interactions {
				if in != Create && in != Update && in != Delete || seen[in] {
					t.Fatalf("interactions %v", tr.Interactions)
				}
				seen[in] = true
			}
			if q := tr.Query; q != nil {
				for _, query := range []string{q.Previous, q.Current} {
					if query == "" {
						continue
					}
					if _, err := Compile(tr.ResourceType, query); err != nil {
						t.Fatalf("criteria %q accepted but does not compile: %v", query, err)
					}
				}
			}
		}
		for _, fd := range tp.CanFilterBy {
			if fd.Param == "" || fd.ResourceType != "" && !tp.TriggersOn(fd.ResourceType) {
				t.Fatalf("canFilterBy %+v", fd)
			}
		}
		for _, s := range tp.Shapes {
			if !fhir.IsR4ResourceType(s.ResourceType) {
				t.Fatalf("shape type %q", s.ResourceType)
			}
		}
		_ = tp.IncludedTypes(func(typ, param string) []string {
			if p, ok := search.Lookup(typ, param); ok {
				return p.Targets
			}
			return nil
		})

		again, err := Parse(body)
		if err != nil || !reflect.DeepEqual(again, tp) {
			t.Fatalf("parsing again gives %+v, %v", again, err)
		}

		// The triggers evaluate on real resources without error.
		for _, typ := range tp.ResourceTypes() {
			prev, err := search.NewResource([]byte(`{"resourceType":"` + typ + `","id":"a","status":"planned","subject":{"reference":"Patient/p1"}}`))
			if err != nil {
				t.Fatal(err)
			}
			cur, err := search.NewResource([]byte(`{"resourceType":"` + typ + `","id":"a","status":"finished","code":{"coding":[{"system":"http://loinc.org","code":"1-8"}]},"subject":{"reference":"Patient/p1"},"valueQuantity":{"value":6,"unit":"mmol/L"}}`))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []Change{
				{Type: typ, Interaction: Create, Cur: cur},
				{Type: typ, Interaction: Update, Prev: prev, Cur: cur},
				{Type: typ, Interaction: Delete, Prev: cur},
			} {
				if _, err := tp.Fires(c); err != nil {
					t.Fatalf("Fires(%s %s): %v", c.Interaction, typ, err)
				}
			}
		}
	})
}
