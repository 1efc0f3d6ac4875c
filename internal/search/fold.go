package search

import (
	"unicode"
	"unicode/utf8"
)

// String search is case- and accent-insensitive: both sides are folded to
// lower case with the diacritics of Latin letters removed (É → e, ß → ss,
// Ł → l) and combining marks dropped. The folding runs byte by byte over the
// target so matching does not allocate.

// latin1 folds U+00C0–U+00FF; '*' marks multi-letter foldings, '.' letters
// kept as they are (× and ÷).
const latin1 = "aaaaaa*ceeeeiiiidnooooo.ouuuuy**aaaaaa*ceeeeiiiidnooooo.ouuuuy*y"

// latinExtA folds U+0100–U+017F.
const latinExtA = "aaaaaacccccccc" + "dddd" + "eeeeeeeeee" + "gggggggg" + "hhhh" + "iiiiiiiiii" + "**" + "jj" + "kkk" +
	"llllllllll" + "nnnnnnnnn" + "oooooo" + "**" + "rrrrrr" + "ssssssss" + "tttttt" + "uuuuuuuuuuuu" + "ww" + "yyy" + "zzzzzz" + "s"

// foldRune folds r: to several letters (multi), to one rune (lower), or to
// nothing (drop) for a combining mark.
func foldRune(r rune) (multi string, lower rune, drop bool) {
	switch {
	case r >= 0x300 && r <= 0x36F: // combining diacritical marks
		return "", 0, true
	case r >= 0xC0 && r <= 0xFF:
		c := latin1[r-0xC0]
		switch c {
		case '*':
			switch r {
			case 0xC6, 0xE6:
				return "ae", 0, false
			case 0xDE, 0xFE:
				return "th", 0, false
			case 0xDF:
				return "ss", 0, false
			}
		case '.':
			return "", r, false
		default:
			return "", rune(c), false
		}
	case r >= 0x100 && r <= 0x17F:
		c := latinExtA[r-0x100]
		if c == '*' {
			if r <= 0x133 {
				return "ij", 0, false
			}
			return "oe", 0, false
		}
		return "", rune(c), false
	case r >= 0x218 && r <= 0x21B: // Ș ș Ț ț
		if r <= 0x219 {
			return "", 's', false
		}
		return "", 't', false
	}
	return "", unicode.ToLower(r), false
}

// folder yields the folded UTF-8 bytes of s one at a time.
type folder struct {
	s    string
	i    int
	pend [4]byte
	np   int // pending bytes in pend[pi:np]
	pi   int
	ext  string // pending multi-letter folding
}

func (f *folder) next() (byte, bool) {
	for {
		if f.pi < f.np {
			b := f.pend[f.pi]
			f.pi++
			return b, true
		}
		if f.ext != "" {
			b := f.ext[0]
			f.ext = f.ext[1:]
			return b, true
		}
		if f.i >= len(f.s) {
			return 0, false
		}
		c := f.s[f.i]
		if c < utf8.RuneSelf {
			f.i++
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			return c, true
		}
		r, size := utf8.DecodeRuneInString(f.s[f.i:])
		f.i += size
		multi, lower, drop := foldRune(r)
		switch {
		case drop:
		case multi != "":
			f.ext = multi
		default:
			f.np = utf8.EncodeRune(f.pend[:], lower)
			f.pi = 0
		}
	}
}

// fold returns the folded form of s (used for search values, once).
func fold(s string) string {
	f := folder{s: s}
	out := make([]byte, 0, len(s))
	for {
		b, ok := f.next()
		if !ok {
			return string(out)
		}
		out = append(out, b)
	}
}

// foldPrefix reports whether the folded s starts with needle (already folded).
func foldPrefix(s, needle string) bool {
	f := folder{s: s}
	for i := 0; i < len(needle); i++ {
		b, ok := f.next()
		if !ok || b != needle[i] {
			return false
		}
	}
	return true
}

// foldEqual reports whether the folded s equals needle (already folded).
func foldEqual(s, needle string) bool {
	f := folder{s: s}
	for i := 0; i < len(needle); i++ {
		b, ok := f.next()
		if !ok || b != needle[i] {
			return false
		}
	}
	_, more := f.next()
	return !more
}

// foldContains reports whether the folded s contains needle (already folded).
func foldContains(s, needle string) bool {
	if needle == "" {
		return true
	}
	for i := 0; i < len(s); {
		if foldPrefix(s[i:], needle) {
			return true
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return false
}
