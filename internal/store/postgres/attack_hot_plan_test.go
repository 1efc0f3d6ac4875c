package postgres_test

import (
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// seedDue puts one Subscription, then clones it into n due ones of owners
// owners (owner-%d), earliest due first, all due an hour ago.
func seedDue(t *testing.T, st *postgres.Store, url string, n, owners int) *pgx.Conn {
	t.Helper()
	ctx := t.Context()
	at := time.Now().Add(-2 * time.Hour)
	require.NoError(t, st.InTx(ctx, func(tx store.Tx) error {
		return tx.PutSubscription(ctx, store.SubscriptionState{
			ID: "template", Owner: "template", Context: "system",
			Status: "active", Topic: "https://example.org/topic", Endpoint: "https://receiver.example/hook",
			Content: "id-only", CreatedAt: at, UpdatedAt: at,
		})
	}))
	db, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close(context.Background()) })
	_, err = db.Exec(ctx, `INSERT INTO subscriptions
		SELECT (jsonb_populate_record(s, jsonb_build_object(
			'id', 's' || lpad(g::text, 6, '0'),
			'owner', 'owner-' || (g % $2),
			'due_at', now() - interval '1 hour' + g * interval '1 millisecond'))).*
		FROM subscriptions s, generate_series(0, $1 - 1) g WHERE s.id = 'template'`, n, owners)
	require.NoError(t, err)
	return db
}

var actualRows = regexp.MustCompile(`(Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan) (?:using \S+ )?on (subscription_due|subscriptions)\b.*actual time=\S+ rows=(\d+) loops=(\d+)`)

// rowsRead sums, over the plan's scans of subscription_due and
// subscriptions, the rows they returned (rows × loops).
func rowsRead(plan string) (total int, seq bool) {
	for _, m := range actualRows.FindAllStringSubmatch(plan, -1) {
		r, _ := strconv.Atoi(m[3])
		l, _ := strconv.Atoi(m[4])
		total += r * l
		if m[1] == "Seq Scan" {
			seq = true
		}
	}
	return total, seq
}

// TestAttackHotClaimReadsBoundedEntries: a claim of 32 (cap 24) reads
// subscription_due and subscriptions by index only (no sequential scan of
// the queue or of the wide table), whatever the statistics: none yet (a
// fresh migration, before autovacuum's ANALYZE), those of subscriptions
// only (subscription_due is the table migration 00022 just created), or
// all; under a custom and a generic plan; with owners of many rows and
// owners of few. The claim before 00022 passes every case.
func TestAttackHotClaimReadsBoundedEntries(t *testing.T) {
	claimReadsBounded(t, "none", "subscriptions", "all")
}

// TestAttackHotClaimAfterIdleStatistics: statistics taken while the queue
// was idle, then a burst makes 20,000 rows due before autovacuum analyzes
// again. The heads' EXISTS becomes a hash semi-join over the whole queue.
// Partly older than 00022: the claim before it reads 40,068 rows with 1,000
// owners too (and 22,068 with 10,000, within the bound); with 00022 43,070
// and 70,070 (each queue entry joined to subscriptions).
func TestAttackHotClaimAfterIdleStatistics(t *testing.T) {
	claimReadsBounded(t, "analyzed-idle")
}

func claimReadsBounded(t *testing.T, statsModes ...string) {
	for _, shape := range []struct{ n, owners int }{{20_000, 1_000}, {20_000, 10_000}} {
		for _, stats := range statsModes {
			t.Run(strconv.Itoa(shape.n)+"/"+strconv.Itoa(shape.owners)+"/"+stats, func(t *testing.T) {
				t.Parallel()
				url := pgtest.URL(t)
				st := pgtest.Open(t, url, postgres.WithMaxConns(2))
				db := seedDue(t, st, url, shape.n, shape.owners)
				switch stats {
				case "subscriptions":
					_, err := db.Exec(t.Context(), `ANALYZE subscriptions; ANALYZE subscription_leases`)
					require.NoError(t, err)
				case "all":
					_, err := db.Exec(t.Context(), `ANALYZE`)
					require.NoError(t, err)
				case "analyzed-idle":
					// Statistics taken while the queue was idle (every
					// row sent), then a burst makes every row due again
					// before autovacuum analyzes anew.
					_, err := db.Exec(t.Context(), `UPDATE subscriptions SET due_at = NULL`)
					require.NoError(t, err)
					_, err = db.Exec(t.Context(), `ANALYZE`)
					require.NoError(t, err)
					_, err = db.Exec(t.Context(), `UPDATE subscriptions SET due_at = now() - interval '1 hour' + random() * interval '1 minute'`)
					require.NoError(t, err)
				}
				for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
					plan, err := st.ExplainClaimForTest(t.Context(), mode, time.Now(), 32, time.Minute, 24)
					require.NoError(t, err)
					n, seq := rowsRead(plan)
					t.Logf("%s: %d rows read, seq scan %v", mode, n, seq)
					if testing.Verbose() {
						t.Log(plan)
					}
					assert.False(t, seq, "%s: a sequential scan\n%s", mode, plan)
					// An owner probe, an EXISTS and a few rows per owner.
					assert.Less(t, n, 6*shape.owners, "%s\n%s", mode, plan)
				}
			})
		}
	}
}
