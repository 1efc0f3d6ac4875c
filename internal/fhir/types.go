package fhir

import (
	"regexp"
	"strings"
)

var resourceTypeSet = func() map[string]struct{} {
	m := make(map[string]struct{}, len(r4ResourceTypes))
	for _, t := range r4ResourceTypes {
		m[t] = struct{}{}
	}
	return m
}()

// heraldTypes are resource types Herald serves beyond R4: SubscriptionTopic
// in its R4B/R5 JSON shape, as the backport IG suggests for R4 servers.
var heraldTypes = map[string]bool{"SubscriptionTopic": true}

// IsResourceType reports whether name is a resource type Herald serves: a
// concrete FHIR R4 type or one of Herald's documented additions.
func IsResourceType(name string) bool {
	_, ok := resourceTypeSet[name]
	return ok || heraldTypes[name]
}

// IsR4ResourceType reports whether name is a concrete FHIR R4 resource type.
func IsR4ResourceType(name string) bool {
	_, ok := resourceTypeSet[name]
	return ok
}

// ResourceTypes returns every concrete FHIR R4 resource type, sorted.
func ResourceTypes() []string {
	return append([]string(nil), r4ResourceTypes...)
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// ValidID reports whether id matches the FHIR id datatype,
// [A-Za-z0-9\-\.]{1,64}, and is not made of dots only: "." and ".." are
// valid by the pattern, but in Location, fullUrl and references a client
// would normalise them into another URL.
func ValidID(id string) bool {
	return idPattern.MatchString(id) && strings.Trim(id, ".") != ""
}
