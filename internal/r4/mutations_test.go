package r4

import (
	"slices"
	"testing"
)

// mutation is one invalid change to an official example: the problems
// Validate must report ("expression code", in order), and whether
// google/fhir's jsonformat checks that rule (and so refuses it too). It
// does not check: member names' case (it matches them case-insensitively),
// empty strings, objects and arrays, the uri/url/canonical regex, `_id` on
// Element.id, nor contained resources that contain.
type mutation struct {
	name   string
	file   string
	edits  []edit
	want   []string
	google bool
}

func edits(e ...edit) []edit { return e }

const ext = `{"url":"http://example.org/x","valueString":"v"}`

var mutations = []mutation{
	// unknown elements
	{"unknown element", "Patient-example.json", edits(set("foo", `1`)), []string{"Patient.foo structure"}, true},
	{"case variant of an element name", "Patient-example.json", edits(rename("gender", "Gender")), []string{"Patient.Gender structure"}, false},
	{"case variant in a datatype", "Patient-example.json", edits(rename("name.0.family", "Family")), []string{"Patient.name[0].Family structure"}, false},
	{"unknown element in a backbone element", "Patient-example.json", edits(set("contact.0.foo", `"x"`)), []string{"Patient.contact[0].foo structure"}, true},
	{"_name for a complex element", "Patient-example.json", edits(set("_name", `[{"id":"a"}]`)), []string{"Patient._name structure"}, true},
	{"choice type not in value[x]", "Observation-example.json", edits(rename("valueQuantity", "valueAge")), []string{"Observation.valueAge structure"}, true},
	{"modifierExtension on a datatype", "Patient-example.json", edits(set("name.0.modifierExtension", `[`+ext+`]`)), []string{"Patient.name[0].modifierExtension structure"}, true},
	{"resourceType inside a datatype", "Encounter-example.json", edits(set("class.resourceType", `"Coding"`)), []string{"Encounter.class.resourceType structure"}, true},

	// resource types
	{"missing resourceType", "Encounter-example.json", edits(del("resourceType")), []string{"Resource.resourceType required"}, true},
	{"unknown resourceType", "Encounter-example.json", edits(set("resourceType", `"Encounterx"`)), []string{"Resource.resourceType invalid"}, true},
	{"SubscriptionTopic is not R4", "Encounter-example.json", edits(set("resourceType", `"SubscriptionTopic"`)), []string{"Resource.resourceType invalid"}, true},

	// required elements
	{"Encounter without class", "Encounter-example.json", edits(del("class")), []string{"Encounter.class required"}, true},
	{"Observation without status", "Observation-example.json", edits(del("status")), []string{"Observation.status required"}, true},
	{"required element of a backbone", "Patient-example.json", edits(set("communication", `[{"preferred":true}]`)), []string{"Patient.communication[0].language required"}, true},
	{"Extension without url", "Patient-example.json", edits(set("extension", `[{"valueString":"v"}]`)), []string{"Patient.extension[0].url required"}, true},

	// primitive formats and JSON kinds
	{"boolean as a string", "Patient-example.json", edits(set("active", `"true"`)), []string{"Patient.active value"}, true},
	{"integer with a fraction", "Patient-example.json", edits(del("deceasedBoolean"), set("multipleBirthInteger", `1.5`)), []string{"Patient.multipleBirthInteger value"}, true},
	{"integer beyond 32 bits", "Patient-example.json", edits(set("multipleBirthInteger", `3000000000`), del("deceasedBoolean")), []string{"Patient.multipleBirthInteger value"}, true},
	{"integer as a string", "Patient-example.json", edits(set("telecom.1.rank", `"1"`)), []string{"Patient.telecom[1].rank value"}, true},
	{"positiveInt zero", "Patient-example.json", edits(set("telecom.1.rank", `0`)), []string{"Patient.telecom[1].rank value"}, true},
	{"unsignedInt negative", "DocumentReference-example.json", edits(set("content.0.attachment.size", `-1`)), []string{"DocumentReference.content[0].attachment.size value"}, true},
	{"decimal as a string", "Observation-example.json", edits(set("valueQuantity.value", `"185"`)), []string{"Observation.valueQuantity.value value"}, true},
	{"date with month 13", "Patient-example.json", edits(set("birthDate", `"1974-13-25"`)), []string{"Patient.birthDate value"}, true},
	{"dateTime with hours but no time zone", "Observation-example.json", edits(set("effectiveDateTime", `"2016-03-28T09:30:00"`)), []string{"Observation.effectiveDateTime value"}, true},
	{"instant without a time", "Observation-example.json", edits(set("issued", `"2016-03-28"`)), []string{"Observation.issued value"}, true},
	{"time without seconds", "Location-1.json", edits(set("hoursOfOperation", `[{"openingTime":"9:00"}]`)), []string{"Location.hoursOfOperation[0].openingTime value"}, true},
	{"id with a space", "Patient-example.json", edits(set("id", `"ex ample"`)), []string{"Patient.id value"}, true},
	{"code with a leading space", "Patient-example.json", edits(set("name.0.use", `" official"`)), []string{"Patient.name[0].use value"}, true},
	{"uri with a space", "Patient-example.json", edits(set("identifier.0.system", `"urn:oid:1.2 3"`)), []string{"Patient.identifier[0].system value"}, false},
	{"url with a space", "DocumentReference-example.json", edits(set("content.0.attachment.url", `"http://example.org/a b"`)), []string{"DocumentReference.content[0].attachment.url value"}, false},
	{"canonical with a space", "Patient-example.json", edits(set("meta", `{"profile":["http://example.org/a b"]}`)), []string{"Patient.meta.profile[0] value"}, false},
	{"base64Binary with a bad character", "DocumentReference-example.json", edits(set("content.0.attachment.hash", `"2jmj!l5rSw0yVb/vlWAYkK/YBwk="`)), []string{"DocumentReference.content[0].attachment.hash value"}, true},
	{"empty string", "Patient-example.json", edits(set("name.0.family", `""`)), []string{"Patient.name[0].family value"}, false},
	{"markdown as a number", "AllergyIntolerance-example.json", edits(set("note.0.text", `5`)), []string{"AllergyIntolerance.note[0].text value"}, true},
	{"oid without urn:oid:", "Patient-example.json", edits(set("extension", `[{"url":"http://example.org/x","valueOid":"1.2.3"}]`)), []string{"Patient.extension[0].valueOid value"}, true},
	{"uuid without urn:uuid:", "Patient-example.json", edits(set("extension", `[{"url":"http://example.org/x","valueUuid":"61ebe359-bfdc-4613-8bf2-c5e300945f0a"}]`)), []string{"Patient.extension[0].valueUuid value"}, true},
	{"object for a primitive", "Patient-example.json", edits(set("gender", `{"value":"male"}`)), []string{"Patient.gender value"}, true},
	{"primitive for an object", "Patient-example.json", edits(set("maritalStatus", `"M"`)), []string{"Patient.maritalStatus structure"}, true},

	// codes of required bindings
	{"gender not in its value set", "Patient-example.json", edits(set("gender", `"x"`)), []string{"Patient.gender code-invalid"}, true},
	{"Observation.status not in its value set", "Observation-example.json", edits(set("status", `"done"`)), []string{"Observation.status code-invalid"}, true},
	{"Quantity.comparator not in its value set", "Observation-example.json", edits(set("valueQuantity.comparator", `"=="`)), []string{"Observation.valueQuantity.comparator code-invalid"}, true},

	// choices
	{"two value[x]", "Observation-example.json", edits(set("valueString", `"185 lbs"`)), []string{"Observation.value[x] structure"}, true},
	{"two deceased[x]", "Patient-example.json", edits(set("deceasedDateTime", `"2015-02-14"`)), []string{"Patient.deceased[x] structure"}, true},
	{"two value[x] in an extension", "Patient-example.json", edits(set("extension", `[{"url":"http://example.org/x","valueString":"v","valueCode":"c"}]`)), []string{"Patient.extension[0].value[x] structure"}, true},

	// nulls
	{"null for a single element", "Patient-example.json", edits(set("gender", `null`)), []string{"Patient.gender structure"}, true},
	{"null in an array of datatypes", "Patient-example.json", edits(set("name.1", `null`)), []string{"Patient.name[1] structure"}, true},
	{"null in a primitive array without _given", "Patient-example.json", edits(set("name.0.given.1", `null`)), []string{"Patient.name[0].given[1] structure"}, true},
	{"null in both given and _given", "Patient-example.json", edits(set("name.0.given.1", `null`), set("name.0._given", `[null,null]`)), []string{"Patient.name[0].given[1] structure"}, true},
	{"_given longer than given", "Patient-example.json", edits(set("name.0._given", `[null,{"id":"a"},{"id":"b"}]`)), []string{"Patient.name[0].given structure"}, true},
	{"null in _given without given", "Patient-example.json", edits(set("name.1", `{"_given":[null]}`)), []string{"Patient.name[1].given[0] structure"}, true},

	// empty objects and arrays
	{"empty object", "Patient-example.json", edits(set("maritalStatus", `{}`)), []string{"Patient.maritalStatus structure"}, false},
	{"empty array", "Patient-example.json", edits(set("identifier", `[]`)), []string{"Patient.identifier structure"}, false},
	{"empty _birthDate", "Patient-example.json", edits(set("_birthDate", `{}`)), []string{"Patient.birthDate structure"}, false},
	{"empty object in an array", "Patient-example.json", edits(set("telecom.0", `{}`)), []string{"Patient.telecom[0] structure"}, false},

	// cardinality
	{"array for a max-1 element", "Patient-example.json", edits(set("gender", `["male"]`)), []string{"Patient.gender structure"}, true},
	{"array for a max-1 datatype", "Encounter-example.json", edits(set("class", `[{"code":"IMP"}]`)), []string{"Encounter.class structure"}, true},
	{"object for an array", "Patient-example.json", edits(set("name", `{"family":"Chalmers"}`)), []string{"Patient.name structure"}, true},
	{"string for an array of primitives", "Patient-example.json", edits(set("name.0.given", `"Peter"`)), []string{"Patient.name[0].given structure"}, true},

	// primitive extensions (_name)
	{"unknown element in _birthDate", "Patient-example.json", edits(set("_birthDate.foo", `1`)), []string{"Patient.birthDate.foo structure"}, true},
	{"_birthDate as an array", "Patient-example.json", edits(set("_birthDate", `[{"id":"a"}]`)), []string{"Patient.birthDate structure"}, true},
	{"_id on Element.id", "Patient-example.json", edits(set("name.0._id", `{"id":"a"}`)), []string{"Patient.name[0]._id structure"}, false},

	// extensions
	{"extension value of an unknown type", "Patient-example.json", edits(set("extension", `[{"url":"http://example.org/x","valueFoo":"v"}]`)), []string{"Patient.extension[0].valueFoo structure"}, true},
	{"extension value invalid as its type", "Patient-example.json", edits(set("extension", `[{"url":"http://example.org/x","valueDate":"2015-02-30x"}]`)), []string{"Patient.extension[0].valueDate value"}, true},
	{"extension value of a complex type", "Patient-example.json", edits(set("extension", `[{"url":"http://example.org/x","valueQuantity":{"value":"1"}}]`)), []string{"Patient.extension[0].valueQuantity.value value"}, true},
	{"extension not an array", "Patient-example.json", edits(set("extension", ext)), []string{"Patient.extension structure"}, true},
	{"bad extension in a primitive's _name", "Patient-example.json", edits(set("_birthDate.extension.0.valueDateTime", `"1974-12-25T14:35"`)), []string{"Patient.birthDate.extension[0].valueDateTime value"}, true},

	// contained and nested resources
	{"bad contained resource", "DocumentReference-example.json", edits(set("contained.0.active", `"yes"`)), []string{"DocumentReference.contained[0].active value"}, true},
	{"contained resource of an unknown type", "DocumentReference-example.json", edits(set("contained.0.resourceType", `"Doctor"`)), []string{"DocumentReference.contained[0].resourceType invalid"}, true},
	{"contained resource that contains", "DocumentReference-example.json", edits(set("contained.0.contained", `[{"resourceType":"Organization","name":"o"}]`)), []string{"DocumentReference.contained[0].contained structure"}, false},
	{"contained resource with an unknown element", "DocumentReference-example.json", edits(set("contained.0.name.0.foo", `1`)), []string{"DocumentReference.contained[0].name[0].foo structure"}, true},
	{"bad Bundle entry resource", "Patient-example.json", edits(inBundle, set("entry.1.resource.gender", `"x"`)), []string{"Bundle.entry[1].resource.gender code-invalid"}, true},
	{"Bundle entry resource missing a required element", "Encounter-example.json", edits(inBundle, del("entry.1.resource.status")), []string{"Bundle.entry[1].resource.status required"}, true},
	{"Bundle entry resource of an unknown type", "Encounter-example.json", edits(inBundle, set("entry.1.resource.resourceType", `"SubscriptionTopic"`)), []string{"Bundle.entry[1].resource.resourceType invalid"}, true},
}

func TestMutationsAreRefused(t *testing.T) {
	if len(mutations) < 40 {
		t.Fatalf("only %d mutations", len(mutations))
	}
	for _, m := range mutations {
		t.Run(m.name, func(t *testing.T) {
			body := mutate(t, m)
			got := summary(validateBytes(t, body))
			if !slices.Equal(got, m.want) {
				t.Errorf("problems %q, want %q\n%s", got, m.want, body)
			}
		})
	}
}

func mutate(t testing.TB, m mutation) []byte {
	doc := loadDoc(t, m.file)
	for _, e := range m.edits {
		e(doc)
	}
	return mustMarshal(t, doc)
}

// TestEveryProblemIsReported: one resource with several problems gets them all, in document order.
func TestEveryProblemIsReported(t *testing.T) {
	body := `{"resourceType":"Encounter","id":"bad id","foo":1,"status":"nope",
	  "statusHistory":[{"status":"planned"},{}],"subject":{"reference":"Patient/p","Display":"x"},
	  "period":{"start":"2020-02-30T25:00:00Z"},"length":[{"value":1}],"_status":{"extension":[{"valueString":"v","valueCode":"c"}]}}`
	got := summary(validateBytes(t, []byte(body)))
	want := []string{
		"Encounter.id value",
		"Encounter.foo structure",
		"Encounter.status code-invalid",
		"Encounter.statusHistory[0].period required",
		"Encounter.statusHistory[1] structure",
		"Encounter.subject.Display structure",
		"Encounter.period.start value",
		"Encounter.length structure",
		"Encounter.status.extension[0].value[x] structure",
		"Encounter.status.extension[0].url required",
		"Encounter.class required",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems\n%q\nwant\n%q", got, want)
	}
}

func TestProblemsAreCapped(t *testing.T) {
	body := []byte(`{"resourceType":"Patient"`)
	for i := range 300 {
		body = append(body, `,"x`...)
		body = append(body, byte('a'+i%26), byte('a'+i/26))
		body = append(body, `":1`...)
	}
	body = append(body, '}')
	if got := len(validateBytes(t, body)); got != MaxProblems {
		t.Errorf("%d problems, want %d", got, MaxProblems)
	}
}
