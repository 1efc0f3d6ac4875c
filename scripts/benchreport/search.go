package main

import (
	"fmt"
	"io"
	"regexp"
)

// Issue 14's search targets, at the run's clients (32 by default).
const (
	targetSearchP99MS = 25   // p99 of patient-scoped searches, ms
	targetSearches    = 2000 // searches/s
)

// seededRe is herald-load's account of the search phase's load.
var seededRe = regexp.MustCompile(`^search: seeded (\d+) Patients with (\d+) resources in ([\d.]+) s \((\d+) resources/s\)( by COPY)?$`)

// searchSeed is what the search phase loaded before it measured.
type searchSeed struct {
	patients, resources, seconds, perSecond string
	byCopy                                  bool // herald-load -bulk-seed, not POSTed Bundles
}

func (r *run) readSeed(line string) bool {
	m := seededRe.FindStringSubmatch(line)
	if m == nil {
		return false
	}
	r.seed = &searchSeed{patients: m[1], resources: m[2], seconds: m[3], perSecond: m[4], byCopy: m[5] != ""}
	return true
}

// searchTargets adds issue 14's rows to the targets table.
func searchTargets(w io.Writer, r *run) {
	l, ok := r.find("search")
	if !ok {
		return
	}
	over := "over " + val(l, "c", 0) + " clients"
	if r.seed != nil {
		over += ", " + r.seed.resources + " resources"
	}
	if v, ok := l.num("p99_ms"); ok {
		row(w, fmt.Sprintf("patient-scoped search p99 < %d ms", targetSearchP99MS), "14", num(v, 2)+" ms", verdict(check(v, "<", targetSearchP99MS)), over)
	}
	if v, ok := l.num("rps"); ok {
		row(w, "searches ≥ 2,000/s", "14", num(v, 0)+"/s", verdict(check(v, ">=", targetSearches)), over)
	}
}

// writeSearch is the search phase: the load, the measured queries and the
// index's size.
func writeSearch(w io.Writer, r *run) {
	l, ok := r.find("search")
	if !ok {
		return
	}
	fmt.Fprintln(w, "## Search (issue 14)")
	fmt.Fprintln(w)
	if s := r.seed; s != nil {
		how := "POSTed as transaction Bundles"
		if s.byCopy {
			how = "written by COPY after the server's own code stamped each resource and extracted its search keys"
		}
		fmt.Fprintf(w, "Loaded first, unmeasured (records of a Patient, 3 Encounters and 96 Observations, %s): %s resources of %s Patients in %s s (%s resources/s). ",
			how, s.resources, s.patients, s.seconds, s.perSecond)
	}
	fmt.Fprintln(w, "Then, after an ANALYZE, each client ran one of herald-load's patient-scoped queries at a time (cmd/herald-load/search.go: an Encounter status, a code in a date range sorted by date, an `_include`, `_total=accurate`, a `_revinclude`) over a random Patient's record, closed loop.")
	fmt.Fprintln(w)
	header(w, "phase", "clients", "s", "requests", "errors", "req/s", "mean", "p50", "p90", "p99", "max",
		"CPU µs/req herald", "postgres", "herald-load", "other", "machine busy %")
	row(w, append([]string{"search", val(l, "c", 0), val(l, "duration_s", 1), val(l, "requests", 0), val(l, "errors", 0),
		val(l, "rps", 0), val(l, "mean_ms", 2), val(l, "p50_ms", 2), val(l, "p90_ms", 2), val(l, "p99_ms", 2), val(l, "max_ms", 2)},
		cpuCells(l, "req")...)...)
	fmt.Fprintln(w)
	if ix, ok := r.find("search-index"); ok {
		fmt.Fprintf(w, "Search index (`resources_search_keys`, GIN): %s bytes over %s live resources, %s bytes per resource.\n\n",
			val(ix, "index_bytes", 0), val(ix, "resources", 0), val(ix, "index_bytes_per_resource", 0))
	}
}
