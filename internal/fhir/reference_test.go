package fhir

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const ownBase = "http://localhost:8080/fhir"

func TestLocalReference(t *testing.T) {
	t.Parallel()
	local := []struct{ ref, typ, id string }{
		{"Patient/p1", "Patient", "p1"},
		{"Patient/p1/_history/2", "Patient", "p1"},
		{"Encounter/A-b.9", "Encounter", "A-b.9"},
		{ownBase + "/Patient/p1", "Patient", "p1"},
		{ownBase + "/Patient/p1/_history/7", "Patient", "p1"},
		{"HTTP://LOCALHOST:8080/fhir/Patient/p1", "Patient", "p1"}, // scheme and host are case-insensitive
		{"Http://LocalHost:8080/fhir/Patient/p1", "Patient", "p1"},
		{"SubscriptionTopic/t1", "SubscriptionTopic", "t1"},
	}
	for _, c := range local {
		for _, base := range []string{ownBase, ownBase + "/"} {
			typ, id, ok := LocalReference(c.ref, base)
			require.True(t, ok, "%s under %s", c.ref, base)
			require.Equal(t, c.typ, typ, c.ref)
			require.Equal(t, c.id, id, c.ref)
		}
	}
	notLocal := []string{
		"",
		"https://other.example/fhir/Patient/p1",
		"https://localhost:8080/fhir/Patient/p1", // another scheme
		"http://localhost:8081/fhir/Patient/p1",  // another port
		"http://localhost/fhir/Patient/p1",
		"http://localhost:8080/FHIR/Patient/p1", // the path is case-sensitive
		"http://localhost:8080/fhirx/Patient/p1",
		"http://localhost:8080/fhir/../fhir/Patient/p1",
		"http://localhost:8080/fhir/./Patient/p1",
		"http://localhost:8080/fhir//Patient/p1",
		"http://localhost:8080/other/../fhir/Patient/p1",
		"http://localhost:8080/%66hir/Patient/p1",
		"http://localhost:8080/fhir/Patient/p%31",
		"http://localhost:8080/fhir/Patient%2Fp1",
		"http://localhost:8080/fhir/Patient/p1?x=1",
		"http://localhost:8080/fhir/Patient/p1#frag",
		"http://localhost:8080/fhir/Patient/p1/",
		"http://user@localhost:8080/fhir/Patient/p1",
		"http://localhost:8080@other.example/fhir/Patient/p1",
		"http://localhost:8080.other.example/fhir/Patient/p1",
		"http://locaLhost\u212a:8080/fhir/Patient/p1",
		"http://locaLhos\u212a:8080/fhir/Patient/p1", // the Kelvin sign is not k
		"//localhost:8080/fhir/Patient/p1",
		"/Patient/p1",
		"./Patient/p1",
		"../fhir/Patient/p1",
		"fhir/Patient/p1",
		"Patient/p1/extra",
		"Patient/p1/_history",
		"Patient/p1/_history/",
		"Patient/p1/_history/2/x",
		"Patient/p1/_history/..",
		"Patient/..",
		"Patient/.",
		"Patient/",
		"Patient",
		"p1",
		"patient/p1",
		"Patients/p1",
		"Patient/" + strings.Repeat("a", 65),
		"Patient/p1 ",
		"Patient/p\u00e9",
		"#p1",
		"urn:uuid:0f9b4a0e-2f55-4c3b-9a5f-6f1f0b2f7c11",
		"urn:oid:1.2.3",
		"Patient/p1?x=1",
		"Patient/p1#x",
		"mailto:Patient/p1",
		"Patient:p1",
	}
	for _, ref := range notLocal {
		_, _, ok := LocalReference(ref, ownBase)
		require.False(t, ok, "%q is not local", ref)
	}
	_, _, ok := LocalReference(ownBase+"/Patient/p1", "")
	require.False(t, ok, "without a base only relative references are local")
	_, _, ok = LocalReference("Patient/p1", "")
	require.True(t, ok)
	_, _, ok = LocalReference("https://h.example/Patient/p1", "https://h.example")
	require.True(t, ok, "a base without a path")
	_, _, ok = LocalReference("https://h.example.evil/Patient/p1", "https://h.example")
	require.False(t, ok)
}

func TestPatientID(t *testing.T) {
	t.Parallel()
	id, ok := PatientID(ownBase+"/Patient/p1", ownBase)
	require.True(t, ok)
	require.Equal(t, "p1", id)
	for _, ref := range []string{"https://other.example/fhir/Patient/p1", "Encounter/p1", ownBase + "/../fhir/Patient/p1", "Patient/p1/_history/x/y"} {
		_, ok := PatientID(ref, ownBase)
		require.False(t, ok, ref)
	}
}

func TestLocalReferenceDoesNotAllocate(t *testing.T) {
	refs := []string{"Patient/p1/_history/2", ownBase + "/Patient/p1", "https://other.example/fhir/Patient/p1"}
	require.Zero(t, testing.AllocsPerRun(100, func() {
		for _, r := range refs {
			LocalReference(r, ownBase)
		}
	}))
}

// FuzzLocalReference: whatever is local reads back as "Type/id" that is
// itself local, under the base and without it.
func FuzzLocalReference(f *testing.F) {
	for _, s := range []string{"Patient/p1", "Patient/p1/_history/2", ownBase + "/Patient/p1", "HTTP://LOCALHOST:8080/fhir/Patient/p1",
		ownBase + "/../fhir/Patient/p1", "https://other.example/fhir/Patient/p1", "urn:uuid:x", "#c", "Patient/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		typ, id, ok := LocalReference(ref, ownBase)
		if !ok {
			if typ != "" || id != "" {
				t.Fatalf("%q: not local but %q %q", ref, typ, id)
			}
			return
		}
		if !IsResourceType(typ) || !ValidID(id) {
			t.Fatalf("%q: local as %q/%q", ref, typ, id)
		}
		if !strings.HasPrefix(ref, typ+"/"+id) && !asciiEqualFold(ref[:min(len(ref), len(ownBase)+1)], ownBase+"/") {
			t.Fatalf("%q: local, but neither relative nor under the base", ref)
		}
		for _, again := range []string{typ + "/" + id, ownBase + "/" + typ + "/" + id} {
			if t2, id2, ok := LocalReference(again, ownBase); !ok || t2 != typ || id2 != id {
				t.Fatalf("%q read back as %q: %q %q %v", ref, again, t2, id2, ok)
			}
		}
		if strings.ContainsAny(ref, "?#%@\\ ") || strings.Contains(ref, "/./") || strings.Contains(ref, "/../") || strings.Contains(ref, "//"+typ) {
			t.Fatalf("%q: local despite a query, fragment, escape or dot segment", ref)
		}
	})
}
