package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/herald-fhir/herald/internal/store"
)

func (s *Store) Changes(ctx context.Context, q store.ChangesQuery) ([]store.Version, error) {
	return changes(ctx, s.pool, q)
}

func (t *tx) Changes(ctx context.Context, q store.ChangesQuery) ([]store.Version, error) {
	return changes(ctx, t.q, q)
}

// Changes reads resource_versions backwards along an index in history
// order: (type, last_updated, id, version_id) when one type is asked for,
// (last_updated, type, id, version_id) otherwise; the paging position is a
// row comparison over the same columns, so a page starts with an index seek.
const (
	changesSQL          = `SELECT ` + versionColumns + ` FROM resource_versions WHERE true`
	changesTypeSQL      = ` AND type = $%d`
	changesTypesSQL     = ` AND type = ANY($%d::text[])`
	changesPatientSQL   = ` AND patients @> ARRAY[$%d::text]`
	changesSinceSQL     = ` AND last_updated >= $%d`
	changesAfterOneSQL  = ` AND (last_updated, id, version_id) < ($%d, $%d, $%d)`
	changesAfterManySQL = ` AND (last_updated, type, id, version_id) < ($%d, $%d, $%d, $%d)`
	changesOrderOneSQL  = ` ORDER BY type DESC, last_updated DESC, id DESC, version_id DESC`
	changesOrderManySQL = ` ORDER BY last_updated DESC, type DESC, id DESC, version_id DESC`
	changesLimitSQL     = ` LIMIT $%d`
)

func changes(ctx context.Context, q querier, cq store.ChangesQuery) ([]store.Version, error) {
	var b strings.Builder
	var args []any
	add := func(fragment string, vals ...any) {
		nums := make([]any, len(vals))
		for i, v := range vals {
			args = append(args, v)
			nums[i] = len(args)
		}
		fmt.Fprintf(&b, fragment, nums...)
	}
	b.WriteString(changesSQL)
	one := len(cq.Types) == 1
	switch {
	case one:
		add(changesTypeSQL, cq.Types[0])
	case len(cq.Types) > 1:
		add(changesTypesSQL, cq.Types)
	}
	if cq.Patient != "" {
		add(changesPatientSQL, cq.Patient)
	}
	if !cq.Since.IsZero() {
		add(changesSinceSQL, cq.Since)
	}
	if a := cq.After; a != nil {
		if one && a.Type == cq.Types[0] {
			add(changesAfterOneSQL, a.LastUpdated, a.ID, a.VersionID)
		} else {
			add(changesAfterManySQL, a.LastUpdated, a.Type, a.ID, a.VersionID)
		}
	}
	order := changesOrderManySQL
	if one {
		order = changesOrderOneSQL
	}
	b.WriteString(order)
	if cq.Count > 0 {
		add(changesLimitSQL, cq.Count)
	}
	vs, err := queryUpTo(ctx, q, cq.MaxBytes, order, b.String(), args...)
	if err != nil {
		return nil, wrap("changes", err)
	}
	return vs, nil
}
