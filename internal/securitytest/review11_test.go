package securitytest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/fhir"
)

// TestTransactionURNRewriteStoresInvalidR4: a transaction is validated as a
// whole, then resolveRefs rewrites every JSON string equal to an entry's
// urn: fullUrl into Type/id, and the rewritten bytes are stored without
// being validated again. An Extension.valueUuid (or valueOid) that equals a
// fullUrl becomes "Patient/<id>", which is not a uuid: Herald stores a
// resource that its own R4 validation refuses on a direct write.
func TestTransactionURNRewriteStoresInvalidR4(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		sys := h.token("system/*.cruds")
		const urn = "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"
		const oid = "urn:oid:1.2.3.4"
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[
		 {"fullUrl":"` + urn + `","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
		 {"fullUrl":"` + oid + `","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
		 {"resource":{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},
		   "extension":[{"url":"http://example.org/u","valueUuid":"` + urn + `"},{"url":"http://example.org/o","valueOid":"` + oid + `"}]},
		  "request":{"method":"PUT","url":"Observation/o1"}}]}`
		r := h.request("POST", "/fhir", sys, tx)
		if r.status != 200 {
			return // refused as a whole: nothing invalid stored
		}
		vs := h.history("Observation", "o1")
		require.Len(t, vs, 1)
		stored, err := fhir.Parse(vs[0].Body)
		require.NoError(t, err)
		require.NoError(t, fhir.Validate(stored), "the stored Observation is not valid R4: %s", vs[0].Body)
	})
}

// TestBatchProblemCapHidesLaterEntries: a Bundle is validated once, as a
// whole, and r4.Validate stops at MaxProblems (100) for the whole tree. A
// batch whose first entry has 100 problems leaves every later entry with
// none recorded, so an invalid resource in a later entry is stored without
// R4 validation.
func TestBatchProblemCapHidesLaterEntries(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		sys := h.token("system/*.cruds")
		var junk strings.Builder
		for i := 0; i < 100; i++ {
			fmt.Fprintf(&junk, `,"junk%d":1`, i)
		}
		batch := `{"resourceType":"Bundle","type":"batch","entry":[
		 {"resource":{"resourceType":"Patient"` + junk.String() + `},"request":{"method":"POST","url":"Patient"}},
		 {"resource":{"resourceType":"Patient","id":"bad","birthDate":"not-a-date","gender":"banana","Name":[{"family":"X"}]},"request":{"method":"PUT","url":"Patient/bad"}}]}`
		r := h.request("POST", "/fhir", sys, batch)
		require.Contains(t, []int{200, 422}, r.status) // entries fail alone, or the whole batch
		require.Empty(t, h.history("Patient", "bad"), "an invalid Patient was stored through a batch")
		// The same resource written directly is refused.
		requireOutcome(t, h.request("PUT", "/fhir/Patient/bad2", sys, `{"resourceType":"Patient","id":"bad2","birthDate":"not-a-date","gender":"banana","Name":[{"family":"X"}]}`), 422, "")
	})
}

// TestBatchCapLetsPatientTokenWriteIntoAnotherCompartment: with R4
// validation skipped for the later entries of a batch (the 100-problem cap),
// a patient/ token for p1 could store an Observation whose subject is an
// array naming Patient/p2 and a bogus "patient" naming p1: the compartment
// check reads only the object "patient" (p1, so the write is allowed), while
// the matcher reads the subject array, so Herald's own searches (and pinned
// Subscriptions) file it under Patient/p2.
func TestBatchCapLetsPatientTokenWriteIntoAnotherCompartment(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		sys := h.token("system/*.cruds")
		for _, p := range []string{"p1", "p2"} {
			require.Equal(t, 201, h.request("PUT", "/fhir/Patient/"+p, sys, `{"resourceType":"Patient","id":"`+p+`"}`).status)
		}
		p1 := h.token("patient/Observation.cruds", forPatient("p1"))
		var junk strings.Builder
		for i := 0; i < 100; i++ {
			fmt.Fprintf(&junk, `,"junk%d":1`, i)
		}
		batch := `{"resourceType":"Bundle","type":"batch","entry":[
		 {"resource":{"resourceType":"Observation"` + junk.String() + `},"request":{"method":"POST","url":"Observation"}},
		 {"resource":{"resourceType":"Observation","status":"final","code":{"text":"forged"},
		   "subject":[{"reference":"Patient/p2"}],"patient":{"reference":"Patient/p1"}},"request":{"method":"POST","url":"Observation"}}]}`
		r := h.request("POST", "/fhir", p1, batch)
		require.Contains(t, []int{200, 403, 422}, r.status)
		require.Zero(t, h.count("Observation"), "p1's token stored an Observation")
		ids := entryIDs(t, h.request("GET", "/fhir/Observation?patient=Patient/p2", sys, ""))
		require.Empty(t, ids, "an Observation written by p1's token is filed under Patient/p2")
	})
}
