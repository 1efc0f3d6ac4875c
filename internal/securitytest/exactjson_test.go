package securitytest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const labCategory = `"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}]`

// labResult is a final laboratory Observation (fires new-lab-result) whose
// subject member is given verbatim.
func labResult(marker, subject string) string {
	return fmt.Sprintf(`{"resourceType":"Observation","status":"final",%s,"code":{"text":%q},"subject":%s}`, labCategory, marker, subject)
}

// TestCaseVariantReferenceCannotForgeAnotherPatientsRecord: a patient/
// token pinned to p1 posts an Observation whose subject is
// {"reference":"Patient/p2","Reference":"Patient/p1"}. encoding/json's
// case-insensitive reading let the compartment check see p1 (201) while the
// stored resource, the matcher and the subscriber saw Patient/p2: p2's
// full-resource lab Subscription received the forged result. Now the body
// is refused before anything reads it, nothing is stored, and the
// subscriber gets only the genuine result written after the attempts.
func TestCaseVariantReferenceCannotForgeAnotherPatientsRecord(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		admin := h.token("herald.admin")
		r := h.request("PUT", "/admin/clients/lab-watcher", admin, `{"status":"active","max_payload":"full-resource"}`, "Content-Type: application/json")
		require.Less(t, r.status, 300, string(r.body))
		watcher := h.token("system/Subscription.cruds system/*.rs", asClient("lab-watcher"))
		sub := subscriptionJSON(h.recv.srv.URL+"/p2-labs", withTopic(newLabResult), withFilter("Observation?patient=Patient/p2"), withContent("full-resource"))
		id := created(t, h.request("POST", "/fhir/Subscription", watcher, sub))
		h.waitStatus(id, "active")

		p1 := h.token("patient/*.cruds", forPatient("p1"), asClient("patient-app"))
		const forged = "FORGED-RESULT-MARKER"
		for name, subject := range map[string]string{
			"lower first":        `{"reference":"Patient/p2","Reference":"Patient/p1"}`,
			"upper first":        `{"Reference":"Patient/p1","reference":"Patient/p2"}`,
			"duplicate":          `{"reference":"Patient/p1","reference":"Patient/p2"}`,
			"escaped duplicate":  `{"reference":"Patient/p1","\u0072eference":"Patient/p2"}`,
			"case variant alone": `{"Reference":"Patient/p2"}`,
		} {
			r := h.request("POST", "/fhir/Observation", p1, labResult(forged, subject))
			require.Contains(t, []int{400, 403, 422}, r.status, "%s: %s", name, r.body)
			requireOutcome(t, r, r.status, "")
		}
		require.Zero(t, h.count("Observation"), "nothing was stored")

		// The genuine result, written after the attempts, is the only one delivered.
		sys := h.token("system/*.cruds")
		require.Equal(t, 201, h.request("POST", "/fhir/Observation", sys, labResult("GENUINE-RESULT", `{"reference":"Patient/p2"}`)).status)
		got := h.recv.waitFor(t, "the genuine result", func(got []delivered) bool {
			for _, d := range got {
				if strings.Contains(string(d.Body), "GENUINE-RESULT") {
					return true
				}
			}
			return false
		})
		for _, d := range got {
			require.NotContains(t, string(d.Body), forged, "p2's subscriber received a result forged by p1's token")
		}
	})
}

// TestEveryJSONReaderIsExact: every request body Herald reads — resources,
// Subscriptions, topics, batch and transaction Bundles and their entries,
// operation Parameters, the admin API — and the bearer token's claims are
// refused when an object repeats a member or spells one two ways. Nothing
// is stored.
func TestEveryJSONReaderIsExact(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token("system/*.cruds herald.admin")
		topic := `{"resourceType":"SubscriptionTopic","id":"variant","url":"https://herald.dev/fhir/SubscriptionTopic/variant","URL":"https://x.example/t","status":"active","resourceTrigger":[{"resource":"http://hl7.org/fhir/StructureDefinition/Encounter","supportedInteraction":["create"]}]}`
		cases := []struct{ name, method, path, body, contentType string }{
			{"resource", "POST", "/fhir/Patient", `{"resourceType":"Patient","active":true,"Active":false}`, ""},
			{"resource nested", "POST", "/fhir/Patient", `{"resourceType":"Patient","name":[{"family":"A","Family":"B"}]}`, ""},
			{"resource duplicate", "PUT", "/fhir/Patient/p9", `{"resourceType":"Patient","id":"p9","gender":"male","gender":"female"}`, ""},
			{"resourceType twice", "POST", "/fhir/Patient", `{"resourceType":"Patient","ResourceType":"Practitioner"}`, ""},
			{"subscription", "POST", "/fhir/Subscription", strings.Replace(subscriptionJSON(hookBase+"x"), `"reason":`, `"Reason":"x","reason":`, 1), ""},
			{"topic", "PUT", "/fhir/SubscriptionTopic/variant", topic, ""},
			{"batch", "POST", "/fhir", `{"resourceType":"Bundle","type":"batch","Type":"transaction","entry":[]}`, ""},
			{"batch entry", "POST", "/fhir", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"POST","url":"Patient","Url":"Practitioner"},"resource":{"resourceType":"Patient"}}]}`, ""},
			{"transaction resource", "POST", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"Patient"},"resource":{"resourceType":"Patient","active":true,"ACTIVE":false}}]}`, ""},
			{"parameters", "POST", "/fhir/Subscription/$status", `{"resourceType":"Parameters","parameter":[{"name":"status","Name":"id","valueCode":"active"}]}`, ""},
			{"admin endpoint", "POST", "/admin/endpoints", `{"url_prefix":"https://a.example/","URL_prefix":"https://b.example/"}`, "application/json"},
			{"admin client", "PUT", "/admin/clients/c1", `{"status":"active","Status":"suspended"}`, "application/json"},
		}
		for _, c := range cases {
			var headers []string
			if c.contentType != "" {
				headers = append(headers, "Content-Type: "+c.contentType)
			}
			mention := "differ only in case"
			if strings.Contains(c.name, "duplicate") {
				mention = "duplicate member"
			}
			requireOutcome(t, h.request(c.method, c.path, tok, c.body, headers...), 400, mention)
		}
		require.Zero(t, h.count("Patient"))
		require.Empty(t, h.states())
		require.Nil(t, h.history("SubscriptionTopic", "variant"))
		require.Len(t, h.endpoints(), 2, "only the harness's own allow-list entries")

		// Token claims: a second spelling of "patient" or a repeated claim
		// is refused, not read one way by the verifier and another by scopes.
		for name, extra := range map[string]string{
			"case variant patient": `"patient":"p1","Patient":"p2"`,
			"duplicate patient":    `"patient":"p1","patient":"p2"`,
			"case variant scope":   `"patient":"p1","Scope":"system/*.cruds"`,
		} {
			raw := handSignedHS256(t, h.hsKey, `{"client_id":"c","sub":"c","scope":"patient/*.rs","iss":"`+issuer+`","aud":"`+audience+`","exp":`+fmt.Sprint(time.Now().Add(time.Hour).Unix())+`,`+extra+`}`)
			requireOutcome(t, h.request("GET", "/fhir/Patient", raw, ""), 401, "")
			_ = name
		}
	})
}

// handSignedHS256 signs a claims text as given (encoding/json maps cannot
// hold a repeated member).
func handSignedHS256(t *testing.T, key []byte, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(payload))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}
