package resources

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/herald-fhir/herald/internal/access"
	"github.com/herald-fhir/herald/internal/auth"
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/store"
)

// TypeHistory returns the history Bundle of every resource of typ, newest
// version first (_count, _since).
func (s *Service) TypeHistory(ctx context.Context, p *auth.Principal, typ string, params url.Values) (*fhir.Bundle, error) {
	if !fhir.IsResourceType(typ) {
		return nil, unknownType(typ)
	}
	grant, err := s.authorize(p, auth.Read, typ)
	if err != nil {
		return nil, err
	}
	if err := s.allowedBy(ctx, s.store, p, auth.Read, typ, nil); err != nil {
		return nil, err
	}
	q := store.ChangesQuery{Types: []string{typ}}
	readable := map[string]access.Access{}
	if grant.Granular() {
		readable[typ] = grant // each version is judged as a read of it is
	} else {
		q.Patient = grant.Patient()
	}
	ctx, _ = s.withBudget(ctx)
	return s.changes(ctx, p, q, readable, params, s.baseURL+"/"+typ+"/_history")
}

// SystemHistory returns the history Bundle of every resource the caller may
// read, newest version first (_count, _since).
func (s *Service) SystemHistory(ctx context.Context, p *auth.Principal, params url.Values) (*fhir.Bundle, error) {
	q, readable, err := s.readableChanges(p)
	if err != nil {
		return nil, err
	}
	ctx, _ = s.withBudget(ctx)
	return s.changes(ctx, p, q, readable, params, s.baseURL+"/_history")
}

// readableChanges bounds system history by the caller's read grants: the
// types it may read, and the one patient compartment they are bounded by.
// Types with rules are filtered by the rules, and types read under granular
// grants by those grants, entry by entry (readable).
func (s *Service) readableChanges(p *auth.Principal) (store.ChangesQuery, map[string]access.Access, error) {
	var q store.ChangesQuery
	all, bounds, readable := true, map[string]bool{}, map[string]access.Access{}
	for _, typ := range fhir.ResourceTypes() {
		grant, err := s.authorize(p, auth.Read, typ)
		if err != nil {
			all = false
			continue
		}
		q.Types = append(q.Types, typ)
		switch {
		case grant.Granular():
			readable[typ] = grant
		case s.rulesFor(typ) == nil:
			bounds[grant.Patient()] = true
		}
	}
	if len(q.Types) == 0 {
		return q, nil, fhir.Errorf(fhir.KindForbidden, "the token's scopes do not permit reading any resource type")
	}
	if len(bounds) > 1 {
		return q, nil, fhir.Errorf(fhir.KindForbidden, "the token reads some types system-wide and others only in a patient compartment; use type history (GET /{type}/_history) instead of system history")
	}
	for patient := range bounds {
		q.Patient = patient
	}
	if all {
		q.Types = nil // every type: the index needs no type condition
	}
	return q, readable, nil
}

// changes pages through q and builds a history Bundle whose links keep
// _count and _since. Versions of the types in readable are kept only where
// that grant permits them; pages are read on until they are full.
func (s *Service) changes(ctx context.Context, p *auth.Principal, q store.ChangesQuery, readable map[string]access.Access, params url.Values, base string) (*fhir.Bundle, error) {
	count, err := s.parseCount(params.Get("_count"))
	if err != nil {
		return nil, err
	}
	self := url.Values{"_count": {strconv.Itoa(count)}}
	if v := params.Get("_since"); v != "" {
		if q.Since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return nil, fhir.Errorf(fhir.KindInvalid, "_since must be an instant such as 2024-01-31T09:30:00Z, not %q", clip(v))
		}
		self.Set("_since", v)
	}
	if v := params.Get(cursorParam); v != "" {
		pos, err := parsePosition(v)
		if err != nil {
			return nil, err
		}
		q.After = &pos
		self.Set(cursorParam, v)
	}
	q.Count = count + 1 // one more tells whether a next page exists
	q.MaxBytes = budgetLeft(ctx)
	versions, err := s.readableVersions(ctx, q, readable)
	if err != nil {
		return nil, err
	}
	b := fhir.NewBundle("history", s.now())
	b.Link = append(b.Link, fhir.BundleLink{Relation: "self", URL: base + "?" + self.Encode()})
	versions, more, err := fitHistory(ctx, versions, count, q.MaxBytes)
	if err != nil {
		return nil, err
	}
	if more {
		next := url.Values{}
		for k, vs := range self {
			next[k] = vs
		}
		next.Set(cursorParam, formatPosition(store.PositionOf(versions[len(versions)-1])))
		b.Link = append(b.Link, fhir.BundleLink{Relation: "next", URL: base + "?" + next.Encode()})
	}
	for _, v := range versions {
		// Types with rules (owner isolation) decide per resource; such pages
		// may hold fewer entries than _count.
		if s.rulesFor(v.Type) != nil && s.allowedBy(ctx, s.store, p, auth.Read, v.Type, &v) != nil {
			continue
		}
		b.Entry = append(b.Entry, s.historyEntry(v))
	}
	return b, nil
}

// readableVersions reads q.Count versions of q that readable permits, in
// batches, so a page is full even when most versions are outside a grant;
// it stops, as the store does, once their bodies reach q.MaxBytes.
func (s *Service) readableVersions(ctx context.Context, q store.ChangesQuery, readable map[string]access.Access) ([]store.Version, error) {
	if len(readable) == 0 {
		return s.store.Changes(ctx, q)
	}
	want, batch := q.Count, q
	batch.Count = max(q.Count, 64)
	var out []store.Version
	var held int64
	for {
		if q.MaxBytes > 0 {
			batch.MaxBytes = q.MaxBytes - held
		}
		vs, err := s.store.Changes(ctx, batch)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			if a, ok := readable[v.Type]; ok && !a.Permits(v) {
				continue
			}
			out, held = append(out, v), held+int64(len(v.Body))
			if len(out) == want || (q.MaxBytes > 0 && held >= q.MaxBytes) {
				return out, nil
			}
		}
		if len(vs) < batch.Count && (batch.MaxBytes <= 0 || store.BodyBytes(vs) < batch.MaxBytes) {
			return out, nil // the end, not a stop at the bytes
		}
		last := store.PositionOf(vs[len(vs)-1])
		batch.After = &last
		batch.Count = min(batch.Count*2, 1024)
	}
}

// fitHistory cuts a history page read with one version more than count
// (and up to maxBytes of bodies, 0: no bound) to count and to the response
// budget. more says a next page may follow the last version kept: the read
// went beyond the page, stopped at the bytes, or the budget cut it.
func fitHistory(ctx context.Context, versions []store.Version, count int, maxBytes int64) (page []store.Version, more bool, err error) {
	more = len(versions) > count || (maxBytes > 0 && store.BodyBytes(versions) >= maxBytes)
	versions = versions[:min(count, len(versions))]
	page, cut, err := fitPage(ctx, versions, false)
	return page, more || cut, err
}

// A history paging position is "millis_type_version_id": "_" occurs in no
// FHIR type or id, so the id, last, may hold "." and "-".
func formatPosition(p store.Position) string {
	return strconv.FormatInt(p.LastUpdated.UnixMilli(), 10) + "_" + p.Type + "_" + strconv.FormatInt(p.VersionID, 10) + "_" + p.ID
}

func parsePosition(v string) (store.Position, error) {
	bad := fhir.Errorf(fhir.KindInvalid, "%s is not a valid paging position", cursorParam)
	parts := strings.SplitN(v, "_", 4)
	if len(parts) != 4 || !fhir.IsResourceType(parts[1]) || !fhir.ValidID(parts[3]) {
		return store.Position{}, bad
	}
	ms, err1 := strconv.ParseInt(parts[0], 10, 64)
	vid, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || vid < 1 {
		return store.Position{}, bad
	}
	return store.Position{LastUpdated: time.UnixMilli(ms).UTC(), Type: parts[1], ID: parts[3], VersionID: vid}, nil
}
