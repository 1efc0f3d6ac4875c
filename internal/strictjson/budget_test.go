package strictjson

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestParseStoredSharesABudget: concurrent ParseStored calls parse at most
// SetStoredBudget bytes at once (issue 17 attack: concurrent searches over
// large stored resources each built a tree of many times the body's size,
// with nothing bounding how many at once). With room for two bodies, eight
// concurrent parses never have more than two inside.
func TestParseStoredSharesABudget(t *testing.T) {
	body := []byte(`{"resourceType":"Observation","note":[` + strings.Repeat(`{"text":"x"},`, 1000) + `{"text":"y"}]}`)
	SetStoredBudget(int64(2 * len(body)))
	t.Cleanup(func() { SetStoredBudget(DefaultStoredBytes); storedHook = nil })

	var inside, most atomic.Int64
	gate, entered := make(chan struct{}), make(chan struct{}, 8)
	storedHook = func() {
		entered <- struct{}{}
		n := inside.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-gate
		inside.Add(-1)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := ParseStored(body)
			require.NoError(t, err)
		})
	}
	for range 2 {
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("two parses never started")
		}
	}
	// The other six wait for a share, or (without the budget) enter too:
	// give them the time it takes to, then let everyone go.
	select {
	case <-entered:
		t.Fatal("a third parse started while two held the budget")
	case <-time.After(200 * time.Millisecond):
	}
	close(gate)
	wg.Wait()
	require.EqualValues(t, 2, most.Load(), "parses inside the budget at once")
}
