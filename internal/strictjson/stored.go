package strictjson

import (
	"context"
	"encoding/json"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// DefaultStoredBytes is the default of SetStoredBudget.
const DefaultStoredBytes = 16 << 20

// storedBudget bounds the bytes ParseStored parses at once across the
// process: searches, history, includes, $events and delivery all read
// stored bodies, and a parsed body costs many times its size (a 4 MiB body
// of small components: +128 MiB), so N concurrent requests over large
// resources would otherwise hold N such trees being built.
var storedBudget atomic.Pointer[budget]

type budget struct {
	sem *semaphore.Weighted
	cap int64
}

func init() { SetStoredBudget(DefaultStoredBytes) }

// storedHook, when set (tests), runs inside ParseStored's share of the
// budget.
var storedHook func()

// SetStoredBudget sets how many bytes of stored JSON ParseStored parses at
// once (n <= 0: DefaultStoredBytes); a larger body still parses, alone. Set
// it at start-up, before any parse.
func SetStoredBudget(n int64) {
	if n <= 0 {
		n = DefaultStoredBytes
	}
	storedBudget.Store(&budget{sem: semaphore.NewWeighted(n), cap: n})
}

// storedWaiting counts the callers waiting for a share of the budget.
var storedWaiting atomic.Int64

// ShareStored waits for n bytes of the budget ParseStored parses within
// (at most all of it) and returns their release: for reading a stored body
// with another parser (Parse, a JSON Patch), which builds a tree as large.
// Call nothing that takes a share while holding one.
func ShareStored(n int) (release func()) {
	b := storedBudget.Load()
	w := min(int64(n), b.cap)
	if !b.sem.TryAcquire(w) {
		storedWaiting.Add(1)
		_ = b.sem.Acquire(context.Background(), w) // never fails without a deadline
		storedWaiting.Add(-1)
	}
	return func() { b.sem.Release(w) }
}

// StoredWaiting reports how many callers wait for a share of the budget.
func StoredWaiting() int { return int(storedWaiting.Load()) }

// ParseStored reads JSON that Herald itself stored after Parse accepted it
// (a resource body read back from the store) into the generic form
// Value.Any produces: map[string]any, []any, string, json.Number, bool and
// nil. For such input the result equals Parse(data).Any(); it is built
// directly, without the intermediate tree and without the checks for
// repeated or case-variant member names, which the input passed when it
// was written. Syntax, UTF-8 and depth are still checked, so a damaged
// body is an error, not a misreading.
//
// Never use it on what a client sent: that is Parse's job.
//
// Parses share the budget SetStoredBudget sets: one waits while others
// hold it.
func ParseStored(data []byte) (any, error) {
	return parseStored(data, nil)
}

// ParseStoredMembers is ParseStored of a JSON object that keeps, of its
// own members, those keep accepts (nil: all): the values of the others
// are read over (their syntax checked all the same) and not built. It is
// for readers that look at a few members of a resource (a search's
// matcher and sort keys).
func ParseStoredMembers(data []byte, keep func(name string) bool) (any, error) {
	return parseStored(data, keep)
}

func parseStored(data []byte, keep func(name string) bool) (any, error) {
	defer ShareStored(len(data))()
	if storedHook != nil {
		storedHook()
	}
	p := parser{data: data, src: string(data)}
	p.skipSpace()
	var v any
	var err error
	if keep != nil && p.pos < len(p.data) && p.data[p.pos] == '{' {
		v, err = p.anyObject(0, keep)
	} else {
		v, err = p.anyValue(0)
	}
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return nil, p.fail("data after the JSON value")
	}
	return v, nil
}

func (p *parser) anyValue(depth int) (any, error) {
	if p.pos >= len(p.data) {
		return nil, p.fail("unexpected end of input")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		if depth >= MaxDepth {
			return nil, p.fail("nested deeper than %d levels", MaxDepth)
		}
		return p.anyObject(depth, nil)
	case c == '[':
		if depth >= MaxDepth {
			return nil, p.fail("nested deeper than %d levels", MaxDepth)
		}
		return p.anyArray(depth)
	case c == '"':
		return p.string()
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.pos
		if err := p.number(); err != nil {
			return nil, err
		}
		return json.Number(p.src[start:p.pos]), nil
	case p.literal("true"):
		return true, nil
	case p.literal("false"):
		return false, nil
	case p.literal("null"):
		return nil, nil
	default:
		return nil, p.fail("invalid character %s", quoteByte(c))
	}
}

// anyObject reads an object; with keep, only the members it accepts are
// built, the others skipped (skipValue).
func (p *parser) anyObject(depth int, keep func(string) bool) (map[string]any, error) {
	p.pos++ // {
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return map[string]any{}, nil
	}
	m := make(map[string]any, 4)
	for {
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.fail("unexpected end of input")
		}
		if p.data[p.pos] != '"' {
			return nil, p.fail("expected a member name")
		}
		name, err := p.string()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.fail("expected ':' after member name")
		}
		p.pos++
		p.skipSpace()
		if keep != nil && !keep(name) {
			if err := p.skipValue(depth + 1); err != nil {
				return nil, err
			}
		} else {
			v, err := p.anyValue(depth + 1)
			if err != nil {
				return nil, err
			}
			m[name] = v
		}
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.fail("unexpected end of input")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return m, nil
		default:
			return nil, p.fail("expected ',' or '}' after object member")
		}
	}
}

// skipValue reads over a value as anyValue reads it, with the same checks,
// building nothing.
func (p *parser) skipValue(depth int) error {
	if p.pos >= len(p.data) {
		return p.fail("unexpected end of input")
	}
	c := p.data[p.pos]
	switch {
	case c == '"':
		_, err := p.string()
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c != '{' && c != '[':
		_, err := p.anyValue(depth) // a literal, or the error
		return err
	case depth >= MaxDepth:
		return p.fail("nested deeper than %d levels", MaxDepth)
	}
	end, what := byte('}'), "object member"
	if c == '[' {
		end, what = ']', "array element"
	}
	p.pos++
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == end {
		p.pos++
		return nil
	}
	for {
		p.skipSpace()
		if c == '{' {
			if p.pos >= len(p.data) {
				return p.fail("unexpected end of input")
			}
			if p.data[p.pos] != '"' {
				return p.fail("expected a member name")
			}
			if _, err := p.string(); err != nil {
				return err
			}
			p.skipSpace()
			if p.pos >= len(p.data) || p.data[p.pos] != ':' {
				return p.fail("expected ':' after member name")
			}
			p.pos++
			p.skipSpace()
		}
		if err := p.skipValue(depth + 1); err != nil {
			return err
		}
		p.skipSpace()
		if p.pos >= len(p.data) {
			return p.fail("unexpected end of input")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case end:
			p.pos++
			return nil
		default:
			return p.fail("expected ',' or '%c' after %s", end, what)
		}
	}
}

func (p *parser) anyArray(depth int) ([]any, error) {
	p.pos++ // [
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return []any{}, nil
	}
	a := make([]any, 0, 2)
	for {
		p.skipSpace()
		v, err := p.anyValue(depth + 1)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.fail("unexpected end of input")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return a, nil
		default:
			return nil, p.fail("expected ',' or ']' after array element")
		}
	}
}
