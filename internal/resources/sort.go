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

// DefaultMaxSortMatches bounds the matches a sorted search ranks when
// Config.MaxSortMatches is 0.
const DefaultMaxSortMatches = 10_000

// sortedSearchset answers a search with _sort. By _id or _lastUpdated
// the store orders and pages (storeOrder): a count, then the page. Other
// keys are read from the bodies, in two reads. The first ranks every match
// on what sorting needs (id, sort keys, size) and keeps no body: the store
// drops each candidate once its keys are taken. The second reads the
// bodies of the one page returned, cut to the response budget beforehand
// by the sizes ranked. When every match fits one page (a patient's
// record, mostly), the ranking keeps their versions and the page is made
// of them: no second read, nor a second decoding by the matcher. Every
// match is still decoded to rank it, so more than maxSort matches are
// refused (413) rather than ranked (the work, not the memory, of a whole
// type).
func (s *Service) sortedSearchset(ctx context.Context, r store.View, p *auth.Principal, path string, q store.SearchQuery, applied url.Values, opts results) (*fhir.Bundle, error) {
	limit := q.Count
	q.Count, q.AfterID, q.BeforeID = 0, "", ""
	var all []ranked
	var kept bool // all hold their versions
	var total int
	var err error
	byLastUpdated, desc, inStore := storeOrder(opts.sort)
	if inStore {
		q.ByLastUpdated, q.Desc = byLastUpdated, desc
		total, err = r.Count(ctx, q)
	} else {
		all, kept, err = s.rank(ctx, r, q, opts.sort, opts.decoded, limit)
		total = len(all)
	}
	if err != nil {
		return nil, err
	}
	b := fhir.NewBundle("searchset", s.now())
	b.Total = ptr(total)
	b.Link = append(b.Link, fhir.BundleLink{Relation: "self", URL: s.offsetLink(path, applied, limit, opts.offset)})
	if opts.summaryCount {
		return b, nil
	}
	if opts.offset > 0 {
		b.Link = append(b.Link, fhir.BundleLink{Relation: "previous", URL: s.offsetLink(path, applied, limit, max(0, opts.offset-limit))})
	}
	var page []store.Version
	end := 0
	if inStore {
		q.Offset, q.Count, q.MaxBytes = opts.offset, limit, budgetLeft(ctx)
		page, err = r.Search(ctx, q)
		if err == nil {
			page, _, err = fitPage(ctx, page, false)
			end = len(page)
		}
	} else {
		window := all[min(opts.offset, len(all)):min(opts.offset+limit, len(all))]
		window = window[:affordable(ctx, len(window), func(i int) int64 { return window[i].cost })]
		if kept {
			page, end, err = keptPage(ctx, window)
		} else {
			page, end, err = s.readRanked(ctx, r, q, window)
		}
	}
	if err != nil {
		return nil, err
	}
	if end += opts.offset; end < total {
		b.Link = append(b.Link, fhir.BundleLink{Relation: "next", URL: s.offsetLink(path, applied, limit, end)})
	}
	if err := s.addPage(ctx, r, p, opts, b, page); err != nil {
		return nil, err
	}
	return b, nil
}

// storeOrder is how the store orders by keys itself (ok), when it can: by
// id, or by lastUpdated (then id, as ties are broken anyway); not by keys
// in the bodies.
func storeOrder(keys []sortKey) (byLastUpdated, desc, ok bool) {
	switch k := keys[0]; {
	case k.code == "_id": // ids are unique: later keys never decide
		return false, k.desc, true
	case k.code == "_lastUpdated" && (len(keys) == 1 || keys[1].code == "_id" && !keys[1].desc):
		return true, k.desc, true
	}
	return false, false, false
}

// ranked is what sorting a match needs.
type ranked struct {
	id   string
	keys []search.SortKey
	cost int64         // versionCost, to cut the page to the budget before reading it
	v    store.Version // the match itself, while rank keeps them
}

// rank returns q's matches in the order of keys, ties (and absent values,
// last) by id. The store is handed a matcher that takes each match's keys
// and rejects it, so it keeps no body; past maxSort matches the matcher
// accepts one, which ends the store's read (q.Count is 1). While the
// matches are at most keep and within the response budget left, rank
// holds on to them (no more than a page holds): kept reports that every
// match is held, in its ranked's v.
func (s *Service) rank(ctx context.Context, r store.View, q store.SearchQuery, keys []sortKey, dec *lastDecoded, keep int) (_ []ranked, kept bool, _ error) {
	match, tooMany := q.Match, false
	kept = true
	room := budgetLeft(ctx)
	budgeted := room > 0
	var out []ranked
	q.Count = 1
	q.Match = func(v store.Version) bool {
		switch {
		case tooMany:
			return true
		case match != nil && !match(v):
			return false
		case len(out) == s.maxSort:
			tooMany = true
			return true
		}
		rk := ranked{id: v.ID, keys: sortKeysOf(v, keys, dec), cost: versionCost(v)}
		if kept && len(out) < keep && (!budgeted || rk.cost <= room) {
			rk.v, room = v, room-rk.cost
		} else if kept {
			kept = false
			for i := range out {
				out[i].v = store.Version{} // more than a page: read again when paged
			}
		}
		out = append(out, rk)
		return false
	}
	if _, err := r.Search(ctx, q); err != nil {
		return nil, false, err
	}
	if tooMany {
		return nil, false, fhir.Errorf(fhir.KindTooLarge, "_sort: more than %d resources match, too many to sort; narrow the search (by patient, date or status) or leave out _sort", s.maxSort)
	}
	slices.SortStableFunc(out, func(a, b ranked) int {
		for i, k := range keys {
			c := search.CompareSortKeys(a.keys[i], b.keys[i])
			if k.desc && a.keys[i].Present && b.keys[i].Present {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return strings.Compare(a.id, b.id)
	})
	return out, kept, nil
}

// keptPage is readRanked for a window whose versions rank kept: the page is
// made of them, as that read found them, cut to the response budget.
func keptPage(ctx context.Context, window []ranked) (page []store.Version, end int, err error) {
	if len(window) == 0 {
		return nil, 0, nil
	}
	page = make([]store.Version, len(window))
	for i := range window {
		page[i] = window[i].v
	}
	page, _, err = fitPage(ctx, page, false)
	return page, len(page), err
}

// readRanked reads the bodies of window (q's matches, ranked) and keeps,
// in window's order, what fits the response budget. end is how many of
// window the page used up: its next page starts there. A match gone or
// changed since it was ranked is left out (it no longer matches) or
// charged as it is now.
func (s *Service) readRanked(ctx context.Context, r store.View, q store.SearchQuery, window []ranked) (page []store.Version, end int, err error) {
	if len(window) == 0 {
		return nil, 0, nil
	}
	q.IDs, q.Count = make([]string, len(window)), 0
	for i, rk := range window {
		q.IDs[i] = rk.id
	}
	found, err := r.Search(ctx, q)
	if err != nil {
		return nil, 0, err
	}
	byID := make(map[string]store.Version, len(found))
	for _, v := range found {
		byID[v.ID] = v
	}
	var at []int // at[i]: the place in window of page[i]
	for i, rk := range window {
		if v, ok := byID[rk.id]; ok {
			page, at = append(page, v), append(at, i)
		}
	}
	page, cut, err := fitPage(ctx, page, false)
	if err != nil || !cut {
		return page, len(window), err
	}
	return page, at[len(page)-1] + 1, nil
}

func (s *Service) offsetLink(path string, applied url.Values, count, offset int) string {
	pos := ""
	if offset > 0 {
		pos = strconv.Itoa(offset)
	}
	return s.link(path, applied, count, offsetParam, pos)
}

// sortKeysOf is v's value of each key (absent when v does not parse),
// decoded through dec (the matcher's decoding of v, when it just ran).
func sortKeysOf(v store.Version, keys []sortKey, dec *lastDecoded) []search.SortKey {
	res, err := dec.of(v)
	out := make([]search.SortKey, len(keys))
	for i, k := range keys {
		if err == nil {
			out[i] = res.SortKey(k.code, k.desc)
		}
	}
	return out
}
