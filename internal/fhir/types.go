package fhir

import "regexp"

var resourceTypeSet = func() map[string]struct{} {
	m := make(map[string]struct{}, len(r4ResourceTypes))
	for _, t := range r4ResourceTypes {
		m[t] = struct{}{}
	}
	return m
}()

// IsResourceType reports whether name is a concrete FHIR R4 resource type.
func IsResourceType(name string) bool {
	_, ok := resourceTypeSet[name]
	return ok
}

// ResourceTypes returns every concrete FHIR R4 resource type, sorted.
func ResourceTypes() []string {
	return append([]string(nil), r4ResourceTypes...)
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// ValidID reports whether id matches the FHIR id datatype: [A-Za-z0-9\-\.]{1,64}.
func ValidID(id string) bool {
	return idPattern.MatchString(id)
}
