package memory

import (
	"context"
	"slices"
	"sort"

	"github.com/herald-fhir/herald/internal/store"
)

func (s *Store) Changes(ctx context.Context, q store.ChangesQuery) ([]store.Version, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return changes(q, s.db.versions), nil
}

func (t *tx) Changes(ctx context.Context, q store.ChangesQuery) ([]store.Version, error) {
	t.s.mu.RLock()
	defer t.s.mu.RUnlock()
	return changes(q, t.s.db.versions, t.pending), nil
}

// changes scans every version; the embedded store is for development and
// tests, where a scan is fast enough.
func changes(q store.ChangesQuery, sets ...map[key][]store.Version) []store.Version {
	var out []store.Version
	for _, set := range sets {
		for k, vs := range set {
			if len(q.Types) > 0 && !slices.Contains(q.Types, k.typ) {
				continue
			}
			for _, v := range vs {
				if changeMatches(v, q) {
					out = append(out, v)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return store.PositionOf(out[i]).Before(store.PositionOf(out[j])) })
	if q.Count > 0 && len(out) > q.Count {
		out = out[:q.Count]
	}
	return store.UpToBytes(out, q.MaxBytes)
}

func changeMatches(v store.Version, q store.ChangesQuery) bool {
	if q.Patient != "" && !slices.Contains(v.Patients, q.Patient) {
		return false
	}
	if !q.Since.IsZero() && v.LastUpdated.Before(q.Since) {
		return false
	}
	return q.After == nil || q.After.Before(store.PositionOf(v))
}

func (s *Store) Count(ctx context.Context, q store.SearchQuery) (int, error) {
	// As PostgreSQL counts: the whole result, not a page of it cut by
	// count, position, offset or bytes (_total=accurate reads its page and
	// its count from one query, MaxBytes set).
	q.Count, q.AfterID, q.BeforeID, q.Offset, q.MaxBytes = 0, "", "", 0, 0
	vs, err := s.Search(ctx, q)
	return len(vs), err
}

func (t *tx) Count(ctx context.Context, q store.SearchQuery) (int, error) {
	// As PostgreSQL counts: the whole result, not a page of it cut by
	// count, position, offset or bytes (_total=accurate reads its page and
	// its count from one query, MaxBytes set).
	q.Count, q.AfterID, q.BeforeID, q.Offset, q.MaxBytes = 0, "", "", 0, 0
	vs, err := t.Search(ctx, q)
	return len(vs), err
}

func (s *Store) SearchTotal(ctx context.Context, q store.SearchQuery) ([]store.Version, int, error) {
	return searchTotal(ctx, s, q)
}

func (t *tx) SearchTotal(ctx context.Context, q store.SearchQuery) ([]store.Version, int, error) {
	return searchTotal(ctx, t, q)
}

// searchTotal: the memory store reads no disk; two passes cost it little.
func searchTotal(ctx context.Context, r store.Reader, q store.SearchQuery) ([]store.Version, int, error) {
	n, err := r.Count(ctx, q)
	if err != nil {
		return nil, 0, err
	}
	vs, err := r.Search(ctx, q)
	return vs, n, err
}
