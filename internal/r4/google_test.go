package r4

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
)

// The cross-check with a validator written elsewhere: google/fhir's
// jsonformat (R4), which checks reference targets too (we do not).

func googleR4(t testing.TB) *jsonformat.Unmarshaller {
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestGoogleRefusesTheMutations: every mutation marked google is refused by
// google/fhir too; the others it accepts (it does not check that rule), so
// the column stays a true record.
func TestGoogleRefusesTheMutations(t *testing.T) {
	u := googleR4(t)
	for _, m := range mutations {
		t.Run(m.name, func(t *testing.T) {
			_, err := u.UnmarshalR4(mutate(t, m))
			if refused := err != nil; refused != m.google {
				t.Errorf("google/fhir refused=%v (%v), table says %v", refused, err, m.google)
			}
		})
	}
}

// TestGoogleAcceptedExamplesAreAccepted: what google/fhir accepts, we accept.
func TestGoogleAcceptedExamplesAreAccepted(t *testing.T) {
	u := googleR4(t)
	accepted := 0
	for _, f := range exampleFiles(t) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.UnmarshalR4(raw); err != nil {
			continue
		}
		accepted++
		for _, p := range validateBytes(t, raw) {
			t.Errorf("%s: google/fhir accepts, we refuse: %s: %s", filepath.Base(f), p.Expression, p.Message)
		}
	}
	if accepted < len(exampleFiles(t))-5 {
		t.Errorf("google/fhir accepts only %d examples", accepted)
	}
}
