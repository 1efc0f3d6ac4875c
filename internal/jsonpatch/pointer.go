package jsonpatch

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/herald-fhir/herald/internal/strictjson"
)

// tokens splits a JSON Pointer (RFC 6901) into its unescaped tokens.
func tokens(pointer string) ([]string, error) {
	if pointer == "" {
		return nil, nil
	}
	if pointer[0] != '/' {
		return nil, fmt.Errorf("path %q does not start with /", pointer)
	}
	parts := strings.Split(pointer[1:], "/")
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
	}
	return parts, nil
}

// parent resolves every token of pointer but the last.
func parent(root *strictjson.Value, pointer string) (*strictjson.Value, string, error) {
	toks, err := tokens(pointer)
	if err != nil {
		return nil, "", err
	}
	if len(toks) == 0 {
		return nil, "", fmt.Errorf("the whole document cannot be the target")
	}
	v := root
	for _, t := range toks[:len(toks)-1] {
		if v, err = child(v, t, pointer); err != nil {
			return nil, "", err
		}
	}
	return v, toks[len(toks)-1], nil
}

func get(root *strictjson.Value, pointer string) (*strictjson.Value, error) {
	toks, err := tokens(pointer)
	if err != nil {
		return nil, err
	}
	v := root
	for _, t := range toks {
		if v, err = child(v, t, pointer); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func child(v *strictjson.Value, token, pointer string) (*strictjson.Value, error) {
	switch v.Kind {
	case strictjson.Object:
		if c := v.Get(token); c != nil {
			return c, nil
		}
	case strictjson.Array:
		if i, ok := index(token, len(v.Items)); ok && i < len(v.Items) {
			return &v.Items[i], nil
		}
	}
	return nil, fmt.Errorf("%s does not exist", pointer)
}

// index reads an array index token: digits without leading zeros, at most n.
func index(token string, n int) (int, bool) {
	if token == "" || (len(token) > 1 && token[0] == '0') {
		return 0, false
	}
	i, err := strconv.Atoi(token)
	return i, err == nil && i >= 0 && i <= n && token[0] != '+'
}

func add(root *strictjson.Value, pointer string, val strictjson.Value) error {
	p, last, err := parent(root, pointer)
	if err != nil {
		return err
	}
	switch p.Kind {
	case strictjson.Object:
		for i := range p.Members {
			if p.Members[i].Name == last {
				p.Members[i].Value = val
				return nil
			}
		}
		p.Members = append(p.Members, strictjson.Member{Name: last, Value: val})
		return nil
	case strictjson.Array:
		i, ok := len(p.Items), last == "-"
		if !ok {
			i, ok = index(last, len(p.Items))
		}
		if !ok {
			return fmt.Errorf("%s: %q is not an index of an array of %d", pointer, last, len(p.Items))
		}
		p.Items = append(p.Items[:i], append([]strictjson.Value{val}, p.Items[i:]...)...)
		return nil
	}
	return fmt.Errorf("%s: the parent is not an object or array", pointer)
}

func remove(root *strictjson.Value, pointer string) (strictjson.Value, error) {
	p, last, err := parent(root, pointer)
	if err != nil {
		return strictjson.Value{}, err
	}
	switch p.Kind {
	case strictjson.Object:
		for i := range p.Members {
			if p.Members[i].Name == last {
				v := p.Members[i].Value
				p.Members = append(p.Members[:i], p.Members[i+1:]...)
				return v, nil
			}
		}
	case strictjson.Array:
		if i, ok := index(last, len(p.Items)); ok && i < len(p.Items) {
			v := p.Items[i]
			p.Items = append(p.Items[:i], p.Items[i+1:]...)
			return v, nil
		}
	}
	return strictjson.Value{}, fmt.Errorf("%s does not exist", pointer)
}

// clone copies v's containers, so that changing a copy (copy, then patch
// below it) leaves the original alone.
func clone(v strictjson.Value) strictjson.Value {
	if v.Members != nil {
		ms := make([]strictjson.Member, len(v.Members))
		for i, m := range v.Members {
			ms[i] = strictjson.Member{Name: m.Name, Value: clone(m.Value)}
		}
		v.Members = ms
	}
	if v.Items != nil {
		items := make([]strictjson.Value, len(v.Items))
		for i, it := range v.Items {
			items[i] = clone(it)
		}
		v.Items = items
	}
	return v
}

// equal is JSON equality: numbers by value, objects regardless of order.
func equal(a, b *strictjson.Value) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case strictjson.Null:
		return true
	case strictjson.Bool:
		return a.True == b.True
	case strictjson.String:
		return a.Str == b.Str
	case strictjson.Number:
		x, _, errA := big.ParseFloat(string(a.Raw), 10, 256, big.ToNearestEven)
		y, _, errB := big.ParseFloat(string(b.Raw), 10, 256, big.ToNearestEven)
		return errA == nil && errB == nil && x.Cmp(y) == 0
	case strictjson.Array:
		if len(a.Items) != len(b.Items) {
			return false
		}
		for i := range a.Items {
			if !equal(&a.Items[i], &b.Items[i]) {
				return false
			}
		}
		return true
	}
	if len(a.Members) != len(b.Members) {
		return false
	}
	for _, m := range a.Members {
		o := b.Get(m.Name)
		if o == nil || !equal(&m.Value, o) {
			return false
		}
	}
	return true
}
