package r4

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// invalidExamples are official examples that are not valid R4, with why.
var invalidExamples = map[string]string{}

// TestExamplesAreValid: every R4 example of the core resource types
// (testdata/examples, from hl7.fhir.r4.examples@4.0.1) is accepted.
func TestExamplesAreValid(t *testing.T) {
	for _, f := range exampleFiles(t) {
		name := filepath.Base(f)
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ps := validateBytes(t, raw)
		if why, known := invalidExamples[name]; known {
			if len(ps) == 0 {
				t.Errorf("%s: listed as invalid (%s) but accepted", name, why)
			}
			continue
		}
		for _, p := range ps {
			t.Errorf("%s: %s: %s (%s)", name, p.Expression, p.Message, p.Code)
		}
	}
}

// packageInvalid lists the package's examples (all types) that are not
// valid R4, and why; TestPackageExamples checks the whole package when
// R4_PACKAGE names it (make generate does).
var packageInvalid = map[string]string{
	"Questionnaire-qs1.json":        "items without the required linkId (Questionnaire.item.linkId is 1..1)",
	"ig-r4.json":                    "ImplementationGuide without the required name and status",
	"ImplementationGuide-fhir.json": "the same ImplementationGuide as ig-r4.json",
	"SearchParameter-questionnaireresponse-extensions-QuestionnaireResponse-item-subject.json": "id longer than 64 characters",
}

func TestPackageExamples(t *testing.T) {
	dir := os.Getenv("R4_PACKAGE")
	if dir == "" {
		t.Skip("set R4_PACKAGE to the unpacked hl7.fhir.r4.examples package to check all its examples")
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		name := filepath.Base(f)
		if name == "package.json" || strings.HasPrefix(name, ".") {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		ps := validateBytes(t, raw)
		if _, known := packageInvalid[name]; known || (strings.HasPrefix(name, "SearchParameter-") && onlyMissingBase(ps)) {
			continue
		}
		for _, p := range ps {
			t.Errorf("%s: %s: %s (%s)", name, p.Expression, p.Message, p.Code)
		}
	}
	t.Logf("%d examples checked", checked)
}

// onlyMissingBase: the package's extension SearchParameters lack the
// required base (SearchParameter.base is 1..*).
func onlyMissingBase(ps []Problem) bool {
	for _, p := range ps {
		if p.Expression != "SearchParameter.base" {
			return false
		}
	}
	return len(ps) > 0
}
