package search

import (
	"slices"
	"sort"
	"sync"

	"github.com/herald-fhir/herald/internal/fhir"
)

// ParamType is the type of a search parameter (SearchParameter.type).
type ParamType string

// The search parameter types of FHIR R4.
const (
	TypeNumber    ParamType = "number"
	TypeDate      ParamType = "date"
	TypeString    ParamType = "string"
	TypeToken     ParamType = "token"
	TypeReference ParamType = "reference"
	TypeComposite ParamType = "composite"
	TypeQuantity  ParamType = "quantity"
	TypeURI       ParamType = "uri"
	TypeSpecial   ParamType = "special"
)

// Param is the definition of one search parameter for one resource type, as
// generated from the R4 SearchParameter resources. Its slices are shared and
// must not be modified.
type Param struct {
	// Code is the name used in queries ("patient", "_lastUpdated").
	Code string
	// Type is the parameter type.
	Type ParamType
	// Base is the type the definition is for: the resource type, or
	// "Resource" / "DomainResource" for the parameters all types share.
	Base string
	// Expression is the part of the FHIRPath expression that applies to Base.
	Expression string
	// Targets are the resource types a reference parameter may point to.
	Targets []string
	// Unsupported, when not empty, says why the matcher cannot evaluate the
	// parameter (composite, special, an untranslatable expression, …).
	Unsupported string
	// Ignored lists element types the expression selects that the parameter
	// type cannot be evaluated on (e.g. valueSampledData for value-quantity);
	// they never match.
	Ignored []string
	// Components are, for a composite parameter, the parameters whose values
	// are joined with '$', evaluated on the same element (Expression then
	// selects those elements, the components' Expressions are relative).
	Components []Param

	paths []path
}

// Supported reports whether criteria may use the parameter.
func (p Param) Supported() bool { return p.Unsupported == "" }

// Generated table entries (see scripts/gensearch).
type genStep struct {
	name       string // JSON property
	whereField string // with whereValue: keep only elements whose whereField equals it
	whereValue string
}

type genPath struct {
	steps  []genStep
	typ    string // FHIR type of the leaf element
	target string // for references: keep only references to this type
}

type genParam struct {
	base, code, typ, expr string
	targets               []string
	paths                 []genPath
	components            []genParam
	unsupported           string
	ignored               []string
}

// elemKind is how the matcher reads a leaf element.
type elemKind uint8

const (
	kindString elemKind = iota // string-valued primitives (code, id, uri, string, …)
	kindBoolean
	kindNumber
	kindDate // date, dateTime, instant
	kindPeriod
	kindTiming
	kindCoding
	kindCodeableConcept
	kindIdentifier
	kindContactPoint
	kindReference
	kindCanonical // canonical, uri and url as reference targets
	kindHumanName
	kindAddress
	kindQuantity
	kindMoney
	kindRange
)

var kindOf = map[string]elemKind{
	"string": kindString, "code": kindString, "id": kindString, "markdown": kindString,
	"uri": kindString, "url": kindString, "canonical": kindString, "oid": kindString, "uuid": kindString,
	"boolean": kindBoolean,
	"integer": kindNumber, "decimal": kindNumber, "positiveInt": kindNumber, "unsignedInt": kindNumber,
	"date": kindDate, "dateTime": kindDate, "instant": kindDate,
	"Period": kindPeriod, "Timing": kindTiming,
	"Coding": kindCoding, "CodeableConcept": kindCodeableConcept, "Identifier": kindIdentifier,
	"ContactPoint": kindContactPoint, "Reference": kindReference,
	"HumanName": kindHumanName, "Address": kindAddress,
	"Quantity": kindQuantity, "Money": kindMoney, "Range": kindRange,
}

// path is a compiled element path of a parameter.
type path struct {
	steps  []genStep
	kind   elemKind
	target string
}

type paramKey struct{ base, code string }

type registry struct {
	params map[paramKey]*Param
	byBase map[string][]*Param
	types  map[string]bool
	nonDom map[string]bool // resource types that are not DomainResources
}

var table = sync.OnceValue(func() *registry {
	r := &registry{params: make(map[paramKey]*Param, len(genParams)), byBase: map[string][]*Param{}, types: map[string]bool{}}
	for _, t := range fhir.ResourceTypes() {
		r.types[t] = true
	}
	r.nonDom = map[string]bool{"Bundle": true, "Binary": true, "Parameters": true}
	for i := range genParams {
		g := &genParams[i]
		p := compile(g)
		r.params[paramKey{g.base, g.code}] = p
		r.byBase[g.base] = append(r.byBase[g.base], p)
	}
	return r
})

func compile(g *genParam) *Param {
	p := &Param{Code: g.code, Type: ParamType(g.typ), Base: g.base, Expression: g.expr, Targets: g.targets, Unsupported: g.unsupported, Ignored: g.ignored}
	for _, gp := range g.paths {
		if p.Type == TypeComposite {
			p.paths = append(p.paths, path{steps: gp.steps})
			continue
		}
		k, ok := kindOf[gp.typ]
		if !ok {
			// The generator only emits evaluable types; be safe anyway.
			p.Unsupported = "element type " + gp.typ + " is not supported"
			p.paths = nil
			return p
		}
		if p.Type == TypeReference && k == kindString {
			k = kindCanonical
		}
		p.paths = append(p.paths, path{steps: gp.steps, kind: k, target: gp.target})
	}
	for i := range g.components {
		c := compile(&g.components[i])
		if !c.Supported() {
			p.Unsupported = "component " + c.Code + ": " + c.Unsupported
			p.paths, p.Components = nil, nil
			return p
		}
		p.Components = append(p.Components, *c)
	}
	return p
}

// IsResourceType reports whether t is a concrete FHIR R4 resource type.
func IsResourceType(t string) bool { return table().types[t] }

// Lookup returns the definition of search parameter code on resourceType,
// including the parameters every type shares (_id, _lastUpdated, _tag, …).
// ok is false when resourceType is not an R4 resource type or the code is not
// defined for it; check Supported before using the parameter.
func Lookup(resourceType, code string) (Param, bool) {
	p := lookup(resourceType, code)
	if p == nil {
		return Param{}, false
	}
	return *p, true
}

func lookup(resourceType, code string) *Param {
	r := table()
	if !r.types[resourceType] {
		return nil
	}
	if p := r.params[paramKey{resourceType, code}]; p != nil {
		return p
	}
	if !r.nonDom[resourceType] {
		if p := r.params[paramKey{"DomainResource", code}]; p != nil {
			return p
		}
	}
	return r.params[paramKey{"Resource", code}]
}

// Params lists the search parameters of resourceType (its own and the shared
// ones), sorted by code; nil for an unknown type.
func Params(resourceType string) []Param {
	r := table()
	if !r.types[resourceType] {
		return nil
	}
	var out []Param
	seen := map[string]bool{}
	bases := []string{resourceType, "DomainResource", "Resource"}
	if r.nonDom[resourceType] {
		bases = []string{resourceType, "Resource"}
	}
	for _, b := range bases {
		for _, p := range r.byBase[b] {
			if !seen[p.Code] {
				seen[p.Code] = true
				out = append(out, *p)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out
}

// hasKind reports whether any path of p reads elements of one of kinds.
func (p *Param) hasKind(kinds ...elemKind) bool {
	for _, pa := range p.paths {
		if slices.Contains(kinds, pa.kind) {
			return true
		}
	}
	return false
}
