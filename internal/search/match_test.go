package search

import (
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

var (
	loadMu    sync.Mutex
	resources = map[string]*Resource{}
)

// examplesBase is the base the R4 examples are stored at in these tests.
const examplesBase = "http://example.org/fhir"

// load decodes testdata/<name>.json, an unmodified example of the R4 package.
func load(t testing.TB, name string) *Resource {
	t.Helper()
	loadMu.Lock()
	defer loadMu.Unlock()
	if r, ok := resources[name]; ok {
		return r
	}
	raw, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	require.NoError(t, err)
	r, err := NewResource(raw)
	require.NoError(t, err)
	r = r.WithBase(examplesBase)
	resources[name] = r
	return r
}

type matchCase struct {
	query string
	want  bool
}

// matchCases are keyed by example file; every query runs against that file.
var matchCases = map[string][]matchCase{
	"Patient-example": {
		{"gender=male", true},
		{"gender=female", false},
		{"gender:not=female", true},
		{"gender:not=male", false},
		{"gender=female,male", true},
		{"active=true", true},
		{"active=false", false},
		{"_id=example", true},
		{"_id=other", false},
		// string: case- and accent-insensitive starts-with over all name parts
		{"name=peter", true},
		{"name=CHALM", true},
		{"name=Pétér", true},
		{"name=smith", false},
		{"name=halmers", false},
		{"name:contains=halm", true},
		{"name:exact=Chalmers", true},
		{"name:exact=chalmers", false},
		{"family=Windsor", true},
		{"given=jim", true},
		{"given=jim&family=chalmers", true},
		{"given=jim&family=smith", false},
		{"address=534", true},
		{"address=Erewhon", false}, // starts-with on each part: the line is "534 Erewhon St"
		{"address:contains=Erewhon", true},
		{"address=534%20Erewhon", true},
		{"address-city=pleasant", true},
		{"address-postalcode=3999", true},
		{"address=Sydney", false},
		// token on Identifier and ContactPoint
		{"identifier=urn:oid:1.2.36.146.595.217.0.1|12345", true},
		{"identifier=12345", true},
		{"identifier=http://other|12345", false},
		{"identifier=urn:oid:1.2.36.146.595.217.0.1|", true},
		{"identifier=|12345", false},
		{"identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345", true},
		{"identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|99", false},
		{"phone=(03)%205555%206473", true},
		{"phone=(03)%200000%200000", false},
		{"telecom=phone|(03)%203410%205613", true},
		// date on a date element
		{"birthdate=1974-12-25", true},
		{"birthdate=1974", true},
		{"birthdate=1974-12", true},
		{"birthdate=ge1975", false},
		{"birthdate=lt1975-01-01", true},
		{"birthdate=le1974-12-25", true},
		{"birthdate=gt1974-12-25", false},
		{"birthdate=ne1974-12-25", false},
		{"birthdate=ne1980", true},
		{"birthdate=sa1974-12-24", true},
		{"birthdate=eb1974-12-24", false},
		{"birthdate=ge1974-12-25T12:00:00Z", true},
		// reference with a single target type
		{"organization=Organization/1", true},
		{"organization=1", true},
		{"organization=Organization/2", false},
		{"general-practitioner:missing=true", true},
		{"general-practitioner:missing=false", false},
		{"_lastUpdated:missing=true", true},
	},
	"Patient-glossy": {
		{"_lastUpdated=2014-11-13", true},
		{"_lastUpdated=2014-11-12", false},
		{"_lastUpdated=ge2014-11-13T00:41:00Z", true},
		{"_lastUpdated=gt2014-11-13T00:41:00Z", false},
		{"_lastUpdated=2014-11-13T11:41:00+11:00", true},
		{"_lastUpdated=lt2014-11-14", true},
		{"_lastUpdated=le2014-11-12", false},
		{"_lastUpdated:missing=false", true},
		{"general-practitioner=Practitioner/example", true},
		{"general-practitioner:missing=false", true},
		{"name=the%207th", true},
		{"identifier=http://www.goodhealth.org/identifiers/mrn|123456", true},
	},
	"Encounter-example": {
		// the Subscriptions backport IG's filter and topic criteria
		{"patient=Patient/example", true},
		{"patient=Patient/other", false},
		{"patient=example", true},
		{"patient=Patient/other,Patient/example", true},
		{"patient=http://example.org/fhir/Patient/example", true},
		{"patient=Patient/example/_history/2", true},
		{"Encounter.patient=Patient/example", true},
		{"patient:Patient=example", true},
		{"patient:identifier=urn:x|1", false},
		{"subject=Patient/example", true},
		{"subject:Patient=example", true},
		{"subject:Group=example", false},
		{"status=in-progress", true},
		{"status=finished", false},
		{"status:not=finished", true},
		{"status:not=in-progress", false},
		{"status=finished,in-progress", true},
		{"status:not=finished,in-progress", false},
		{"status=http://hl7.org/fhir/encounter-status|in-progress", true},
		{"class=http://terminology.hl7.org/CodeSystem/v3-ActCode|IMP", true},
		{"class=IMP", true},
		{"class=|IMP", false},
		{"class=http://terminology.hl7.org/CodeSystem/v3-ActCode|", true},
		{"class=http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB", false},
		{"status=in-progress&patient=Patient/example", true},
		{"status=in-progress&patient=Patient/x", false},
		{"date:missing=true", true},
		{"type:missing=true", true},
		{"type:not=x", true},
		{"", true},
	},
	"Encounter-home": {
		// Period, with overlap semantics
		{"date=2015-01-17", true},
		{"date=2015-01-18", false},
		{"date=ge2015-01-17T06:15:00Z", true},
		{"date=le2015-01-17T06:15:00Z", true},
		{"date=lt2015-01-17T06:00:00Z", false},
		{"date=gt2015-01-17T06:30:00Z", false},
		{"date=sa2015-01-16", true},
		{"date=eb2015-01-17", false},
		{"date=eb2015-01-18", true},
		{"date=ne2015-01-17", false},
		{"date=2015-01-17T16:00:00%2B10:00", false},
		{"date=ge2015-01-17T16:00:00+10:00", true},
		{"location-period=2015", true},
		{"status=finished", true},
		{"participant=Practitioner/example", true},
		{"practitioner=Practitioner/example", true},
		{"class=HH", true},
	},
	"Encounter-f201": {
		{"participant=Practitioner/f201", true},
		{"practitioner=Practitioner/f201", true},
		{"reason-code:text=the%20patient", true},
		{"reason-code:text=fever", false},
		{"service-provider=Organization/f201", true},
		{"type=http://snomed.info/sct|11429006", true},
		{"type:text=consult", true},
		{"identifier=Encounter_Roel_20130404", true},
		{"patient=Patient/f201&status=finished", true},
	},
	"Observation-f001": {
		{"code=http://loinc.org|15074-8", true},
		{"code=15074-8", true},
		{"code=http://snomed.info/sct|15074-8", false},
		{"combo-code=15074-8", true},
		{"code-value-quantity=http://loinc.org|15074-8$gt6", true},
		{"code-value-quantity=http://loinc.org|15074-8$lt6", false},
		{"combo-code-value-quantity=15074-8$6.3|http://unitsofmeasure.org|mmol/L", true},
		{"status=final", true},
		// quantity on the choice element valueQuantity
		{"value-quantity=6.3", true},
		{"value-quantity=6", true}, // 6 means [5.5, 6.5)
		{"value-quantity=6.0", false},
		{"value-quantity=gt6|http://unitsofmeasure.org|mmol/L", true},
		{"value-quantity=gt6|http://unitsofmeasure.org|mg/dL", false},
		{"value-quantity=lt6.3", false},
		{"value-quantity=le6.3", true},
		{"value-quantity=ne6.3", false},
		{"value-quantity=6.3||mmol/L", true},
		{"value-quantity=6.3||mmol/l", true},
		{"value-quantity=ap6", true},
		{"value-quantity=ap5", false},
		{"value-quantity=lt1,gt6", true},
		// date on effectivePeriod with no end
		{"date=2013-04-02", false},
		{"date=ge2013-04-02", true},
		{"date=gt2014", true},
		{"date=lt2013-04-01", false},
		{"date:missing=false", true},
		{"patient=Patient/f001", true},
		{"subject=Patient/f001", true},
		{"subject=f001", true},
		{"performer=Practitioner/f005", true},
		{"performer:missing=false", true},
		{"category:missing=true", true},
	},
	"Observation-example": {
		{"category=vital-signs", true},
		{"category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs", true},
		{"category=laboratory", false},
		{"code=http://loinc.org|29463-7", true},
		{"code=http://loinc.org|29463-7,http://loinc.org|8302-2", true},
		{"date=2016-03-28", true},
		{"date=2016", true},
		{"date=gt2016-03-28", false},
		{"date=ge2016-03-28", true},
		{"value-quantity=185|http://unitsofmeasure.org|[lb_av]", true},
		{"encounter=Encounter/example", true},
		{"patient=Patient/example&category=vital-signs&code=http://loinc.org|29463-7", true},
		{"patient=Patient/example&category=laboratory", false},
	},
	"Observation-blood-pressure": {
		{"component-code=8480-6", true},
		{"component-value-quantity=107", true},
		{"component-value-quantity=gt200", false},
		{"combo-value-quantity=60", true},
		{"combo-code=http://loinc.org|8462-4", true},
		{"value-quantity:missing=true", true},
		{"_profile=http://hl7.org/fhir/StructureDefinition/vitalsigns", true},
		{"_profile:below=http://hl7.org/fhir/StructureDefinition/", true},
		{"_profile=http://hl7.org/fhir/StructureDefinition/other", false},
		{"based-on:identifier=https://acme.org/identifiers|1234", true},
		{"based-on:identifier=1234", true},
		{"based-on:identifier=https://acme.org/identifiers|999", false},
		{"based-on:missing=false", true},
		// composites pair the values within one component
		{"component-code-value-quantity=http://loinc.org|8480-6$gt100", true},
		{"component-code-value-quantity=http://loinc.org|8462-4$gt100", false},
		{"component-code-value-quantity=http://loinc.org|8462-4$gt100,8462-4$60", true},
		{"combo-code-value-quantity=8462-4$60||mm[Hg]", true},
		{"code-value-quantity=85354-9$107", false},
	},
	"Observation-bloodgroup": {
		{"value-concept=http://snomed.info/sct|112144000", true},
		{"value-string=A", true},
		{"value-string=B", false},
		{"code:text=blood", true},
		{"code:text=abo", true},
		{"code:text=glucose", false},
		{"category:text=lab", true},
		{"date=2018-03-11", true},
		{"code-value-concept=883-9$http://snomed.info/sct|112144000", true},
		{"code-value-concept=883-9$112149005", false},
		{"code-value-string=883-9$a", false}, // its value component is valueString only
	},
	"Condition-example": {
		{"clinical-status=active", true},
		{"clinical-status:not=resolved", true},
		{"verification-status=confirmed", true},
		{"code=http://snomed.info/sct|39065001", true},
		{"code:text=burnt", true},
		{"onset-date=2012-05-24", true},
		{"onset-date=lt2012", false},
		{"patient=Patient/example", true},
		{"subject=Patient/example", true},
		{"body-site=49521004", true},
		{"severity=24484000", true},
		{"category=encounter-diagnosis", true},
		{"abatement-date:missing=true", true},
		{"onset-age:missing=true", true},
	},
	"Condition-f202": {
		// quantity on the Age choice type onsetAge
		{"onset-age=52", true},
		{"onset-age=gt50||a", true},
		{"onset-age=52|http://unitsofmeasure.org|mo", false},
		{"onset-age=lt50", false},
		{"abatement-age=54", true},
		{"_security=http://terminology.hl7.org/CodeSystem/v3-ActCode|TBOO", true},
		{"_security:not=TBOO", false},
		{"evidence-detail=DiagnosticReport/f201", true},
		{"recorded-date=2012-12-01", true},
	},
	"DiagnosticReport-f201": {
		{"status=final", true},
		{"category=RAD", true},
		{"code=429858000", true},
		{"date=2012-12-01", true},
		{"date=2012-12-02", false},
		{"issued=ge2012-12-01T11:00:00Z", true},
		{"issued=gt2012-12-01T11:00:00Z", false},
		{"patient=Patient/f201", true},
		{"performer=Organization/f203", true},
		{"conclusion=188340000", true},
		{"result:missing=true", true},
		{"specimen:missing=false", false},
	},
	"MedicationRequest-medrx002": {
		{"status=active", true},
		{"status=completed", false},
		{"intent=order", true},
		{"medication=Medication/med0316", true},
		{"code:missing=true", true},
		{"patient=Patient/pat1", true},
		{"authoredon=2015-03", true},
		{"authoredon=2015-04", false},
		{"requester=Practitioner/f007", true},
		{"encounter=Encounter/f001", true},
		{"identifier=http://www.bmc.nl/portal/prescriptions|12345", true},
	},
	"ServiceRequest-example": {
		{"status=completed", true},
		{"code=303653007", true},
		{"category=103693007", true},
		{"patient=Patient/example", true},
		{"intent=order", true},
		{"authored:missing=true", true},
	},
	"ServiceRequest-benchpress": {
		{"occurrence=2020", false},
		{"status:not=active", false},
		{"status:not=completed", true},
	},
	"Appointment-example": {
		{"status=booked", true},
		{"date=2013-12-10", true},
		{"date=gt2013-12-10T09:00:00Z", false},
		{"actor=Patient/example", true},
		{"patient=Patient/example", true},
		{"practitioner=Practitioner/example", true},
		{"practitioner=Practitioner/other", false},
		{"location=Location/1", true},
		{"service-type=52", true},
		{"appointment-type=FOLLOWUP", true},
		{"reason-reference=Condition/example", true},
		{"based-on=ServiceRequest/myringotomy", true},
		{"part-status=accepted", true},
		{"part-status:not=declined", true},
	},
	"Procedure-example": {
		{"code=80146002", true},
		{"date=2013-04-05", true},
		{"date=2013-04", true},
		{"date=2014", false},
		{"performer=Practitioner/example", true},
		{"status=completed", true},
		{"patient=Patient/example", true},
		{"reason-code:text=generalized", true},
	},
	"Immunization-example": {
		{"vaccine-code=FLUVAX", true},
		{"vaccine-code=urn:oid:1.2.36.1.2001.1005.17|FLUVAX", true},
		{"date=2013-01-10", true},
		{"lot-number=AAJN11K", true},
		{"lot-number=aajn", true},
		{"lot-number=11K", false},
		{"manufacturer=Organization/hl7", true},
		{"performer=Practitioner/example", true},
		{"status=completed", true},
		{"status-reason:missing=true", true},
		{"location=Location/1", true},
		{"patient=Patient/example", true},
		{"patient=Patient/example&vaccine-code=FLUVAX&date=ge2013", true},
	},
	"AllergyIntolerance-example": {
		{"clinical-status=active", true},
		{"criticality=high", true},
		{"category=food", true},
		{"category=medication", false},
		{"type=allergy", true},
		{"code=227493005", true},
		{"onset=2012-06-12", true},
		{"last-date=2012-06", true},
		{"date=2014-10-09", true},
		{"manifestation=39579001", true},
		{"severity=moderate", true},
		{"route=34206005", true},
		{"recorder=Practitioner/example", true},
		{"asserter=Patient/example", true},
		{"patient=Patient/example", true},
	},
	"DocumentReference-example": {
		{"status=current", true},
		{"type=http://loinc.org|34108-1", true},
		{"subject=Patient/xcda", true},
		{"patient=Patient/xcda", true},
		{"author=Practitioner/xcda1", true},
		{"date=2005-12-23", true}, // 2005-12-24T09:43:41+11:00 is the 23rd in UTC
		{"period=2004-12-22", true},
		{"period=2004-12-23", false},
		{"contenttype=application/hl7-v3+xml", true},
		{"location=http://example.org/xds/mhd/Binary/07a6483f-732b-461e-86b6-edb665c45510", true},
		{"location:below=http://example.org/xds/", true},
		{"location:above=http://example.org/xds/mhd/Binary/07a6483f-732b-461e-86b6-edb665c45510/more", true},
		{"location=http://example.org/xds/", false},
		{"relatesto=DocumentReference/example", true},
		{"relation=appends", true},
		{"security-label=V", true},
		{"encounter=Encounter/xcda", true},
		{"description=phys", true},
		{"related=Patient/xcda", true},
		{"format=urn:ihe:pcc:handp:2008", true},
		{"event=T-D8200", true},
		{"facility=Outpatient", true},
		{"setting=General%20Medicine", true},
		{"authenticator=Organization/f001", true},
		{"custodian=Organization/f001", true},
	},
}

func TestMatchExamples(t *testing.T) {
	t.Parallel()
	for file, cases := range matchCases {
		r := load(t, file)
		for _, tc := range cases {
			c, err := ParseCriteria(r.Type(), tc.query)
			require.NoError(t, err, "%s?%s", r.Type(), tc.query)
			got, err := c.Match(r)
			require.NoError(t, err)
			require.Equal(t, tc.want, got, "%s: %s?%s", file, r.Type(), tc.query)
		}
	}
}

// Every example file needs positive and negative cases.
func TestMatchExamplesCoverBothOutcomes(t *testing.T) {
	t.Parallel()
	types := map[string][2]int{}
	for file, cases := range matchCases {
		typ, _, _ := strings.Cut(file, "-")
		n := types[typ]
		for _, c := range cases {
			if c.want {
				n[0]++
			} else {
				n[1]++
			}
		}
		types[typ] = n
	}
	for _, typ := range listedTypes {
		require.Positive(t, types[typ][0], "%s has no positive case", typ)
		require.Positive(t, types[typ][1], "%s has no negative case", typ)
	}
}

func TestMatchOtherType(t *testing.T) {
	t.Parallel()
	c, err := ParseQualified("Encounter?patient=Patient/example")
	require.NoError(t, err)
	ok, err := c.Match(load(t, "Condition-example"))
	require.NoError(t, err)
	require.False(t, ok)
	_, err = c.Match(nil)
	require.Error(t, err)
}

func TestMatchJSON(t *testing.T) {
	t.Parallel()
	c, err := ParseQualified("Encounter?status=finished")
	require.NoError(t, err)
	ok, err := c.MatchJSON([]byte(`{"resourceType":"Encounter","status":"finished"}`))
	require.NoError(t, err)
	require.True(t, ok)
	_, err = c.MatchJSON([]byte(`[1]`))
	require.Error(t, err)
	_, err = c.MatchJSON([]byte(`{"status":"finished"}`))
	require.Error(t, err)
}

// Constructed resources for cases the examples do not exercise.
func TestMatchConstructed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		resource string
		query    string
		want     bool
	}{
		// Timing.event
		{`{"resourceType":"ServiceRequest","occurrenceTiming":{"event":["2020-05-01T10:00:00Z","2021-01-01"]}}`, "occurrence=2021", true},
		{`{"resourceType":"ServiceRequest","occurrenceTiming":{"event":["2020-05-01T10:00:00Z"]}}`, "occurrence=2021", false},
		{`{"resourceType":"ServiceRequest","occurrenceTiming":{"event":["2020-05-01T10:00:00Z"]}}`, "occurrence=lt2021", true},
		// Range (Condition onsetRange), unbounded high
		{`{"resourceType":"Condition","onsetRange":{"low":{"value":40,"system":"http://unitsofmeasure.org","code":"a"}}}`, "onset-age=gt60", true},
		{`{"resourceType":"Condition","onsetRange":{"low":{"value":40,"code":"a"},"high":{"value":50,"code":"a"}}}`, "onset-age=gt60", false},
		{`{"resourceType":"Condition","onsetRange":{"low":{"value":40,"code":"a"},"high":{"value":50,"code":"a"}}}`, "onset-age=le40||a", true},
		{`{"resourceType":"Condition","onsetRange":{"low":{"value":40,"code":"a"},"high":{"value":50,"code":"a"}}}`, "onset-age=sa30", true},
		// reference target filter: patient only matches Patient references
		{`{"resourceType":"Encounter","subject":{"reference":"Group/g1"}}`, "patient=g1", false},
		{`{"resourceType":"Encounter","subject":{"reference":"Group/g1"}}`, "subject=g1", true},
		{`{"resourceType":"Encounter","subject":{"reference":"Group/g1"}}`, "patient:missing=true", true},
		{`{"resourceType":"Encounter","subject":{"type":"Patient","identifier":{"system":"urn:mrn","value":"7"}}}`, "patient:identifier=urn:mrn|7", true},
		// absolute references: another server's Patient/p1 is not Patient/p1
		// (see TestMatchLocalReferences); the same absolute URL matches
		{`{"resourceType":"Encounter","subject":{"reference":"https://a.example/fhir/Patient/p1"}}`, "patient=Patient/p1", false},
		{`{"resourceType":"Encounter","subject":{"reference":"https://a.example/fhir/Patient/p1"}}`, "patient=p1", false},
		{`{"resourceType":"Encounter","subject":{"reference":"https://a.example/fhir/Patient/p1/_history/2"}}`, "patient=https://a.example/fhir/Patient/p1", true},
		{`{"resourceType":"Encounter","subject":{"reference":"https://a.example/fhir/Patient/p1"}}`, "patient=https://a.example/fhir/Patient/p1", true},
		{`{"resourceType":"Encounter","subject":{"reference":"https://a.example/fhir/Patient/p1"}}`, "patient=https://b.example/fhir/Patient/p1", false},
		{`{"resourceType":"Encounter","subject":{"reference":"urn:uuid:0b4c2f7e-9d7a-4a53-bb7e-2f1f6c0a9e11","type":"Patient"}}`, "patient=urn:uuid:0b4c2f7e-9d7a-4a53-bb7e-2f1f6c0a9e11", true},
		// accents both ways, ß, Ł
		{`{"resourceType":"Patient","name":[{"family":"Müller-Łukasiewicz","given":["Jürgen"]}]}`, "family=muller-luk", true},
		{`{"resourceType":"Patient","name":[{"family":"Strauß"}]}`, "family=strauss", true},
		{`{"resourceType":"Patient","name":[{"family":"Strauss"}]}`, "family=Strauß", true},
		{`{"resourceType":"Patient","name":[{"family":"Jose\u0301"}]}`, "family=JOSÉ", true},
		{`{"resourceType":"Patient","name":[{"family":"Müller"}]}`, "family:exact=Muller", false},
		// canonical references with versions
		{`{"resourceType":"Observation","meta":{"profile":["http://x.org/P|2.0"]}}`, "_profile=http://x.org/P", true},
		{`{"resourceType":"Observation","meta":{"profile":["http://x.org/P|2.0"]}}`, "_profile=http://x.org/P|1.0", false},
		{`{"resourceType":"ServiceRequest","instantiatesCanonical":["http://x.org/PlanDefinition/pd|1"]}`, "instantiates-canonical=http://x.org/PlanDefinition/pd", true},
		// an escaped comma is part of the value, not an OR
		{`{"resourceType":"Patient","name":[{"family":"Smith, Jr"}]}`, `family=Smith\,%20Jr`, true},
		{`{"resourceType":"Patient","name":[{"family":"Jr"}]}`, `family=Smith\,%20Jr`, false},
		// where(system='phone')
		{`{"resourceType":"Patient","telecom":[{"system":"email","value":"a@b.c"}]}`, "phone=a@b.c", false},
		{`{"resourceType":"Patient","telecom":[{"system":"email","value":"a@b.c"}]}`, "email=a@b.c", true},
		// malformed element values are absent, never errors
		{`{"resourceType":"Patient","birthDate":"yesterday","gender":7,"name":"x"}`, "birthdate=2020", false},
		{`{"resourceType":"Patient","birthDate":"yesterday","gender":7,"name":"x"}`, "gender:not=male", true},
		{`{"resourceType":"Patient","birthDate":"yesterday","gender":7,"name":"x"}`, "name=x", false},
		// number
		{`{"resourceType":"RiskAssessment","prediction":[{"probabilityDecimal":0.25}]}`, "probability=0.25", true},
		{`{"resourceType":"RiskAssessment","prediction":[{"probabilityDecimal":0.25}]}`, "probability=gt0.3", false},
		{`{"resourceType":"RiskAssessment","prediction":[{"probabilityDecimal":0.25}]}`, "probability=0.3", true}, // 0.3 means [0.25, 0.35)
		// Money as quantity
		{`{"resourceType":"ChargeItem","priceOverride":{"value":12.5,"currency":"EUR"}}`, "price-override=12.5||EUR", true},
		{`{"resourceType":"ChargeItem","priceOverride":{"value":12.5,"currency":"EUR"}}`, "price-override=12.5|urn:iso:std:iso:4217|USD", false},
		// boolean token, tokens on primitives ignore the system
		{`{"resourceType":"Patient","active":false}`, "active=false", true},
		{`{"resourceType":"Patient","active":false}`, "active:missing=false", true},
		{`{"resourceType":"Patient"}`, "active:missing=true", true},
	}
	for _, tc := range cases {
		r, err := NewResource([]byte(tc.resource))
		require.NoError(t, err)
		c, err := ParseCriteria(r.Type(), tc.query)
		require.NoError(t, err, tc.query)
		got, err := c.Match(r)
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "%s ? %s", tc.resource, tc.query)
	}
}

// TestMatchLocalReferences: a reference clause's value means the same
// resource as the element's reference only when both are local to the base
// the resource is stored at (fhir.LocalReference), or both are the same
// other server's URL.
func TestMatchLocalReferences(t *testing.T) {
	t.Parallel()
	const base = "http://localhost:8080/fhir"
	local := []string{"Patient/p1", "Patient/p1/_history/3", base + "/Patient/p1", base + "/Patient/p1/_history/1", "HTTP://LOCALHOST:8080/fhir/Patient/p1"}
	foreign := []string{
		"https://other.example/fhir/Patient/p1", "http://localhost:8080/fhir/../fhir/Patient/p1", "http://localhost:8080/fhirx/Patient/p1",
		"http://localhost:8080/FHIR/Patient/p1", "http://localhost:8080/fhir/Patient/p%31", "https://localhost:8080/fhir/Patient/p1",
		"http://localhost:8080/fhir/Patient/p1?x=1", "http://user@localhost:8080/fhir/Patient/p1", "#p1", "urn:uuid:p1",
	}
	values := []string{"Patient/p1", "p1", base + "/Patient/p1", "Patient/p1/_history/9", "HTTP://localhost:8080/fhir/Patient/p1"}
	for _, ref := range append(append([]string{}, local...), foreign...) {
		r, err := NewResource([]byte(`{"resourceType":"Encounter","subject":{"reference":"` + ref + `","type":"Patient"}}`))
		require.NoError(t, err)
		r = r.WithBase(base)
		isLocal := slices.Contains(local, ref)
		for _, v := range values {
			for _, q := range []string{"patient=" + url.QueryEscape(v), "subject:Patient=" + url.QueryEscape(v)} {
				c, err := ParseCriteria("Encounter", q)
				require.NoError(t, err, q)
				got, err := c.Match(r)
				require.NoError(t, err)
				require.Equal(t, isLocal, got, "%s ? %s", ref, q)
			}
		}
		want := []string(nil)
		if isLocal {
			want = []string{"Patient/p1"}
		}
		require.Equal(t, want, r.References("patient"), ref)
	}
	// Without a base only relative references are local.
	r, err := NewResource([]byte(`{"resourceType":"Encounter","subject":{"reference":"` + base + `/Patient/p1"}}`))
	require.NoError(t, err)
	c, err := ParseCriteria("Encounter", "patient=Patient/p1")
	require.NoError(t, err)
	got, err := c.Match(r)
	require.NoError(t, err)
	require.False(t, got)
	require.Empty(t, r.References("patient"))
	// Another server's reference matches only the same server's value.
	r, err = NewResource([]byte(`{"resourceType":"Encounter","subject":{"reference":"https://other.example/fhir/Patient/p1"}}`))
	require.NoError(t, err)
	r = r.WithBase(base)
	for v, want := range map[string]bool{"https://other.example/fhir/Patient/p1": true, "https://other.example/fhir/Patient/p1/_history/2": true, "https://other.example/Patient/p1": false, "Patient/p1": false} {
		c, err := ParseCriteria("Encounter", "patient="+url.QueryEscape(v))
		require.NoError(t, err)
		got, err := c.Match(r)
		require.NoError(t, err)
		require.Equal(t, want, got, v)
	}
}
