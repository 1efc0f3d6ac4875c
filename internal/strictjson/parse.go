// Package strictjson is Herald's one reading of JSON that a client sent.
//
// encoding/json matches member names case-insensitively and lets a later
// duplicate member win, so two parts of a server can read one body two ways:
// a check that sees {"Reference":"Patient/p1"} while the stored bytes say
// {"reference":"Patient/p2"}. Here every member name is exact, and a body is
// refused before anything acts on it when an object repeats a name, holds two
// names that differ only in case, carries invalid UTF-8 or a lone surrogate
// escape, or nests deeper than MaxDepth. What is accepted is read one way by
// every caller: as a tree of Values that keep their exact bytes (Parse), or
// decoded into Go values with exact, case-sensitive names (Unmarshal).
package strictjson

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is how deeply arrays and objects may nest. FHIR resources nest a
// few dozen levels at most (Questionnaire items are the deepest in practice).
const MaxDepth = 128

// Kind is the JSON type of a Value.
type Kind uint8

const (
	Null Kind = iota
	Bool
	Number
	String
	Array
	Object
)

var kindNames = [...]string{Null: "null", Bool: "boolean", Number: "number", String: "string", Array: "array", Object: "object"}

func (k Kind) String() string { return kindNames[k] }

// Value is one parsed JSON value. Raw is its exact text in the input (a
// sub-slice of it: don't modify the input while Values are in use).
type Value struct {
	Kind    Kind
	Raw     []byte
	Str     string   // the decoded text of a String
	True    bool     // the value of a Bool
	Members []Member // an Object's members, in input order
	Items   []Value  // an Array's elements
}

// Member is one name/value pair of an object.
type Member struct {
	Name  string
	Value Value
}

// Get returns the value of an object's member, or nil when v is not an
// object or has no such member. Names are exact.
func (v *Value) Get(name string) *Value {
	if v == nil || v.Kind != Object {
		return nil
	}
	for i := range v.Members {
		if v.Members[i].Name == name {
			return &v.Members[i].Value
		}
	}
	return nil
}

// Itemized returns an array's elements as pointers (nil for anything else),
// for ranging without copying.
func (v *Value) Itemized() []*Value {
	if v == nil || v.Kind != Array {
		return nil
	}
	out := make([]*Value, len(v.Items))
	for i := range v.Items {
		out[i] = &v.Items[i]
	}
	return out
}

// String returns the text of a String value; ok is false for anything else.
func (v *Value) String() (s string, ok bool) {
	if v == nil || v.Kind != String {
		return "", false
	}
	return v.Str, true
}

// Error says why input was refused and where: Offset is the byte offset and
// Path the JSON location (e.g. `subject.reference`, `entry[2]`).
type Error struct {
	Offset int
	Path   string
	Msg    string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%s (at byte %d)", e.Msg, e.Offset)
	}
	return fmt.Sprintf("%s: %s (at byte %d)", e.Path, e.Msg, e.Offset)
}

// Parse reads exactly one JSON value from data (surrounding whitespace
// allowed) under the package's rules.
func Parse(data []byte) (*Value, error) {
	p := parser{data: data, src: string(data)}
	p.skipSpace()
	v := &Value{}
	if err := p.value(v, 0); err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return nil, p.fail("data after the JSON value")
	}
	return v, nil
}

// Check reports whether data is acceptable to Parse, without keeping a tree.
func Check(data []byte) error {
	_, err := Parse(data)
	return err
}

type parser struct {
	data []byte
	src  string // data as one string: unescaped strings are substrings of it, no copy each
	pos  int
	path []pathStep // the location being parsed, for errors
	// Members and items of the objects and arrays being parsed; each is
	// copied into an exactly sized slice when its container closes.
	members []Member
	items   []Value
}

type pathStep struct {
	name  string
	index int // -1 for a member step
}

func (p *parser) fail(format string, args ...any) *Error {
	return &Error{Offset: p.pos, Path: p.pathString(), Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) pathString() string {
	var b strings.Builder
	for _, s := range p.path {
		if s.index >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.index))
			b.WriteByte(']')
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(Clip(s.name))
	}
	return b.String()
}

func (p *parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value(v *Value, depth int) error {
	if p.pos >= len(p.data) {
		return p.fail("unexpected end of input")
	}
	start := p.pos
	switch c := p.data[p.pos]; {
	case c == '{':
		if depth >= MaxDepth {
			return p.fail("nested deeper than %d levels", MaxDepth)
		}
		v.Kind = Object
		if err := p.object(v, depth); err != nil {
			return err
		}
	case c == '[':
		if depth >= MaxDepth {
			return p.fail("nested deeper than %d levels", MaxDepth)
		}
		v.Kind = Array
		if err := p.array(v, depth); err != nil {
			return err
		}
	case c == '"':
		s, err := p.string()
		if err != nil {
			return err
		}
		v.Kind, v.Str = String, s
	case c == '-' || (c >= '0' && c <= '9'):
		if err := p.number(); err != nil {
			return err
		}
		v.Kind = Number
	case p.literal("true"):
		v.Kind, v.True = Bool, true
	case p.literal("false"):
		v.Kind = Bool
	case p.literal("null"):
		v.Kind = Null
	default:
		return p.fail("invalid character %s", quoteByte(c))
	}
	v.Raw = p.data[start:p.pos]
	return nil
}

func (p *parser) literal(word string) bool {
	if len(p.data)-p.pos >= len(word) && string(p.data[p.pos:p.pos+len(word)]) == word {
		p.pos += len(word)
		return true
	}
	return false
}

func (p *parser) object(v *Value, depth int) error {
	p.pos++ // {
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		v.Members = []Member{}
		return nil
	}
	base := len(p.members)
	var small [smallObject]string
	names := nameSet{small: small[:0]}
	for {
		p.skipSpace()
		if p.pos >= len(p.data) {
			return p.fail("unexpected end of input")
		}
		if p.data[p.pos] != '"' {
			return p.fail("expected a member name")
		}
		at := p.pos
		name, err := p.string()
		if err != nil {
			return err
		}
		if clash, ok := names.add(name); !ok {
			p.pos = at
			if clash == name {
				return p.fail("duplicate member %q", Clip(name))
			}
			return p.fail("members %q and %q differ only in case", Clip(clash), Clip(name))
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return p.fail("expected ':' after member name")
		}
		p.pos++
		p.skipSpace()
		p.path = append(p.path, pathStep{name: name, index: -1})
		var member Value
		if err := p.value(&member, depth+1); err != nil {
			return err
		}
		p.path = p.path[:len(p.path)-1]
		p.members = append(p.members, Member{Name: name, Value: member})
		p.skipSpace()
		if p.pos >= len(p.data) {
			return p.fail("unexpected end of input")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			v.Members = popFrom(&p.members, base)
			return nil
		default:
			return p.fail("expected ',' or '}' after object member")
		}
	}
}

func (p *parser) array(v *Value, depth int) error {
	p.pos++ // [
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		v.Items = []Value{}
		return nil
	}
	base := len(p.items)
	for i := 0; ; i++ {
		p.skipSpace()
		p.path = append(p.path, pathStep{index: i})
		var item Value
		if err := p.value(&item, depth+1); err != nil {
			return err
		}
		p.path = p.path[:len(p.path)-1]
		p.items = append(p.items, item)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return p.fail("unexpected end of input")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			v.Items = popFrom(&p.items, base)
			return nil
		default:
			return p.fail("expected ',' or ']' after array element")
		}
	}
}

// popFrom takes the elements from base on off the stack, as an exactly
// sized slice of their own.
func popFrom[T any](stack *[]T, base int) []T {
	out := append(make([]T, 0, len(*stack)-base), (*stack)[base:]...)
	clear((*stack)[base:]) // drop references for the collector
	*stack = (*stack)[:base]
	return out
}

// string reads a JSON string at p.pos (which is '"') and returns its text.
func (p *parser) string() (string, error) {
	p.pos++ // opening quote
	start := p.pos
	// Fast path: no escapes; the text is a substring of the input.
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			s := p.src[start:p.pos]
			p.pos++
			return s, nil
		case c == '\\':
			return p.escapedString(start)
		case c < 0x20:
			return "", p.fail("control character %s in a string (escape it)", quoteByte(c))
		case c < 0x80:
			p.pos++
		default:
			r, size := utf8.DecodeRune(p.data[p.pos:])
			if r == utf8.RuneError && size <= 1 {
				return "", p.fail("invalid UTF-8 in a string")
			}
			p.pos += size
		}
	}
	return "", p.fail("unterminated string")
}

// escapedString finishes a string that has escapes, from the first one.
func (p *parser) escapedString(start int) (string, error) {
	b := append([]byte(nil), p.data[start:p.pos]...)
	for {
		if p.pos >= len(p.data) {
			return "", p.fail("unterminated string")
		}
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			return string(b), nil
		case c < 0x20:
			return "", p.fail("control character %s in a string (escape it)", quoteByte(c))
		case c == '\\':
			var err error
			if b, err = p.escape(b); err != nil {
				return "", err
			}
		case c < 0x80:
			b = append(b, c)
			p.pos++
		default:
			r, size := utf8.DecodeRune(p.data[p.pos:])
			if r == utf8.RuneError && size <= 1 {
				return "", p.fail("invalid UTF-8 in a string")
			}
			b = append(b, p.data[p.pos:p.pos+size]...)
			p.pos += size
		}
	}
}

func (p *parser) escape(b []byte) ([]byte, error) {
	if p.pos+1 >= len(p.data) {
		return nil, p.fail("unterminated string")
	}
	c := p.data[p.pos+1]
	p.pos += 2
	switch c {
	case '"', '\\', '/':
		return append(b, c), nil
	case 'b':
		return append(b, '\b'), nil
	case 'f':
		return append(b, '\f'), nil
	case 'n':
		return append(b, '\n'), nil
	case 'r':
		return append(b, '\r'), nil
	case 't':
		return append(b, '\t'), nil
	case 'u':
		r, ok := p.hex4()
		if !ok {
			return nil, p.fail("invalid \\u escape")
		}
		if utf16.IsSurrogate(r) {
			// A high surrogate must be followed by an escaped low one;
			// anything else would decode to U+FFFD and read two ways.
			if r >= 0xDC00 || p.pos+1 >= len(p.data) || p.data[p.pos] != '\\' || p.data[p.pos+1] != 'u' {
				return nil, p.fail("unpaired surrogate in a \\u escape")
			}
			p.pos += 2
			low, ok := p.hex4()
			if !ok || low < 0xDC00 || low > 0xDFFF {
				return nil, p.fail("unpaired surrogate in a \\u escape")
			}
			r = utf16.DecodeRune(r, low)
		}
		return utf8.AppendRune(b, r), nil
	default:
		p.pos -= 2
		return nil, p.fail("invalid escape \\%s", string(rune(c)))
	}
}

func (p *parser) hex4() (rune, bool) {
	if len(p.data)-p.pos < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.data[p.pos : p.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	p.pos += 4
	return r, true
}

// number checks RFC 8259 number syntax; the text is kept as Raw.
func (p *parser) number() error {
	d := p.data
	if p.pos < len(d) && d[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(d) && d[p.pos] == '0':
		p.pos++
	case p.pos < len(d) && d[p.pos] >= '1' && d[p.pos] <= '9':
		p.digits()
	default:
		return p.fail("invalid number")
	}
	if p.pos < len(d) && d[p.pos] == '.' {
		p.pos++
		if p.digits() == 0 {
			return p.fail("invalid number: digits must follow '.'")
		}
	}
	if p.pos < len(d) && (d[p.pos] == 'e' || d[p.pos] == 'E') {
		p.pos++
		if p.pos < len(d) && (d[p.pos] == '+' || d[p.pos] == '-') {
			p.pos++
		}
		if p.digits() == 0 {
			return p.fail("invalid number: digits must follow the exponent")
		}
	}
	return nil
}

func (p *parser) digits() int {
	n := 0
	for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
		p.pos++
		n++
	}
	return n
}

// nameSet holds an object's member names and finds repeats: the same name,
// or one that differs only in (Unicode simple) case.
type nameSet struct {
	small []string
	folds map[string]string // fold key → name, once the object is large
}

const smallObject = 12

func (s *nameSet) add(name string) (clash string, ok bool) {
	if s.folds == nil {
		for _, n := range s.small {
			if n == name || strings.EqualFold(n, name) {
				return n, false
			}
		}
		if len(s.small) < smallObject {
			s.small = append(s.small, name)
			return "", true
		}
		s.folds = make(map[string]string, 2*smallObject)
		for _, n := range s.small {
			s.folds[foldKey(n)] = n
		}
	}
	k := foldKey(name)
	if n, dup := s.folds[k]; dup {
		return n, false
	}
	s.folds[k] = name
	return "", true
}

// foldKey maps every rune to the smallest rune of its simple case-folding
// orbit, so two names have one key exactly when strings.EqualFold holds.
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		min := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < min {
				min = f
			}
		}
		b.WriteRune(min)
	}
	return b.String()
}

func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("0x%02x", c)
}

// Clip shortens client text (at a rune boundary) before it is echoed in
// an error.
func Clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
