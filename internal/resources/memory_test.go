package resources_test

import (
	"context"
	"fmt"
	"net/url"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/resources"
	"github.com/herald-fhir/herald/internal/store"
	"github.com/herald-fhir/herald/internal/store/memory"
)

// countingStore counts the resource bytes the store hands its caller:
// what an answer holds, whatever the store (the memory store shares its
// bodies, so a heap measure would see nothing there). Bodies a search's
// matcher looks at and rejects are not counted: the store drops them.
type countingStore struct {
	store.Store
	read     atomic.Int64
	currents atomic.Int64 // Current calls
	searches atomic.Int64 // Search calls
}

func (c *countingStore) add(vs ...store.Version) {
	for _, v := range vs {
		c.read.Add(int64(len(v.Body)))
	}
}

func (c *countingStore) Current(ctx context.Context, typ, id string) (store.Version, error) {
	v, err := c.Store.Current(ctx, typ, id)
	c.currents.Add(1)
	c.add(v)
	return v, err
}

func (c *countingStore) Search(ctx context.Context, q store.SearchQuery) ([]store.Version, error) {
	vs, err := c.Store.Search(ctx, q)
	c.searches.Add(1)
	c.add(vs...)
	return vs, err
}

func (c *countingStore) History(ctx context.Context, q store.HistoryQuery) ([]store.Version, error) {
	vs, err := c.Store.History(ctx, q)
	c.add(vs...)
	return vs, err
}

func (c *countingStore) Changes(ctx context.Context, q store.ChangesQuery) ([]store.Version, error) {
	vs, err := c.Store.Changes(ctx, q)
	c.add(vs...)
	return vs, err
}

// walk follows next links from params until none is left and returns the
// ids (or versions) each page held, checking each page with check.
func walk(t *testing.T, get func(url.Values) (*fhir.Bundle, error), params url.Values, check func(page int, b *fhir.Bundle)) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for page := 1; ; page++ {
		require.Less(t, page, 40, "paging must end")
		b, err := get(params)
		require.NoError(t, err)
		require.NotEmpty(t, b.Entry, "page %d", page)
		check(page, b)
		for _, e := range b.Entry {
			key := strings.TrimPrefix(e.FullURL, base+"/")
			if e.Response != nil {
				key += " " + e.Response.Etag
			}
			seen[key]++
		}
		next, ok := nextPage(t, b)
		if !ok {
			return seen
		}
		params = next
	}
}

// TestSortedSearchReadsOnlyItsPage: a sorted search sorts on what sorting
// needs (id and keys) and reads the bodies of the one page it returns,
// within the response budget (issue 17: 10,000 matches of 2 MB were held
// whole to sort them). Bytes are counted as the store hands them over.
func TestSortedSearchReadsOnlyItsPage(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		const budget, size = 256 << 10, 60 << 10
		cs := &countingStore{Store: st}
		svc := resources.New(resources.Config{Store: cs, BaseURL: base, MaxResponseBytes: budget})
		bigPatients(t, svc, 12, size) // 720 KB in all

		for _, sort := range []string{"-_id", "name", "-_lastUpdated"} {
			cs.read.Store(0)
			b, err := svc.Search(context.Background(), admin, "Patient", url.Values{"_sort": {sort}, "_count": {"2"}}, true)
			require.NoError(t, err)
			require.Len(t, b.Entry, 2)
			require.Equal(t, 12, *b.Total)
			require.LessOrEqual(t, cs.read.Load(), int64(3*size), "_sort=%s, _count=2 reads %d KB", sort, cs.read.Load()>>10)
		}
		b, err := svc.Search(context.Background(), admin, "Patient", url.Values{"_sort": {"-_id"}, "_count": {"2"}}, true)
		require.NoError(t, err)
		require.Equal(t, base+"/Patient/big-11", b.Entry[0].FullURL)

		// _count=1000: pages end at the budget, and what a page reads with it.
		pages := 0
		seen := walk(t, func(params url.Values) (*fhir.Bundle, error) {
			cs.read.Store(0)
			return svc.Search(context.Background(), admin, "Patient", params, true)
		}, url.Values{"_sort": {"-_id"}, "_count": {"1000"}}, func(page int, b *fhir.Bundle) {
			pages++
			require.LessOrEqual(t, resourceBytes(b), budget, "page %d", page)
			require.LessOrEqual(t, cs.read.Load(), int64(budget+size), "page %d reads %d KB", page, cs.read.Load()>>10)
		})
		require.Len(t, seen, 12)
		for id, n := range seen {
			require.Equal(t, 1, n, "%s on exactly one page", id)
		}
		require.GreaterOrEqual(t, pages, 3)
	})
}

// TestSortedSearchOfOnePageReadsOnce: a search sorted by a key in the
// bodies whose matches all fit its page is answered from the read that
// ranked them; one with more matches, or more bytes than the budget,
// ranks them, then reads its page. The pages are the same either way.
func TestSortedSearchOfOnePageReadsOnce(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		const budget, size = 256 << 10, 60 << 10
		cs := &countingStore{Store: st}
		svc := resources.New(resources.Config{Store: cs, BaseURL: base, MaxResponseBytes: budget})
		bigPatients(t, svc, 3, size)
		ids := func(b *fhir.Bundle) (out []string) {
			for _, e := range b.Entry {
				out = append(out, strings.TrimPrefix(e.FullURL, base+"/Patient/"))
			}
			return out
		}
		for _, tc := range []struct {
			count    string
			searches int64
			want     []string
		}{
			{"3", 1, []string{"big-00", "big-01", "big-02"}}, // all three on the page (names tie: by id)
			{"2", 2, []string{"big-00", "big-01"}},           // more matches than the page
		} {
			cs.searches.Store(0)
			b, err := svc.Search(context.Background(), admin, "Patient", url.Values{"_sort": {"name"}, "_count": {tc.count}}, true)
			require.NoError(t, err)
			require.Equal(t, tc.want, ids(b), "_count=%s", tc.count)
			require.Equal(t, 3, *b.Total)
			require.Equal(t, tc.searches, cs.searches.Load(), "_count=%s", tc.count)
		}

		// Five of 60 KB exceed the 256 KB budget: ranked, then the page
		// read up to the budget, its next link where it stopped.
		bigPatients(t, svc, 5, size)
		cs.searches.Store(0)
		b, err := svc.Search(context.Background(), admin, "Patient", url.Values{"_sort": {"name"}, "_count": {"10"}}, true)
		require.NoError(t, err)
		require.Equal(t, int64(2), cs.searches.Load())
		require.Equal(t, []string{"big-00", "big-01", "big-02", "big-03"}, ids(b))
		require.Equal(t, 5, *b.Total)
	})
}

// TestHistoryPagesStopAtByteBudget: instance, type and system history pages
// end at HERALD_MAX_RESPONSE_BYTES like search pages, read no more than
// that from the store, and their next links walk every version exactly
// once (issue 17: 1,000 versions of 4 MB were built whole).
func TestHistoryPagesStopAtByteBudget(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		const budget, size = 256 << 10, 60 << 10
		cs := &countingStore{Store: st}
		svc := resources.New(resources.Config{Store: cs, BaseURL: base, MaxResponseBytes: budget})
		bigPatients(t, svc, 6, size)
		for i := range 6 { // big-00 gets 7 versions
			_, err := svc.Update(context.Background(), admin, "Patient", "big-00",
				patient("big-00", fmt.Sprintf(`"name":[{"text":%q}]`, strings.Repeat(fmt.Sprint(i), size))), "")
			require.NoError(t, err)
		}
		for _, h := range []struct {
			name     string
			get      func(url.Values) (*fhir.Bundle, error)
			versions int
		}{
			{"instance", func(p url.Values) (*fhir.Bundle, error) {
				return svc.History(context.Background(), admin, "Patient", "big-00", p)
			}, 7},
			{"type", func(p url.Values) (*fhir.Bundle, error) {
				return svc.TypeHistory(context.Background(), admin, "Patient", p)
			}, 12},
			{"system", func(p url.Values) (*fhir.Bundle, error) {
				return svc.SystemHistory(context.Background(), admin, p)
			}, 12},
		} {
			pages := 0
			seen := walk(t, func(p url.Values) (*fhir.Bundle, error) {
				cs.read.Store(0)
				return h.get(p)
			}, url.Values{"_count": {"1000"}}, func(page int, b *fhir.Bundle) {
				pages++
				require.LessOrEqual(t, resourceBytes(b), budget, "%s history page %d", h.name, page)
				require.LessOrEqual(t, cs.read.Load(), int64(budget+size), "%s history page %d reads %d KB", h.name, page, cs.read.Load()>>10)
			})
			require.Len(t, seen, h.versions, "%s history", h.name)
			for k, n := range seen {
				require.Equal(t, 1, n, "%s history: %s on exactly one page", h.name, k)
			}
			require.GreaterOrEqual(t, pages, 2, "%s history", h.name)
		}
	})
}

// TestIncludesHoldAtMostTheBudget: _include and _revinclude read their
// resources as they go and stop at the response budget with 413, instead
// of reading up to 1,000 referrers (or every referenced resource) first;
// within the budget every referrer is included, not the first 1,000.
func TestIncludesHoldAtMostTheBudget(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		const budget, size = 256 << 10, 60 << 10
		cs := &countingStore{Store: st}
		svc := resources.New(resources.Config{Store: cs, BaseURL: base, MaxResponseBytes: budget})
		bigPatients(t, svc, 12, size)
		ctx := context.Background()
		for i := range 12 {
			_, err := svc.Update(ctx, admin, "Observation", fmt.Sprintf("o%02d", i), []byte(fmt.Sprintf(
				`{"resourceType":"Observation","id":"o%02d","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/big-%02d"},"note":[{"text":%q}]}`,
				i, i, strings.Repeat("o", size))), "")
			require.NoError(t, err)
			_, err = svc.Update(ctx, admin, "Observation", fmt.Sprintf("small%02d", i), []byte(fmt.Sprintf(
				`{"resourceType":"Observation","id":"small%02d","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/big-%02d"}}`, i, i)), "")
			require.NoError(t, err)
		}
		tooLarge := func(err error) {
			t.Helper()
			var fe *fhir.Error
			require.ErrorAs(t, err, &fe)
			require.Equal(t, fhir.KindTooLarge, fe.Kind)
		}

		// _include of 12 big Patients from 12 small Observations.
		cs.read.Store(0)
		_, err := svc.Search(ctx, admin, "Observation", url.Values{"_id": {"small00,small01,small02,small03,small04,small05,small06,small07,small08,small09,small10,small11"},
			"_include": {"Observation:subject"}}, true)
		tooLarge(err)
		require.LessOrEqual(t, cs.read.Load(), int64(budget+size), "_include reads %d KB", cs.read.Load()>>10)

		// _revinclude of a Patient's 12 big Observations … by way of :iterate
		// over the small ones: Patient big-00 → Observations of big-00.
		for i := range 12 {
			_, err := svc.Update(ctx, admin, "Observation", fmt.Sprintf("of00-%02d", i), []byte(fmt.Sprintf(
				`{"resourceType":"Observation","id":"of00-%02d","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/big-00"},"note":[{"text":%q}]}`,
				i, strings.Repeat("r", size))), "")
			require.NoError(t, err)
		}
		cs.read.Store(0)
		_, err = svc.Search(ctx, admin, "Patient", url.Values{"_id": {"big-00"}, "_revinclude": {"Observation:subject"}}, true)
		tooLarge(err)
		require.LessOrEqual(t, cs.read.Load(), int64(budget+2*size), "_revinclude reads %d KB", cs.read.Load()>>10)

		// Within the budget everything comes.
		big := resources.New(resources.Config{Store: st, BaseURL: base, MaxResponseBytes: 4 << 20})
		b, err := big.Search(ctx, admin, "Patient", url.Values{"_id": {"big-00"}, "_revinclude": {"Observation:subject"}}, true)
		require.NoError(t, err)
		require.Len(t, b.Entry, 1+14)
	})
}

// TestIncludeReadsEachResourceOnce: 20 Observations of one patient, 5 of
// a patient that does not exist and 5 referring to one another: the
// include reads Patient/p1 and Patient/nobody once, together, in one
// search, and none of the Observations (already on the page); not once
// per referrer (30 reads), nor one read per Patient.
func TestIncludeReadsEachResourceOnce(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		cs := &countingStore{Store: st}
		svc := resources.New(resources.Config{Store: cs, BaseURL: base})
		ctx := context.Background()
		_, err := svc.Update(ctx, admin, "Patient", "p1", []byte(`{"resourceType":"Patient","id":"p1"}`), "")
		require.NoError(t, err)
		obs := func(id, subject string) {
			_, err := svc.Update(ctx, admin, "Observation", id, []byte(fmt.Sprintf(
				`{"resourceType":"Observation","id":%q,"status":"final","code":{"text":"x"},"subject":{"reference":%q}}`, id, subject)), "")
			require.NoError(t, err)
		}
		for i := range 20 {
			obs(fmt.Sprintf("o%02d", i), "Patient/p1")
		}
		for i := range 5 {
			obs(fmt.Sprintf("n%02d", i), "Patient/nobody")
		}
		for i := range 5 {
			obs(fmt.Sprintf("x%02d", i), "Observation/o00") // a match: no read
		}
		cs.currents.Store(0)
		cs.searches.Store(0)
		b, err := svc.Search(ctx, admin, "Observation", url.Values{"_count": {"100"}, "_include": {"Observation:subject"}}, true)
		require.NoError(t, err)
		require.Len(t, b.Entry, 30+1, "every Observation and Patient/p1")
		require.Equal(t, "include", b.Entry[30].Search.Mode)
		require.Equal(t, base+"/Patient/p1", b.Entry[30].FullURL)
		require.EqualValues(t, 0, cs.currents.Load(), "Current calls")
		require.EqualValues(t, 2, cs.searches.Load(), "the page's search, then one for the Patients")
	})
}

// TestSearchPageReadsAtMostTheBudget: a search page ends at the response
// budget, and the store stops reading there too, forwards and backwards:
// a _count=1000 page of 4 MB resources no longer holds _count bodies
// before the budget cuts it (issue 17).
func TestSearchPageReadsAtMostTheBudget(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		const budget, size = 256 << 10, 60 << 10
		cs := &countingStore{Store: st}
		svc := resources.New(resources.Config{Store: cs, BaseURL: base, MaxResponseBytes: budget})
		bigPatients(t, svc, 12, size)
		for _, filter := range []url.Values{{}, {"name": {"nnn"}}} { // decided by the index, or by the matcher
			get := func(params url.Values) (*fhir.Bundle, error) {
				cs.read.Store(0)
				for k, v := range filter {
					params[k] = v
				}
				return svc.Search(context.Background(), admin, "Patient", params, true)
			}
			check := func(page int, b *fhir.Bundle) {
				require.LessOrEqual(t, resourceBytes(b), budget, "page %d", page)
				require.LessOrEqual(t, cs.read.Load(), int64(budget+size), "%v: page %d reads %d KB", filter, page, cs.read.Load()>>10)
			}
			seen := walk(t, get, url.Values{"_count": {"1000"}}, check)
			require.Len(t, seen, 12, "%v", filter)
			// Backwards from the end: previous links.
			b, err := get(url.Values{"_count": {"1000"}, "_before": {"zzz"}})
			require.NoError(t, err)
			check(0, b)
			require.NotEmpty(t, b.Entry)
			require.Equal(t, base+"/Patient/big-11", b.Entry[len(b.Entry)-1].FullURL, "%v", filter)
		}
	})
}

// TestSortByLastUpdatedOrIDInTheStore: _sort by _lastUpdated or _id (either
// way) is ordered and paged by the store, so it needs no ranking and no
// cap: with HERALD_MAX_SORT_MATCHES at 3, six matches sort and page by
// _offset both ways, ties by id, with their total; a key read from the
// bodies is still refused past the cap.
func TestSortByLastUpdatedOrIDInTheStore(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store.Store) {
		t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		clock := t0
		cs := &countingStore{Store: st}
		svc := resources.New(resources.Config{Store: cs, BaseURL: base, MaxSortMatches: 3, Now: func() time.Time { return clock }})
		ctx := context.Background()
		for _, p := range []struct {
			id, gender string
			at         int
		}{{"e", "female", 1}, {"a", "female", 2}, {"c", "female", 2}, {"b", "male", 3}, {"d", "male", 0}, {"f", "male", 3}} {
			clock = t0.Add(time.Duration(p.at) * time.Second)
			_, err := svc.Update(ctx, admin, "Patient", p.id, patient(p.id, `"gender":"`+p.gender+`"`), "")
			require.NoError(t, err)
		}
		// order walks the next links, then back along the previous links.
		order := func(query string) (forward, backward []string) {
			t.Helper()
			params, err := url.ParseQuery(query)
			require.NoError(t, err)
			var last *fhir.Bundle
			for range 10 {
				cs.read.Store(0)
				b, err := svc.Search(ctx, admin, "Patient", params, true)
				require.NoError(t, err, query)
				require.NotNil(t, b.Total, query)
				require.LessOrEqual(t, len(b.Entry), 2)
				require.LessOrEqual(t, cs.read.Load(), int64(2*len(patient("x", `"gender":"female"`))+200), "%s reads only its page", query)
				for _, e := range b.Entry {
					forward = append(forward, strings.TrimPrefix(e.FullURL, base+"/Patient/"))
				}
				last = b
				if params = linkParams(t, b, "next"); params == nil {
					break
				}
			}
			var pages [][]string
			for b := last; b != nil; {
				var page []string
				for _, e := range b.Entry {
					page = append(page, strings.TrimPrefix(e.FullURL, base+"/Patient/"))
				}
				pages = append(pages, page)
				params := linkParams(t, b, "previous")
				if params == nil {
					break
				}
				b, err = svc.Search(ctx, admin, "Patient", params, true)
				require.NoError(t, err)
			}
			for i := len(pages) - 1; i >= 0; i-- {
				backward = append(backward, pages[i]...)
			}
			return forward, backward
		}
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"_sort=_lastUpdated&_count=2", []string{"d", "e", "a", "c", "b", "f"}},
			{"_sort=-_lastUpdated&_count=2", []string{"b", "f", "a", "c", "e", "d"}},
			{"_sort=_lastUpdated,_id&_count=2", []string{"d", "e", "a", "c", "b", "f"}},
			{"_sort=_id&_count=2", []string{"a", "b", "c", "d", "e", "f"}},
			{"_sort=-_id&_count=2", []string{"f", "e", "d", "c", "b", "a"}},
			{"_sort=-_lastUpdated&gender=female&_count=2", []string{"a", "c", "e"}},
		} {
			forward, backward := order(tc.query)
			require.Equal(t, tc.want, forward, tc.query)
			require.Equal(t, tc.want, backward, "%s, backwards", tc.query)
			b, err := svc.Search(ctx, admin, "Patient", must(url.ParseQuery(tc.query)), true)
			require.NoError(t, err)
			require.Equal(t, len(tc.want), *b.Total, tc.query)
		}
		_, err := svc.Search(ctx, admin, "Patient", url.Values{"_sort": {"gender"}}, true)
		var fe *fhir.Error
		require.ErrorAs(t, err, &fe)
		require.Equal(t, fhir.KindTooLarge, fe.Kind, "a key in the bodies is ranked, and capped")
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// linkParams is the query of b's link with relation, nil when it has none.
func linkParams(t *testing.T, b *fhir.Bundle, relation string) url.Values {
	t.Helper()
	for _, l := range b.Link {
		if l.Relation == relation {
			u, err := url.Parse(l.URL)
			require.NoError(t, err)
			return u.Query()
		}
	}
	return nil
}

// heapStore samples the heap at every candidate a search's matcher sees,
// as TestMatchedSearchesHoldOneCandidateAtATime does in the store: the
// most it grew over base is what the search held at its peak.
type heapStore struct {
	store.Store
	base, peak uint64
}

func (h *heapStore) Search(ctx context.Context, q store.SearchQuery) ([]store.Version, error) {
	match := q.Match
	q.Match = func(v store.Version) bool {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		if m.HeapInuse > h.base {
			h.peak = max(h.peak, m.HeapInuse-h.base)
		}
		return match == nil || match(v)
	}
	return h.Store.Search(ctx, q)
}

// TestSortedSearchHeapHoldsOnePage: on PostgreSQL, a search sorted by a
// key in the bodies over 48 Observations of 1 MB held them all while it
// sorted; now its heap grows by about the page and a candidate. Not
// parallel, so no other test allocates meanwhile.
func TestSortedSearchHeapHoldsOnePage(t *testing.T) {
	eachStore(t, func(t *testing.T, st store.Store) {
		if _, ok := st.(*memory.Store); ok {
			t.Skip("the memory store shares its bodies: countingStore measures it")
		}
		const n, size = 48, 1 << 20
		hs := &heapStore{Store: st}
		svc := resources.New(resources.Config{Store: hs, BaseURL: base})
		ctx := context.Background()
		for i := range n {
			_, err := svc.Update(ctx, admin, "Observation", fmt.Sprintf("o%02d", i), []byte(fmt.Sprintf(
				`{"resourceType":"Observation","id":"o%02d","status":"final","code":{"text":"x"},"effectiveDateTime":"2024-01-%02dT00:00:00Z","note":[{"text":%q}]}`,
				i, i%28+1, strings.Repeat("h", size))), "")
			require.NoError(t, err)
		}
		// Collect often, so the heap measures what is held, not garbage
		// (each candidate is decoded to take its sort keys).
		defer debug.SetGCPercent(debug.SetGCPercent(5))
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		hs.base = m.HeapInuse
		b, err := svc.Search(ctx, admin, "Observation", url.Values{"_sort": {"-date"}, "_count": {"2"}}, true)
		require.NoError(t, err)
		require.Len(t, b.Entry, 2)
		require.Equal(t, n, *b.Total)
		t.Logf("the sorted search held %d KB at most", hs.peak>>10)
		require.Less(t, hs.peak, uint64(16<<20), "sorting held %d MB", hs.peak>>20)
	})
}

// nextPage is the query of b's next link; false when it has none.
func nextPage(t *testing.T, b *fhir.Bundle) (url.Values, bool) {
	t.Helper()
	for _, l := range b.Link {
		if l.Relation == "next" {
			u, err := url.Parse(l.URL)
			require.NoError(t, err)
			return u.Query(), true
		}
	}
	return nil, false
}
