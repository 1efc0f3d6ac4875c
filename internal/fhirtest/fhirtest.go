// Package fhirtest checks, in tests, that JSON Herald emits is valid FHIR R4
// according to an independent implementation: google/fhir's jsonformat.
package fhirtest

import (
	"testing"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
)

// RequireValidR4 fails the test unless body parses as a valid R4 resource.
func RequireValidR4(t testing.TB, body []byte) {
	t.Helper()
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatalf("fhirtest: %v", err)
	}
	if _, err := u.UnmarshalR4(body); err != nil {
		t.Fatalf("not valid FHIR R4 (google/fhir jsonformat): %v\n%s", err, clip(body))
	}
}

func clip(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}
