package delivery_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/delivery"
	"github.com/herald-fhir/herald/internal/publish"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
	"github.com/herald-fhir/herald/internal/typerules"
)

// TestAttackOwnerCapTwoInstancesHandoff: one owner, cap 1 on both
// instances, four Subscriptions, concurrent writers on both instances
// (hand-offs and claims mixed): the receiver never sees two of the
// owner's notifications in flight at once, and every event arrives.
func TestAttackOwnerCapTwoInstancesHandoff(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	var stores []*postgres.Store
	for range 2 {
		s := pgtest.Open(t, url, postgres.WithMaxConns(8))
		stores = append(stores, s)
	}
	var inFlight, most, events atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		d := parseBundle(readAll(r))
		if d.Kind == "event-notification" {
			events.Add(int64(len(d.Event)))
			select { // the subscriber's own work, so sends overlap if they may
			case <-time.After(5 * time.Millisecond):
			case <-r.Context().Done():
			}
		}
		inFlight.Add(-1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	require.NoError(t, stores[0].AddEndpoint(context.Background(), store.AllowedEndpoint{ID: "capped", URLPrefix: srv.URL + "/", AllowPrivateNetwork: true, CreatedAt: time.Now()}))
	cfg := func(c *delivery.Config) { c.Workers, c.MaxPerOwner, c.Poll = 4, 1, 50*time.Millisecond }
	a := newEnv(t, stores[0], cfg)
	cfgB := a.engineConfig(cfg)
	cfgB.Store = stores[1]
	engB := delivery.New(cfgB)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); engB.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	const patients = 4
	var ids []string
	for p := range patients {
		ids = append(ids, a.subscribe(withEndpoint(srv.URL+"/hook"), withPatientFilter("p"+strconv.Itoa(p))))
	}
	for _, id := range ids {
		a.waitStatus(id, "active")
	}
	most.Store(0)
	// Instance b's writers: its own resource service, on the other Store.
	b := &env{t: t, st: stores[1], lib: a.lib, rules: a.rules, svc: resources.New(resources.Config{Store: stores[1], BaseURL: baseURL,
		OnWrite: []resources.WriteHook{(&publish.Publisher{Topics: a.lib, BaseURL: baseURL}).Hook},
		Rules:   typerules.Rules(a.rules, a.lib)})}
	const writers, each = 8, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				e := a
				if w%2 == 1 {
					e = b
				}
				if err := writeEncounter(e, "enc-"+strconv.Itoa(w)+"-"+strconv.Itoa(i), "p"+strconv.Itoa((w+i)%patients)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	require.Eventually(t, func() bool { return events.Load() >= writers*each }, 30*time.Second, 10*time.Millisecond,
		"events delivered: fewer than %d", writers*each)
	require.LessOrEqual(t, most.Load(), int64(1), "the owner's cap of 1 was exceeded")
}

func readAll(r *http.Request) []byte {
	b := make([]byte, 0, 4096)
	buf := make([]byte, 4096)
	for {
		n, err := r.Body.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			return b
		}
	}
}
