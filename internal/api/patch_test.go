package api_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/api"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store"
)

const jsonPatch = "Content-Type: application/json-patch+json"

// TestPatch: a JSON Patch makes a new version that keeps everything it does
// not name byte for byte, is validated like an update, honours If-Match and
// test operations, and reaches the write hooks (where topics fire).
func TestPatch(t *testing.T) {
	t.Parallel()
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var heard []string
			h := setup(t, st.open(t), func(_ *api.Options, rc *resources.Config) {
				rc.OnWrite = append(rc.OnWrite, func(_ context.Context, _ store.Tx, prev *store.Version, cur store.Version) error {
					mu.Lock()
					defer mu.Unlock()
					heard = append(heard, string(cur.Body))
					return nil
				})
			})
			testPatch(t, h, func() []string { mu.Lock(); defer mu.Unlock(); return heard })
		})
	}
}

func testPatch(t *testing.T, h *harness, heard func() []string) {
	tok := h.token(allScopes)
	obs := `{"resourceType":"Observation","id":"o1","status":"preliminary","code":{"text":"weight"},"subject":{"reference":"Patient/p1"},"valueQuantity":{"value":1.50,"unit":"kg"}}`
	require.Equal(t, 201, h.request("PUT", "/fhir/Observation/o1", tok, obs).status)

	r := h.request("PATCH", "/fhir/Observation/o1", tok, `[{"op":"test","path":"/status","value":"preliminary"},{"op":"replace","path":"/status","value":"final"}]`, jsonPatch)
	require.Equal(t, 200, r.status, string(r.body))
	require.Equal(t, `W/"2"`, r.header.Get("ETag"))
	body := string(r.body)
	require.Contains(t, body, `"status":"final","code":{"text":"weight"}`, "member order is kept")
	require.Contains(t, body, `"value":1.50`, "number text is kept")
	require.Contains(t, heard()[len(heard())-1], `"status":"final"`, "the write hooks (topics) hear the patch")

	stale := h.request("PATCH", "/fhir/Observation/o1", tok, `[{"op":"remove","path":"/valueQuantity"}]`, jsonPatch, `If-Match: W/"1"`)
	requireOutcome(t, stale, 412, "If-Match")
	requireOutcome(t, h.request("PATCH", "/fhir/Observation/o1", tok, `[{"op":"test","path":"/status","value":"preliminary"}]`, jsonPatch), 412, "test failed")
	requireOutcome(t, h.request("PATCH", "/fhir/Observation/o1", tok, `[{"op":"add","path":"/colour","value":"red"}]`, jsonPatch), 422, "Observation.colour")
	requireOutcome(t, h.request("PATCH", "/fhir/Observation/o1", tok, `[{"op":"remove","path":"/note"}]`, jsonPatch), 422, "/note does not exist")
	requireOutcome(t, h.request("PATCH", "/fhir/Observation/o1", tok, `[{"op":"replace","path":"/id","value":"o2"}]`, jsonPatch), 400, "does not match")
	requireOutcome(t, h.request("PATCH", "/fhir/Observation/o1", tok, `{"op":"remove"}`, jsonPatch), 400, "array of operations")
	requireOutcome(t, h.request("PATCH", "/fhir/Observation/o1", tok, `[]`, "Content-Type: application/fhir+json"), 415, "json-patch")
	requireOutcome(t, h.request("PATCH", "/fhir/Observation/none", tok, `[]`, jsonPatch), 404, "")

	// Compartments bound patches as they bound updates.
	p1 := h.token("patient/*.cruds", forPatient("p1"))
	p2 := h.token("patient/*.cruds", forPatient("p2"))
	requireOutcome(t, h.request("PATCH", "/fhir/Observation/o1", p2, `[]`, jsonPatch), 404, "")
	requireOutcome(t, h.request("PATCH", "/fhir/Observation/o1", p1, `[{"op":"replace","path":"/subject/reference","value":"Patient/p2"}]`, jsonPatch), 403, "compartment")
	require.Equal(t, 200, h.request("PATCH", "/fhir/Observation/o1", p1, `[{"op":"add","path":"/issued","value":"2024-01-01T00:00:00Z"}]`, jsonPatch).status)

	require.Equal(t, 204, h.request("DELETE", "/fhir/Observation/o1", tok, "").status)
	requireOutcome(t, h.request("PATCH", "/fhir/Observation/o1", tok, `[]`, jsonPatch), 410, "deleted")
}
