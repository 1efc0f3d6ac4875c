package postgres_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/search"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/pgtest"
	"github.com/herald-fhir/herald/internal/store/postgres"
)

// TestBulkCreateStoresWhatACreateStores: a resource seeded (Service.Seed)
// and bulk-created reads back exactly as the same create written through
// the service, and is found by the same indexed searches.
func TestBulkCreateStoresWhatACreateStores(t *testing.T) {
	t.Parallel()
	const base = "http://herald.test/fhir"
	at := time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)
	ctx := context.Background()
	admin := &auth.Principal{ClientID: "c", Scopes: auth.ParseScopes("system/*.cruds")}
	body := []byte(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-05-01T10:00:00+00:00","valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`)

	written, bulk := pgtest.New(t), pgtest.New(t)
	svc := resources.New(resources.Config{Store: written, BaseURL: base, Now: func() time.Time { return at }, NewID: func() string { return "o1" }})
	_, err := svc.Create(ctx, admin, "Observation", body)
	require.NoError(t, err)
	want, err := written.Current(ctx, "Observation", "o1")
	require.NoError(t, err)

	seeder := resources.New(resources.Config{Store: bulk, BaseURL: base})
	v, err := seeder.Seed("Observation", "o1", body, at)
	require.NoError(t, err)
	require.Equal(t, svc.IndexKeysOf(want), v.Index)
	require.NoError(t, bulk.BulkCreate(ctx, []store.Version{v}))
	got, err := bulk.Current(ctx, "Observation", "o1")
	require.NoError(t, err)
	require.Equal(t, want, got)
	hist, err := bulk.History(ctx, store.HistoryQuery{Type: "Observation", ID: "o1"})
	require.NoError(t, err)
	require.Equal(t, []store.Version{want}, hist)

	for _, q := range []string{"code=http://loinc.org|8867-4", "patient=Patient/p1", "status=final"} {
		c, err := search.ParseCriteria("Observation", q)
		require.NoError(t, err)
		sq := store.SearchQuery{Type: "Observation", Index: c.IndexTerms(base), Narrow: c.Narrow(base)}
		require.NotEmpty(t, sq.Index, q)
		found, err := bulk.Search(ctx, sq)
		require.NoError(t, err)
		require.Len(t, found, 1, q)
	}
	require.Error(t, bulk.BulkCreate(ctx, []store.Version{v}), "an existing id")
}

// TestNarrowSearchKeepsItsGenericPlan: once the planner knows the search
// keys' frequencies, a patient's search planned every execution again
// (its custom plans looked cheaper than the generic one); with its values,
// the type's too, in one-row subqueries PostgreSQL settles on the generic
// plan after its first five custom ones, also when the statement searches
// types of very different sizes in turn, and the answers stay the same.
func TestNarrowSearchKeepsItsGenericPlan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const base = "http://herald.test/fhir"
	st := pgtest.New(t, postgres.WithMaxConns(1))
	svc := resources.New(resources.Config{Store: st, BaseURL: base})
	var vs []store.Version
	for p := range 800 {
		for o := range 25 {
			code := "8867-4" // a frequent code and a rare patient
			if o%10 == 0 && o < 30 {
				code = fmt.Sprintf("rare-%d", p)
			}
			v, err := svc.Seed("Observation", fmt.Sprintf("o-%03d-%02d", p, o), []byte(fmt.Sprintf(
				`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":%q}]},"subject":{"reference":"Patient/p%03d"}}`, code, p)), time.Now())
			require.NoError(t, err)
			vs = append(vs, v)
		}
	}
	require.NoError(t, st.BulkCreate(ctx, vs))
	require.NoError(t, st.AnalyzeForTest(ctx))

	c, err := search.ParseCriteria("Observation", "code=8867-4&patient=Patient/p007") // in the order REST search sorts them
	require.NoError(t, err)
	sq := store.SearchQuery{Type: "Observation", Index: c.IndexTerms(base), Narrow: c.Narrow(base), Count: 50}
	require.True(t, sq.Narrow)
	// The same statement for a type with no rows: its custom plans look
	// far cheaper, and when it was planned with the type's value, the
	// statement never came to its generic plan.
	ce, err := search.ParseCriteria("Encounter", "patient=Patient/p007&status=in-progress")
	require.NoError(t, err)
	eq := store.SearchQuery{Type: "Encounter", Index: ce.IndexTerms(base), Narrow: ce.Narrow(base), Count: 50}
	for range 12 {
		found, err := st.Search(ctx, sq)
		require.NoError(t, err)
		require.Equal(t, 22, len(found))
		found, err = st.Search(ctx, eq)
		require.NoError(t, err)
		require.Empty(t, found)
	}
	generic, custom, err := st.PlansForTest(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, generic, int64(12), "generic plans (custom: %d)", custom)

	// The generic plan cannot tell the patient's key from the frequent
	// code's: only the patient's is read through the index (25 rows), the
	// code filters those, not the other way round (16,000 rows).
	plan, err := st.ExplainSearchForTest(ctx, sq)
	require.NoError(t, err)
	for _, m := range regexp.MustCompile(`Bitmap Index Scan[^\n]*actual[^\n]*rows=(\d+)`).FindAllStringSubmatch(plan, -1) {
		n, _ := strconv.Atoi(m[1])
		require.LessOrEqual(t, n, 25, plan)
	}
	require.Contains(t, plan, "Bitmap Index Scan", plan)

	// A granular grant's bound (a patient and a common code) is applied
	// above the fence: 22 of the patient's 25 Observations, not 25.
	c, err = search.ParseCriteria("Observation", "patient=Patient/p007")
	require.NoError(t, err)
	sq = store.SearchQuery{Type: "Observation", Index: c.IndexTerms(base), Narrow: c.Narrow(base), Count: 50,
		Within: []store.Bound{{Patient: "p007", Index: [][]string{{"Observation.code=c:8867-4"}}}}}
	found, err := st.Search(ctx, sq)
	require.NoError(t, err)
	require.Equal(t, 22, len(found))
	n, err := st.Count(ctx, sq)
	require.NoError(t, err)
	require.Equal(t, 22, n)
}
