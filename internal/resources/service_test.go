package resources_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/memory"
	"github.com/herald-fhir/herald/internal/store/pgtest"
)

const base = "http://herald.test/fhir"

var admin = &auth.Principal{ClientID: "c", Scopes: auth.ParseScopes("system/*.cruds")}

// eachStore runs fn against the memory store and, when DATABASE_URL is set,
// PostgreSQL: the business rules must hold on both.
func eachStore(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Helper()
	for _, s := range []struct {
		name string
		open func(t *testing.T) store.Store
	}{
		{"memory", func(*testing.T) store.Store { return memory.New() }},
		{"postgres", func(t *testing.T) store.Store { return pgtest.New(t) }},
	} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			fn(t, s.open(t))
		})
	}
}

func patient(id string, extra ...string) []byte {
	body := `{"resourceType":"Patient"`
	if id != "" {
		body += `,"id":"` + id + `"`
	}
	for _, e := range extra {
		body += "," + e
	}
	return []byte(body + "}")
}

// requireGapFree asserts typ/id has versions exactly 1..n, each one
// readable by vread, and returns their bodies oldest first.
func requireGapFree(t *testing.T, st store.Store, typ, id string, n int) [][]byte {
	t.Helper()
	hist, err := st.History(context.Background(), store.HistoryQuery{Type: typ, ID: id})
	require.NoError(t, err)
	require.Len(t, hist, n)
	bodies := make([][]byte, n)
	for i, v := range hist {
		require.Equal(t, int64(n-i), v.VersionID, "history is newest first and gap-free")
		got, err := st.Version(context.Background(), typ, id, v.VersionID)
		require.NoError(t, err)
		require.Equal(t, v.Body, got.Body)
		bodies[n-1-i] = v.Body
	}
	cur, err := st.Current(context.Background(), typ, id)
	require.NoError(t, err)
	require.Equal(t, int64(n), cur.VersionID)
	return bodies
}

func metaVersion(t *testing.T, body []byte) string {
	t.Helper()
	var m struct {
		Meta struct {
			VersionID string `json:"versionId"`
		} `json:"meta"`
	}
	require.NoError(t, json.Unmarshal(body, &m))
	return m.Meta.VersionID
}

// TestConcurrentUpdatesLoseNothing: 20 writers update one resource at once;
// every update becomes its own version, 2..21 after the create, with no gap
// and none lost.
func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		svc := resources.New(resources.Config{Store: st, BaseURL: base})
		ctx := context.Background()
		_, err := svc.Update(ctx, admin, "Patient", "race", patient("race"), "")
		require.NoError(t, err)

		const writers = 20
		var wg sync.WaitGroup
		results := make([]resources.Result, writers)
		errs := make([]error, writers)
		start := make(chan struct{})
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i], errs[i] = svc.Update(ctx, admin, "Patient", "race",
					patient("race", fmt.Sprintf(`"name":[{"text":"writer-%02d"}]`, i)), "")
			}()
		}
		close(start)
		wg.Wait()

		versions := map[int64]bool{}
		for i := range writers {
			require.NoError(t, errs[i], "writer %d", i)
			require.False(t, results[i].Created)
			versions[results[i].Version.VersionID] = true
		}
		require.Len(t, versions, writers, "each writer got its own version")

		bodies := requireGapFree(t, st, "Patient", "race", writers+1)
		seen := map[string]bool{}
		for n, b := range bodies {
			require.Equal(t, fmt.Sprint(n+1), metaVersion(t, b), "meta.versionId matches the version")
			var p struct {
				Name []struct{ Text string } `json:"name"`
			}
			require.NoError(t, json.Unmarshal(b, &p))
			if n == 0 {
				require.Empty(t, p.Name)
				continue
			}
			require.Len(t, p.Name, 1)
			seen[p.Name[0].Text] = true
		}
		for i := range writers {
			require.True(t, seen[fmt.Sprintf("writer-%02d", i)], "writer %d's update is in the history", i)
		}
	})
}

// TestConcurrentIfMatchOneWinner: with If-Match on the same version, exactly
// one of the concurrent updates succeeds and the rest get 412.
func TestConcurrentIfMatchOneWinner(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		svc := resources.New(resources.Config{Store: st, BaseURL: base})
		ctx := context.Background()
		_, err := svc.Update(ctx, admin, "Patient", "im", patient("im"), "")
		require.NoError(t, err)

		const writers = 20
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = svc.Update(ctx, admin, "Patient", "im", patient("im", `"active":true`), `W/"1"`)
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
				continue
			}
			require.Equal(t, 412, fhir.StatusOf(err), err.Error())
		}
		require.Equal(t, 1, ok)
		requireGapFree(t, st, "Patient", "im", 2)
	})
}

// TestConcurrentPutCreate: concurrent PUTs of one new id create it once
// (201) and update it for everyone else (200), with gap-free versions.
func TestConcurrentPutCreate(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		svc := resources.New(resources.Config{Store: st, BaseURL: base})
		ctx := context.Background()
		const writers = 20
		var wg sync.WaitGroup
		results := make([]resources.Result, writers)
		errs := make([]error, writers)
		start := make(chan struct{})
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i], errs[i] = svc.Update(ctx, admin, "Patient", "new-one", patient("new-one"), "")
			}()
		}
		close(start)
		wg.Wait()
		created := 0
		for i := range writers {
			require.NoError(t, errs[i], "writer %d", i)
			if results[i].Created {
				created++
				require.Equal(t, int64(1), results[i].Version.VersionID)
				require.Equal(t, store.MethodUpdate, results[i].Version.Method)
			}
		}
		require.Equal(t, 1, created, "exactly one PUT creates")
		requireGapFree(t, st, "Patient", "new-one", writers)
	})
}

// TestLastUpdatedIncreasesWithFrozenClock: even when the clock stands still
// (or goes back), each version's lastUpdated is after the previous one, in
// the store and in meta.lastUpdated.
func TestLastUpdatedIncreasesWithFrozenClock(t *testing.T) {
	t.Parallel()
	frozen := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	clocks := map[string]func() func() time.Time{
		"frozen": func() func() time.Time { return func() time.Time { return frozen } },
		"backwards": func() func() time.Time {
			var mu sync.Mutex
			t := frozen
			return func() time.Time {
				mu.Lock()
				defer mu.Unlock()
				t = t.Add(-time.Second)
				return t
			}
		},
	}
	for name, clock := range clocks {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			eachStore(t, func(t *testing.T, st store.Store) {
				svc := resources.New(resources.Config{Store: st, BaseURL: base, Now: clock()})
				ctx := context.Background()
				res, err := svc.Create(ctx, admin, "Patient", patient(""))
				require.NoError(t, err)
				id := res.Version.ID
				for i := range 5 {
					_, err := svc.Update(ctx, admin, "Patient", id, patient(id, fmt.Sprintf(`"name":[{"text":"v%d"}]`, i)), "")
					require.NoError(t, err)
				}
				_, err = svc.Delete(ctx, admin, "Patient", id, "")
				require.NoError(t, err)
				_, err = svc.Update(ctx, admin, "Patient", id, patient(id), "")
				require.NoError(t, err)

				hist, err := st.History(ctx, store.HistoryQuery{Type: "Patient", ID: id})
				require.NoError(t, err)
				require.Len(t, hist, 8)
				for i := 0; i+1 < len(hist); i++ {
					newer, older := hist[i], hist[i+1]
					require.True(t, newer.LastUpdated.After(older.LastUpdated),
						"v%d %s is not after v%d %s", newer.VersionID, newer.LastUpdated, older.VersionID, older.LastUpdated)
				}
				// meta.lastUpdated says the same as the store
				for _, v := range hist {
					if v.Deleted {
						continue
					}
					var m struct {
						Meta struct{ LastUpdated string } `json:"meta"`
					}
					require.NoError(t, json.Unmarshal(v.Body, &m))
					require.Equal(t, fhir.FormatInstant(v.LastUpdated), m.Meta.LastUpdated)
				}
			})
		})
	}
}

// hookCall is what a WriteHook saw.
type hookCall struct {
	prev *store.Version
	cur  store.Version
}

type recorder struct {
	mu    sync.Mutex
	calls []hookCall
}

func (r *recorder) hook(_ context.Context, _ store.Tx, prev *store.Version, cur store.Version) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var p *store.Version
	if prev != nil {
		cp := *prev
		p = &cp
	}
	r.calls = append(r.calls, hookCall{prev: p, cur: cur})
	return nil
}

func (r *recorder) take() []hookCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

// TestWriteHookSeesPrevAndCur: creates see prev nil, updates and deletes see
// the version they replace; a delete of nothing runs no hook.
func TestWriteHookSeesPrevAndCur(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	st := memory.New()
	svc := resources.New(resources.Config{Store: st, BaseURL: base, OnWrite: []resources.WriteHook{rec.hook}})
	ctx := context.Background()

	// POST create
	res, err := svc.Create(ctx, admin, "Patient", patient("", `"active":true`))
	require.NoError(t, err)
	calls := rec.take()
	require.Len(t, calls, 1)
	require.Nil(t, calls[0].prev)
	require.Equal(t, res.Version, calls[0].cur)
	require.Equal(t, int64(1), calls[0].cur.VersionID)
	require.Equal(t, store.MethodCreate, calls[0].cur.Method)
	id := res.Version.ID

	// PUT create
	_, err = svc.Update(ctx, admin, "Patient", "put-new", patient("put-new"), "")
	require.NoError(t, err)
	calls = rec.take()
	require.Len(t, calls, 1)
	require.Nil(t, calls[0].prev, "PUT that creates: prev is nil")
	require.Equal(t, "put-new", calls[0].cur.ID)

	// update
	_, err = svc.Update(ctx, admin, "Patient", id, patient(id, `"active":false`), "")
	require.NoError(t, err)
	calls = rec.take()
	require.Len(t, calls, 1)
	require.NotNil(t, calls[0].prev)
	require.Equal(t, int64(1), calls[0].prev.VersionID)
	require.Contains(t, string(calls[0].prev.Body), `"active":true`)
	require.Equal(t, int64(2), calls[0].cur.VersionID)
	require.Contains(t, string(calls[0].cur.Body), `"active":false`)

	// delete
	_, err = svc.Delete(ctx, admin, "Patient", id, "")
	require.NoError(t, err)
	calls = rec.take()
	require.Len(t, calls, 1)
	require.NotNil(t, calls[0].prev)
	require.Equal(t, int64(2), calls[0].prev.VersionID)
	require.True(t, calls[0].cur.Deleted)
	require.Nil(t, calls[0].cur.Body)
	require.Equal(t, int64(3), calls[0].cur.VersionID)

	// deleting what is already deleted or never existed writes nothing and runs no hook
	res, err = svc.Delete(ctx, admin, "Patient", id, "")
	require.NoError(t, err)
	require.True(t, res.NoOp)
	res, err = svc.Delete(ctx, admin, "Patient", "never", "")
	require.NoError(t, err)
	require.True(t, res.NoOp)
	require.Empty(t, rec.take())

	// re-create after delete: Created, and prev is the delete marker
	// (hooks must test prev == nil || prev.Deleted for "did not exist")
	res, err = svc.Update(ctx, admin, "Patient", id, patient(id), "")
	require.NoError(t, err)
	require.True(t, res.Created)
	calls = rec.take()
	require.Len(t, calls, 1)
	require.NotNil(t, calls[0].prev)
	require.True(t, calls[0].prev.Deleted)
	require.Equal(t, int64(4), calls[0].cur.VersionID)

	// refused writes run no hook
	reader := &auth.Principal{ClientID: "r", Scopes: auth.ParseScopes("system/Patient.rs")}
	_, err = svc.Create(ctx, reader, "Patient", patient(""))
	require.Equal(t, 403, fhir.StatusOf(err))
	_, err = svc.Update(ctx, admin, "Patient", id, patient(id), `W/"1"`)
	require.Equal(t, 412, fhir.StatusOf(err))
	require.Empty(t, rec.take())
}

// TestWriteHookErrorRollsBack: a hook's error aborts the write, including
// anything the hooks wrote through the same Tx (this is how the topic
// engine records notifications atomically with the change).
func TestWriteHookErrorRollsBack(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		boom := errors.New("topic engine refused")
		var fail bool
		var mu sync.Mutex
		// The first hook writes a side record in the same Tx, as the topic
		// engine will; the second fails on demand.
		sideEffect := func(ctx context.Context, tx store.Tx, prev *store.Version, cur store.Version) error {
			if cur.Type != "Patient" {
				return nil
			}
			next := int64(1)
			if v, err := tx.Lock(ctx, "Basic", "events"); err == nil {
				next = v.VersionID + 1
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			return tx.Put(ctx, store.Version{Type: "Basic", ID: "events", VersionID: next, Method: store.MethodUpdate,
				LastUpdated: time.Now(), Body: []byte(`{"resourceType":"Basic","id":"events"}`)})
		}
		failing := func(context.Context, store.Tx, *store.Version, store.Version) error {
			mu.Lock()
			defer mu.Unlock()
			if fail {
				return boom
			}
			return nil
		}
		svc := resources.New(resources.Config{Store: st, BaseURL: base, OnWrite: []resources.WriteHook{sideEffect, failing}})
		setFail := func(v bool) { mu.Lock(); fail = v; mu.Unlock() }

		res, err := svc.Update(ctx, admin, "Patient", "h", patient("h", `"active":true`), "")
		require.NoError(t, err)
		require.True(t, res.Created)
		requireGapFree(t, st, "Basic", "events", 1)

		setFail(true)
		// create
		_, err = svc.Create(ctx, admin, "Patient", patient(""))
		require.ErrorIs(t, err, boom)
		_, err = svc.Update(ctx, admin, "Patient", "h2", patient("h2"), "")
		require.ErrorIs(t, err, boom)
		_, err = st.Current(ctx, "Patient", "h2")
		require.ErrorIs(t, err, store.ErrNotFound)
		// update
		_, err = svc.Update(ctx, admin, "Patient", "h", patient("h", `"active":false`), "")
		require.ErrorIs(t, err, boom)
		// delete
		_, err = svc.Delete(ctx, admin, "Patient", "h", "")
		require.ErrorIs(t, err, boom)
		// transaction: nothing of it stays
		_, err = svc.Bundle(ctx, admin, []byte(`{"resourceType":"Bundle","type":"transaction","entry":[
			{"request":{"method":"POST","url":"Observation"},"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"}}},
			{"request":{"method":"POST","url":"Patient"},"resource":{"resourceType":"Patient"}}]}`), false)
		require.ErrorIs(t, err, boom)
		// batch: the failing entry reports the error as a 500 and stores nothing
		b, err := svc.Bundle(ctx, admin, []byte(`{"resourceType":"Bundle","type":"batch","entry":[
			{"request":{"method":"POST","url":"Patient"},"resource":{"resourceType":"Patient"}}]}`), false)
		require.NoError(t, err)
		require.Len(t, b.Entry, 1)
		require.Equal(t, "500 Internal Server Error", b.Entry[0].Response.Status)
		require.NotContains(t, string(b.Entry[0].Response.Outcome), boom.Error(), "a hook's error text does not reach the client")

		cur, err := st.Current(ctx, "Patient", "h")
		require.NoError(t, err)
		require.Equal(t, int64(1), cur.VersionID)
		require.Contains(t, string(cur.Body), `"active":true`)
		all, err := st.Search(ctx, store.SearchQuery{Type: "Patient"})
		require.NoError(t, err)
		require.Len(t, all, 1)
		all, err = st.Search(ctx, store.SearchQuery{Type: "Observation"})
		require.NoError(t, err)
		require.Empty(t, all)
		requireGapFree(t, st, "Basic", "events", 1) // the hook's own writes were rolled back too

		setFail(false)
		_, err = svc.Update(ctx, admin, "Patient", "h", patient("h", `"active":false`), "")
		require.NoError(t, err)
		requireGapFree(t, st, "Patient", "h", 2)
		requireGapFree(t, st, "Basic", "events", 2)
	})
}

// TestTransactionProcessingOrder: a transaction runs DELETEs, then POSTs,
// then PUTs, then GETs, whatever the order of its entries, and answers in
// entry order.
func TestTransactionProcessingOrder(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	st := memory.New()
	svc := resources.New(resources.Config{Store: st, BaseURL: base, OnWrite: []resources.WriteHook{rec.hook}})
	ctx := context.Background()
	for _, id := range []string{"del", "upd"} {
		_, err := svc.Update(ctx, admin, "Patient", id, patient(id), "")
		require.NoError(t, err)
	}
	rec.take()

	b, err := svc.Bundle(ctx, admin, []byte(`{"resourceType":"Bundle","type":"transaction","entry":[
		{"request":{"method":"GET","url":"Patient/upd"}},
		{"request":{"method":"PUT","url":"Patient/upd"},"resource":{"resourceType":"Patient","id":"upd","active":true}},
		{"fullUrl":"urn:uuid:0b5c2b3c-77f4-4a5e-9e0a-0a4f1c0e3f11","request":{"method":"POST","url":"Patient"},"resource":{"resourceType":"Patient"}},
		{"request":{"method":"PUT","url":"Patient/upd2"},"resource":{"resourceType":"Patient","id":"upd2"}},
		{"request":{"method":"DELETE","url":"Patient/del"}},
		{"request":{"method":"GET","url":"Patient?_id=del,upd"}}
	]}`), false)
	require.NoError(t, err)

	var order []string
	for _, c := range rec.take() {
		order = append(order, string(c.cur.Method)+" "+c.cur.ID)
	}
	require.Len(t, order, 4)
	require.Equal(t, "DELETE del", order[0])
	require.True(t, order[1] != "" && order[1][:5] == "POST ", order[1])
	require.Equal(t, []string{"PUT upd", "PUT upd2"}, order[2:], "PUTs keep their relative order")

	require.Len(t, b.Entry, 6)
	statuses := make([]string, len(b.Entry))
	for i, e := range b.Entry {
		statuses[i] = e.Response.Status
	}
	require.Equal(t, []string{"200 OK", "200 OK", "201 Created", "201 Created", "204 No Content", "200 OK"}, statuses)
	require.Contains(t, string(b.Entry[0].Resource), `"active":true`, "the GET ran after the PUT")
	require.Equal(t, `W/"2"`, b.Entry[0].Response.Etag)
	var set struct {
		Entry []struct {
			Resource struct{ ID string } `json:"resource"`
		} `json:"entry"`
	}
	require.NoError(t, json.Unmarshal(b.Entry[5].Resource, &set))
	require.Len(t, set.Entry, 1, "the search ran after the DELETE")
	require.Equal(t, "upd", set.Entry[0].Resource.ID)
}

// TestSearchAndHistoryUnderPatientScope: the service confines a patient/
// token to its compartment without HTTP in between.
func TestSearchAndHistoryUnderPatientScope(t *testing.T) {
	t.Parallel()
	st := memory.New()
	svc := resources.New(resources.Config{Store: st, BaseURL: base})
	ctx := context.Background()
	for _, o := range []struct{ id, subject string }{{"o1", "Patient/p1"}, {"o2", "Patient/p2"}, {"o3", base + "/Patient/p1"}, {"o4", ""}} {
		body := `{"resourceType":"Observation","id":"` + o.id + `","status":"final","code":{"text":"x"}`
		if o.subject != "" {
			body += `,"subject":{"reference":"` + o.subject + `"}`
		}
		_, err := svc.Update(ctx, admin, "Observation", o.id, []byte(body+"}"), "")
		require.NoError(t, err)
	}
	p1 := &auth.Principal{ClientID: "app", Scopes: auth.ParseScopes("patient/Observation.rs"), Patient: "p1"}
	b, err := svc.Search(ctx, p1, "Observation", url.Values{}, false)
	require.NoError(t, err)
	var ids []string
	for _, e := range b.Entry {
		var r struct{ ID string }
		require.NoError(t, json.Unmarshal(e.Resource, &r))
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	require.Equal(t, []string{"o1", "o3"}, ids, "absolute references to this server count")

	_, err = svc.Read(ctx, p1, "Observation", "o2")
	require.Equal(t, 404, fhir.StatusOf(err))
	_, err = svc.Read(ctx, p1, "Observation", "o4")
	require.Equal(t, 404, fhir.StatusOf(err))
	_, err = svc.History(ctx, p1, "Observation", "o2", url.Values{})
	require.Equal(t, 404, fhir.StatusOf(err))
	_, err = svc.VRead(ctx, p1, "Observation", "o2", "1")
	require.Equal(t, 404, fhir.StatusOf(err))

	// the same scopes without the patient claim grant nothing
	noClaim := &auth.Principal{ClientID: "app", Scopes: auth.ParseScopes("patient/Observation.rs")}
	_, err = svc.Search(ctx, noClaim, "Observation", url.Values{}, false)
	require.Equal(t, 403, fhir.StatusOf(err))
	_, err = svc.Read(ctx, noClaim, "Observation", "o1")
	require.Equal(t, 403, fhir.StatusOf(err))
	// nor does a nil principal
	_, err = svc.Read(ctx, nil, "Observation", "o1")
	require.Equal(t, 403, fhir.StatusOf(err))
}
