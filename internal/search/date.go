// Package search holds FHIR search-parameter parsing and matching that does
// not depend on storage.
package search

import (
	"fmt"
	"strings"
	"time"

	"github.com/herald-fhir/herald/internal/store"
)

// DateLayouts are the accepted precisions of a FHIR date search value, most
// precise first; each implies the width of the range it denotes.
var dateLayouts = []struct {
	layout string
	next   func(time.Time) time.Time
}{
	{"2006-01-02T15:04:05.999999999Z07:00", func(t time.Time) time.Time { return t.Add(fracStep(t)) }},
	{"2006-01-02T15:04:05Z07:00", func(t time.Time) time.Time { return t.Add(time.Second) }},
	{"2006-01-02T15:04Z07:00", func(t time.Time) time.Time { return t.Add(time.Minute) }},
	{"2006-01-02T15:04:05", func(t time.Time) time.Time { return t.Add(time.Second) }},
	{"2006-01-02T15:04", func(t time.Time) time.Time { return t.Add(time.Minute) }},
	{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
	{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
	{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
}

// fracStep is the width implied by the fractional digits written; values are
// stored at millisecond precision, so anything finer counts as a millisecond.
func fracStep(time.Time) time.Duration { return time.Millisecond }

// ParseDateRange parses one date search value with an optional prefix (eq,
// ne, gt, lt, ge, le, sa, eb) into the time range that a point in time (such
// as meta.lastUpdated) must fall in. Values without a zone are UTC.
func ParseDateRange(value string) (store.TimeRange, error) {
	prefix := "eq"
	if len(value) >= 2 && value[0] >= 'a' && value[0] <= 'z' {
		prefix, value = value[:2], value[2:]
	}
	from, to, err := parseDate(value)
	if err != nil {
		return store.TimeRange{}, err
	}
	switch prefix {
	case "eq":
		return store.TimeRange{From: from, To: to}, nil
	case "ne":
		return store.TimeRange{From: from, To: to, Exclude: true}, nil
	case "gt", "sa":
		return store.TimeRange{From: to}, nil
	case "ge":
		return store.TimeRange{From: from}, nil
	case "lt", "eb":
		return store.TimeRange{To: from}, nil
	case "le":
		return store.TimeRange{To: to}, nil
	default:
		return store.TimeRange{}, fmt.Errorf("date prefix %q is not supported (use eq, ne, gt, lt, ge, le, sa or eb)", prefix)
	}
}

func parseDate(value string) (from, to time.Time, err error) {
	for _, l := range dateLayouts {
		if len(value) < 4 {
			break
		}
		t, err := time.Parse(l.layout, value)
		if err != nil {
			continue
		}
		if strings.Contains(l.layout, ".999") && !strings.Contains(value, ".") {
			continue // a whole-second value belongs to the seconds layout
		}
		t = t.UTC()
		return t, l.next(t), nil
	}
	return time.Time{}, time.Time{}, fmt.Errorf("%q is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD or an instant)", value)
}
