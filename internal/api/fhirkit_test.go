package api_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/api"
	"github.com/herald-fhir/herald/internal/resources"
)

// fhirkitDir holds the fhir-kit-client script and its npm install (make
// fhirkit, which make test runs).
const fhirkitDir = "../../e2e/fhirkit"

// TestFHIRKitClient drives Herald with fhir-kit-client from npm, a client
// nobody here wrote: SMART discovery, create, read, vread, update, patch,
// conditional create, search paged both ways with _include, _sort, _total
// and a compartment, history at three levels, batch, transaction, delete,
// $status and $events (e2e/fhirkit/run.mjs). Any failure fails the test. It
// needs Node.js and `make fhirkit`; without them it skips, except in CI.
func TestFHIRKitClient(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if _, statErr := os.Stat(filepath.Join(fhirkitDir, "node_modules", "fhir-kit-client")); err != nil || statErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Node.js or fhir-kit-client is missing (run make fhirkit): %v %v", err, statErr)
		}
		t.Skip("needs Node.js and `make fhirkit`")
	}
	const tokenURL = "https://auth.example.org/token"
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			h := setupSubscriptionsWith(t, st.open(t), []option{func(o *api.Options, _ *resources.Config) {
				o.SMART = api.SMARTConfig{TokenEndpoint: tokenURL}
			}})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, "run.mjs")
			cmd.Dir = fhirkitDir
			cmd.Env = append(os.Environ(),
				"HERALD_BASE="+h.base, "HERALD_TOKEN="+h.token(allScopes), "HERALD_TOKEN_URL="+tokenURL,
				"HERALD_SUBSCRIPTION="+newSubscription())
			out, err := cmd.CombinedOutput()
			t.Logf("fhir-kit-client:\n%s", out)
			require.NoError(t, err, "the fhir-kit-client run failed")
		})
	}
}
