package delivery_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
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

// claimSpy is a PostgreSQL store that records which Subscriptions its
// claims returned with events to send.
type claimSpy struct {
	*postgres.Store
	mu      sync.Mutex
	claimed map[string]int
	calls   int
}

func newClaimSpy(st *postgres.Store) *claimSpy {
	return &claimSpy{Store: st, claimed: map[string]int{}}
}

func (c *claimSpy) ClaimDue(ctx context.Context, now time.Time, limit int, leaseFor time.Duration, eventsPerTask, perOwner int) ([]store.DeliveryTask, error) {
	tasks, err := c.Store.ClaimDue(ctx, now, limit, leaseFor, eventsPerTask, perOwner)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	for _, tk := range tasks {
		if tk.Backlog() {
			c.claimed[tk.State.ID]++
		}
	}
	return tasks, err
}

func (c *claimSpy) claims() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func (c *claimSpy) claimedEvents(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.claimed[id]
}

// TestHandoffDeliversWithoutClaim: at light load (one write at a time,
// each delivered and recorded before the next) every event of an idle
// Subscription is leased by its write and sent by the engine it was handed
// to: no claim ever brings one of them, and none runs after the handshake's.
// A database of its own: a claim woken by another test's commit (the
// wake-up channel is database-wide) would hold the free workers for a moment
// and make a write fall back to the claim, which is correct but not what
// this test looks at.
func TestHandoffDeliversWithoutClaim(t *testing.T) {
	t.Parallel()
	pg := pgtest.Open(t, pgtest.DatabaseURL(t), postgres.WithMaxConns(4))
	spy := newClaimSpy(pg)
	e := newEnv(t, spy, func(c *delivery.Config) { c.Poll = time.Hour })
	id := e.subscribe()
	e.waitStatus(id, "active") // the handshake: claimed
	warmUp(t, e, spy, id)
	before, claimedBefore := spy.claims(), spy.claimedEvents(id)
	const writes = 10
	for i := range writes {
		e.encounter("enc-" + strconv.Itoa(i))
		e.recv.waitFor(t, "event "+strconv.Itoa(i+2), func(got []delivered) bool { return len(ackedEvents(got)) == i+2 })
		waitAcknowledged(t, spy, id, int64(i+2)) // and the lease ended: idle again
	}
	got := e.recv.all()
	require.Equal(t, span(1, writes+1), ackedEvents(got))
	require.Equal(t, claimedBefore, spy.claimedEvents(id), "a claim brought events that their writes should have handed off")
	claims := spy.claims() - before
	t.Logf("claims while the %d events were written and delivered: %d", writes, claims)
	require.LessOrEqual(t, claims, 1, "claims ran for events handed off (one may trail the handshake's send)")
}

// warmUp writes one event and waits until it is delivered and recorded:
// after that the engine is idle, its start-up and the handshake's claims
// over (a claim that is running holds the free workers, and a write meanwhile
// leaves its event to the claim).
func warmUp(t *testing.T, e *env, st store.Store, id string) {
	t.Helper()
	e.encounter("enc-warm-up")
	e.recv.waitFor(t, "the warm-up event", func(got []delivered) bool { return len(ackedEvents(got)) == 1 })
	waitAcknowledged(t, st, id, 1)
}

// TestHandoffConcurrentWritersTwoInstances: two instances (two Stores on
// one schema, each with its writers and its engine, both taking hand-offs
// and claiming with a per-owner cap) and many concurrent writers, each
// write firing for the same Subscriptions: every event is delivered once,
// in order, with no gap.
func TestHandoffConcurrentWritersTwoInstances(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	var stores []*claimSpy
	for range 2 {
		s := pgtest.Open(t, url, postgres.WithMaxConns(8))
		stores = append(stores, newClaimSpy(s))
	}
	a := newEnv(t, stores[0], func(c *delivery.Config) { c.Workers, c.MaxPerOwner = 4, 3 })
	// Instance b: its own engine and writers, on the other Store.
	cfgB := a.engineConfig(func(c *delivery.Config) { c.Workers, c.MaxPerOwner = 4, 3 })
	cfgB.Store = stores[1]
	engB := delivery.New(cfgB)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); engB.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	svcB := resources.New(resources.Config{Store: stores[1], BaseURL: baseURL,
		OnWrite: []resources.WriteHook{(&publish.Publisher{Topics: a.lib, BaseURL: baseURL}).Hook},
		Rules:   typerules.Rules(a.rules, a.lib)})

	// Two Subscriptions per patient, each write firing for the two of its
	// patient; writers
	// take the patients in turn, so each Subscription's events come from
	// every writer of both instances, sometimes idle, sometimes not.
	const patients, writers, each = 4, 8, 12
	ids := map[string]string{} // Subscription → its patient
	for p := range patients {
		for range 2 {
			ids["/Subscription/"+a.subscribe(withPatientFilter("p"+strconv.Itoa(p)))] = "p" + strconv.Itoa(p)
		}
	}
	for id := range ids {
		a.waitStatus(strings.TrimPrefix(id, "/Subscription/"), "active")
	}
	var wg sync.WaitGroup
	for w := range writers {
		svc := a.svc
		if w%2 == 1 {
			svc = svcB
		}
		wg.Go(func() {
			for i := range each {
				id := "enc-" + strconv.Itoa(w) + "-" + strconv.Itoa(i)
				patient := "p" + strconv.Itoa((w+i)%patients)
				body := `{"resourceType":"Encounter","id":"` + id + `","status":"in-progress","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/` + patient + `"}}`
				if _, err := svc.Update(context.Background(), publisher, "Encounter", id, []byte(body), ""); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	const perPatient = writers * each / patients
	got := a.recv.waitFor(t, "every event of every Subscription", func(got []delivered) bool {
		return len(ackedEvents(got)) >= len(ids)*perPatient
	})
	per := map[string][]int64{}
	notifications := 0
	for _, d := range got {
		if d.Bundle.Kind == "event-notification" {
			sub := subscriptionOf(d)
			per[sub] = append(per[sub], d.Bundle.Event...)
			notifications++
		}
	}
	require.Len(t, per, len(ids))
	for sub, evs := range per {
		require.Contains(t, ids, sub)
		require.Equal(t, span(1, perPatient), evs, "%s: each event once, in order", sub)
	}
	claimed := 0
	for _, s := range stores {
		for id := range ids {
			claimed += s.claimedEvents(strings.TrimPrefix(id, "/Subscription/"))
		}
	}
	t.Logf("%d events per Subscription, %d Subscriptions; event notifications sent: %d, of which claimed: %d, handed off: %d",
		perPatient, len(ids), notifications, claimed, notifications-claimed)
}

// withPatientFilter filters the Subscription on Encounter?patient=Patient/p.
func withPatientFilter(p string) func(map[string]any) {
	return func(m map[string]any) {
		m["_criteria"] = map[string]any{"extension": []any{map[string]any{
			"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria", "valueString": "Encounter?patient=Patient/" + p}}}
	}
}

// reserve waits, with a deadline, for eng to reserve at least one worker
// (a claim may hold the free ones for a moment) and returns the reservation.
func reserve(t *testing.T, eng *delivery.Engine, n int, why string) store.Reservation {
	t.Helper()
	var r store.Reservation
	require.Eventually(t, func() bool { r = eng.Reserve(n); return r.Slots > 0 }, 10*time.Second, time.Millisecond, why)
	return r
}

// TestReserveHoldsFreeWorkers: the engine reserves only free workers for a
// hand-off, none while it is not running, at most a quarter of them (at
// least one) at once, since a write may wait inside its COMMIT, and a
// reservation's Start frees the workers it does not use.
func TestReserveHoldsFreeWorkers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storeMemory())
	eng := delivery.New(e.engineConfig(func(c *delivery.Config) { c.Workers, c.Poll = 8, time.Hour }))
	require.Zero(t, eng.Reserve(1).Slots, "reserved before Run")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); eng.Run(ctx) }()
	r := reserve(t, eng, 5, "no worker free")
	if r.Slots == 1 { // a claim held the others for a moment
		reserve(t, eng, 1, "no second worker free").Start(nil)
		r.Start(nil)
		r = reserve(t, eng, 5, "no worker free")
	}
	require.Equal(t, 2, r.Slots, "a quarter of 8 workers")
	require.Zero(t, eng.Reserve(1).Slots, "reserved past a quarter of the workers")
	r.Start(nil)
	reserve(t, eng, 1, "the unused reservation was not freed").Start(nil)
	cancel()
	<-done
	require.Zero(t, eng.Reserve(1).Slots, "reserved after Run ended")
}

// TestHandoffAfterStopReleasesTheLease: tasks handed to an engine that
// stopped since it reserved workers are not sent; their leases are
// released, so a claim takes them at once.
func TestHandoffAfterStopReleasesTheLease(t *testing.T) {
	t.Parallel()
	st := pgtest.New(t)
	e := newEnv(t, st, func(c *delivery.Config) { c.Poll = time.Hour })
	id := e.subscribe()
	e.waitStatus(id, "active")
	e.halt()

	eng := delivery.New(e.engineConfig(func(c *delivery.Config) { c.Poll = time.Hour }))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); eng.Run(ctx) }()
	r := reserve(t, eng, 1, "no worker free")
	cancel()
	<-done
	// A write whose commit leased the Subscription for this engine, as the
	// hand-off does (here by a claim: the engine no longer takes hand-offs).
	e.encounter("enc-1")
	tasks, err := st.ClaimDue(context.Background(), time.Now(), 1, time.Hour, 10, 0)
	require.NoError(t, err)
	require.Len(t, tasks, 1)
	r.Start(tasks)
	tasks, err = st.ClaimDue(context.Background(), time.Now(), 1, time.Hour, 10, 0)
	require.NoError(t, err)
	require.Len(t, tasks, 1, "the lease handed to a stopped engine was not released")
	require.Equal(t, id, tasks[0].State.ID)
	require.Equal(t, []int64{1}, []int64{tasks[0].Events[0].Number})
	require.Empty(t, e.recv.acked()[1:], "the stopped engine sent")
}

// TestHandedOffSendStoppedByShutdown: an engine that stops while it sends a
// handed-off Subscription (past its drain time) releases the lease, and
// another engine sends the event at once, long before the lease would end.
func TestHandedOffSendStoppedByShutdown(t *testing.T) {
	t.Parallel()
	pg := pgtest.Open(t, pgtest.DatabaseURL(t), postgres.WithMaxConns(4))
	spy := newClaimSpy(pg)
	e := newEnv(t, spy, func(c *delivery.Config) { c.Poll, c.Drain, c.Lease = time.Hour, 100*time.Millisecond, time.Minute })
	var hang atomic.Bool
	e.recv.setAnswer(func(n int, d delivered) int {
		if d.Bundle.Kind == "event-notification" && hang.Load() {
			return 0
		}
		return http.StatusOK
	})
	id := e.subscribe(withChannelExtension("timeout", 30))
	e.waitStatus(id, "active")
	warmUp(t, e, spy, id)
	claimed := spy.claimedEvents(id)
	hang.Store(true)
	e.encounter("enc-1")
	e.recv.waitFor(t, "the event in flight", func(got []delivered) bool { return len(got) >= 3 })
	require.Equal(t, claimed, spy.claimedEvents(id), "the event was claimed, not handed off")
	e.halt()
	hang.Store(false)
	e.start(func(c *delivery.Config) { c.Poll, c.Lease = time.Hour, time.Minute })
	got := e.recv.waitFor(t, "the event sent again", func(got []delivered) bool { return len(ackedEvents(got)) == 2 })
	require.Equal(t, []int64{1, 2}, ackedEvents(got))
	require.Equal(t, claimed+1, spy.claimedEvents(id), "the released Subscription was not claimed by the next engine")
}
