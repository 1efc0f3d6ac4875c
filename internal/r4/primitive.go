package r4

import (
	"strconv"

	"github.com/herald-fhir/herald/internal/strictjson"
)

// primitive checks a primitive value's JSON kind, its format (the regex of
// its StructureDefinition) and, for a bound code, its value set.
func (w *walker) primitive(v *strictjson.Value, p *primitive, codes *codeSet) {
	switch p.json {
	case jsonBool:
		if v.Kind != strictjson.Bool {
			w.report("value", "expected a JSON boolean (a boolean), not "+kindName(v))
		}
	case jsonInteger, jsonDecimal:
		switch {
		case v.Kind != strictjson.Number:
			w.report("value", "expected a JSON number (a "+p.name+"), not "+kindName(v))
		case !p.re.Match(v.Raw):
			w.report("value", string(clipBytes(v.Raw))+" is not a valid "+p.name)
		case p.json == jsonInteger && !fitsInt32(v.Raw):
			w.report("value", string(clipBytes(v.Raw))+" is out of range for a "+p.name+" (32-bit)")
		}
	default:
		switch {
		case v.Kind != strictjson.String:
			w.report("value", "expected a JSON string (a "+p.name+"), not "+kindName(v))
		case v.Str == "":
			w.report("value", "an empty string is not allowed (a "+p.name+" needs a value)")
		case !p.matchString(v.Str):
			w.report("value", quote(v)+" is not a valid "+p.name)
		case codes != nil && !codes.has(v.Str):
			w.report("code-invalid", quote(v)+" is not a code of the required value set "+codes.url)
		}
	}
}

// fitsInt32 reports whether an integer's text (matched by the integer
// regex, so digits with an optional sign) is within 32 bits.
func fitsInt32(raw []byte) bool {
	if len(raw) > 11 {
		return false
	}
	var n int64
	neg := false
	for _, c := range raw {
		switch c {
		case '-':
			neg = true
		case '+':
		default:
			n = n*10 + int64(c-'0')
		}
	}
	if neg {
		n = -n
	}
	return n >= -1<<31 && n <= 1<<31-1
}

func kindName(v *strictjson.Value) string { return "a JSON " + v.Kind.String() }

// quote quotes a client string for a message, shortened.
func quote(v *strictjson.Value) string {
	if v.Kind != strictjson.String {
		return string(clipBytes(v.Raw))
	}
	return strconv.Quote(clip(v.Str))
}

// clip shortens client text before it is echoed in a problem.
var clip = strictjson.Clip

func clipBytes(b []byte) []byte {
	if len(b) <= 64 {
		return b
	}
	return append(b[:64:64], "…"...)
}
