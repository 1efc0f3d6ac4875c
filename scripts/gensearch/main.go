// Command gensearch generates internal/search/params_gen.go, the table of FHIR
// R4 search parameters, from the SearchParameter and StructureDefinition
// resources of the R4 specification package (npm hl7.fhir.r4.examples@4.0.1,
// unpacked):
//
//	go run ./scripts/gensearch -pkg "$(bash scripts/fetch-r4-package.sh)"
//
// For every (resource type, code) it records the parameter type, the target
// types of references, and the element paths that the parameter's FHIRPath
// expression selects, resolved against the StructureDefinitions so that
// choice elements become their JSON names (Observation.value as Quantity →
// valueQuantity) and every leaf has a FHIR type. Expressions it cannot
// translate exactly make the parameter unsupported (with the reason); it never
// guesses.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/format"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	pkg := flag.String("pkg", "", "directory of the unpacked R4 package (…/package)")
	out := flag.String("out", "internal/search/params_gen.go", "output file")
	compartmentOut := flag.String("compartment", "internal/search/compartment_gen.go", "output file of the Patient compartment table")
	flag.Parse()
	if *pkg == "" {
		log.Fatal("gensearch: -pkg is required")
	}
	m, err := loadModel(*pkg)
	if err != nil {
		log.Fatal(err)
	}
	params, err := loadParams(*pkg, m)
	if err != nil {
		log.Fatal(err)
	}
	src, err := render(m, params)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		log.Fatal(err)
	}
	compartment, err := renderCompartment(*pkg)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*compartmentOut, compartment, 0o644); err != nil {
		log.Fatal(err)
	}
	supported := 0
	for _, p := range params {
		if p.unsupported == "" {
			supported++
		}
	}
	log.Printf("gensearch: %d parameters (%d supported) over %d resource types → %s", len(params), supported, len(m.resourceTypes), *out)
}

// ---- StructureDefinitions ----

type sdJSON struct {
	ResourceType string `json:"resourceType"`
	URL          string `json:"url"`
	Type         string `json:"type"`
	Kind         string `json:"kind"`
	Abstract     bool   `json:"abstract"`
	Derivation   string `json:"derivation"`
	BaseDef      string `json:"baseDefinition"`
	Snapshot     struct {
		Element []elemJSON `json:"element"`
	} `json:"snapshot"`
}

type elemJSON struct {
	Path             string `json:"path"`
	ContentReference string `json:"contentReference"`
	Type             []struct {
		Code      string `json:"code"`
		Extension []struct {
			URL      string `json:"url"`
			ValueURL string `json:"valueUrl"`
		} `json:"extension"`
	} `json:"type"`
}

type element struct {
	types      []string // declared type codes (e.g. "Age", "Reference", "string")
	contentRef string   // path the element reuses the definition of
}

type model struct {
	// elements maps a specialization's type to its snapshot elements by path.
	elements map[string]map[string]*element
	// parents holds every path that has child elements, per type.
	parents map[string]map[string]bool
	// base maps a constrained datatype (Age, SimpleQuantity, …) to the type it
	// constrains (Quantity); specializations map to themselves.
	base          map[string]string
	resourceTypes []string
}

func loadModel(dir string) (*model, error) {
	files, err := filepath.Glob(filepath.Join(dir, "StructureDefinition-*.json"))
	if err != nil {
		return nil, err
	}
	m := &model{elements: map[string]map[string]*element{}, parents: map[string]map[string]bool{}, base: map[string]string{}}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var sd sdJSON
		if err := json.Unmarshal(raw, &sd); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if sd.ResourceType != "StructureDefinition" || sd.Kind == "logical" {
			continue
		}
		name := sd.URL[strings.LastIndex(sd.URL, "/")+1:]
		if sd.Derivation == "constraint" {
			if sd.Kind != "resource" {
				m.base[name] = sd.Type
			}
			continue
		}
		if name != sd.Type {
			continue
		}
		m.base[sd.Type] = sd.Type
		if sd.Kind == "complex-type" && strings.HasSuffix(sd.BaseDef, "/Quantity") {
			m.base[sd.Type] = "Quantity" // Age, Count, Distance, Duration
		}
		if sd.Kind == "resource" && !sd.Abstract {
			m.resourceTypes = append(m.resourceTypes, sd.Type)
		}
		els := map[string]*element{}
		par := map[string]bool{}
		for _, e := range sd.Snapshot.Element {
			if _, dup := els[e.Path]; dup {
				continue // slices repeat a path; the first entry is the base element
			}
			el := &element{contentRef: strings.TrimPrefix(e.ContentReference, "#")}
			for _, t := range e.Type {
				code := t.Code
				for _, x := range t.Extension {
					if x.URL == "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type" && x.ValueURL != "" {
						code = x.ValueURL
					}
				}
				if c, ok := systemTypes[code]; ok {
					code = c
				}
				el.types = append(el.types, code)
			}
			els[e.Path] = el
			if i := strings.LastIndex(e.Path, "."); i > 0 {
				par[e.Path[:i]] = true
			}
		}
		m.elements[sd.Type] = els
		m.parents[sd.Type] = par
	}
	sort.Strings(m.resourceTypes)
	if len(m.resourceTypes) == 0 {
		return nil, fmt.Errorf("no resource StructureDefinitions under %s", dir)
	}
	return m, nil
}

var systemTypes = map[string]string{
	"http://hl7.org/fhirpath/System.String":   "string",
	"http://hl7.org/fhirpath/System.Boolean":  "boolean",
	"http://hl7.org/fhirpath/System.Integer":  "integer",
	"http://hl7.org/fhirpath/System.Decimal":  "decimal",
	"http://hl7.org/fhirpath/System.Date":     "date",
	"http://hl7.org/fhirpath/System.DateTime": "dateTime",
	"http://hl7.org/fhirpath/System.Time":     "time",
}

// ---- SearchParameters ----

type spJSON struct {
	ResourceType string   `json:"resourceType"`
	ID           string   `json:"id"`
	URL          string   `json:"url"`
	Code         string   `json:"code"`
	Type         string   `json:"type"`
	Base         []string `json:"base"`
	Expression   string   `json:"expression"`
	Target       []string `json:"target"`
	Component    []struct {
		Definition string `json:"definition"`
		Expression string `json:"expression"`
	} `json:"component"`
}

// genStep / genPath / genParam mirror the types of the same names in
// internal/search.
type genStep struct {
	name, whereField, whereValue string
}

type genPath struct {
	steps  []genStep
	typ    string // base FHIR type of the leaf (Quantity for Age)
	target string // resolve() is <target>
}

type genParam struct {
	base, code, typ, url string
	expr                 string
	targets              []string
	paths                []genPath // for composites: the elements the components are read from
	components           []*genParam
	unsupported          string
	notes                []string
}

func loadParams(dir string, m *model) ([]*genParam, error) {
	files, err := filepath.Glob(filepath.Join(dir, "SearchParameter-*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var sps []*spJSON
	byURL := map[string]*spJSON{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		sp := new(spJSON)
		if err := json.Unmarshal(raw, sp); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if sp.ResourceType != "SearchParameter" || strings.HasPrefix(sp.ID, "example") {
			continue // examples of how to define parameters, not part of R4
		}
		sps = append(sps, sp)
		byURL[sp.URL] = sp
	}
	byKey := map[string]*genParam{}
	for _, sp := range sps {
		frags, err := splitUnion(sp.Expression)
		if err != nil {
			frags = nil
		}
		for _, base := range sp.Base {
			p := &genParam{base: base, code: sp.Code, typ: sp.Type, url: sp.URL, targets: sortedCopy(sp.Target)}
			var mine []string
			for _, fr := range frags {
				if root(fr) == base {
					mine = append(mine, fr)
				}
			}
			p.expr = strings.Join(mine, " | ")
			switch {
			case err != nil:
				p.unsupported = "cannot parse the FHIRPath expression: " + err.Error()
			case sp.Type == "special":
				p.unsupported = "special parameters are not supported"
			case len(mine) == 0 && sp.Expression == "":
				p.unsupported = "the definition has no FHIRPath expression"
			case len(mine) == 0:
				p.unsupported = "the FHIRPath expression selects nothing on " + base
			case sp.Type == "composite":
				translateComposite(m, p, mine, sp, byURL)
			default:
				translate(m, p, mine)
			}
			key := base + "\x00" + sp.Code
			if old, dup := byKey[key]; dup {
				// Core parameters (url http://hl7.org/fhir/SearchParameter/<id>
				// without "-extensions-") win over extension-defined ones.
				if isExtensionParam(p.url) || !isExtensionParam(old.url) {
					log.Printf("gensearch: %s %s defined twice (%s, %s); keeping %s", base, sp.Code, old.url, p.url, old.url)
					continue
				}
			}
			byKey[key] = p
		}
	}
	out := make([]*genParam, 0, len(byKey))
	for _, p := range byKey {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].base != out[j].base {
			return out[i].base < out[j].base
		}
		return out[i].code < out[j].code
	})
	return out, nil
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// translateComposite resolves the composite's root elements and, relative to
// them, each component's elements with the type of the component's own
// definition. The component expressions must select the same relative
// elements from every root.
func translateComposite(m *model, p *genParam, roots []string, sp *spJSON, byURL map[string]*spJSON) {
	fail := func(format string, args ...any) {
		p.unsupported = fmt.Sprintf(format, args...)
		p.paths, p.components = nil, nil
	}
	type rootPath struct {
		frag string
		path genPath
	}
	var rps []rootPath
	for _, fr := range roots {
		ops, err := parseFragment(fr)
		if err != nil {
			fail("cannot translate %q: %v", fr, err)
			return
		}
		paths, err := m.resolve(ops)
		if err != nil {
			fail("cannot translate %q: %v", fr, err)
			return
		}
		for _, gp := range paths {
			gp.typ = "" // a root is read as an element, not matched
			rps = append(rps, rootPath{fr, gp})
			p.paths = append(p.paths, gp)
		}
	}
	if len(sp.Component) < 2 {
		fail("composite without components")
		return
	}
	for _, comp := range sp.Component {
		def := byURL[comp.Definition]
		if def == nil {
			fail("component definition %s is not in the package", comp.Definition)
			return
		}
		if def.Type == "composite" || def.Type == "special" {
			fail("component %s is a %s parameter", def.Code, def.Type)
			return
		}
		c := &genParam{base: p.base, code: def.Code, typ: def.Type, url: def.URL, expr: comp.Expression, targets: sortedCopy(def.Target)}
		parts, err := splitUnion(comp.Expression)
		if err != nil || len(parts) == 0 {
			fail("cannot parse component expression %q", comp.Expression)
			return
		}
		var rel []genPath
		for i, rp := range rps {
			var mine []genPath
			for _, part := range parts {
				if strings.HasPrefix(part, "%") || strings.HasPrefix(part, "(") {
					fail("cannot translate component expression %q", part)
					return
				}
				full := rp.frag + "." + part
				ops, err := parseFragment(full)
				if err != nil {
					fail("cannot translate %q: %v", full, err)
					return
				}
				paths, err := m.resolve(ops)
				if err != nil {
					fail("cannot translate %q: %v", full, err)
					return
				}
				for _, gp := range paths {
					if len(gp.steps) < len(rp.path.steps) || !sameSteps(gp.steps[:len(rp.path.steps)], rp.path.steps) {
						fail("component %q does not stay below %q", part, rp.frag)
						return
					}
					gp.steps = gp.steps[len(rp.path.steps):]
					if !compatible(def.Type, gp.typ) {
						if i == 0 {
							c.notes = append(c.notes, fmt.Sprintf("%s: %s (%s) is not searchable as %s", part, jsonPath(gp), gp.typ, def.Type))
						}
						continue
					}
					mine = append(mine, gp)
				}
			}
			if i == 0 {
				rel = mine
			} else if !samePaths(rel, mine) {
				fail("component %q selects different elements below %q and %q", comp.Expression, rps[0].frag, rp.frag)
				return
			}
		}
		if len(rel) == 0 {
			fail("component %s selects no element of a type searchable as %s", def.Code, def.Type)
			return
		}
		c.paths = rel
		p.components = append(p.components, c)
		p.notes = append(p.notes, c.notes...)
	}
}

func isExtensionParam(url string) bool { return strings.Contains(url, "-extensions-") }

// root returns the type a union member starts from ("Observation" for
// "(Observation.value as Quantity)").
func root(fragment string) string {
	s := strings.TrimLeft(fragment, "( ")
	end := 0
	for end < len(s) && isIdentChar(s[end]) {
		end++
	}
	return s[:end]
}

// translate resolves each fragment to element paths and keeps those whose leaf
// type the parameter type can be evaluated on.
func translate(m *model, p *genParam, frags []string) {
	for _, fr := range frags {
		ops, err := parseFragment(fr)
		if err != nil {
			p.unsupported = fmt.Sprintf("cannot translate %q: %v", fr, err)
			p.paths = nil
			return
		}
		paths, err := m.resolve(ops)
		if err != nil {
			p.unsupported = fmt.Sprintf("cannot translate %q: %v", fr, err)
			p.paths = nil
			return
		}
		var dropped []string
		for _, gp := range paths {
			if !compatible(p.typ, gp.typ) {
				dropped = append(dropped, fmt.Sprintf("%s (%s)", jsonPath(gp), gp.typ))
				continue
			}
			if gp.target != "" && p.typ != "reference" {
				p.unsupported = fmt.Sprintf("cannot translate %q: resolve() on a %s parameter", fr, p.typ)
				p.paths = nil
				return
			}
			p.paths = append(p.paths, gp)
		}
		if len(dropped) > 0 {
			if len(dropped) > 6 {
				dropped = append(dropped[:6], fmt.Sprintf("and %d more", len(dropped)-6))
			}
			p.notes = append(p.notes, fmt.Sprintf("%s: not searchable as %s: %s", fr, p.typ, strings.Join(dropped, ", ")))
		}
	}
	if len(p.paths) == 0 {
		p.unsupported = "no element of a type searchable as " + p.typ
	}
}

func jsonPath(gp genPath) string {
	var parts []string
	for _, s := range gp.steps {
		if s.whereField != "" {
			parts = append(parts, fmt.Sprintf("%s[%s=%s]", s.name, s.whereField, s.whereValue))
		} else {
			parts = append(parts, s.name)
		}
	}
	return strings.Join(parts, ".")
}

// compatible lists the element types the matcher evaluates per parameter type.
func compatible(paramType, elemType string) bool {
	switch paramType {
	case "token":
		switch elemType {
		case "Coding", "CodeableConcept", "Identifier", "ContactPoint",
			"code", "string", "id", "uri", "url", "canonical", "oid", "uuid", "boolean":
			return true
		}
	case "reference":
		switch elemType {
		case "Reference", "canonical", "uri", "url":
			return true
		}
	case "string":
		switch elemType {
		case "string", "markdown", "code", "id", "uri", "url", "canonical", "HumanName", "Address":
			return true
		}
	case "date":
		switch elemType {
		case "date", "dateTime", "instant", "Period", "Timing":
			return true
		}
	case "uri":
		switch elemType {
		case "uri", "url", "canonical", "oid", "uuid":
			return true
		}
	case "quantity":
		switch elemType {
		case "Quantity", "Money", "Range":
			return true
		}
	case "number":
		switch elemType {
		case "integer", "decimal", "positiveInt", "unsignedInt":
			return true
		}
	}
	return false
}

// ---- FHIRPath fragments ----

// splitUnion splits an expression on its top-level | operators.
func splitUnion(expr string) ([]string, error) {
	var out []string
	depth, start := 0, 0
	inStr := false
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case inStr:
			if c == '\\' {
				i++
			} else if c == '\'' {
				inStr = false
			}
		case c == '\'':
			inStr = true
		case c == '(' || c == '[':
			depth++
		case c == ')' || c == ']':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced parentheses")
			}
		case c == '|' && depth == 0:
			out = append(out, strings.TrimSpace(expr[start:i]))
			start = i + 1
		}
	}
	if depth != 0 || inStr {
		return nil, fmt.Errorf("unbalanced parentheses or quotes")
	}
	if s := strings.TrimSpace(expr[start:]); s != "" {
		out = append(out, s)
	}
	return out, nil
}

type tokKind int

const (
	tIdent tokKind = iota
	tString
	tPunct
	tEOF
)

type token struct {
	kind tokKind
	text string
}

func isIdentChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func lex(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case isIdentChar(c):
			j := i
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			toks = append(toks, token{tIdent, s[i:j]})
			i = j
		case c == '\'':
			var b strings.Builder
			j := i + 1
			for ; j < len(s) && s[j] != '\''; j++ {
				if s[j] == '\\' {
					return nil, fmt.Errorf("escapes in string literals are not supported")
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string")
			}
			toks = append(toks, token{tString, b.String()})
			i = j + 1
		case strings.HasPrefix(s[i:], "!="):
			toks = append(toks, token{tPunct, "!="})
			i += 2
		case strings.ContainsRune(".()=[],", rune(c)):
			toks = append(toks, token{tPunct, string(c)})
			i++
		default:
			return nil, fmt.Errorf("unexpected %q", c)
		}
	}
	return append(toks, token{kind: tEOF}), nil
}

// op is one navigation operation of a translated fragment.
type op struct {
	kind  string // "root", "child", "cast", "whereEq", "resolveIs", "extension"
	name  string // type or element name, or the where field / extension url
	value string // where value
}

type parser struct {
	toks []token
	pos  int
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) next() token { t := p.toks[p.pos]; p.pos++; return t }
func (p *parser) isPunct(s string) bool {
	t := p.peek()
	return t.kind == tPunct && t.text == s
}
func (p *parser) expectPunct(s string) error {
	if !p.isPunct(s) {
		return fmt.Errorf("expected %q, found %q", s, p.peek().text)
	}
	p.pos++
	return nil
}
func (p *parser) ident() (string, error) {
	t := p.next()
	if t.kind != tIdent {
		return "", fmt.Errorf("expected a name, found %q", t.text)
	}
	return t.text, nil
}

// parseFragment accepts Type.a.b, .where(resolve() is T), .where(f='v'),
// .as(T), .ofType(T), .extension('url'), "X as T" and "(X as T).y".
func parseFragment(s string) ([]op, error) {
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	ops, err := p.expr()
	if err != nil {
		return nil, err
	}
	if p.peek().kind != tEOF {
		return nil, fmt.Errorf("unsupported construct at %q", p.peek().text)
	}
	return ops, nil
}

// expr := term ("as" Type)? ; term := "(" expr ")" tail | path
func (p *parser) expr() ([]op, error) {
	var ops []op
	if p.isPunct("(") {
		p.pos++
		inner, err := p.expr()
		if err != nil {
			return nil, err
		}
		if err := p.expectPunct(")"); err != nil {
			return nil, err
		}
		ops = inner
	} else {
		name, err := p.ident()
		if err != nil {
			return nil, err
		}
		ops = []op{{kind: "root", name: name}}
	}
	tail, err := p.tail()
	if err != nil {
		return nil, err
	}
	ops = append(ops, tail...)
	if t := p.peek(); t.kind == tIdent && t.text == "as" {
		p.pos++
		typ, err := p.ident()
		if err != nil {
			return nil, err
		}
		ops = append(ops, op{kind: "cast", name: typ})
		tail, err := p.tail()
		if err != nil {
			return nil, err
		}
		ops = append(ops, tail...)
	}
	return ops, nil
}

func (p *parser) tail() ([]op, error) {
	var ops []op
	for p.isPunct(".") {
		p.pos++
		name, err := p.ident()
		if err != nil {
			return nil, err
		}
		if !p.isPunct("(") {
			ops = append(ops, op{kind: "child", name: name})
			continue
		}
		p.pos++
		switch name {
		case "as", "ofType":
			typ, err := p.ident()
			if err != nil {
				return nil, err
			}
			ops = append(ops, op{kind: "cast", name: typ})
		case "extension":
			t := p.next()
			if t.kind != tString {
				return nil, fmt.Errorf("extension() needs a url literal")
			}
			ops = append(ops, op{kind: "extension", name: t.text})
		case "where":
			o, err := p.whereCond()
			if err != nil {
				return nil, err
			}
			ops = append(ops, o)
		default:
			return nil, fmt.Errorf("function %s() is not supported", name)
		}
		if err := p.expectPunct(")"); err != nil {
			return nil, err
		}
	}
	if p.isPunct("[") {
		return nil, fmt.Errorf("indexers are not supported")
	}
	return ops, nil
}

// whereCond := "resolve" "(" ")" "is" Type | name "=" 'literal'
func (p *parser) whereCond() (op, error) {
	name, err := p.ident()
	if err != nil {
		return op{}, err
	}
	if name == "resolve" {
		if err := p.expectPunct("("); err != nil {
			return op{}, err
		}
		if err := p.expectPunct(")"); err != nil {
			return op{}, err
		}
		if t := p.next(); t.kind != tIdent || t.text != "is" {
			return op{}, fmt.Errorf("only resolve() is <Type> is supported")
		}
		typ, err := p.ident()
		if err != nil {
			return op{}, err
		}
		return op{kind: "resolveIs", name: typ}, nil
	}
	if !p.isPunct("=") {
		return op{}, fmt.Errorf("only where(resolve() is T) and where(field='value') are supported")
	}
	p.pos++
	t := p.next()
	if t.kind != tString {
		return op{}, fmt.Errorf("where() compares with a string literal only")
	}
	return op{kind: "whereEq", name: name, value: t.text}, nil
}

// ---- resolution against the StructureDefinitions ----

// cursor is a partially resolved path.
type cursor struct {
	steps  []genStep
	sd     string   // type whose snapshot holds the children
	path   string   // element path of the current node inside sd
	types  []string // declared types of the current node ("" at the root)
	choice string   // JSON base name when the node is an un-cast choice
	target string
}

func (m *model) resolve(ops []op) ([]genPath, error) {
	if len(ops) == 0 || ops[0].kind != "root" {
		return nil, fmt.Errorf("no root type")
	}
	rootType := ops[0].name
	if _, ok := m.elements[rootType]; !ok {
		return nil, fmt.Errorf("unknown type %s", rootType)
	}
	cur := []cursor{{sd: rootType, path: rootType}}
	for _, o := range ops[1:] {
		var next []cursor
		for _, c := range cur {
			ns, err := m.apply(c, o)
			if err != nil {
				return nil, err
			}
			next = append(next, ns...)
		}
		cur = next
	}
	var out []genPath
	for _, c := range cur {
		if c.choice != "" {
			for _, t := range c.types {
				c2, err := m.pick(c, t)
				if err != nil {
					return nil, err
				}
				out = append(out, genPath{steps: c2.steps, typ: m.baseOf(t), target: c2.target})
			}
			continue
		}
		if len(c.steps) == 0 {
			out = append(out, genPath{typ: rootType}) // the resource itself
			continue
		}
		if len(c.types) != 1 {
			return nil, fmt.Errorf("path ends on an element with types %v", c.types)
		}
		out = append(out, genPath{steps: c.steps, typ: m.baseOf(c.types[0]), target: c.target})
	}
	return out, nil
}

func (m *model) baseOf(t string) string {
	if b, ok := m.base[t]; ok {
		return b
	}
	return t
}

func (m *model) apply(c cursor, o op) ([]cursor, error) {
	switch o.kind {
	case "child", "extension":
		if c.choice != "" {
			return nil, fmt.Errorf("navigating into the un-cast choice element %s[x]", c.choice)
		}
		name := o.name
		if o.kind == "extension" {
			name = "extension"
		}
		el, jsonName, isChoice, path, err := m.child(c, name)
		if err != nil {
			return nil, err
		}
		n := cursor{steps: appendStep(c.steps, genStep{name: jsonName}), target: c.target, types: el.types}
		if el.contentRef != "" {
			path = el.contentRef
			n.types = m.elements[c.sd][path].types
		}
		if isChoice {
			n.choice = jsonName
			n.steps = c.steps // the JSON name is fixed by the type
			n.sd, n.path = c.sd, path
		} else if m.parents[c.sd][path] && (len(n.types) == 0 || n.types[0] == "BackboneElement" || n.types[0] == "Element") {
			n.sd, n.path = c.sd, path
		} else if len(n.types) == 1 {
			t := m.baseOf(n.types[0])
			n.sd, n.path = t, t
		} else {
			return nil, fmt.Errorf("element %s has several types", path)
		}
		if o.kind == "extension" {
			last := &n.steps[len(n.steps)-1]
			last.whereField, last.whereValue = "url", o.name
			// then .value[x]: every declared extension value type
			v, vjson, vchoice, vpath, err := m.child(n, "value")
			if err != nil || !vchoice {
				return nil, fmt.Errorf("extension has no value[x]")
			}
			return []cursor{{steps: n.steps, sd: n.sd, path: vpath, types: v.types, choice: vjson, target: c.target}}, nil
		}
		return []cursor{n}, nil
	case "cast":
		if c.choice == "" {
			if len(c.types) == 1 && strings.EqualFold(c.types[0], o.name) {
				return []cursor{c}, nil
			}
			return nil, fmt.Errorf("cast to %s of a non-choice element", o.name)
		}
		for _, t := range c.types {
			if t == o.name || strings.EqualFold(t, o.name) {
				n, err := m.pick(c, t)
				if err != nil {
					return nil, err
				}
				return []cursor{n}, nil
			}
		}
		// A cast to a type the choice does not allow selects nothing.
		return nil, nil
	case "whereEq":
		if c.choice != "" || len(c.steps) == 0 {
			return nil, fmt.Errorf("where() on an un-cast choice")
		}
		if _, _, isChoice, _, err := m.child(c, o.name); err != nil || isChoice {
			return nil, fmt.Errorf("where(%s=…): no such element", o.name)
		}
		c.steps = append([]genStep(nil), c.steps...)
		last := &c.steps[len(c.steps)-1]
		if last.whereField != "" {
			return nil, fmt.Errorf("two where() filters on one element")
		}
		last.whereField, last.whereValue = o.name, o.value
		return []cursor{c}, nil
	case "resolveIs":
		if len(c.types) != 1 || c.types[0] != "Reference" {
			return nil, fmt.Errorf("resolve() on a non-Reference element")
		}
		if c.target != "" {
			return nil, fmt.Errorf("two resolve() filters")
		}
		c.target = o.name
		return []cursor{c}, nil
	}
	return nil, fmt.Errorf("unsupported operation %s", o.kind)
}

// appendStep appends without sharing the backing array with other cursors.
func appendStep(steps []genStep, s genStep) []genStep {
	out := make([]genStep, len(steps), len(steps)+1)
	copy(out, steps)
	return append(out, s)
}

// pick selects type t of an un-cast choice element.
func (m *model) pick(c cursor, t string) (cursor, error) {
	jsonName := c.choice + strings.ToUpper(t[:1]) + t[1:]
	bt := m.baseOf(t)
	return cursor{steps: appendStep(c.steps, genStep{name: jsonName}), sd: bt, path: bt, types: []string{t}, target: c.target}, nil
}

// child looks up element name under cursor c.
func (m *model) child(c cursor, name string) (el *element, jsonName string, isChoice bool, path string, err error) {
	els := m.elements[c.sd]
	if els == nil {
		return nil, "", false, "", fmt.Errorf("no definition for type %s", c.sd)
	}
	if e, ok := els[c.path+"."+name]; ok {
		return e, name, false, c.path + "." + name, nil
	}
	if e, ok := els[c.path+"."+name+"[x]"]; ok {
		return e, name, true, c.path + "." + name + "[x]", nil
	}
	return nil, "", false, "", fmt.Errorf("%s has no element %s", c.path, name)
}

// ---- output ----

func render(m *model, params []*genParam) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("// Code generated by scripts/gensearch from hl7.fhir.r4.examples@4.0.1; DO NOT EDIT.\n\npackage search\n\n")
	// The resource type list itself is internal/fhir's (scripts/genr4).
	b.WriteString("// genParams holds every R4 search parameter per base type (\"Resource\"\n// for the parameters all types share).\n")
	b.WriteString("var genParams = []genParam{\n")
	for _, p := range params {
		b.WriteString("\t")
		writeParam(&b, p)
		b.WriteString(",\n")
	}
	b.WriteString("}\n")
	return format.Source(b.Bytes())
}

func writeParam(b *bytes.Buffer, p *genParam) {
	fmt.Fprintf(b, "{base: %q, code: %q, typ: %q, expr: %q", p.base, p.code, p.typ, p.expr)
	if len(p.targets) > 0 {
		fmt.Fprintf(b, ", targets: %#v", p.targets)
	}
	if p.unsupported != "" {
		fmt.Fprintf(b, ", unsupported: %q", p.unsupported)
	} else {
		b.WriteString(", paths: []genPath{")
		for i, gp := range p.paths {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("{steps: []genStep{")
			for j, s := range gp.steps {
				if j > 0 {
					b.WriteString(", ")
				}
				if s.whereField != "" {
					fmt.Fprintf(b, "{name: %q, whereField: %q, whereValue: %q}", s.name, s.whereField, s.whereValue)
				} else {
					fmt.Fprintf(b, "{name: %q}", s.name)
				}
			}
			b.WriteString("}")
			if gp.typ != "" {
				fmt.Fprintf(b, ", typ: %q", gp.typ)
			}
			if gp.target != "" {
				fmt.Fprintf(b, ", target: %q", gp.target)
			}
			b.WriteString("}")
		}
		b.WriteString("}")
		if len(p.components) > 0 {
			b.WriteString(", components: []genParam{")
			for i, c := range p.components {
				if i > 0 {
					b.WriteString(", ")
				}
				writeParam(b, c)
			}
			b.WriteString("}")
		}
	}
	if len(p.notes) > 0 {
		fmt.Fprintf(b, ", ignored: %#v", p.notes)
	}
	b.WriteString("}")
}

func sameSteps(a, b []genStep) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func samePaths(a, b []genPath) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameSteps(a[i].steps, b[i].steps) || a[i].typ != b[i].typ || a[i].target != b[i].target {
			return false
		}
	}
	return true
}
