package resources

import (
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/strictjson"
)

// TestSubsetParsesWithinTheStoredBudget: _elements and _summary cut each
// stored body of a search page by parsing it whole (strictjson.Parse, then
// the JSON Patch parses it again), a tree many times the body's size, as
// ParseStored builds. Those parses share ParseStored's budget, or N
// concurrent searches with _elements over large resources build N such
// trees at once, as the budget was added to prevent. Failed on main: subset
// parsed while the whole budget was held. Not parallel: it holds the
// process-wide budget.
func TestSubsetParsesWithinTheStoredBudget(t *testing.T) {
	strictjson.SetStoredBudget(1 << 20)
	t.Cleanup(func() { strictjson.SetStoredBudget(0) })
	body := []byte(`{"resourceType":"Observation","id":"o1","status":"final","note":[{"text":"` + strings.Repeat("x", 1000) + `"}]}`)

	release := strictjson.ShareStored(1 << 20) // every byte of it
	done := make(chan []byte)
	go func() { done <- subset(body, func(name string) bool { return name == "status" }) }()
	for strictjson.StoredWaiting() == 0 {
		select {
		case <-done:
			release()
			t.Fatal("subset parsed a stored body while the whole stored budget was held")
		default:
			runtime.Gosched()
		}
	}
	release()
	got := <-done
	require.Contains(t, string(got), `"status":"final"`)
	require.NotContains(t, string(got), `"note"`)
}
