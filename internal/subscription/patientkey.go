package subscription

import (
	"github.com/herald-fhir/herald/internal/fhir"
	"github.com/herald-fhir/herald/internal/search"
	"github.com/herald-fhir/herald/internal/topic"
)

// PatientKey returns "Patient/<id>" when filters pin a Subscription on topic
// t to one patient, and "" when they do not (store.SubscriptionState.PatientKey).
//
// A Subscription is pinned to Patient/X when, for every resource type the
// topic triggers on, some filter that applies to that type (it names the type
// or none) has an unmodified `patient` parameter whose value is the single
// reference Patient/X. Filters are ANDed, so every resource that passes them
// then references Patient/X through its `patient` search parameter (is
// Patient/X, for Patient, where Herald's `patient` means `_id`), and so
// PatientKeys finds X among the written resource's patients. A value that
// is not a plain Patient reference (a bare id, a base URL, a list) leaves the
// Subscription unpinned, which is always correct, only slower.
func PatientKey(t *topic.Topic, filters []Filter) string {
	var key string
	for i, typ := range t.ResourceTypes() {
		if typ != "Patient" && !search.HasReferenceParam(typ, "patient") {
			return "" // PatientKeys cannot name this type's patients
		}
		var pinned []string
		for _, f := range filters {
			if f.ResourceType != "" && f.ResourceType != typ {
				continue
			}
			for _, p := range f.Params {
				if p.Name != "patient" || p.Modifier != "" {
					continue
				}
				if id, ok := fhir.PatientID(p.Value, ""); ok {
					pinned = append(pinned, "Patient/"+id)
				}
			}
		}
		if len(pinned) == 0 {
			return ""
		}
		if i == 0 {
			key = pinned[0]
		}
		found := false
		for _, k := range pinned {
			found = found || k == key
		}
		if !found {
			// This type pins another patient than the first type; any key
			// the first type allows might not hold here. Keep it simple.
			return ""
		}
	}
	return key
}

// PatientKeys returns the patients a resource of type typ belongs to, for
// looking up pinned Subscriptions (store.SubscriptionFilter.PatientKeys): the
// Patient itself, or the Patient references of the type's `patient` search
// parameter. ok is false when the type has no `patient` parameter, and so no
// Subscription can be pinned for it.
func PatientKeys(typ string, r *search.Resource) (keys []string, ok bool) {
	if typ == "Patient" {
		if id := r.ID(); id != "" {
			return []string{"Patient/" + id}, true
		}
		return nil, true
	}
	if !search.HasReferenceParam(typ, "patient") {
		return nil, false
	}
	return r.References("patient"), true
}
