package search

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/herald-fhir/herald/internal/strictjson"
)

// Resource is a FHIR resource decoded once for matching against any number of
// criteria. It is read-only and safe for concurrent use.
type Resource struct {
	typ  string
	root map[string]any
	base string // the server's base URL, for fhir.LocalReference
}

// WithBase is r as stored on the server at baseURL: its absolute references
// under that base are local, like relative ones. Without it only relative
// references are local, so forgetting it can only miss a match.
func (r *Resource) WithBase(baseURL string) *Resource {
	c := *r
	c.base = baseURL
	return &c
}

// NewResource decodes a FHIR JSON resource (with strictjson's one reading).
func NewResource(raw []byte) (*Resource, error) {
	v, err := strictjson.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("search: resource is not valid JSON: %w", err)
	}
	return ResourceFromTree(v)
}

// NewStoredResource decodes a resource body read back from the store, which
// NewResource's strict reading accepted when it was written: the same
// Resource, read faster (strictjson.ParseStored). Never use it on a body a
// client sent.
func NewStoredResource(raw []byte) (*Resource, error) {
	return storedResource(raw, nil)
}

// NewStoredResourceOf is NewStoredResource reading only the top-level
// members in members (nil: all of them): for matching and sort keys of
// the criteria and codes Members was given, it is the same Resource,
// built in a fraction of the time and memory when those are few.
func NewStoredResourceOf(raw []byte, members map[string]bool) (*Resource, error) {
	if members == nil {
		return storedResource(raw, nil)
	}
	return storedResource(raw, func(name string) bool { return members[name] })
}

func storedResource(raw []byte, keep func(string) bool) (*Resource, error) {
	v, err := strictjson.ParseStoredMembers(raw, keep)
	if err != nil {
		return nil, fmt.Errorf("search: stored resource is not valid JSON: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("search: resource is not a JSON object")
	}
	return ResourceFromMap(m)
}

// ResourceFromTree wraps a resource strictjson has already parsed.
func ResourceFromTree(v *strictjson.Value) (*Resource, error) {
	m, ok := v.Any().(map[string]any)
	if !ok {
		return nil, errors.New("search: resource is not a JSON object")
	}
	return ResourceFromMap(m)
}

// ResourceFromMap wraps an already decoded resource (as produced by
// encoding/json into map[string]any; numbers as float64 or json.Number). The
// map must not be modified while the Resource is in use.
func ResourceFromMap(m map[string]any) (*Resource, error) {
	if m == nil {
		return nil, errors.New("search: resource is null")
	}
	t, _ := m["resourceType"].(string)
	if t == "" {
		return nil, errors.New("search: resource has no resourceType")
	}
	return &Resource{typ: t, root: m}, nil
}

// Type is the resource's resourceType.
func (r *Resource) Type() string { return r.typ }

// ID is the resource's id element ("" when absent), what _id matches.
func (r *Resource) ID() string {
	if r == nil || r.root == nil {
		return ""
	}
	return str(r.root, "id")
}

// walk calls fn for each leaf element that steps select below v (arrays are
// flattened), until fn returns true; it reports whether fn did.
func walk(v any, steps []genStep, fn func(any) bool) bool {
	if len(steps) == 0 {
		if arr, ok := v.([]any); ok {
			for _, e := range arr {
				if e != nil && fn(e) {
					return true
				}
			}
			return false
		}
		return v != nil && fn(v)
	}
	switch x := v.(type) {
	case map[string]any:
		st := &steps[0]
		child, ok := x[st.name]
		if !ok {
			return false
		}
		if st.whereField == "" {
			return walk(child, steps[1:], fn)
		}
		if arr, ok := child.([]any); ok {
			for _, e := range arr {
				if whereOK(e, st) && walk(e, steps[1:], fn) {
					return true
				}
			}
			return false
		}
		return whereOK(child, st) && walk(child, steps[1:], fn)
	case []any:
		for _, e := range x {
			if walk(e, steps, fn) {
				return true
			}
		}
	}
	return false
}

func whereOK(e any, st *genStep) bool {
	m, ok := e.(map[string]any)
	if !ok {
		return false
	}
	s, _ := m[st.whereField].(string)
	return s == st.whereValue
}

// str returns m[key] when it is a string.
func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// num reads a JSON number.
func num(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}
