package resources

import (
	"time"

	"github.com/herald-fhir/herald/internal/store"
)

// Seed is the first version of a new resource of typ, as a create would
// store it — read and validated as a write is, stamped with its id,
// version 1 and at, placed in its patient compartment and given its
// search keys by the write path's own helpers — without writing it or
// running write hooks (no topic is evaluated). It is for bulk loads of
// benchmark data (herald-load -bulk-seed), whose search keys must be
// Herald's. typ's own rules (TypeRules) are not applied.
func (s *Service) Seed(typ, id string, body []byte, at time.Time) (store.Version, error) {
	r, err := parseFor(typ, "", body)
	if err != nil {
		return store.Version{}, err
	}
	v := store.Next(nil, typ, id, store.MethodCreate, at)
	v.Body = r.Stamp(id, v.VersionID, v.LastUpdated)
	v.Decoded = r.StampedMap(id, v.VersionID, v.LastUpdated)
	if v.Patients, err = s.compartment(v.Decoded); err != nil {
		return store.Version{}, err
	}
	v.Index = s.indexKeys(v.Decoded)
	return v, nil
}
