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
	"github.com/herald-fhir/herald/internal/strictjson"
)

const (
	defaultCount = 50
	// DefaultMaxCount caps _count when Config.MaxCount is 0.
	DefaultMaxCount = 1000
	cursorParam     = "_cursor" // opaque paging position in next links
	beforeParam     = "_before" // opaque paging position in previous links
)

// resultParams are accepted by every search and history without filtering.
var resultParams = map[string]bool{"_count": true, cursorParam: true, beforeParam: true, "_format": true, "_pretty": true}

// Search returns a searchset Bundle of the current resources of typ matching
// params. Unknown parameters are ignored (and left out of the self link, as
// FHIR asks) unless strict, when they are an error.
func (s *Service) Search(ctx context.Context, p *auth.Principal, typ string, params url.Values, strict bool) (*fhir.Bundle, error) {
	ctx, _ = s.withBudget(ctx)
	return s.search(ctx, s.store, p, typ, params, strict)
}

// CompartmentSearch is Search within Patient/patient's compartment
// (GET /Patient/{id}/{type}): the compartment patient/ tokens are bounded
// by (Version.Patients).
func (s *Service) CompartmentSearch(ctx context.Context, p *auth.Principal, patient, typ string, params url.Values, strict bool) (*fhir.Bundle, error) {
	if err := checkTypeID("Patient", patient); err != nil {
		return nil, err
	}
	ctx, _ = s.withBudget(ctx)
	return s.searchIn(ctx, s.store, p, typ, patient, params, strict)
}

func (s *Service) search(ctx context.Context, r store.View, p *auth.Principal, typ string, params url.Values, strict bool) (*fhir.Bundle, error) {
	return s.searchIn(ctx, r, p, typ, "", params, strict)
}

// searchIn searches typ, within a patient's compartment when compartment
// is set.
func (s *Service) searchIn(ctx context.Context, r store.View, p *auth.Principal, typ, compartment string, params url.Values, strict bool) (*fhir.Bundle, error) {
	if !fhir.IsResourceType(typ) {
		return nil, unknownType(typ)
	}
	if v := s.virtual[typ]; v != nil && p != nil {
		if bodies, ok := v.Search(params); ok {
			b := fhir.NewBundle("searchset", s.now())
			b.Link = []fhir.BundleLink{{Relation: "self", URL: s.baseURL + "/" + typ + "?" + url.Values{"code": params["code"]}.Encode()}}
			for _, body := range bodies {
				var head struct {
					ID string `json:"id"`
				}
				_ = strictjson.Unmarshal(body, &head)
				b.Entry = append(b.Entry, fhir.BundleEntry{FullURL: s.fullURL(typ, head.ID), Resource: body, Search: &fhir.EntrySearch{Mode: "match"}})
			}
			return b, nil
		}
	}
	grant, err := s.authorize(p, auth.Search, typ)
	if err != nil {
		return nil, err
	}
	if err := s.allowedBy(ctx, r, p, auth.Search, typ, nil); err != nil {
		return nil, err
	}
	rules := s.rulesFor(typ)
	var own url.Values
	userIDs, hadIDs := params["_id"]
	if rules != nil {
		// The type's own parameters are its rules' business; the rest are generic.
		ids, applied, err := rules.Search(ctx, r, p, params)
		if err != nil {
			return nil, err
		}
		own = applied
		params = without(params, applied)
		if ids != nil {
			params = withIDs(params, ids)
		}
	}
	dec := &lastDecoded{}
	q, applied, err := s.parseSearch(typ, params, strict, dec)
	if err != nil {
		return nil, err
	}
	for k, vs := range own {
		applied[k] = vs
	}
	// The self link shows the caller's _id, not the narrowing the rules added.
	delete(applied, "_id")
	if hadIDs {
		applied["_id"] = userIDs
	}
	opts, err := parseResults(typ, params, applied)
	if err != nil {
		return nil, err
	}
	opts.decoded = dec
	dec.readOnly(typ, opts.sort)
	grant.Bound(&q)
	path := typ
	if compartment != "" {
		path = "Patient/" + compartment + "/" + typ
		if q.Patient != "" && q.Patient != compartment {
			// Another patient's compartment: nothing this token may see.
			b := fhir.NewBundle("searchset", s.now())
			b.Total = ptr(0)
			b.Link = []fhir.BundleLink{{Relation: "self", URL: s.link(path, applied, q.Count, cursorParam, "")}}
			return b, nil
		}
		q.Patient = compartment
	}
	if len(opts.sort) > 0 {
		return s.sortedSearchset(ctx, r, p, path, q, applied, opts)
	}
	return s.searchset(ctx, r, p, path, q, applied, opts)
}

// searchset runs q and builds the page: matches, included resources,
// total and links that keep every applied parameter.
func (s *Service) searchset(ctx context.Context, r store.View, p *auth.Principal, path string, q store.SearchQuery, applied url.Values, opts results) (*fhir.Bundle, error) {
	b := fhir.NewBundle("searchset", s.now())
	limit := q.Count
	if q.BeforeID != "" {
		b.Link = append(b.Link, fhir.BundleLink{Relation: "self", URL: s.link(path, applied, limit, beforeParam, q.BeforeID)})
	} else {
		b.Link = append(b.Link, fhir.BundleLink{Relation: "self", URL: s.link(path, applied, limit, cursorParam, q.AfterID)})
	}
	if opts.summaryCount {
		n, err := r.Count(ctx, q)
		if err != nil {
			return nil, err
		}
		b.Total = ptr(n)
		return b, nil
	}
	q.Count = limit + 1 // one more tells whether a next page exists
	q.MaxBytes = budgetLeft(ctx)
	var found []store.Version
	var err error
	if opts.total {
		var n int
		found, n, err = r.SearchTotal(ctx, q) // one read, where the store can
		b.Total = ptr(n)
	} else {
		found, err = r.Search(ctx, q)
	}
	if err != nil {
		return nil, err
	}
	found, err = s.pageLinks(ctx, b, path, applied, q, limit, found)
	if err != nil {
		return nil, err
	}
	b.Entry = make([]fhir.BundleEntry, 0, len(found))
	if err := s.addPage(ctx, r, p, opts, b, found); err != nil {
		return nil, err
	}
	return b, nil
}

// addPage adds a page's matches to b, then what its _include and
// _revinclude bring, within the response budget.
func (s *Service) addPage(ctx context.Context, r store.View, p *auth.Principal, opts results, b *fhir.Bundle, page []store.Version) error {
	for _, v := range page {
		b.Entry = append(b.Entry, s.matchEntry(v, opts.shape))
	}
	inc, err := s.included(ctx, r, p, opts, page)
	if err != nil {
		return err
	}
	b.Entry = append(b.Entry, inc...)
	return nil
}

// pageLinks trims the one extra version a page was read with, and what
// does not fit the response budget, and adds the next and previous links
// the page implies.
func (s *Service) pageLinks(ctx context.Context, b *fhir.Bundle, path string, applied url.Values, q store.SearchQuery, limit int, found []store.Version) ([]store.Version, error) {
	extra := len(found) > limit // beyond the page, in the direction it was read
	switch {
	case extra && q.BeforeID != "":
		found = found[1:]
	case extra:
		found = found[:limit]
	}
	// The store stopped at the budget left: more may follow.
	stopped := q.MaxBytes > 0 && store.BodyBytes(found) >= q.MaxBytes
	found, cut, err := fitPage(ctx, found, q.BeforeID != "")
	if err != nil {
		return nil, err
	}
	more := extra || stopped || cut
	if len(found) == 0 {
		return found, nil
	}
	first, last := found[0].ID, found[len(found)-1].ID
	if (more && q.BeforeID != "") || q.AfterID != "" {
		b.Link = append(b.Link, fhir.BundleLink{Relation: "previous", URL: s.link(path, applied, limit, beforeParam, first)})
	}
	if (more && q.BeforeID == "") || q.BeforeID != "" {
		b.Link = append(b.Link, fhir.BundleLink{Relation: "next", URL: s.link(path, applied, limit, cursorParam, last)})
	}
	if !more && q.AfterID == "" && q.BeforeID == "" && b.Total == nil {
		b.Total = ptr(len(found)) // everything is on this page: the total is free
	}
	return found, nil
}

func ptr[T any](v T) *T { return &v }

// History returns the history Bundle of one resource, newest version first.
func (s *Service) History(ctx context.Context, p *auth.Principal, typ, id string, params url.Values) (*fhir.Bundle, error) {
	if err := checkTypeID(typ, id); err != nil {
		return nil, err
	}
	grant, err := s.authorize(p, auth.Read, typ)
	if err != nil {
		return nil, err
	}
	count, err := s.parseCount(params.Get("_count"))
	if err != nil {
		return nil, err
	}
	var before int64
	if c := params.Get(cursorParam); c != "" {
		if before, err = strconv.ParseInt(c, 10, 64); err != nil || before < 1 {
			return nil, fhir.Errorf(fhir.KindInvalid, "%s is not a valid paging position", cursorParam)
		}
	}
	ctx, _ = s.withBudget(ctx)
	maxBytes := budgetLeft(ctx)
	versions, err := s.store.History(ctx, store.HistoryQuery{Type: typ, ID: id, Before: before, Count: count + 1, MaxBytes: maxBytes})
	if err != nil {
		return nil, notFound(err, typ, id)
	}
	base := s.baseURL + "/" + typ + "/" + id + "/_history"
	b := fhir.NewBundle("history", s.now())
	self := url.Values{"_count": {strconv.Itoa(count)}}
	if before > 0 {
		self.Set(cursorParam, strconv.FormatInt(before, 10))
	}
	b.Link = append(b.Link, fhir.BundleLink{Relation: "self", URL: base + "?" + self.Encode()})
	versions, more, err := fitHistory(ctx, versions, count, maxBytes)
	if err != nil {
		return nil, err
	}
	if more {
		next := url.Values{"_count": {strconv.Itoa(count)}, cursorParam: {strconv.FormatInt(versions[len(versions)-1].VersionID, 10)}}
		b.Link = append(b.Link, fhir.BundleLink{Relation: "next", URL: base + "?" + next.Encode()})
	}
	if len(versions) == 0 && before > 0 {
		// An empty page past the first answers as the resource does: judged
		// by its newest version, so a page cursor reveals no one's ids.
		newest, err := s.store.History(ctx, store.HistoryQuery{Type: typ, ID: id, Count: 1})
		if err != nil {
			return nil, notFound(err, typ, id)
		}
		if len(newest) > 0 && (s.allowedBy(ctx, s.store, p, auth.Read, typ, &newest[0]) != nil || !grant.Permits(newest[0])) {
			return nil, fhir.Errorf(fhir.KindNotFound, "%s/%s is not known", typ, id)
		}
	}
	if len(versions) > 0 && s.allowedBy(ctx, s.store, p, auth.Read, typ, &versions[0]) != nil {
		return nil, fhir.Errorf(fhir.KindNotFound, "%s/%s is not known", typ, id)
	}
	for _, v := range versions {
		if !grant.Permits(v) {
			continue
		}
		b.Entry = append(b.Entry, s.historyEntry(v))
	}
	if len(b.Entry) == 0 && len(versions) > 0 && !grant.Unbounded() {
		return nil, fhir.Errorf(fhir.KindNotFound, "%s/%s is not known", typ, id)
	}
	return b, nil
}

func (s *Service) historyEntry(v store.Version) fhir.BundleEntry {
	e := fhir.BundleEntry{
		FullURL:  s.fullURL(v.Type, v.ID),
		Resource: v.Body,
		Request:  &fhir.EntryRequest{Method: string(v.Method), URL: v.Type + "/" + v.ID},
		Response: &fhir.EntryResponse{
			Etag:         fhir.ETag(v.VersionID),
			LastModified: fhir.FormatInstant(v.LastUpdated),
		},
	}
	if v.Method == store.MethodCreate {
		e.Request.URL = v.Type
	}
	switch {
	case v.Method == store.MethodCreate || v.VersionID == 1:
		e.Response.Status = fhir.StatusText(201)
	case v.Deleted:
		e.Response.Status = fhir.StatusText(204)
	default:
		e.Response.Status = fhir.StatusText(200)
	}
	return e
}

// FullURL is the absolute URL of a resource on this server.
func (s *Service) fullURL(typ, id string) string { return s.baseURL + "/" + typ + "/" + id }

// link is a page's URL below the base (path: "Observation" or
// "Patient/1/Observation"): the applied parameters, _count and the paging
// position (cursorParam, beforeParam or offsetParam; none for the first page).
func (s *Service) link(path string, applied url.Values, count int, position, id string) string {
	v := url.Values{}
	for k, vs := range applied {
		v[k] = vs
	}
	v.Set("_count", strconv.Itoa(count))
	if id != "" {
		v.Set(position, id)
	}
	return s.baseURL + "/" + path + "?" + v.Encode()
}

// parseSearch turns query parameters into a store query and the parameters
// that were applied (for the self link). Its matcher decodes candidates
// through dec (nil: each afresh).
func (s *Service) parseSearch(typ string, params url.Values, strict bool, dec *lastDecoded) (store.SearchQuery, url.Values, error) {
	base := s.baseURL
	q := store.SearchQuery{Type: typ}
	applied := url.Values{}
	var criteria []string // the matcher's clauses, re-encoded
	for name, values := range params {
		switch name {
		case "_id":
			for _, v := range values {
				for _, id := range strings.Split(v, ",") {
					if !fhir.ValidID(id) {
						return q, nil, fhir.Errorf(fhir.KindInvalid, "_id: %q is not a valid FHIR id", clip(id))
					}
					q.IDs = append(q.IDs, id)
				}
			}
			applied[name] = values
		case "_lastUpdated":
			for _, v := range values {
				r, err := search.ParseDateRange(v)
				if err != nil {
					return q, nil, fhir.Errorf(fhir.KindInvalid, "_lastUpdated: %s", err)
				}
				q.LastUpdated = append(q.LastUpdated, r)
			}
			applied[name] = values
		case "_count":
			n, err := s.parseCount(values[0])
			if err != nil {
				return q, nil, err
			}
			q.Count = n
		case cursorParam, beforeParam:
			if !fhir.ValidID(values[0]) {
				return q, nil, fhir.Errorf(fhir.KindInvalid, "%s is not a valid paging position", name)
			}
			if name == cursorParam {
				q.AfterID = values[0]
			} else {
				q.BeforeID = values[0]
			}
		default:
			if resultOptionParams[name] {
				continue // parseResults
			}
			if !searchable(typ, name) {
				if strict && !resultParams[name] {
					return q, nil, fhir.Errorf(fhir.KindInvalid, "search parameter %q is not supported on %s", clip(name), typ)
				}
				continue
			}
			for _, v := range values {
				criteria = append(criteria, url.PathEscape(name)+"="+url.PathEscape(v))
			}
			applied[name] = values
		}
	}
	if q.Count == 0 && params.Get("_count") == "" {
		q.Count = defaultCount
	}
	if len(criteria) > 0 {
		slices.Sort(criteria) // map order must not change the query
		c, err := search.ParseCriteria(typ, strings.Join(criteria, "&"))
		if err != nil {
			return q, nil, fhir.Errorf(fhir.KindInvalid, "%s", err)
		}
		q.Index = c.IndexTerms(base)
		q.Narrow = c.Narrow(base)
		if dec != nil {
			dec.criteria = c
		}
		if s.needsMatcher(typ, c) {
			q.Match = matcher(c, base, dec)
		}
	}
	return q, applied, nil
}

// searchable reports whether name ("code" or "code:modifier") is a
// parameter of typ the matcher evaluates; _id and _lastUpdated are the
// store's own.
func searchable(typ, name string) bool {
	code, _, _ := strings.Cut(name, ":")
	code, _, _ = strings.Cut(code, ".") // a chain: the matcher names what it lacks
	p, ok := search.Lookup(typ, code)
	return ok && p.Supported()
}

// indexingOff is set only in benchmark builds (-tags heraldnoindex), which
// measure what computing and storing index keys costs a write.
var indexingOff bool

// indexKeys are the search index keys of a resource about to be stored,
// from the map the write hooks read too (nil when unknown: the store then
// always offers it to the matcher).
func (s *Service) indexKeys(decoded map[string]any) []string {
	if indexingOff {
		return nil
	}
	r, err := search.ResourceFromMap(decoded)
	if err != nil {
		return nil
	}
	if keys := r.WithBase(s.baseURL).IndexKeys(); keys != nil {
		return keys
	}
	return []string{}
}

// IndexKeysOf computes the search index keys of a stored version (for a
// store re-indexing what was written without keys).
func (s *Service) IndexKeysOf(v store.Version) []string {
	r, err := search.NewStoredResource(v.Body)
	if err != nil {
		return nil
	}
	return r.WithBase(s.baseURL).IndexKeys()
}

// needsMatcher reports whether a search of typ by c needs the matcher,
// not only the store's index. Every version the service writes carries
// its keys; types with rules also get versions written elsewhere (seeds,
// status changes) without.
func (s *Service) needsMatcher(typ string, c *search.Criteria) bool {
	return s.rulesFor(typ) != nil || !c.IndexDecides(s.baseURL)
}

// matcher is the search matcher as a store filter: REST search returns
// exactly the current resources it matches. It decodes through dec.
func matcher(c *search.Criteria, base string, dec *lastDecoded) func(store.Version) bool {
	return func(v store.Version) bool {
		r, err := dec.of(v)
		if err != nil {
			return false
		}
		ok, err := c.Match(r.WithBase(base))
		return ok && err == nil
	}
}

// lastDecoded decodes the stored versions of one search, keeping the last
// one: a sorted search matches a candidate, then reads its sort keys from
// the same decoding, not a second. A search hands its matcher one
// candidate at a time; a nil lastDecoded decodes every time.
//
// Its decodings hold only the members the search's criteria and sort keys
// read (readOnly): a patient's Observations sorted by date are matched and
// ranked on their category, subject and effective[x], without building
// their components and reference ranges.
type lastDecoded struct {
	body []byte // the last body decoded (its bytes are never modified)
	res  *search.Resource
	err  error

	criteria *search.Criteria // the matcher's, set by parseSearch
	members  map[string]bool  // readOnly's: the top-level members decoded (nil: all)
}

// readOnly limits d's decodings to what matching by its criteria and
// sorting by keys read (search.Members).
func (d *lastDecoded) readOnly(typ string, keys []sortKey) {
	codes := make([]string, len(keys))
	for i, k := range keys {
		codes[i] = k.code
	}
	d.members = search.Members(typ, d.criteria, codes)
}

func (d *lastDecoded) of(v store.Version) (*search.Resource, error) {
	if d == nil {
		return search.NewStoredResource(v.Body)
	}
	if len(v.Body) == 0 || len(d.body) != len(v.Body) || &d.body[0] != &v.Body[0] {
		d.res, d.err = search.NewStoredResourceOf(v.Body, d.members)
		d.body = v.Body
	}
	return d.res, d.err
}

func (s *Service) parseCount(v string) (int, error) {
	if v == "" {
		return defaultCount, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fhir.Errorf(fhir.KindInvalid, "_count must be a positive integer")
	}
	return min(n, s.maxCount), nil
}

// without returns params minus the names in drop.
func without(params, drop url.Values) url.Values {
	out := url.Values{}
	for k, vs := range params {
		if _, ok := drop[k]; !ok {
			out[k] = vs
		}
	}
	return out
}

// withIDs narrows params to ids, intersected with any _id already given. An
// empty ids matches nothing, so it becomes an _id no resource can have.
func withIDs(params url.Values, ids []string) url.Values {
	if len(ids) == 0 {
		ids = []string{"-"} // not a valid id: matches nothing
	}
	if given := params["_id"]; len(given) > 0 {
		allowed := map[string]bool{}
		for _, id := range ids {
			allowed[id] = true
		}
		var keep []string
		for _, v := range given {
			for _, id := range strings.Split(v, ",") {
				if allowed[id] {
					keep = append(keep, id)
				}
			}
		}
		ids = keep
		if len(ids) == 0 {
			ids = []string{"-"}
		}
	}
	params.Set("_id", strings.Join(ids, ","))
	return params
}
