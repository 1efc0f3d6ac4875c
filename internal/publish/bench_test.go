package publish_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-fhir/herald/internal/publish"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
	"github.com/herald-fhir/herald/internal/topic"
	"github.com/herald-fhir/herald/topics"
)

// bulkSubscriptions inserts n active encounter-start Subscriptions, each
// filtered to (and pinned to, unless unpinned) a patient of its own, in one
// statement.
func bulkSubscriptions(b *testing.B, databaseURL string, n int, pinned bool) {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	key := `'Patient/other-' || g`
	if !pinned {
		key = `''`
	}
	_, err = conn.Exec(ctx, `INSERT INTO subscriptions (id, owner, scopes, patient, status, error, topic, filters,
		endpoint, content, heartbeat_period_ms, timeout_ms, max_count, sealed_secret, sealed_headers,
		created_at, updated_at, patient_key)
		SELECT 'bulk-' || g, 'c', '', '', 'active', '', $1, ARRAY['Encounter?patient=Patient/other-' || g],
			'https://hooks.example.org/x', 'id-only', 0, 0, 0, '', '', now(), now(), `+key+`
		FROM generate_series(1, $2::int) AS g`, start, n)
	if err != nil {
		b.Fatal(err)
	}
	// Settle the load before measuring: fresh statistics and visibility
	// map, and the dirty pages written out rather than flushed by the
	// checkpointer in the middle of the measurement.
	if _, err := conn.Exec(ctx, `VACUUM ANALYZE subscriptions`); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CHECKPOINT`); err != nil {
		b.Logf("CHECKPOINT: %v (not superuser?); measurements may be noisier", err)
	}
}

// timingTx adds the time spent in Subscriptions to took.
type timingTx struct {
	store.Tx
	took *time.Duration
}

func (t timingTx) Subscriptions(ctx context.Context, f store.SubscriptionFilter) ([]store.SubscriptionState, error) {
	t0 := time.Now()
	defer func() { *t.took += time.Since(t0) }()
	return t.Tx.Subscriptions(ctx, f)
}

// BenchmarkPublish measures an Encounter create that fires encounter-start
// for one Subscription while n others on the same topic are pinned to other
// patients: the cost should not depend on n. The unpinned case is the cost
// without patient keys, for comparison.
func BenchmarkPublish(b *testing.B) {
	for _, tc := range []struct {
		n      int
		pinned bool
	}{{0, true}, {1_000, true}, {100_000, true}, {1_000, false}} {
		name := fmt.Sprintf("others=%d", tc.n)
		if !tc.pinned {
			name += "/unpinned"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			url := pgtest.URL(b)
			st, err := postgres.Open(ctx, url, postgres.WithMaxConns(4))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(st.Close)
			bulkSubscriptions(b, url, tc.n, tc.pinned)
			lib, err := topic.Load(ctx, st, topics.FS, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			if err := st.InTx(ctx, func(tx store.Tx) error {
				return tx.PutSubscription(ctx, store.SubscriptionState{ID: "mine", Owner: "c", Status: "active", Topic: start,
					Filters: []string{"Encounter?patient=Patient/me"}, PatientKey: "Patient/me",
					Endpoint: "https://hooks.example.org/x", Content: "id-only", CreatedAt: time.Now(), UpdatedAt: time.Now()})
			}); err != nil {
				b.Fatal(err)
			}
			p := &publish.Publisher{Topics: lib}
			var inQuery, inHook time.Duration // time spent loading subscription states, and in the hook
			hook := func(ctx context.Context, tx store.Tx, prev *store.Version, cur store.Version) error {
				t0 := time.Now()
				defer func() { inHook += time.Since(t0) }()
				return p.Hook(ctx, timingTx{Tx: tx, took: &inQuery}, prev, cur)
			}
			svc := resources.New(resources.Config{Store: st, BaseURL: "https://h.example/fhir", OnWrite: []resources.WriteHook{hook}})
			var took []time.Duration
			i := 0
			b.ResetTimer()
			for b.Loop() {
				i++
				id := fmt.Sprintf("e%d", i)
				t0 := time.Now()
				if _, err := svc.Update(ctx, system, "Encounter", id, []byte(encounter(id, "in-progress", "me")), ""); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(t0))
			}
			b.StopTimer()
			n, err := st.EventCount(ctx, "mine")
			if err != nil {
				b.Fatal(err)
			}
			if n != int64(i) {
				b.Fatalf("%d events for %d writes", n, i)
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(inQuery.Microseconds())/float64(i), "load-µs/op")
			b.ReportMetric(float64(inHook.Microseconds())/float64(i), "hook-µs/op")
		})
	}
}

// fanOutSubscriptions inserts n active, unpinned encounter-start
// Subscriptions that every Encounter of Patient/me passes, each with
// filters filters: the patient and, for the rest, the class of the
// benchmark's Encounters.
func fanOutSubscriptions(b *testing.B, databaseURL string, n, filters int) {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	fs := []string{}
	if filters > 0 {
		fs = append(fs, "Encounter?patient=Patient/me")
		for len(fs) < filters {
			fs = append(fs, "Encounter?class=http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB")
		}
	}
	_, err = conn.Exec(ctx, `INSERT INTO subscriptions (id, owner, scopes, patient, status, error, topic, filters,
		endpoint, content, heartbeat_period_ms, timeout_ms, max_count, sealed_secret, sealed_headers,
		created_at, updated_at, patient_key)
		SELECT 'fan-' || g, 'c', '', '', 'active', '', $1, $3::text[],
			'https://hooks.example.org/x', 'id-only', 0, 0, 0, '', '', now(), now(), ''
		FROM generate_series(1, $2::int) AS g`, start, n, fs)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `VACUUM ANALYZE subscriptions`); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPublishFanOut measures an Encounter write that every one of
// 1,000 Subscriptions matches, unfiltered and with 20 filters each: filters
// are compiled once per Subscription version, so they should cost the
// write little (issue 12: at most 2× the unfiltered write).
func BenchmarkPublishFanOut(b *testing.B) {
	const subscriptions = 1_000
	for _, filters := range []int{0, 20} {
		b.Run(fmt.Sprintf("subscriptions=%d/filters=%d", subscriptions, filters), func(b *testing.B) {
			ctx := context.Background()
			url := pgtest.URL(b)
			st, err := postgres.Open(ctx, url, postgres.WithMaxConns(4))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(st.Close)
			fanOutSubscriptions(b, url, subscriptions, filters)
			lib, err := topic.Load(ctx, st, topics.FS, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			svc := resources.New(resources.Config{Store: st, BaseURL: "https://h.example/fhir",
				OnWrite: []resources.WriteHook{(&publish.Publisher{Topics: lib}).Hook}})
			write := func(id string) {
				if _, err := svc.Update(ctx, system, "Encounter", id, []byte(encounter(id, "in-progress", "me")), ""); err != nil {
					b.Fatal(err)
				}
			}
			write("warm-up") // compiles the Subscriptions once, as a running server has
			var took []time.Duration
			i := 0
			b.ResetTimer()
			for b.Loop() {
				i++
				t0 := time.Now()
				write(fmt.Sprintf("e%d", i))
				took = append(took, time.Since(t0))
			}
			b.StopTimer()
			n, err := st.EventCount(ctx, "fan-1")
			if err != nil {
				b.Fatal(err)
			}
			if n != int64(i+1) {
				b.Fatalf("%d events for %d writes", n, i+1)
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
		})
	}
}
