package fhir

import (
	"net/url"
	"unicode"
	"unicode/utf8"
)

// ParamLimits bound the work the parameters of one request can cause.
type ParamLimits struct {
	Clauses int // name=value pairs in one request
	Values  int // comma-separated values in one parameter
}

// DefaultParamLimits apply where no limit is configured.
var DefaultParamLimits = ParamLimits{Clauses: 100, Values: 100}

func (l ParamLimits) orDefault() ParamLimits {
	if l.Clauses <= 0 {
		l.Clauses = DefaultParamLimits.Clauses
	}
	if l.Values <= 0 {
		l.Values = DefaultParamLimits.Values
	}
	return l
}

// ParseParams reads a query string or form body. Unlike URL.Query, a
// malformed one is an error rather than silently shortened.
func ParseParams(raw string, lim ParamLimits) (url.Values, error) {
	params, err := url.ParseQuery(raw)
	if err != nil {
		return nil, Errorf(KindInvalid, "the parameters are not valid URL encoding")
	}
	return params, CheckParams(params, lim)
}

// CheckParams refuses parameters that are not plain text (control
// characters, invalid UTF-8) or exceed lim. Errors never echo a value, and
// name a parameter only once it is known to be plain text.
func CheckParams(params url.Values, lim ParamLimits) error {
	lim = lim.orDefault()
	clauses := 0
	for name, values := range params {
		if !plainText(name) {
			return Errorf(KindInvalid, "a parameter name contains a control character or is not valid UTF-8")
		}
		for _, v := range values {
			if !plainText(v) {
				return Errorf(KindInvalid, "a value of parameter %q contains a control character or is not valid UTF-8", clipName(name))
			}
			if valueCount(v) > lim.Values {
				return Errorf(KindInvalid, "parameter %q has more than %d comma-separated values, the most one parameter may have", clipName(name), lim.Values)
			}
		}
		clauses += len(values)
	}
	if clauses > lim.Clauses {
		return Errorf(KindInvalid, "the request has %d parameters (search clauses); at most %d are allowed", clauses, lim.Clauses)
	}
	return nil
}

// plainText is valid UTF-8 without C0, DEL or C1 control characters.
func plainText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// valueCount counts the values of a parameter: commas separate them
// unless escaped with a backslash, as FHIR search allows.
func valueCount(v string) int {
	n := 1
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case ',':
			n++
		}
	}
	return n
}

func clipName(name string) string {
	if len(name) <= 64 {
		return name
	}
	cut := 64
	for !utf8.RuneStart(name[cut]) {
		cut--
	}
	return name[:cut] + "…"
}
