package r4

import (
	"slices"
	"testing"
)

// TestRules covers what the examples' mutations cannot reach: content
// references, other nested resources, nulls that are allowed.
func TestRules(t *testing.T) {
	obs := `{"resourceType":"Observation","status":"final","code":{"text":"t"}}`
	tests := []struct {
		name, body string
		want       []string
	}{
		{"valid primitive array with nulls matched by _given",
			`{"resourceType":"Patient","name":[{"given":[null,"b"],"_given":[{"id":"g0"},null]}]}`, nil},
		{"_given without given", `{"resourceType":"Patient","name":[{"_given":[{"id":"g0"}]}]}`, nil},
		{"_id on a resource id", `{"resourceType":"Patient","id":"p","_id":{"id":"x"}}`, nil},
		{"required primitive present only as _status",
			`{"resourceType":"Observation","_status":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]},"code":{"text":"t"}}`, nil},
		{"content reference: Questionnaire.item.item",
			`{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"group","item":[{"linkId":"1.1","type":"string","foo":1}]}]}`,
			[]string{"Questionnaire.item[0].item[0].foo structure"}},
		{"content reference: required element of a nested item",
			`{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"group","item":[{"type":"string"}]}]}`,
			[]string{"Questionnaire.item[0].item[0].linkId required"}},
		{"Parameters.parameter.resource",
			`{"resourceType":"Parameters","parameter":[{"name":"r","resource":{"resourceType":"Observation","status":"final"}}]}`,
			[]string{"Parameters.parameter[0].resource.code required"}},
		{"Bundle.entry.response.outcome",
			`{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201","outcome":{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"nope"}]}}}]}`,
			[]string{"Bundle.entry[0].response.outcome.issue[0].code code-invalid"}},
		{"a Bundle entry's resource may contain resources",
			`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","contained":[` + obs + `]}}]}`, nil},
		{"a contained Bundle's entries may contain resources",
			`{"resourceType":"Patient","contained":[{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","contained":[` + obs + `]}}]}]}`, nil},
		{"contained abstract type", `{"resourceType":"Patient","contained":[{"resourceType":"DomainResource"}]}`,
			[]string{"Patient.contained[0].resourceType invalid"}},
		{"resource as an array", `[{"resourceType":"Patient"}]`, []string{"Resource invalid"}},
		{"resourceType not a string", `{"resourceType":1}`, []string{"Resource.resourceType invalid"}},
		{"abstract resource type at the root", `{"resourceType":"Resource"}`, []string{"Resource.resourceType invalid"}},
		{"empty object in _given", `{"resourceType":"Patient","name":[{"given":["a"],"_given":[{}]}]}`,
			[]string{"Patient.name[0].given[0] structure"}},
		{"_given as an object", `{"resourceType":"Patient","name":[{"given":["a"],"_given":{"id":"x"}}]}`,
			[]string{"Patient.name[0].given structure"}},
		{"decimal in exponent form", `{"resourceType":"Observation","status":"final","code":{"text":"t"},"valueQuantity":{"value":1.5e3}}`, nil},
		{"decimal with a leading plus is not JSON, a string is not a decimal",
			`{"resourceType":"Observation","status":"final","code":{"text":"t"},"valueQuantity":{"value":"+1"}}`,
			[]string{"Observation.valueQuantity.value value"}},
		{"integer in exponent form", `{"resourceType":"Patient","multipleBirthInteger":1e2}`, []string{"Patient.multipleBirthInteger value"}},
		{"smallest integer", `{"resourceType":"Patient","multipleBirthInteger":-2147483648}`, nil},
		{"below the smallest integer", `{"resourceType":"Patient","multipleBirthInteger":-2147483649}`, []string{"Patient.multipleBirthInteger value"}},
		{"narrative div", `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}}`, nil},
		{"narrative without div", `{"resourceType":"Patient","text":{"status":"generated"}}`, []string{"Patient.text.div required"}},
		{"a choice with its _ form of another type",
			`{"resourceType":"Observation","status":"final","code":{"text":"t"},"valueString":"a","_valueBoolean":{"id":"x"}}`,
			[]string{"Observation.value[x] structure"}},
		{"a choice with its own _ form", `{"resourceType":"Observation","status":"final","code":{"text":"t"},"valueString":"a","_valueString":{"id":"x"}}`, nil},
		{"_ form of a choice's complex type", `{"resourceType":"Observation","status":"final","code":{"text":"t"},"_valueQuantity":{"id":"x"}}`,
			[]string{"Observation._valueQuantity structure"}},
		{"_url on an extension", `{"resourceType":"Patient","extension":[{"url":"http://e","_url":{"id":"x"},"valueCode":"c"}]}`,
			[]string{"Patient.extension[0]._url structure"}},
		{"nested extensions", `{"resourceType":"Patient","extension":[{"url":"http://e","extension":[{"url":"a","valueCoding":{"system":"http://s","code":"c"}}]}]}`, nil},
		{"bad code inside a nested extension's value",
			`{"resourceType":"Patient","extension":[{"url":"http://e","extension":[{"url":"a","valueQuantity":{"comparator":"~"}}]}]}`,
			[]string{"Patient.extension[0].extension[0].valueQuantity.comparator code-invalid"}},
		{"units of time from UCUM, enumerated", `{"resourceType":"MedicationRequest","status":"active","intent":"order","medicationCodeableConcept":{"text":"m"},"subject":{"reference":"Patient/p"},"dosageInstruction":[{"timing":{"repeat":{"periodUnit":"fortnight"}}}]}`,
			[]string{"MedicationRequest.dosageInstruction[0].timing.repeat.periodUnit code-invalid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summary(validateBytes(t, []byte(tt.body)))
			if len(got) == 0 {
				got = nil
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems %q, want %q", got, tt.want)
			}
		})
	}
}

func TestKnownResourceType(t *testing.T) {
	for name, want := range map[string]bool{"Patient": true, "Parameters": true, "SubscriptionTopic": false, "DomainResource": false, "Quantity": false, "patient": false} {
		if got := KnownResourceType(name); got != want {
			t.Errorf("%s: %v", name, got)
		}
	}
}
