package publish

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/strictjson"
)

// TestPreviousVersionParsesWithinTheStoredBudget: every update decodes the
// stored previous version for the topics' criteria, a tree many times its
// size. That parse shares the stored-body budget (strictjson.ParseStored's),
// or N concurrent small updates (a tiny share of the request-body budget
// each) of N large resources build N such trees at once. Failed on main:
// describe parsed the previous version while the whole budget was held.
// Not parallel: it holds the process-wide budget.
func TestPreviousVersionParsesWithinTheStoredBudget(t *testing.T) {
	strictjson.SetStoredBudget(1 << 20)
	t.Cleanup(func() { strictjson.SetStoredBudget(0) })
	now := time.Now()
	prev := store.Version{Type: "Observation", ID: "o1", VersionID: 1, LastUpdated: now, Method: store.MethodCreate,
		Body: []byte(`{"resourceType":"Observation","id":"o1","status":"final","note":[{"text":"` + strings.Repeat("x", 1000) + `"}]}`)}
	cur := store.Version{Type: "Observation", ID: "o1", VersionID: 2, LastUpdated: now, Method: store.MethodUpdate,
		Decoded: map[string]any{"resourceType": "Observation", "id": "o1", "status": "amended"}}

	release := strictjson.ShareStored(1 << 20) // every byte of it
	done := make(chan error)
	go func() {
		_, _, err := describe(&prev, cur, "https://fhir.example.org")
		done <- err
	}()
	for strictjson.StoredWaiting() == 0 {
		select {
		case <-done:
			release()
			t.Fatal("describe parsed the stored previous version while the whole stored budget was held")
		default:
			runtime.Gosched()
		}
	}
	release()
	require.NoError(t, <-done)
}
