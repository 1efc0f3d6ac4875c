package search

import (
	"slices"
	"strings"
)

// PatientCompartment returns the ids of the patients whose compartment
// holds r, by the R4 CompartmentDefinition for Patient: a Patient is in its
// own, and a resource of another type is in the compartment of every local
// Patient its compartment parameters reference (an Observation's subject
// and performer, a Condition's patient and asserter, …). Reads, writes and
// the write check of patient/ tokens all use it.
func PatientCompartment(r *Resource) []string {
	var out []string
	if r.Type() == "Patient" && r.ID() != "" {
		out = append(out, r.ID())
	}
	for _, code := range patientCompartment[r.Type()] {
		for _, ref := range r.References(code) {
			if id, ok := strings.CutPrefix(ref, "Patient/"); ok && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	return out
}
