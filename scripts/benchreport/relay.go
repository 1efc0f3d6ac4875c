package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Phase relay (scripts/relay-bench.sh): herald-load runs tagged
// relay-<herald|relay>.<round>.<figure>, Herald and cmd/herald-relay
// measured one after the other in each round. Issue 13 asks for ratios in
// one run, since absolute figures on a shared machine move 2× between runs.

var relayTag = regexp.MustCompile(`^relay-(herald|relay)\.(\d+)\.([a-z0-9]+)$`)

// relayFigure is one row of the comparison: the figure key of one tagged
// run, Herald / relay per round, and issue 13's limit on that ratio.
type relayFigure struct {
	label, figure, key string
	higherBetter       bool
	limit              float64 // the ratio's target (≥ for higherBetter, else ≤); 0: none
	absolute           bool    // a target on Herald's value itself, not the ratio
}

var relayFigures = []relayFigure{
	{"closed loop, 32 writers: writes/s", "closed", "writes_per_s", true, 0.7, false},
	{"events delivered/s in that window", "closed", "events_per_s", true, 0.7, false},
	{"write→notification p99 at 300 writes/s (ms)", "p300", "p99_ms", false, 3, false},
	{"write→notification p99 at 600 writes/s (ms)", "p600", "p99_ms", false, 3, false},
	{"writes/s accepted at 600 offered", "p600", "writes_per_s", true, 0.7, false},
	{"PostgreSQL transactions per event at 100 writes/s", "light", "xacts_per_event", false, 2, true},
	{"fan-out, 1 write → 1,000 Subscriptions: events/s", "fanout", "events_per_s", true, 0.9, false},
}

// relayRuns maps server → round → figure → line.
func (r *run) relayRuns() map[string]map[int]map[string]benchLine {
	out := map[string]map[int]map[string]benchLine{}
	for _, l := range r.lines {
		m := relayTag.FindStringSubmatch(l.tag)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		if out[m[1]] == nil {
			out[m[1]] = map[int]map[string]benchLine{}
		}
		if out[m[1]][n] == nil {
			out[m[1]][n] = map[string]benchLine{}
		}
		out[m[1]][n][m[3]] = l
	}
	return out
}

// relayValues are, per round measured on both, Herald's value, the relay's
// and their ratio.
func (r *run) relayValues(f relayFigure) (herald, relay, ratio []float64) {
	runs := r.relayRuns()
	for _, n := range slices.Sorted(mapKeys(runs["herald"])) {
		h, okH := runs["herald"][n][f.figure].num(f.key)
		x, okX := runs["relay"][n][f.figure].num(f.key)
		if !okH || !okX {
			continue
		}
		herald, relay = append(herald, h), append(relay, x)
		if x != 0 {
			ratio = append(ratio, h/x)
		}
	}
	return herald, relay, ratio
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// spread is "median [min–max]" of vs.
func spread(vs []float64, prec int) string {
	if len(vs) == 0 {
		return dash
	}
	return fmt.Sprintf("%s [%s–%s]", num(median(vs), prec), num(slices.Min(vs), prec), num(slices.Max(vs), prec))
}

// relayLost sums, over every relay-tagged run of server, the events
// missing, duplicated, reordered and the gaps.
func (r *run) relayLost(server string) (missing, dups, reordered, gaps, events float64) {
	for _, rounds := range r.relayRuns()[server] {
		for _, l := range rounds {
			add := func(key string, to *float64) {
				if v, ok := l.num(key); ok {
					*to += v
				}
			}
			add("missing", &missing)
			add("dups", &dups)
			add("reordered", &reordered)
			add("gaps", &gaps)
			add("events", &events)
		}
	}
	return
}

func writeRelay(w io.Writer, r *run) {
	runs := r.relayRuns()
	if len(runs["herald"]) == 0 || len(runs["relay"]) == 0 {
		return
	}
	fmt.Fprintln(w, "## Herald against a bare relay (issue 13)")
	fmt.Fprintln(w)
	if date, commit := r.info["date"], r.info["commit"]; date != "" {
		fmt.Fprintf(w, "Run on %s, commit %s.", date, commit)
		if len(r.loads) > 0 {
			fmt.Fprintf(w, " Load average at the start %s; at the end %s.", r.loads[0], r.loads[len(r.loads)-1])
		}
		fmt.Fprint(w, "\n\n")
	}
	fmt.Fprintf(w, "scripts/relay-bench.sh: in each of %d rounds Herald and `cmd/herald-relay` (one statement stores an"+
		" Encounter and its events; a worker pool POSTs one id-only Bundle per event and records it) ran one after"+
		" the other, each over a fresh database, with herald-load's receiver and the same load. The ratio is"+
		" Herald / relay within a round; median [min–max] over the rounds.\n\n", len(runs["herald"]))
	header(w, "figure", "Herald", "relay", "Herald/relay", "target", "result")
	for _, f := range relayFigures {
		h, x, ratio := r.relayValues(f)
		prec := 1
		if f.key == "xacts_per_event" {
			prec = 2
		}
		target, result := dash, dash
		if f.limit > 0 {
			op, v := "≤", median(ratio)
			if f.higherBetter {
				op = "≥"
			}
			if f.absolute {
				v = median(h)
				target = fmt.Sprintf("%s %s", op, num(f.limit, 1))
			} else {
				target = fmt.Sprintf("%s %s×", op, num(f.limit, 1))
			}
			if len(h) > 0 {
				result = verdict(f.higherBetter && v >= f.limit || !f.higherBetter && v <= f.limit)
			}
		}
		row(w, f.label, spread(h, prec), spread(x, prec), spread(ratio, 2), target, result)
	}
	fmt.Fprintln(w)
	for _, s := range []string{"herald", "relay"} {
		missing, dups, reordered, gaps, events := r.relayLost(s)
		fmt.Fprintf(w, "%s: %s events checked, %s missing, %s duplicated, %s out of order, %s gaps.\n", s,
			num(events, 0), num(missing, 0), num(dups, 0), num(reordered, 0), num(gaps, 0))
	}
	fmt.Fprintln(w)
}

const relayHeading = "## Herald against a bare relay (issue 13)"

// updateRelaySection puts the relay section of in's run into outDir's
// report.md in place of the one there, or before its notes, leaving the
// rest of the report as it was.
func updateRelaySection(in, outDir string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := parse(f)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	var section strings.Builder
	writeRelay(&section, r)
	if section.Len() == 0 {
		return fmt.Errorf("%s: no relay runs of both servers", in)
	}
	path := filepath.Join(outDir, "report.md")
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	report := spliceSection(string(old), section.String())
	if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
		return err
	}
	fmt.Printf("benchreport: updated the relay section of %s\n", path)
	return nil
}

// spliceSection replaces the relay section of report with section, or
// inserts it before the notes (else at the end).
func spliceSection(report, section string) string {
	if i := strings.Index(report, relayHeading); i >= 0 {
		end := len(report)
		if j := strings.Index(report[i+len(relayHeading):], "\n## "); j >= 0 {
			end = i + len(relayHeading) + j + 1
		}
		return report[:i] + section + report[end:]
	}
	if i := strings.Index(report, "## Notes from the run"); i >= 0 {
		return report[:i] + section + report[i:]
	}
	return strings.TrimRight(report, "\n") + "\n\n" + section
}
