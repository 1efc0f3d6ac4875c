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
		require.Contains(t, []int{200, 422}, r.status, string(r.body)) // entries fail alone, or the whole batch
		require.Empty(t, h.history("Patient", "bad"), "an invalid Patient was stored through a batch: %s", r.body)
		// The same resource written directly is refused.
		requireOutcome(t, h.request("PUT", "/fhir/Patient/bad2", sys, `{"resourceType":"Patient","id":"bad2","birthDate":"not-a-date","gender":"banana","Name":[{"family":"X"}]}`), 422, "")
	})
}
