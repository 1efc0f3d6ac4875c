// Package r4 checks a parsed JSON resource against the structure of FHIR R4
// (4.0.1), from tables generated out of the R4 StructureDefinitions: element
// names, choice types, cardinality, primitive formats and JSON kinds, the
// `_name` form of primitives, nulls, empty objects and arrays, extensions,
// contained and nested resources, and the codes of enumerable required
// bindings. It reports; it never changes the input.
//
// Expressions are FHIRPath-like: the resource type, then JSON member names
// with [i] for array items (Patient.name[0].given[1]). A `_name` member is
// reported as name (its extensions are name's in FHIRPath) unless it is
// unknown (Patient._name: name is not a primitive), a choice under
// the JSON name of its type (Observation.valueQuantity.value), and a problem
// with the choice itself under its FHIR name (Observation.value[x]). Nested
// resources continue their container's path (Bundle.entry[2].resource.subject,
// Patient.contained[0].code).
package r4

import (
	"strconv"
	"strings"

	"github.com/herald-fhir/herald/internal/strictjson"
)

// Problem is one way a resource is not valid R4.
type Problem struct {
	Expression string
	Code       string // OperationOutcome issue type: structure, required, value, code-invalid, invalid
	Message    string
}

// MaxProblems caps the problems Validate reports for one resource.
const MaxProblems = 100

// Validate reports every problem found in root (up to MaxProblems), in
// document order; none means valid. A resourceType that is not an R4 type
// (SubscriptionTopic included) is a problem: callers that accept other
// types check them before.
func Validate(root *strictjson.Value) []Problem {
	var path [24]step // deep enough for most resources without growing
	w := walker{tab: loadTable(), path: path[:0]}
	w.resource(root, true)
	return w.problems
}

// KnownResourceType reports whether name is a concrete R4 resource type.
func KnownResourceType(name string) bool {
	t := loadTable().types[name]
	return t != nil && t.kind == 'r'
}

type walker struct {
	tab         *table
	path        []step
	problems    []Problem
	inContained bool // walking a DomainResource.contained resource
}

// step is one part of an expression: a name, or an index when name is "".
type step struct {
	name  string
	index int
}

func (w *walker) full() bool { return len(w.problems) >= MaxProblems }

func (w *walker) push(name string) { w.path = append(w.path, step{name: name}) }
func (w *walker) pushIndex(i int)  { w.path = append(w.path, step{index: i}) }
func (w *walker) pop()             { w.path = w.path[:len(w.path)-1] }

func (w *walker) report(code, msg string) {
	if w.full() {
		return
	}
	w.problems = append(w.problems, Problem{Expression: w.expression(), Code: code, Message: msg})
}

// reportAt reports a problem with the member name of the current object.
func (w *walker) reportAt(name, code, msg string) {
	w.push(clip(name))
	w.report(code, msg)
	w.pop()
}

func (w *walker) expression() string {
	var b strings.Builder
	for i, s := range w.path {
		if s.name == "" {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.index))
			b.WriteByte(']')
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.name)
	}
	return b.String()
}

// resource checks a resource typed by its resourceType; root starts the path.
func (w *walker) resource(v *strictjson.Value, root bool) {
	if root {
		w.push("Resource")
		defer w.pop()
	}
	if v.Kind != strictjson.Object {
		w.report("invalid", "a resource must be a JSON object, not "+kindName(v))
		return
	}
	rt := v.Get("resourceType")
	if rt == nil {
		w.reportAt("resourceType", "required", "resourceType is missing")
		return
	}
	t := w.tab.types[rt.Str]
	if rt.Kind != strictjson.String || t == nil || t.kind != 'r' {
		w.reportAt("resourceType", "invalid", quote(rt)+" is not a FHIR R4 resource type")
		return
	}
	if root {
		w.path[len(w.path)-1].name = t.name
	}
	w.object(v, t)
}

// object checks an object of a complex, backbone or resource type.
func (w *walker) object(v *strictjson.Value, t *typeDef) {
	if v.Kind != strictjson.Object {
		w.report("structure", "expected a JSON object (a "+t.name+"), not "+kindName(v))
		return
	}
	if len(v.Members) == 0 {
		w.report("structure", "an empty object is not allowed")
		return
	}
	var seen elementSet
	for i := range v.Members {
		if w.full() {
			return
		}
		w.objectMember(v, i, t, &seen)
	}
	for _, e := range t.required {
		if !seen.has(e) {
			w.reportAt(e.name, "required", e.name+" is required (min "+strconv.Itoa(e.min)+")")
		}
	}
}

// objectMember checks the i-th member of obj, an object of type t.
func (w *walker) objectMember(obj *strictjson.Value, i int, t *typeDef, seen *elementSet) {
	m := &obj.Members[i]
	if m.Name == "resourceType" && t.kind == 'r' {
		return // checked by resource
	}
	f, isExt := lookup(t, m.Name)
	if f == nil {
		w.reportAt(m.Name, "structure", "unknown element: "+t.name+" has no "+strconv.Quote(clip(m.Name)))
		return
	}
	e := f.elem
	if e.choice && seen.has(e) && otherChoice(t, obj.Members[:i], f) {
		w.reportAt(e.name, "structure", "only one of the types of "+e.name+" may be present")
	}
	seen.add(e)
	switch {
	case isExt:
		w.primitiveElement(m, f, obj)
	case f.anyResource && e.name == "contained" && w.inContained:
		w.reportAt(m.Name, "structure", "a contained resource must not contain resources")
	default:
		w.member(m, f, obj)
	}
}

// elementSet holds the elements present in one object, by index.
type elementSet [maxElements / 64]uint64

func (s *elementSet) has(e *element) bool { return s[e.index/64]&(1<<(e.index%64)) != 0 }
func (s *elementSet) add(e *element)      { s[e.index/64] |= 1 << (e.index % 64) }

// lookup finds the field a member name stands for; isExt marks `_name`,
// allowed for primitives only (not for XML attributes such as Element.id).
func lookup(t *typeDef, name string) (f *field, isExt bool) {
	if strings.HasPrefix(name, "_") {
		f = t.fields[name[1:]]
		if f == nil || f.primitive() == nil || f.elem.attr {
			return nil, false
		}
		return f, true
	}
	return t.fields[name], false
}

// otherChoice reports whether an earlier member holds another type of f's choice.
func otherChoice(t *typeDef, earlier []strictjson.Member, f *field) bool {
	for i := range earlier {
		if g, _ := lookup(t, earlier[i].Name); g != nil && g.elem == f.elem && g != f {
			return true
		}
	}
	return false
}

// sibling returns the value of the member named name, or of `_name` when
// ext; it builds no string.
func sibling(obj *strictjson.Value, name string, ext bool) *strictjson.Value {
	for i := range obj.Members {
		n := obj.Members[i].Name
		if ext {
			if len(n) != len(name)+1 || n[0] != '_' {
				continue
			}
			n = n[1:]
		}
		if n == name {
			return &obj.Members[i].Value
		}
	}
	return nil
}

// member checks a member's value against the element's cardinality and type.
func (w *walker) member(m *strictjson.Member, f *field, obj *strictjson.Value) {
	w.push(m.Name)
	defer w.pop()
	v := &m.Value
	if f.elem.max1 {
		switch v.Kind {
		case strictjson.Array:
			w.report("structure", f.elem.name+" takes one value, not an array")
		case strictjson.Null:
			w.report("structure", "null is not allowed here")
		default:
			w.value(v, f)
		}
		return
	}
	if !w.isNonEmptyArray(v, f.elem.name) {
		return
	}
	var ext *strictjson.Value
	if f.primitive() != nil {
		ext = sibling(obj, m.Name, true)
	}
	for i := range v.Items {
		w.pushIndex(i)
		item := &v.Items[i]
		if item.Kind != strictjson.Null {
			w.value(item, f)
		} else if !hasItem(ext, i) {
			w.report("structure", "null is allowed in an array of primitives only where _"+m.Name+" has an entry")
		}
		w.pop()
	}
}

func (w *walker) isNonEmptyArray(v *strictjson.Value, name string) bool {
	switch {
	case v.Kind != strictjson.Array:
		w.report("structure", name+" takes an array")
	case len(v.Items) == 0:
		w.report("structure", "an empty array is not allowed")
	default:
		return true
	}
	return false
}

// hasItem reports whether arr is an array with a non-null item at i.
func hasItem(arr *strictjson.Value, i int) bool {
	return arr != nil && arr.Kind == strictjson.Array && i < len(arr.Items) && arr.Items[i].Kind != strictjson.Null
}

// primitiveElement checks `_name`: the id and extensions of a primitive,
// an object (or an array of them, null where name has a value).
func (w *walker) primitiveElement(m *strictjson.Member, f *field, obj *strictjson.Value) {
	name := m.Name[1:]
	w.push(name)
	defer w.pop()
	v := &m.Value
	if f.elem.max1 {
		w.object(v, w.tab.element)
		return
	}
	if !w.isNonEmptyArray(v, m.Name) {
		return
	}
	values := sibling(obj, name, false)
	if values != nil && values.Kind == strictjson.Array && len(values.Items) != len(v.Items) {
		w.report("structure", m.Name+" has "+strconv.Itoa(len(v.Items))+" entries but "+name+" has "+strconv.Itoa(len(values.Items)))
	}
	for i := range v.Items {
		w.pushIndex(i)
		item := &v.Items[i]
		switch {
		case item.Kind != strictjson.Null:
			w.object(item, w.tab.element)
		case values == nil || values.Kind != strictjson.Array || i >= len(values.Items):
			w.report("structure", "null in "+m.Name+" has no value in "+name)
		}
		w.pop() // a null matching a null value is reported at the value
	}
}

// value checks one (non-null, non-array) value of field f's type.
func (w *walker) value(v *strictjson.Value, f *field) {
	switch {
	case f.anyResource:
		outer := w.inContained
		w.inContained = f.elem.name == "contained"
		w.resource(v, false)
		w.inContained = outer
	case f.typ.prim != nil:
		w.primitive(v, f.typ.prim, f.elem.codes)
	default:
		w.object(v, f.typ)
	}
}
