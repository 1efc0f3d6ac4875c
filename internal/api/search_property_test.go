package api_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-fhir/herald/internal/search"
	"github.com/herald-fhir/herald/internal/store"
)

// TestSearchEqualsMatcher is the one-definition property: over random
// Observations and random queries, REST search (paged with a random
// _count) returns exactly the stored resources the search matcher
// matches, on both stores (the PostgreSQL one narrowing by its index).
func TestSearchEqualsMatcher(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, h *harness) {
		tok := h.token(allScopes)
		seed, rng, g, stored := seedObservations(t, h, tok, 1, 60)

		nonEmpty := 0
		for range 150 {
			clauses := g.query()
			want := matching(t, h.base, stored, clauses)
			got := h.searchAll(t, tok, clauses, 1+rng.IntN(7))
			require.Equal(t, want, got, "Observation?%s (seed %d)", criteriaText(clauses), seed)
			if len(want) > 0 && len(want) < len(stored) {
				nonEmpty++
			}
		}
		require.Greater(t, nonEmpty, 30, "the queries discriminate")
	})
}

type clause struct{ name, value string }

func criteriaText(cs []clause) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, url.PathEscape(c.name)+"="+url.PathEscape(c.value))
	}
	return strings.Join(parts, "&")
}

// matching lists, sorted by id, the stored resources the matcher matches.
func matching(t *testing.T, base string, stored []store.Version, cs []clause) []string {
	t.Helper()
	c, err := search.ParseCriteria("Observation", criteriaText(cs))
	require.NoError(t, err, criteriaText(cs))
	out := []string{}
	for _, v := range stored {
		r, err := search.NewResource(v.Body)
		require.NoError(t, err)
		if ok, _ := c.Match(r.WithBase(base)); ok {
			out = append(out, v.ID)
		}
	}
	slices.Sort(out)
	return out
}

// searchAll follows next links and returns every id found; then it walks
// back along previous links from the last page and requires the same ids.
func (h *harness) searchAll(t *testing.T, tok string, cs []clause, count int) []string {
	t.Helper()
	q := url.Values{"_count": {fmt.Sprint(count)}}
	for _, c := range cs {
		q.Add(c.name, c.value)
	}
	out, last := h.walkPages(t, tok, "/fhir/Observation?"+q.Encode(), "next", count)
	back, _ := h.walkPages(t, tok, last, "previous", count)
	require.Equal(t, out, back, "previous links walk the same pages backwards")
	return out
}

// walkPages follows links of one relation from path, checks that pages
// with a further link are full, and returns every id in result order
// (pages read backwards are put back in order) and the last page's path.
func (h *harness) walkPages(t *testing.T, tok, path, relation string, count int) ([]string, string) {
	t.Helper()
	var pages [][]string
	last := path
	for path != "" {
		last = path
		r := h.request("GET", path, tok, "")
		require.Equal(t, 200, r.status, "%s: %s", path, r.body)
		ids := entryIDs(t, r)
		require.LessOrEqual(t, len(ids), count)
		pages = append(pages, ids)
		path = ""
		for _, l := range r.json(t)["link"].([]any) {
			if link := l.(map[string]any); link["relation"] == relation {
				path = strings.TrimPrefix(link["url"].(string), h.srv.URL)
			}
		}
		// Every page but the last forwards is full (backwards, the walk starts there).
		if path != "" && (relation == "next" || len(pages) > 1) {
			require.Len(t, ids, count, "a page with a %s link is full", relation)
		}
	}
	if relation == "previous" {
		slices.Reverse(pages)
	}
	return append([]string{}, slices.Concat(pages...)...), last
}

// observationGen draws Observations and queries over a small vocabulary so
// that queries often match.
type observationGen struct {
	rng  *rand.Rand
	base string
}

var (
	genStatuses = []string{"final", "preliminary", "amended", "cancelled"}
	genCodes    = []string{"8867-4", "29463-7", "8302-2"}
	genSystems  = []string{"http://loinc.org", "http://example.org/codes"}
	genPatients = []string{"p1", "p2", "p3"}
	genDates    = []string{"2024-01-15", "2024-01-15T10:00:00Z", "2024-01-15T23:30:00+01:00", "2024-02", "2023-12-31T23:59:59.999Z"}
)

func (g observationGen) pick(xs []string) string { return xs[g.rng.IntN(len(xs))] }

func (g observationGen) maybe() bool { return g.rng.IntN(3) > 0 }

func (g observationGen) resource() string {
	var parts []string
	parts = append(parts, `"resourceType":"Observation"`, `"status":"`+g.pick(genStatuses)+`"`)
	code := fmt.Sprintf(`{"system":%q,"code":%q}`, g.pick(genSystems), g.pick(genCodes))
	if g.maybe() {
		code += fmt.Sprintf(`,{"code":%q}`, g.pick(genCodes))
	}
	parts = append(parts, `"code":{"coding":[`+code+`]}`)
	if g.maybe() {
		parts = append(parts, `"category":[{"coding":[{"code":"`+g.pick([]string{"laboratory", "vital-signs"})+`"}]}]`)
	}
	if g.maybe() {
		ref := "Patient/" + g.pick(genPatients)
		switch g.rng.IntN(4) {
		case 0:
			ref = g.base + "/" + ref
		case 1:
			ref = "https://other.example/fhir/" + ref
		}
		parts = append(parts, `"subject":{"reference":"`+ref+`"}`)
	}
	if g.maybe() {
		parts = append(parts, `"effectiveDateTime":"`+g.pick(genDates)+`"`)
	}
	if g.maybe() {
		parts = append(parts, fmt.Sprintf(`"valueQuantity":{"value":%d.%d,"system":"http://unitsofmeasure.org","code":"kg"}`, 60+g.rng.IntN(5), g.rng.IntN(10)))
	}
	if g.maybe() {
		parts = append(parts, `"identifier":[{"system":"urn:ids","value":"`+g.pick([]string{"a1", "a2", "b1"})+`"}]`)
	}
	if g.maybe() {
		parts = append(parts, `"note":[{"text":"`+g.pick([]string{"Grün", "gruen", "green tea"})+`"}]`)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// query draws one to three clauses; a parameter may repeat (AND) and
// values may be comma-separated (OR).
func (g observationGen) query() []clause {
	var out []clause
	for range 1 + g.rng.IntN(3) {
		out = append(out, g.clause())
	}
	return out
}

func (g observationGen) clause() clause {
	or := func(f func() string) string {
		v := f()
		if g.rng.IntN(3) == 0 {
			v += "," + f()
		}
		return v
	}
	switch g.rng.IntN(12) {
	case 0:
		return clause{"status", or(func() string { return g.pick(genStatuses) })}
	case 1:
		return clause{"status:not", g.pick(genStatuses)}
	case 2:
		return clause{"code", or(func() string {
			switch g.rng.IntN(3) {
			case 0:
				return g.pick(genSystems) + "|" + g.pick(genCodes)
			case 1:
				return "|" + g.pick(genCodes)
			}
			return g.pick(genCodes)
		})}
	case 3:
		return clause{"category", or(func() string { return g.pick([]string{"laboratory", "vital-signs", "social"}) })}
	case 4:
		return clause{"subject", or(func() string {
			switch g.rng.IntN(4) {
			case 0:
				return g.pick(genPatients)
			case 1:
				return g.base + "/Patient/" + g.pick(genPatients)
			case 2:
				return "https://other.example/fhir/Patient/" + g.pick(genPatients)
			}
			return "Patient/" + g.pick(genPatients)
		})}
	case 5:
		return clause{"patient", or(func() string { return "Patient/" + g.pick(genPatients) })}
	case 6:
		return clause{g.pick([]string{"subject:missing", "patient:missing", "date:missing", "category:missing"}), g.pick([]string{"true", "false"})}
	case 7:
		return clause{"date", g.pick([]string{"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", ""}) + g.pick(genDates)}
	case 8:
		return clause{"value-quantity", g.pick([]string{"", "gt", "le", "ap"}) + fmt.Sprint(60+g.rng.IntN(5)) + g.pick([]string{"", "|http://unitsofmeasure.org|kg", "||kg"})}
	case 9:
		return clause{"identifier", or(func() string { return g.pick([]string{"urn:ids|a1", "a2", "|b1", "urn:ids|"}) })}
	case 10:
		return clause{"code:text", g.pick([]string{"loinc", "x"})}
	}
	return clause{"_lastUpdated", g.pick([]string{"gt2000-01-01", "lt2000-01-01"})}
}

// seedObservations writes n random Observations (observationGen) with tok
// and returns the seed (logged, so a failure can be replayed), the
// generator's random source (that seed, stream stream), the generator and
// the stored Observations, for the search property tests.
func seedObservations(t *testing.T, h *harness, tok string, stream uint64, n int) (uint64, *rand.Rand, observationGen, []store.Version) {
	t.Helper()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, stream))
	g := observationGen{rng: rng, base: h.base}
	for range n {
		r := h.request("POST", "/fhir/Observation", tok, g.resource())
		require.Equal(t, 201, r.status, string(r.body))
	}
	stored, err := h.store.Search(context.Background(), store.SearchQuery{Type: "Observation"})
	require.NoError(t, err)
	return seed, rng, g, stored
}
