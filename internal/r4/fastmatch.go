package r4

// Hand-written equivalents of the commonest primitive regexes, used only
// while the generated table carries exactly that regex (TestFastMatchers
// checks each against its regex exhaustively over a small alphabet). A
// regexp costs ~10 ns a character; these cost ~1.

// fastMatchers maps an R4 regex to its equivalent.
var fastMatchers = map[string]func(string) bool{
	`[ \r\n\t\S]+`:          isString,
	`\S*`:                   hasNoSpace,
	`[^\s]+(\s[^\s]+)*`:     isCode,
	`[A-Za-z0-9\-\.]{1,64}`: isID,
}

// isRegexpSpace is RE2's \s: [\t\n\f\r ].
func isRegexpSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

// isString: one or more characters, none of them a form feed (the only \s
// outside [ \r\n\t]).
func isString(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '\f' {
			return false
		}
	}
	return true
}

func hasNoSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if isRegexpSpace(s[i]) {
			return false
		}
	}
	return true
}

// isCode: non-space runs separated by single spaces, none at either end.
func isCode(s string) bool {
	if s == "" || isRegexpSpace(s[0]) || isRegexpSpace(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if isRegexpSpace(s[i]) && isRegexpSpace(s[i-1]) {
			return false
		}
	}
	return true
}

func isID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
