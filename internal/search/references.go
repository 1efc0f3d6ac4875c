package search

import (
	"slices"

	"github.com/herald-fhir/herald/internal/fhir"
)

// References returns the local references (fhir.LocalReference under r's
// base), normalised to "Type/id" (no base URL, no _history), that r holds
// for the reference search parameter code of its type, sorted and without
// duplicates. It reads exactly the elements the matcher reads for that
// parameter, with the same target type rule (the `where(resolve() is X)` of
// the expression), so that a Reference clause with a local typed value
// "T/id" matches r only if "T/id" is in the result. Other references
// (another server's, "#contained", logical identifiers, urn:uuid:…) are
// left out.
// It returns nil when the type has no such reference parameter.
func (r *Resource) References(code string) []string {
	if r == nil || r.root == nil {
		return nil
	}
	p := lookup(r.typ, code)
	if p == nil || p.Type != TypeReference || !p.Supported() {
		return nil
	}
	var out []string
	for i := range p.paths {
		pa := &p.paths[i]
		if pa.kind != kindReference {
			continue // canonical/uri targets are not literal references
		}
		walk(r.root, pa.steps, func(v any) bool {
			m, ok := v.(map[string]any)
			if !ok {
				return false
			}
			if pa.target != "" && refType(m) != pa.target {
				return false
			}
			if typ, id, ok := fhir.LocalReference(str(m, "reference"), r.base); ok {
				out = append(out, typ+"/"+id)
			}
			return false // visit every element
		})
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// HasReferenceParam reports whether resourceType has a supported reference
// search parameter code, i.e. whether References can answer for it.
func HasReferenceParam(resourceType, code string) bool {
	p := lookup(resourceType, code)
	return p != nil && p.Type == TypeReference && p.Supported()
}
