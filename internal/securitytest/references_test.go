package securitytest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// encounterAbout is an in-progress Encounter whose subject is ref, as written.
func encounterAbout(id, ref string) string {
	return fmt.Sprintf(`{"resourceType":"Encounter","id":%q,"status":"in-progress","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":%q}}`, id, ref)
}

func withMaxCount(n int) func(map[string]any) {
	return func(m map[string]any) {
		ch := channel(m)
		ch["extension"] = append(ch["extension"].([]any), map[string]any{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-max-count", "valuePositiveInt": n})
	}
}

// TestForeignPatientReferenceIsNotLocal: a reference with another server's
// base (https://other.example/fhir/Patient/p1), or one that only looks like
// Herald's base, is not Herald's Patient/p1. A Subscription pinned to
// Patient/p1 gets nothing for Encounters about them, and does get the one
// whose subject is written with Herald's own base; an unpinned Subscription
// is told about every Encounter, but the foreign ones never include the
// local Patient/p1 as additional context.
func TestForeignPatientReferenceIsNotLocal(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		sys := h.token("system/*.cruds")
		require.Equal(t, 201, h.request("PUT", "/fhir/Patient/p1", sys, `{"resourceType":"Patient","id":"p1"}`).status)
		owner := h.token(subScope + " system/Patient.rs system/Practitioner.rs system/Location.rs system/Organization.rs")
		pinned := created(t, h.request("POST", "/fhir/Subscription", owner, subscriptionJSON(h.recv.srv.URL+"/pinned", withMaxCount(1))))
		// The bare id is not indexed by patient: the matcher alone decides.
		byID := created(t, h.request("POST", "/fhir/Subscription", owner, subscriptionJSON(h.recv.srv.URL+"/by-id", withMaxCount(1), withFilter("Encounter?patient=p1"))))
		all := created(t, h.request("POST", "/fhir/Subscription", owner, subscriptionJSON(h.recv.srv.URL+"/all", withMaxCount(1),
			withFilter("Encounter?class=http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB"))))
		for _, id := range []string{pinned, byID, all} {
			h.waitStatus(id, "active")
		}

		foreign := map[string]string{
			"e-other":    "https://other.example/fhir/Patient/p1",
			"e-dots":     h.base + "/../fhir/Patient/p1",
			"e-prefix":   h.base + "x/Patient/p1",
			"e-query":    h.base + "/Patient/p1?x=1",
			"e-encoded":  h.base + "/Patient/p%31",
			"e-userinfo": strings.Replace(h.base, "://", "://user@", 1) + "/Patient/p1",
		}
		for id, ref := range foreign {
			r := h.request("PUT", "/fhir/Encounter/"+id, sys, encounterAbout(id, ref))
			require.Equal(t, 201, r.status, string(r.body))
		}
		// Written last: once its notification arrives, those of the writes
		// before it have too (one Subscription's events go out in order).
		require.Equal(t, 201, h.request("PUT", "/fhir/Encounter/e-own", sys, encounterAbout("e-own", h.base+"/Patient/p1")).status)

		got := h.recv.waitFor(t, "e-own on every Subscription", func(got []delivered) bool {
			n := 0
			for _, d := range got {
				if strings.Contains(string(d.Body), "Encounter/e-own") {
					n++
				}
			}
			return n == 3
		})
		local := h.base + "/Patient/p1"
		allSaw := map[string]bool{}
		for _, d := range got {
			body := string(d.Body)
			for id := range foreign {
				if !strings.Contains(body, "Encounter/"+id) {
					continue
				}
				require.Equal(t, "/all", d.Path, "%s (subject %s) was notified to a Subscription pinned to the local Patient/p1", id, foreign[id])
				require.NotContains(t, body, local, "%s (subject %s) included the local Patient/p1", id, foreign[id])
				allSaw[id] = true
			}
			if strings.Contains(body, "Encounter/e-own") {
				require.Contains(t, body, local, "the Encounter written with Herald's own base includes Patient/p1")
			}
		}
		require.Len(t, allSaw, len(foreign), "the unpinned Subscription is told about every Encounter")
	})
}
