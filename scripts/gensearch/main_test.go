package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestSplitUnion(t *testing.T) {
	got, err := splitUnion("(Observation.value as Quantity) | Observation.code.where(system='a|b') | X.y")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"(Observation.value as Quantity)", "Observation.code.where(system='a|b')", "X.y"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
	if _, err := splitUnion("(a | b"); err == nil {
		t.Fatal("unbalanced parentheses accepted")
	}
}

func TestParseFragment(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []op
	}{
		{"Encounter.subject.where(resolve() is Patient)", []op{{kind: "root", name: "Encounter"}, {kind: "child", name: "subject"}, {kind: "resolveIs", name: "Patient"}}},
		{"(Observation.value as Quantity)", []op{{kind: "root", name: "Observation"}, {kind: "child", name: "value"}, {kind: "cast", name: "Quantity"}}},
		{"(Observation.value as CodeableConcept).text", []op{{kind: "root", name: "Observation"}, {kind: "child", name: "value"}, {kind: "cast", name: "CodeableConcept"}, {kind: "child", name: "text"}}},
		{"Condition.onset.as(Age)", []op{{kind: "root", name: "Condition"}, {kind: "child", name: "onset"}, {kind: "cast", name: "Age"}}},
		{"X.value.ofType(Reference)", []op{{kind: "root", name: "X"}, {kind: "child", name: "value"}, {kind: "cast", name: "Reference"}}},
		{"Patient.telecom.where(system='phone')", []op{{kind: "root", name: "Patient"}, {kind: "child", name: "telecom"}, {kind: "whereEq", name: "system", value: "phone"}}},
		{"Device.extension('http://x')", []op{{kind: "root", name: "Device"}, {kind: "extension", name: "http://x"}}},
	} {
		got, err := parseFragment(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("%s: got %+v", tc.in, got)
		}
	}
	for _, bad := range []string{
		"Patient.deceased.exists() and Patient.deceased != false",
		"Bundle.entry[0].resource",
		"QuestionnaireResponse.item.where(hasExtension('x')).answer",
		"name",
		"Patient.name.first()",
		"a.where(b='c\\'d')",
	} {
		if ops, err := parseFragment(bad); err == nil && len(ops) > 1 {
			t.Fatalf("%s: translated to %+v", bad, ops)
		}
	}
}

// With R4_PACKAGE pointing at the unpacked hl7.fhir.r4.examples@4.0.1
// package, the committed table must be what the generator produces.
func TestGeneratedFileUpToDate(t *testing.T) {
	dir := os.Getenv("R4_PACKAGE")
	if dir == "" {
		t.Skip("set R4_PACKAGE to the unpacked R4 package to compare internal/search/params_gen.go")
	}
	m, err := loadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	params, err := loadParams(dir, m)
	if err != nil {
		t.Fatal(err)
	}
	src, err := render(m, params)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join("..", "..", "internal", "search", "params_gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src, committed) {
		t.Fatal("internal/search/params_gen.go is stale: run the generator")
	}
	byKey := map[string]*genParam{}
	for _, p := range params {
		byKey[p.base+"."+p.code] = p
	}
	// Choice types resolve to their JSON names.
	if p := byKey["Observation.value-quantity"]; p == nil || len(p.paths) != 1 || p.paths[0].steps[0].name != "valueQuantity" || len(p.notes) != 1 {
		t.Fatalf("Observation.value-quantity: %+v", p)
	}
	if p := byKey["Condition.onset-age"]; p == nil || p.paths[0].steps[0].name != "onsetAge" || p.paths[0].typ != "Quantity" {
		t.Fatalf("Condition.onset-age: %+v", p)
	}
	if p := byKey["Patient.deceased"]; p == nil || p.unsupported == "" {
		t.Fatalf("Patient.deceased should be unsupported: %+v", p)
	}
}
