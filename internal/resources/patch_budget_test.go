package resources

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/store/memory"
	"github.com/herald-fhir/herald/internal/strictjson"
)

// TestPatchParsesWithinTheStoredBudget: a JSON Patch of a few bytes (its
// share of the request-body budget) parses the stored current version
// whole, and then the patched result, each a tree many times the body's
// size. Those parses share the stored-body budget, or N concurrent small
// PATCHes of N large resources build 2N such trees at once. Failed on
// main: the PATCH parsed while the whole budget was held. Not parallel: it
// holds the process-wide budget.
func TestPatchParsesWithinTheStoredBudget(t *testing.T) {
	ctx := context.Background()
	writer := &auth.Principal{ClientID: "c", Scopes: auth.ParseScopes("system/*.cruds")}
	svc := New(Config{Store: memory.New(), BaseURL: "https://fhir.example.org"})
	_, err := svc.Update(ctx, writer, "Observation", "o1", []byte(`{"resourceType":"Observation","id":"o1","status":"final",`+
		`"code":{"text":"x"},"note":[{"text":"`+strings.Repeat("x", 1000)+`"}]}`), "")
	require.NoError(t, err)
	strictjson.SetStoredBudget(1 << 20)
	t.Cleanup(func() { strictjson.SetStoredBudget(0) })

	release := strictjson.ShareStored(1 << 20) // every byte of it
	done := make(chan error)
	go func() {
		_, err := svc.Patch(ctx, writer, "Observation", "o1", []byte(`[{"op":"replace","path":"/status","value":"amended"}]`), "")
		done <- err
	}()
	for strictjson.StoredWaiting() == 0 {
		select {
		case <-done:
			release()
			t.Fatal("the PATCH parsed the stored version while the whole stored budget was held")
		default:
			runtime.Gosched()
		}
	}
	release()
	require.NoError(t, <-done)
}
