package api_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBundleAtBaseWithTrailingSlash: POST /fhir/ is POST /fhir, as clients
// that append "/" to the base (fhir-kit-client) send batches there.
func TestBundleAtBaseWithTrailingSlash(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		body := `{"resourceType":"Bundle","type":"batch","entry":[
			{"resource":{"resourceType":"Patient","active":true},"request":{"method":"POST","url":"Patient"}}]}`
		r := h.request("POST", "/fhir/", tok, body)
		require.Equal(t, 200, r.status, string(r.body))
		require.Equal(t, "batch-response", r.json(t)["type"])
		require.Equal(t, 1, h.count("Patient"))
	})
}
