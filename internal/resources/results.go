package resources

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/search"
	"github.com/herald-fhir/herald/internal/store"
)

// resultOptionParams shape a search's answer rather than select resources.
var resultOptionParams = map[string]bool{
	"_total": true, "_summary": true, "_sort": true, offsetParam: true, "_elements": true,
	"_include": true, "_revinclude": true, "_include:iterate": true, "_revinclude:iterate": true,
}

// results are the result parameters of one search.
type results struct {
	total        bool // _total=accurate|estimate, or _summary=count
	summaryCount bool
	includes     []include // _include, then _include:iterate
	revincludes  []include
	sort         []sortKey
	offset       int          // with sort: the page's position
	shape        shape        // _elements or _summary: how matches are cut
	decoded      *lastDecoded // the search matcher's decodings, for sort keys
}

// include is "Source:param[:Target]": the references param of Source
// resources hold (to Target only, when given).
type include struct {
	source, param, target string
	iterate               bool
}

// parseResults reads the result parameters of a search on typ into r and
// records them in applied (for the links).
func parseResults(typ string, params, applied url.Values) (results, error) {
	var r results
	var err error
	if r.sort, err = parseSort(typ, params, applied); err != nil {
		return r, err
	}
	if r.offset, err = parseOffset(params.Get(offsetParam)); err != nil {
		return r, err
	}
	if r.shape, err = parseShape(params, applied); err != nil {
		return r, err
	}
	for _, v := range params["_total"] {
		switch v {
		case "none":
		case "accurate", "estimate":
			r.total = true
		default:
			return r, fhir.Errorf(fhir.KindInvalid, "_total must be none, estimate or accurate, not %q", clip(v))
		}
		applied.Add("_total", v)
	}
	for _, v := range params["_summary"] {
		switch v {
		case "count":
			r.summaryCount, r.total = true, true
		}
		applied.Add("_summary", v) // parseShape checked it
	}
	for _, name := range []string{"_include", "_include:iterate", "_revinclude", "_revinclude:iterate"} {
		for _, v := range params[name] {
			inc, err := parseInclude(typ, name, v)
			if err != nil {
				return r, err
			}
			if strings.HasPrefix(name, "_include") {
				r.includes = append(r.includes, inc)
			} else {
				r.revincludes = append(r.revincludes, inc)
			}
			applied.Add(name, v)
		}
	}
	return r, nil
}

func parseInclude(typ, name, v string) (include, error) {
	parts := strings.Split(v, ":")
	inc := include{iterate: strings.HasSuffix(name, ":iterate")}
	switch len(parts) {
	case 3:
		inc.target = parts[2]
		fallthrough
	case 2:
		inc.source, inc.param = parts[0], parts[1]
	default:
		return inc, fhir.Errorf(fhir.KindInvalid, "%s=%q: expected SourceType:parameter[:TargetType]", name, clip(v))
	}
	p, ok := search.Lookup(inc.source, inc.param)
	if !ok || p.Type != search.TypeReference || !p.Supported() {
		return inc, fhir.Errorf(fhir.KindInvalid, "%s=%s: %s is not a reference search parameter of %s that Herald evaluates", name, clip(v), clip(inc.param), clip(inc.source))
	}
	if inc.target != "" && len(p.Targets) > 0 && !slices.Contains(p.Targets, inc.target) {
		return inc, fhir.Errorf(fhir.KindInvalid, "%s=%s: %s.%s cannot refer to %s", name, clip(v), inc.source, inc.param, clip(inc.target))
	}
	switch {
	case strings.HasPrefix(name, "_include") && !inc.iterate && inc.source != typ:
		return inc, fhir.Errorf(fhir.KindInvalid, "%s=%s: the source type must be the searched type %s (or use %s:iterate)", name, clip(v), typ, name)
	case strings.HasPrefix(name, "_revinclude") && len(p.Targets) > 0 && !slices.Contains(p.Targets, typ) && !inc.iterate:
		return inc, fhir.Errorf(fhir.KindInvalid, "%s=%s: %s.%s cannot refer to %s", name, clip(v), inc.source, inc.param, typ)
	}
	return inc, nil
}

// included returns the entries _include and _revinclude add to a page of
// matches: each resource once, never one of the matches, and only what the
// caller may read (a resource it may not read is left out silently). Each
// is charged to the response budget as it is read: a page whose includes
// do not all fit fails with 413 once the budget is spent, rather than
// leave some out unsaid or read them all first.
func (s *Service) included(ctx context.Context, r store.View, p *auth.Principal, opts results, matches []store.Version) ([]fhir.BundleEntry, error) {
	seen := map[string]bool{}
	for _, v := range matches {
		seen[v.Type+"/"+v.ID] = true
	}
	// unread reports whether a reference is to be read: each resource is
	// read at most once per request, however many sources refer to it,
	// and not at all when it is already on the page.
	tried := map[string]bool{}
	unread := func(ref string) bool {
		if seen[ref] || tried[ref] {
			return false
		}
		tried[ref] = true
		return true
	}
	var entries []fhir.BundleEntry
	var added []store.Version
	// add includes v (once); first-level includes are kept in added for
	// :iterate.
	add := func(level1 bool) func(store.Version) error {
		return func(v store.Version) error {
			if seen[v.Type+"/"+v.ID] {
				return nil
			}
			seen[v.Type+"/"+v.ID] = true
			if !charge(ctx, versionCost(v)) {
				return errBudget()
			}
			entries = append(entries, fhir.BundleEntry{FullURL: s.fullURL(v.Type, v.ID), Resource: v.Body, Search: &fhir.EntrySearch{Mode: "include"}})
			if level1 {
				added = append(added, v)
			}
			return nil
		}
	}
	// :iterate, one level: the same, over what the first level added.
	for _, level1 := range []bool{true, false} {
		sources := matches
		if !level1 {
			sources = added
		}
		for _, inc := range opts.includes {
			if inc.iterate != level1 {
				if err := s.references(ctx, r, p, inc, sources, unread, add(level1)); err != nil {
					return nil, err
				}
			}
		}
		for _, inc := range opts.revincludes {
			if inc.iterate != level1 {
				if err := s.referrers(ctx, r, p, inc, sources, add(level1)); err != nil {
					return nil, err
				}
			}
		}
	}
	return entries, nil
}

// references hands add, one at a time in the sources' order, the local
// resources that inc's parameter of each source refers to, as the caller
// may read them; only the references unread accepts are read. A source is
// decoded only as far as the parameter's members, and the references are
// read together (readAll).
func (s *Service) references(ctx context.Context, r store.View, p *auth.Principal, inc include, sources []store.Version, unread func(ref string) bool, add func(store.Version) error) error {
	members := search.Members(inc.source, nil, []string{inc.param})
	var refs []string
	for _, src := range sources {
		if src.Type != inc.source {
			continue
		}
		res, err := search.NewStoredResourceOf(src.Body, members)
		if err != nil {
			continue
		}
		for _, ref := range res.WithBase(s.baseURL).References(inc.param) {
			typ, _, _ := strings.Cut(ref, "/")
			if inc.target != "" && typ != inc.target || !unread(ref) {
				continue
			}
			refs = append(refs, ref)
		}
	}
	found, err := s.readAll(ctx, r, p, refs)
	if err != nil {
		return err
	}
	for _, ref := range refs {
		if v, ok := found[ref]; ok {
			if err := add(v); err != nil {
				return err
			}
		}
	}
	return nil
}

// readAll reads the resources refs ("Type/id") name as read would, each
// one that read would return, keyed by its reference: with one search per
// type (the caller's grant bound in it, as a search by _id), not a read per
// reference. A type served from memory (the topic library) is read one by
// one; what the caller may not read, or is gone, is left out.
func (s *Service) readAll(ctx context.Context, r store.View, p *auth.Principal, refs []string) (map[string]store.Version, error) {
	found := make(map[string]store.Version, len(refs))
	byType := map[string][]string{}
	var types []string
	for _, ref := range refs {
		typ, id, _ := strings.Cut(ref, "/")
		if checkTypeID(typ, id) != nil {
			continue
		}
		if s.virtual[typ] != nil || len(refs) == 1 {
			if v, err := s.read(ctx, r, p, typ, id); err == nil {
				found[ref] = v
			}
			continue
		}
		if byType[typ] == nil {
			types = append(types, typ)
		}
		byType[typ] = append(byType[typ], id)
	}
	for _, typ := range types {
		grant, err := s.authorize(p, auth.Read, typ)
		if err != nil {
			continue // not readable: nothing to add
		}
		// The store stops reading at the budget left, as a search page
		// does: past it, what is missing may exist, so the response fails
		// with 413 as reading each one would have (errBudget).
		left := budgetLeft(ctx)
		q := store.SearchQuery{Type: typ, IDs: byType[typ], MaxBytes: left}
		grant.Bound(&q)
		vs, err := r.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		if left > 0 && len(vs) < len(q.IDs) {
			var read int64
			for _, v := range vs {
				read += int64(len(v.Body))
			}
			if read >= left {
				return nil, errBudget()
			}
		}
		for _, v := range vs {
			if v.Deleted || !grant.Permits(v) || s.allowedBy(ctx, r, p, auth.Read, typ, &v) != nil {
				continue
			}
			found[typ+"/"+v.ID] = v
		}
	}
	return found, nil
}

// referrers hands add the current resources of inc.source whose parameter
// refers to one of targets, found by the same search the caller could run,
// as the caller may read them. The search holds no more than the budget
// left: past it the matcher rejects the rest and the page fails with 413.
func (s *Service) referrers(ctx context.Context, r store.View, p *auth.Principal, inc include, targets []store.Version, add func(store.Version) error) error {
	var refs []string
	for _, t := range targets {
		if inc.target == "" || t.Type == inc.target {
			refs = append(refs, t.Type+"/"+t.ID) // ids hold no character FHIR escapes
		}
	}
	if len(refs) == 0 {
		return nil
	}
	grant, err := s.authorize(p, auth.Read, inc.source)
	if err != nil {
		return nil // not readable: nothing to add
	}
	c, err := search.ParseCriteria(inc.source, url.PathEscape(inc.param)+"="+url.PathEscape(strings.Join(refs, ",")))
	if err != nil {
		return nil // a target type the parameter cannot refer to: no referrers
	}
	q := store.SearchQuery{Type: inc.source, Index: c.IndexTerms(s.baseURL), Narrow: c.Narrow(s.baseURL)}
	grant.Bound(&q)
	left, match, over := budgetLeft(ctx), func(store.Version) bool { return true }, false
	if s.needsMatcher(inc.source, c) {
		match = matcher(c, s.baseURL, nil)
	}
	q.Match = func(v store.Version) bool {
		if over || !match(v) {
			return false
		}
		if left > 0 {
			if left -= versionCost(v); left < 0 {
				over = true
				return false
			}
		}
		return true
	}
	found, err := r.Search(ctx, q)
	if err != nil {
		return err
	}
	if over {
		return errBudget()
	}
	for _, v := range found {
		if s.allowedBy(ctx, r, p, auth.Read, v.Type, &v) != nil {
			continue
		}
		if err := add(v); err != nil {
			return err
		}
	}
	return nil
}

// Includes lists what _include and _revinclude accept on a search of typ,
// as "Source:param" (for the CapabilityStatement): typ's reference
// parameters the matcher evaluates, and those of every type that can refer
// to typ. parseInclude applies the same test.
func Includes(typ string) (includes, revincludes []string) {
	t := includeTable()
	return slices.Clone(t.includes[typ]), slices.Clone(t.revincludes[typ])
}

// includeTable is computed once: the search table does not change.
var includeTable = sync.OnceValue(func() (t struct{ includes, revincludes map[string][]string }) {
	t.includes, t.revincludes = map[string][]string{}, map[string][]string{}
	types := fhir.ResourceTypes()
	for _, source := range types {
		for _, p := range search.Params(source) {
			if p.Type != search.TypeReference || !p.Supported() {
				continue
			}
			t.includes[source] = append(t.includes[source], source+":"+p.Code)
			for _, target := range types {
				if len(p.Targets) == 0 || slices.Contains(p.Targets, target) {
					t.revincludes[target] = append(t.revincludes[target], source+":"+p.Code)
				}
			}
		}
	}
	return t
})
