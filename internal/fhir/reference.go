package fhir

import "strings"

// LocalReference is the one rule for which literal references name a
// resource on this server: a relative "Type/id" or "Type/id/_history/vid",
// or the same under baseURL (Herald's own base; with or without a trailing
// slash). Only the scheme and host of the base may differ in case, as URL
// semantics allow; any other spelling (dot segments, escapes, user info,
// another port, a query, a fragment), another server's URL, "urn:…" and
// "#contained" are not local, so they never stand for a local resource in
// compartments, filters, pinning or includes. With an empty baseURL only
// relative references are local. It does not allocate.
func LocalReference(ref, baseURL string) (typ, id string, ok bool) {
	rel := ref
	if strings.Contains(ref, ":") {
		if rel, ok = cutBase(ref, baseURL); !ok {
			return "", "", false
		}
	}
	return splitRelative(rel)
}

// cutBase returns ref's path below baseURL.
func cutBase(ref, baseURL string) (string, bool) {
	base := strings.TrimRight(baseURL, "/")
	scheme := strings.Index(base, "://")
	if scheme < 0 {
		return "", false
	}
	origin, path := base, ""
	if slash := strings.IndexByte(base[scheme+3:], '/'); slash >= 0 {
		origin, path = base[:scheme+3+slash], base[scheme+3+slash:]
	}
	if len(ref) < len(origin) || !asciiEqualFold(ref[:len(origin)], origin) {
		return "", false
	}
	rest, ok := strings.CutPrefix(ref[len(origin):], path+"/")
	return rest, ok
}

// splitRelative reads "Type/id" or "Type/id/_history/vid".
func splitRelative(rel string) (typ, id string, ok bool) {
	typ, rest, _ := strings.Cut(rel, "/")
	id, history, versioned := strings.Cut(rest, "/")
	if versioned {
		vid, isHistory := strings.CutPrefix(history, "_history/")
		if !isHistory || !plainID(vid) {
			return "", "", false
		}
	}
	if !IsResourceType(typ) || !plainID(id) {
		return "", "", false
	}
	return typ, id, true
}

// plainID is ValidID without a regular expression: [A-Za-z0-9\-\.]{1,64},
// not only dots.
func plainID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	dots := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			dots++
		case c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		default:
			return false
		}
	}
	return dots < len(s)
}

// asciiEqualFold compares with ASCII case folding only (strings.EqualFold
// would also fold, e.g., the Kelvin sign into k).
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
