package search

import (
	"fmt"
	"math"
	"time"

	"github.com/herald-fhir/herald/internal/store"
)

// ParseDateRange parses one date search value with an optional prefix (eq,
// ne, gt, lt, ge, le, sa, eb) into the time range that a point in time (such
// as meta.lastUpdated) must fall in. Values without a zone are UTC.
func ParseDateRange(value string) (store.TimeRange, error) {
	prefix, rest, err := splitPrefix(value, "date")
	if err != nil {
		return store.TimeRange{}, err
	}
	iv, ok := parseDate(rest)
	if !ok {
		return store.TimeRange{}, notADate(rest)
	}
	from, to := time.UnixMicro(iv.lo).UTC(), time.UnixMicro(iv.hi).UTC()
	switch prefix {
	case prefixEq:
		return store.TimeRange{From: from, To: to}, nil
	case prefixNe:
		return store.TimeRange{From: from, To: to, Exclude: true}, nil
	case prefixGt, prefixSa:
		return store.TimeRange{From: to}, nil
	case prefixGe:
		return store.TimeRange{From: from}, nil
	case prefixLt, prefixEb:
		return store.TimeRange{To: from}, nil
	case prefixLe:
		return store.TimeRange{To: to}, nil
	default:
		return store.TimeRange{}, fmt.Errorf("date prefix %q is not supported (use eq, ne, gt, lt, ge, le, sa or eb)", prefix.String())
	}
}

func notADate(v string) error {
	return fmt.Errorf("%q is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD or an instant)", v)
}

// interval is the half-open range [lo, hi) of Unix microseconds a date value
// denotes at its precision; lo = minInf / hi = maxInf for an open end.
type interval struct{ lo, hi int64 }

const (
	minInf = math.MinInt64
	maxInf = math.MaxInt64
)

// parseDate parses a FHIR date, dateTime or instant (YYYY, YYYY-MM,
// YYYY-MM-DD, then optionally Thh:mm[:ss[.fff…]] and Z or ±hh:mm) into the
// range its precision implies. Values without a zone are UTC. It does not
// allocate.
func parseDate(s string) (interval, bool) {
	n := len(s)
	if n < 4 {
		return interval{}, false
	}
	year, ok := digits(s, 0, 4)
	if !ok {
		return interval{}, false
	}
	month, day := 1, 1
	i := 4
	prec := 0 // 0 year, 1 month, 2 day, 3 minute, 4 second, 5 fraction
	if i < n && s[i] == '-' {
		if month, ok = digits(s, i+1, 2); !ok || month < 1 || month > 12 {
			return interval{}, false
		}
		i += 3
		prec = 1
		if i < n && s[i] == '-' {
			if day, ok = digits(s, i+1, 2); !ok || day < 1 || day > daysIn(year, month) {
				return interval{}, false
			}
			i += 3
			prec = 2
		}
	}
	hour, minute, sec, frac, fracWidth := 0, 0, 0, int64(0), int64(0)
	offset := 0 // seconds east of UTC
	if i < n {
		if prec != 2 || s[i] != 'T' {
			return interval{}, false
		}
		if hour, ok = digits(s, i+1, 2); !ok || hour > 23 || i+3 >= n || s[i+3] != ':' {
			return interval{}, false
		}
		if minute, ok = digits(s, i+4, 2); !ok || minute > 59 {
			return interval{}, false
		}
		i += 6
		prec = 3
		if i < n && s[i] == ':' {
			if sec, ok = digits(s, i+1, 2); !ok || sec > 59 {
				return interval{}, false
			}
			i += 3
			prec = 4
			if i < n && s[i] == '.' {
				j := i + 1
				fracWidth = 1_000_000
				for ; j < n && s[j] >= '0' && s[j] <= '9'; j++ {
					if fracWidth > 1 {
						fracWidth /= 10
						frac += int64(s[j]-'0') * fracWidth
					}
				}
				if j == i+1 {
					return interval{}, false
				}
				i = j
				prec = 5
			}
		}
		if i < n {
			switch s[i] {
			case 'Z':
				i++
			case '+', '-':
				oh, ok1 := digits(s, i+1, 2)
				om, ok2 := digits(s, i+4, 2)
				if !ok1 || !ok2 || s[i+3] != ':' || oh > 14 || om > 59 {
					return interval{}, false
				}
				offset = oh*3600 + om*60
				if s[i] == '-' {
					offset = -offset
				}
				i += 6
			default:
				return interval{}, false
			}
		}
		if i != n {
			return interval{}, false
		}
	}
	start := time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC)
	var end time.Time
	switch prec {
	case 0:
		end = start.AddDate(1, 0, 0)
	case 1:
		end = start.AddDate(0, 1, 0)
	case 2:
		end = start.AddDate(0, 0, 1)
	case 3:
		end = start.Add(time.Minute)
	case 4:
		end = start.Add(time.Second)
	}
	lo := start.UnixMicro() - int64(offset)*1_000_000
	if prec == 5 {
		lo += frac
		return interval{lo, lo + fracWidth}, true
	}
	return interval{lo, end.UnixMicro() - int64(offset)*1_000_000}, true
}

// digits reads w decimal digits at s[i:].
func digits(s string, i, w int) (int, bool) {
	if i < 0 || i+w > len(s) {
		return 0, false
	}
	v := 0
	for _, c := range []byte(s[i : i+w]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// compareRanges applies a prefix to a search range s and a target range t
// with the FHIR date semantics (search.html#prefix): eq/ne compare
// containment of the target in the search range, gt/lt/ge/le overlap with the
// range above/below it, sa/eb require the target to lie entirely after/before.
func compareRanges(p prefix, s, t interval) bool {
	contains := s.lo <= t.lo && t.hi <= s.hi
	switch p {
	case prefixEq:
		return contains
	case prefixNe:
		return !contains
	case prefixGt:
		return t.hi > s.hi
	case prefixLt:
		return t.lo < s.lo
	case prefixGe:
		return t.hi > s.hi || contains
	case prefixLe:
		return t.lo < s.lo || contains
	case prefixSa:
		return t.lo >= s.hi
	case prefixEb:
		return t.hi <= s.lo
	}
	return false
}
