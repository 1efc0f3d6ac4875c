package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// With R4_PACKAGE pointing at the unpacked hl7.fhir.r4.examples@4.0.1
// package, the committed structure table must be what the generator produces.
func TestStructureTableUpToDate(t *testing.T) {
	requireUpToDate(t, filepath.Join("internal", "r4", "r4.tab"), func(dir, out string) error { return writeStructure(dir, out) })
}

// requireUpToDate compares the committed file at path (from the repository
// root) with what write makes of the package at R4_PACKAGE.
func requireUpToDate(t *testing.T, path string, write func(dir, out string) error) {
	t.Helper()
	dir := os.Getenv("R4_PACKAGE")
	if dir == "" {
		t.Skip("set R4_PACKAGE to the unpacked R4 package to compare " + path)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := write(dir, out); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join("..", "..", path))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, committed) {
		t.Fatal(path + " is stale: run make generate")
	}
}

func TestValueSetExpansion(t *testing.T) {
	vs := &valueSets{defs: map[string]*valueSetDef{}, systems: map[string]*codeSystemDef{}, byURL: map[string]int{}}
	def := func(url, compose string) {
		d := &valueSetDef{}
		if err := json.Unmarshal([]byte(`{"url":"`+url+`","compose":`+compose+`}`), d); err != nil {
			t.Fatal(err)
		}
		vs.defs[url] = d
	}
	vs.systems["s"] = &codeSystemDef{URL: "s", Content: "complete", Concept: []concept{{Code: "a", Concept: []concept{{Code: "a1"}}}, {Code: "b"}}}
	vs.systems["frag"] = &codeSystemDef{URL: "frag", Content: "fragment", Concept: []concept{{Code: "x"}}}
	def("all", `{"include":[{"system":"s"}]}`)
	def("listed", `{"include":[{"system":"external","concept":[{"code":"s"},{"code":"min"}]}]}`)
	def("nested", `{"include":[{"valueSet":["all|4.0.1"]}],"exclude":[{"system":"s","concept":[{"code":"b"}]}]}`)
	def("filtered", `{"include":[{"system":"s","filter":[{"property":"concept","op":"is-a","value":"a"}]}]}`)
	def("fragment", `{"include":[{"system":"frag"}]}`)
	for url, want := range map[string][]string{
		"all": {"a", "a1", "b"}, "listed": {"min", "s"}, "nested|4.0.1": {"a", "a1"}, "filtered": nil, "fragment": nil, "missing": nil,
	} {
		i, ok := vs.index(url)
		if ok != (want != nil) {
			t.Errorf("%s: enumerable %v", url, ok)
			continue
		}
		if ok && !slices.Equal(vs.used[i].codes, want) {
			t.Errorf("%s: codes %q, want %q", url, vs.used[i].codes, want)
		}
	}
}

// With R4_PACKAGE set, the committed summary table must be what the
// generator produces.
func TestSummaryTableUpToDate(t *testing.T) {
	requireUpToDate(t, filepath.Join("internal", "resources", "summary_gen.go"), func(dir, out string) error {
		types, err := resourceTypes(dir)
		if err != nil {
			return err
		}
		return writeSummary(dir, types, out)
	})
}

func TestSummaryElements(t *testing.T) {
	el := func(path string, min int, summary bool) elementDef {
		return elementDef{Path: path, Min: min, IsSummary: summary}
	}
	sd := &structureDef{Type: "Observation"}
	sd.Snapshot.Element = []elementDef{el("Observation", 0, false), el("Observation.id", 0, true), el("Observation.text", 0, false),
		el("Observation.status", 1, true), el("Observation.category", 0, false), el("Observation.code", 1, true),
		el("Observation.value[x]", 0, true), el("Observation.component.code", 1, true)}
	summary, mandatory := summaryElements(map[string]*structureDef{"Observation": sd}, []string{"Observation"})
	if want := []string{"id", "status", "code", "value"}; !slices.Equal(summary["Observation"], want) {
		t.Fatalf("summary = %v, want %v", summary["Observation"], want)
	}
	if want := []string{"status", "code"}; !slices.Equal(mandatory["Observation"], want) {
		t.Fatalf("mandatory = %v, want %v", mandatory["Observation"], want)
	}
}
