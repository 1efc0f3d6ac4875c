package fhirtest

import "testing"

func TestRequireValidR4AcceptsValidResources(t *testing.T) {
	RequireValidR4(t, []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"x"}]}`))
	RequireValidR4(t, []byte(`{"resourceType":"Bundle","type":"searchset","entry":[{"fullUrl":"http://h/fhir/Patient/1","resource":{"resourceType":"Patient","id":"1"},"search":{"mode":"match"}}]}`))
}

func TestRequireValidR4RejectsInvalidResources(t *testing.T) {
	ft := &fakeT{TB: t}
	RequireValidR4(ft, []byte(`{"resourceType":"Patient","active":"yes"}`))
	if !ft.failed {
		t.Fatal("an invalid Patient passed validation")
	}
}

// fakeT records Fatalf instead of stopping the test, to test the helper itself.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper()                        {}
func (f *fakeT) Fatalf(format string, a ...any) { f.failed = true }
