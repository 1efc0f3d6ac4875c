package search

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// prefix is a comparator of an ordered (number, date, quantity) value.
type prefix uint8

const (
	prefixEq prefix = iota
	prefixNe
	prefixGt
	prefixLt
	prefixGe
	prefixLe
	prefixSa
	prefixEb
	prefixAp
)

var prefixNames = [...]string{"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"}

func (p prefix) String() string { return prefixNames[p] }

// splitPrefix removes a two-letter comparator from an ordered value; the
// default is eq. kind names the parameter type for the error.
func splitPrefix(v, kind string) (prefix, string, error) {
	if len(v) >= 2 && v[0] >= 'a' && v[0] <= 'z' {
		for i, name := range prefixNames {
			if v[:2] == name {
				return prefix(i), v[2:], nil
			}
		}
		return 0, "", fmt.Errorf("unknown prefix %q in %s value %q (use eq, ne, gt, lt, ge, le, sa, eb or ap)", v[:2], kind, v)
	}
	return prefixEq, v, nil
}

// numValue is a decimal search value: the number and the range [lo, hi) its
// written precision implies ("100" is 99.5 ≤ x < 100.5).
type numValue struct {
	p         prefix
	v, lo, hi float64
}

func parseNumber(p prefix, s string) (numValue, error) {
	if s == "" || strings.ContainsAny(s, "_xXpP") || strings.EqualFold(s, "inf") || strings.EqualFold(s, "nan") ||
		strings.HasPrefix(s, "+") || strings.HasPrefix(strings.ToLower(s), "-inf") || strings.HasPrefix(strings.ToLower(s), "infinity") {
		return numValue{}, fmt.Errorf("%q is not a decimal number", s)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return numValue{}, fmt.Errorf("%q is not a decimal number", s)
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e > 300 || e < -300 {
			return numValue{}, fmt.Errorf("%q is not a decimal number", s)
		}
		exp = e
	}
	decimals := 0
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		decimals = len(mant) - i - 1
	}
	half := 0.5 * math.Pow(10, float64(exp-decimals))
	return numValue{p: p, v: v, lo: v - half, hi: v + half}, nil
}

// matchPoint compares a target number x with the search value.
func (n numValue) matchPoint(x float64) bool {
	switch n.p {
	case prefixEq:
		return n.lo <= x && x < n.hi
	case prefixNe:
		return !(n.lo <= x && x < n.hi)
	case prefixGt, prefixSa:
		return x > n.v
	case prefixLt, prefixEb:
		return x < n.v
	case prefixGe:
		return x >= n.v
	case prefixLe:
		return x <= n.v
	case prefixAp:
		return math.Abs(x-n.v) <= math.Abs(n.v)*0.1
	}
	return false
}

// matchRange compares a target range [low, high] (an absent bound is
// unbounded) with the search value: eq when the range lies within the
// value's precision, gt/ge/lt/le when part of the range lies beyond the
// value, sa/eb when all of it does, ap when the ranges overlap within 10%.
func (n numValue) matchRange(low, high float64, hasLow, hasHigh bool) bool {
	if !hasLow {
		low = math.Inf(-1)
	}
	if !hasHigh {
		high = math.Inf(1)
	}
	within := n.lo <= low && high < n.hi
	switch n.p {
	case prefixEq:
		return within
	case prefixNe:
		return !within
	case prefixGt:
		return high > n.v
	case prefixGe:
		return high >= n.v
	case prefixLt:
		return low < n.v
	case prefixLe:
		return low <= n.v
	case prefixSa:
		return low > n.v
	case prefixEb:
		return high < n.v
	case prefixAp:
		d := math.Abs(n.v) * 0.1
		return low <= n.v+d && high >= n.v-d
	}
	return false
}
