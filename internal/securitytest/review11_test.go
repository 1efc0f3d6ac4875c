package securitytest

import (
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
