package delivery_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/delivery"
	"github.com/herald-fhir/herald/internal/store"
)

// otherClient owns the Subscription that must not suffer from "app"'s.
var otherClient = &auth.Principal{ClientID: "app-b", Scopes: client.Scopes, RawScopes: client.RawScopes}

// hangingLoad gives client "app" n Subscriptions (1 s timeout) whose
// endpoint, a real listener on its own port, never answers in time, and
// returns that listener.
func hangingLoad(tb testing.TB, e *env, n int) *receiver {
	tb.Helper()
	ctx := context.Background()
	hang := newReceiver(tb)
	hang.setAnswer(func(int, delivered) int { return 0 }) // hang until the test ends
	require.NoError(tb, e.st.AddEndpoint(ctx, store.AllowedEndpoint{ID: "hang", URLPrefix: hang.srv.URL + "/",
		AllowPrivateNetwork: true, CreatedAt: time.Now()}))
	for i := range n {
		_, err := e.svc.Create(ctx, client, "Subscription",
			[]byte(subscriptionJSON(hang.srv.URL+fmt.Sprintf("/hook/%d", i), withChannelExtension("timeout", 1))))
		require.NoError(tb, err)
	}
	return hang
}

// subscribeOther creates client "app-b"'s Subscription to the test
// receiver, for patient p2 (events of patient p1 go to "app"'s only).
func (e *env) subscribeOther(tb testing.TB) string { return e.subscribeOtherFor(tb, "p2") }

func (e *env) subscribeOtherFor(tb testing.TB, patient string) string {
	tb.Helper()
	return e.subscribeOtherAt(tb, e.recv.srv.URL+"/hook", patient)
}

func (e *env) subscribeOtherAt(tb testing.TB, endpoint, patient string) string {
	tb.Helper()
	res, err := e.svc.Create(context.Background(), otherClient, "Subscription", []byte(subscriptionJSON(endpoint,
		func(m map[string]any) {
			m["_criteria"] = map[string]any{"extension": []any{map[string]any{
				"url":         "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria",
				"valueString": "Encounter?patient=Patient/" + patient}}}
		})))
	require.NoError(tb, err)
	return res.Version.ID
}

// encounterOf writes Encounter/<id> in progress for the patient.
func (e *env) encounterOf(tb testing.TB, id, patient string) {
	tb.Helper()
	body := fmt.Sprintf(`{"resourceType":"Encounter","id":%q,"status":"in-progress","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/%s"}}`, id, patient)
	_, err := e.svc.Update(context.Background(), publisher, "Encounter", id, []byte(body), "")
	require.NoError(tb, err)
}

// waitWithin waits until cond holds for the receiver's requests, failing
// after d: a deadline on a condition, not a measurement.
func (r *receiver) waitWithin(tb testing.TB, d time.Duration, what string, cond func([]delivered) bool) {
	tb.Helper()
	deadline := time.After(d)
	for !cond(r.all()) {
		select {
		case <-r.signal:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			tb.Fatalf("%s not within %s; got %s", what, d, describe(r.all()))
		}
	}
}

// TestHangingOwnerDoesNotStallOthers is issue 17's finding 1 at test scale:
// 500 Subscriptions of one client whose endpoint hangs (each attempt runs
// into its 1 s timeout) must not hold up another client's Subscription on
// another host. Before, every worker not sending to the hanging host waited
// up to 1 s for a turn there, and the claim took the hanging Subscriptions
// first (earliest due), so the other client's handshake came after about
// 500/28 s.
func TestHangingOwnerDoesNotStallOthers(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		hang := hangingLoad(t, e, 500)
		hang.waitWithin(t, 10*time.Second, "the hanging endpoint's first requests", func(got []delivered) bool { return len(got) >= 4 })

		id := e.subscribeOther(t)
		e.recv.waitWithin(t, 5*time.Second, "the other client's handshake", func(got []delivered) bool { return len(got) >= 1 })
		e.waitStatus(id, "active")
		e.encounterOf(t, "b-1", "p2")
		e.recv.waitWithin(t, 5*time.Second, "the other client's event", func(got []delivered) bool {
			return slices.Equal(ackedEvents(got), []int64{1})
		})
		require.Less(t, len(hang.all()), 500, "the hanging endpoint was still being tried: its load was on")
	})
}

// BenchmarkFairDelivery measures, on PostgreSQL, how long client "app-b"
// waits for its handshake (from the create) and for an event (from the
// write), alone and beside 500 Subscriptions of client "app" whose
// endpoint hangs. It prints p50/p99 of each and asserts nothing.
func BenchmarkFairDelivery(b *testing.B) {
	for _, load := range []int{0, 500} {
		b.Run(fmt.Sprintf("hanging=%d", load), func(b *testing.B) {
			e := newEnv(b, pgStore(b), func(c *delivery.Config) {
				c.Logger = slog.New(slog.DiscardHandler)
				c.RetryBase, c.RetryCap = 100*time.Millisecond, 5*time.Second
			})
			if load > 0 {
				hang := hangingLoad(b, e, load)
				hang.waitWithin(b, 30*time.Second, "the hanging endpoint's first requests", func(got []delivered) bool { return len(got) >= 4 })
			}
			var handshake, event []time.Duration
			b.ResetTimer()
			for i := range b.N {
				patient := fmt.Sprintf("pb-%d", i)
				before := len(e.recv.all())
				start := time.Now()
				id := e.subscribeOtherFor(b, patient)
				e.recv.waitWithin(b, time.Minute, "the handshake", func(got []delivered) bool { return len(got) > before })
				handshake = append(handshake, time.Since(start))
				e.waitStatus(id, "active")
				before = len(e.recv.all())
				start = time.Now()
				e.encounterOf(b, "enc-"+patient, patient)
				e.recv.waitWithin(b, time.Minute, "the event", func(got []delivered) bool { return len(ackedEvents(got[before:])) > 0 })
				event = append(event, time.Since(start))
			}
			b.StopTimer()
			report := func(name string, d []time.Duration) {
				slices.Sort(d)
				b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, name+"-p50-ms")
				b.ReportMetric(float64(d[(len(d)*99)/100].Microseconds())/1000, name+"-p99-ms")
			}
			report("handshake", handshake)
			report("event", event)
		})
	}
}

// TestBusyEndpointIsNotAnotherOwnersFailure: client "app" holds every slot
// at a host (its four Subscriptions' endpoints there hang), and a fifth
// Subscription of its own has its endpoint on the same host (another
// path). Its sends find the endpoint busy: nothing is sent, so it is not
// that subscriber's failure, and must not put the Subscription in error
// (a handshake that finds the endpoint busy used to, at once: the IG's
// rule for a failed handshake), nor, repeated, switch it off. The turns
// at a host are kept per owner (TestSharedHostTurnsPerOwner), so another
// owner's sends there are never busy because of "app"'s; before they
// were, and any owner could push another's Subscriptions on a shared host
// into error and then off by keeping that host's slots busy.
func TestBusyEndpointIsNotAnotherOwnersFailure(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		reg := prometheus.NewRegistry()
		e := newEnv(t, st, func(c *delivery.Config) { c.Metrics = delivery.NewMetrics(reg, st) })
		host := hostBusyWithOwnSends(t, e, st)
		res, err := e.svc.Create(context.Background(), client, "Subscription", []byte(subscriptionJSON(host.srv.URL+"/b")))
		require.NoError(t, err)
		id := res.Version.ID
		deadline := time.Now().Add(20 * time.Second)
		for busyHandshakes(t, reg) < 3 {
			require.True(t, time.Now().Before(deadline), "the fifth handshake was not tried three times while the host was busy")
			require.Equal(t, "requested", e.state(id).Status, "a busy endpoint (nothing sent) is not the subscriber's failure")
			select {
			case <-e.recv.signal:
			case <-time.After(10 * time.Millisecond):
			}
		}
		st2 := e.state(id)
		require.Equal(t, "requested", st2.Status, "a busy endpoint (nothing sent) is not the subscriber's failure: %s", st2.Error)
	})
}

// hostBusyWithOwnSends is an allow-listed host where client "app" has
// four Subscriptions (webhook's default MaxPerEndpoint) whose endpoints
// hang, their handshakes in flight: a further send of app's to the host
// finds it busy. The host's path /b answers 200.
func hostBusyWithOwnSends(t *testing.T, e *env, st store.Store) *receiver {
	t.Helper()
	ctx := context.Background()
	host := newReceiver(t)
	host.setAnswer(func(_ int, d delivered) int {
		if d.Path == "/b" {
			return http.StatusOK
		}
		return 0 // app's other endpoints at this host hang
	})
	require.NoError(t, st.AddEndpoint(ctx, store.AllowedEndpoint{ID: "host", URLPrefix: host.srv.URL + "/",
		AllowPrivateNetwork: true, CreatedAt: time.Now()}))
	for i := range 4 {
		_, err := e.svc.Create(ctx, client, "Subscription",
			[]byte(subscriptionJSON(host.srv.URL+fmt.Sprintf("/hook/%d", i), withChannelExtension("timeout", 30))))
		require.NoError(t, err)
	}
	host.waitWithin(t, 10*time.Second, "app's four hanging handshakes", func(got []delivered) bool { return len(got) >= 4 })
	return host
}

// busyHandshakes reads herald_deliveries_total{type="handshake",outcome="endpoint busy"}.
func busyHandshakes(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != "herald_deliveries_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["type"] == "handshake" && labels["outcome"] == "endpoint busy" {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestOwnerShareDoesNotWaitForThePoll: one client with many more due
// Subscriptions than its share of workers (MaxPerOwner) to one healthy
// endpoint. A claim cut short by the share is no sign of an empty queue:
// each send that ends lets the next of that owner's Subscriptions be
// claimed at once, and waiting for a turn at the endpoint is not a failure
// to back off from. With a one-minute poll, every handshake still arrives
// within seconds (before, one share per poll: 4 a minute here).
func TestOwnerShareDoesNotWaitForThePoll(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		e.halt()
		const n = 60
		for range n {
			e.subscribe()
		}
		e.start(func(c *delivery.Config) { c.Poll, c.Workers, c.MaxPerOwner = time.Minute, 8, 4 })
		e.recv.waitWithin(t, 15*time.Second, "every handshake", func(got []delivered) bool {
			hs := 0
			for _, d := range got {
				if d.Bundle.Kind == "handshake" {
					hs++
				}
			}
			return hs >= n
		})
	})
}

// TestOwnBusyEndpointCountsTowardError: the turns at a host are the
// owner's own (TestSharedHostTurnsPerOwner), so an endpoint busy with the
// owner's own slow or hanging sends is that owner's endpoint failing to keep
// up, and counts toward error like a failed send (issue 17: busy and slow
// endpoints back off like failures and count toward error after a
// documented time: ErrorAfter consecutive attempts). Before, a Subscription
// whose host stayed busy stayed requested (or active) for ever.
func TestOwnBusyEndpointCountsTowardError(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		reg := prometheus.NewRegistry()
		e := newEnv(t, st, func(c *delivery.Config) {
			c.Metrics = delivery.NewMetrics(reg, st)
			c.ErrorAfter = 3
		})
		host := hostBusyWithOwnSends(t, e, st)
		res, err := e.svc.Create(context.Background(), client, "Subscription", []byte(subscriptionJSON(host.srv.URL+"/b")))
		require.NoError(t, err)
		got := e.waitStatus(res.Version.ID, "error")
		require.Contains(t, got.Error, "endpoint busy")
		require.GreaterOrEqual(t, busyHandshakes(t, reg), 3.0, "error came before ErrorAfter busy attempts")
	})
}

// patientOf is a patient-launch token of client "patient-app" for patient
// id: every patient using the app is the same owner (client id), in its own
// launch context.
func patientOf(id string) *auth.Principal {
	const scopes = "patient/*.rs patient/Subscription.cruds"
	return &auth.Principal{ClientID: "patient-app", Patient: id, Scopes: auth.ParseScopes(scopes), RawScopes: []string{scopes}}
}

// forPatient filters a Subscription on the patient's Encounters.
func forPatient(id string) func(m map[string]any) {
	return func(m map[string]any) {
		m["_criteria"] = map[string]any{"extension": []any{map[string]any{
			"url":         "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria",
			"valueString": "Encounter?patient=Patient/" + id}}}
	}
}

// TestAnotherLaunchContextCannotMakeAnEndpointBusy: two patients of one
// patient-facing app are the same owner (the client id) but not the same
// subscriber. Patient pB's hanging sends to a host must not take patient
// pA's turns there, or pB pushes pA's Subscription into error (an endpoint
// busy counts toward error) and then off. Failed on main: the turns at a
// host were kept per client id (webhook.Request.Share = Owner), so pA's
// handshake went "endpoint busy" three times and the Subscription to error.
func TestAnotherLaunchContextCannotMakeAnEndpointBusy(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st, func(c *delivery.Config) { c.ErrorAfter = 3 })
		ctx := context.Background()
		host := newReceiver(t)
		host.setAnswer(func(_ int, d delivered) int {
			if d.Path == "/a" {
				return http.StatusOK
			}
			return 0 // pB's endpoints at this host hang
		})
		require.NoError(t, st.AddEndpoint(ctx, store.AllowedEndpoint{ID: "host", URLPrefix: host.srv.URL + "/",
			AllowPrivateNetwork: true, CreatedAt: time.Now()}))
		for i := range 4 { // webhook's default MaxPerEndpoint
			_, err := e.svc.Create(ctx, patientOf("pB"), "Subscription", []byte(subscriptionJSON(
				host.srv.URL+fmt.Sprintf("/hook/%d", i), withChannelExtension("timeout", 30), forPatient("pB"))))
			require.NoError(t, err)
		}
		host.waitWithin(t, 10*time.Second, "pB's four hanging handshakes", func(got []delivered) bool { return len(got) >= 4 })

		res, err := e.svc.Create(ctx, patientOf("pA"), "Subscription", []byte(subscriptionJSON(host.srv.URL+"/a", forPatient("pA"))))
		require.NoError(t, err)
		id := res.Version.ID
		deadline := time.Now().Add(20 * time.Second)
		for {
			got := e.state(id)
			if got.Status != "requested" {
				require.Equal(t, "active", got.Status, "patient pA's Subscription: %s", got.Error)
				break
			}
			require.True(t, time.Now().Before(deadline), "pA's handshake did not end while pB's sends hung")
			select {
			case <-host.signal:
			case <-time.After(20 * time.Millisecond): // the status changes after the answer is recorded
			}
		}
	})
}
