package resources

import (
	"context"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/search"
	"github.com/herald-fhir/herald/internal/store"
)

// offsetParam pages a sorted search: sorted pages are positions in the
// sorted list of every match, not ids.
const offsetParam = "_offset"

// sortKey is one key of _sort.
type sortKey struct {
	code string
	desc bool
}

// parseSort reads _sort ("-date,status"): each key a parameter of typ
// that can order results.
func parseSort(typ string, params, applied url.Values) ([]sortKey, error) {
	var keys []sortKey
	for _, v := range params["_sort"] {
		for _, k := range strings.Split(v, ",") {
			sk := sortKey{code: strings.TrimPrefix(k, "-"), desc: strings.HasPrefix(k, "-")}
			if !search.Sortable(typ, sk.code) {
				return nil, fhir.Errorf(fhir.KindInvalid, "_sort: %q is not a search parameter of %s that results can be sorted by", clip(sk.code), typ)
			}
			keys = append(keys, sk)
		}
		applied.Add("_sort", v)
	}
	return keys, nil
}

func parseOffset(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fhir.Errorf(fhir.KindInvalid, "%s is not a valid paging position", offsetParam)
	}
	return n, nil
}

// DefaultMaxSortMatches bounds the matches a sorted search reads when
// Config.MaxSortMatches is 0.
const DefaultMaxSortMatches = 10_000

// sortedSearchset answers a search with _sort: every match is read,
// sorted by the keys (then by id) and the page cut at offset. Sorting
// happens here, not in the store, so the matches are held in memory: more
// than maxSort of them is refused (413) before any is sorted, rather than
// holding a whole type (or timing out over it).
func (s *Service) sortedSearchset(ctx context.Context, r store.View, p *auth.Principal, path string, q store.SearchQuery, applied url.Values, opts results) (*fhir.Bundle, error) {
	limit := q.Count
	q.Count, q.AfterID, q.BeforeID = s.maxSort+1, "", ""
	found, err := r.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	if len(found) > s.maxSort {
		return nil, fhir.Errorf(fhir.KindTooLarge, "_sort: more than %d resources match, too many to sort; narrow the search (by patient, date or status) or leave out _sort", s.maxSort)
	}
	sortVersions(found, opts.sort)
	b := fhir.NewBundle("searchset", s.now())
	b.Total = ptr(len(found))
	b.Link = append(b.Link, fhir.BundleLink{Relation: "self", URL: s.offsetLink(path, applied, limit, opts.offset)})
	if opts.summaryCount {
		return b, nil
	}
	if opts.offset > 0 {
		b.Link = append(b.Link, fhir.BundleLink{Relation: "previous", URL: s.offsetLink(path, applied, limit, max(0, opts.offset-limit))})
	}
	page, _, err := fitPage(ctx, found[min(opts.offset, len(found)):min(opts.offset+limit, len(found))], false)
	if err != nil {
		return nil, err
	}
	if end := opts.offset + len(page); end < len(found) {
		b.Link = append(b.Link, fhir.BundleLink{Relation: "next", URL: s.offsetLink(path, applied, limit, end)})
	}
	if err := s.addPage(ctx, r, p, opts, b, page); err != nil {
		return nil, err
	}
	return b, nil
}

func (s *Service) offsetLink(path string, applied url.Values, count, offset int) string {
	pos := ""
	if offset > 0 {
		pos = strconv.Itoa(offset)
	}
	return s.link(path, applied, count, offsetParam, pos)
}

// sortVersions orders vs by the keys, ties (and absent values, last) by id.
func sortVersions(vs []store.Version, keys []sortKey) {
	type keyed struct {
		v    store.Version
		keys []search.SortKey
	}
	ks := make([]keyed, len(vs))
	for i, v := range vs {
		ks[i].v = v
		res, err := search.NewResource(v.Body)
		for _, k := range keys {
			var key search.SortKey
			if err == nil {
				key = res.SortKey(k.code, k.desc)
			}
			ks[i].keys = append(ks[i].keys, key)
		}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int {
		for i, k := range keys {
			c := search.CompareSortKeys(a.keys[i], b.keys[i])
			if k.desc && a.keys[i].Present && b.keys[i].Present {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return strings.Compare(a.v.ID, b.v.ID)
	})
	for i := range ks {
		vs[i] = ks[i].v
	}
}
