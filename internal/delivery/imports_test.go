package delivery

import (
	"go/build"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNoRESTEngineBelow: delivery and the policy depend on neither the REST
// engine (resources) nor the HTTP API, directly or through another package.
func TestNoRESTEngineBelow(t *testing.T) {
	const module = "github.com/herald-fhir/herald/"
	for _, root := range []string{module + "internal/delivery", module + "internal/policy"} {
		seen := map[string]bool{}
		var walk func(path string)
		walk = func(path string) {
			if !strings.HasPrefix(path, module) || seen[path] {
				return
			}
			seen[path] = true
			p, err := build.Import(path, ".", 0)
			require.NoError(t, err, path)
			for _, imp := range p.Imports {
				walk(imp)
			}
		}
		walk(root)
		for _, banned := range []string{"internal/resources", "internal/api", "internal/typerules"} {
			require.False(t, seen[module+banned], "%s depends on %s", root, banned)
		}
	}
}
