package r4

import (
	"regexp"
	"strings"
	"testing"
)

// TestFastMatchers: each hand-written matcher agrees with its regex on every
// string of up to 5 characters over an alphabet of the edge cases, and on
// the long ones.
func TestFastMatchers(t *testing.T) {
	alphabet := []string{"a", "Z", "0", "-", ".", " ", "\t", "\n", "\r", "\f", "\v", "é", "_"}
	inputs := []string{strings.Repeat("a", 64), strings.Repeat("a", 65), strings.Repeat("a b", 40)}
	var grow func(prefix string, n int)
	grow = func(prefix string, n int) {
		inputs = append(inputs, prefix)
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			grow(prefix+c, n-1)
		}
	}
	grow("", 5)
	for src, fast := range fastMatchers {
		re := regexp.MustCompile(`^(?:` + src + `)$`)
		for _, s := range inputs {
			if got, want := fast(s), re.MatchString(s); got != want {
				t.Errorf("%s: %q: matcher says %v, regex %v", src, s, got, want)
			}
		}
	}
}

// TestFastMatchersAreUsed: the table's regexes are the ones the matchers
// stand for (a new package with new regexes falls back to regexp).
func TestFastMatchersAreUsed(t *testing.T) {
	for _, name := range []string{"string", "markdown", "uri", "url", "canonical", "code", "id"} {
		if p := loadTable().types[name].prim; p.fast == nil {
			t.Errorf("%s: regex %s has no fast matcher", name, p.re)
		}
	}
}
