package main

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Phase validation of bench.sh: herald-load runs tagged validation-on.N
// (the validating server) and validation-off.N (its -tags heraldnovalidate
// twin), round N, each with a create and a transaction line.

// The targets of issue 11.
const (
	targetValidationRatio = 0.85 // throughput validating / not validating: at most 15% slower
	targetValidationP99MS = 20   // p99 with validation, ms
)

// cpuPerRequest is herald's CPU µs per request: unlike throughput, it
// hardly depends on what else the shared machine is doing.
const cpuPerRequest = "cpu_herald_us_per_req"

var validationTag = regexp.MustCompile(`^validation-(on|off)\.(\d+)$`)

// validationWorkloads are the phases compared, in the order reported.
var validationWorkloads = []struct{ phase, label string }{
	{"create", "Patient create"},
	{"transaction", "30 KB transaction"},
}

// validationRun is one workload's line of one server in one round.
type validationRun struct {
	round      int
	validating bool
	line       benchLine
}

// validationRuns are the phase's lines in the order run.
func (r *run) validationRuns() []validationRun {
	var out []validationRun
	for _, l := range r.lines {
		m := validationTag.FindStringSubmatch(l.tag)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		out = append(out, validationRun{round: n, validating: m[1] == "on", line: l})
	}
	return out
}

// validationPair is one round of one workload on both servers.
type validationPair struct {
	round   int
	on, off benchLine
}

// ratio is the round's key validating / not validating: throughput
// (rps) or, steadier on a shared machine, herald's CPU per request.
func (p validationPair) ratio(key string) (float64, bool) {
	on, okOn := p.on.num(key)
	off, okOff := p.off.num(key)
	if !okOn || !okOff || off == 0 {
		return 0, false
	}
	return on / off, true
}

// validationCost is one workload's rounds that measured both servers.
type validationCost struct {
	phase, label string
	pairs        []validationPair // by round
}

// validationCosts pairs each workload's runs by round (the later line of
// a round run twice).
func (r *run) validationCosts() []validationCost {
	runs := r.validationRuns()
	var out []validationCost
	for _, w := range validationWorkloads {
		on, off := map[int]benchLine{}, map[int]benchLine{}
		for _, v := range runs {
			if v.line.phase != w.phase {
				continue
			}
			if v.validating {
				on[v.round] = v.line
			} else {
				off[v.round] = v.line
			}
		}
		c := validationCost{phase: w.phase, label: w.label}
		for n, l := range on {
			if o, ok := off[n]; ok {
				c.pairs = append(c.pairs, validationPair{round: n, on: l, off: o})
			}
		}
		slices.SortFunc(c.pairs, func(a, b validationPair) int { return a.round - b.round })
		if len(c.pairs) > 0 {
			out = append(out, c)
		}
	}
	return out
}

// ratio is the median over rounds of each round's ratio of key.
func (c validationCost) ratio(key string) (float64, bool) {
	var rs []float64
	for _, p := range c.pairs {
		if r, ok := p.ratio(key); ok {
			rs = append(rs, r)
		}
	}
	return median(rs), len(rs) > 0
}

func (c validationCost) ratioCell(key string) string {
	r, ok := c.ratio(key)
	if !ok {
		return dash
	}
	return num(r, 3)
}

// median is key's median over rounds on the validating server or the other.
func (c validationCost) median(key string, validating bool) (float64, bool) {
	var vs []float64
	for _, p := range c.pairs {
		l := p.off
		if validating {
			l = p.on
		}
		if v, ok := l.num(key); ok {
			vs = append(vs, v)
		}
	}
	return median(vs), len(vs) > 0
}

func (c validationCost) medianCell(key string, validating bool, prec int) string {
	v, ok := c.median(key, validating)
	if !ok {
		return dash
	}
	return num(v, prec)
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(vs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// writeValidationTargets writes issue 11's rows of the targets table.
func writeValidationTargets(w io.Writer, r *run) {
	costs := r.validationCosts()
	for _, wl := range validationWorkloads {
		i := slices.IndexFunc(costs, func(c validationCost) bool { return c.phase == wl.phase })
		slower := fmt.Sprintf("%s with R4 validation at most 15%% slower (throughput ratio ≥ 0.85)", wl.label)
		p99 := fmt.Sprintf("%s p99 < 20 ms with R4 validation", wl.label)
		if i < 0 {
			row(w, slower, "11", dash, "not measured", "")
			row(w, p99, "11", dash, "not measured", "")
			continue
		}
		c := costs[i]
		rounds := fmt.Sprintf("median of %d rounds", len(c.pairs))
		ratio, _ := c.ratio("rps")
		note := rounds
		if cpu, ok := c.ratio(cpuPerRequest); ok {
			note += fmt.Sprintf("; herald CPU per request ×%s", num(cpu, 3))
		}
		row(w, slower, "11", num(ratio, 3)+"×", verdict(ratio >= targetValidationRatio), note)
		on, _ := c.median("p99_ms", true)
		off, _ := c.median("p99_ms", false)
		row(w, p99, "11", num(on, 2)+" ms", verdict(on < targetValidationP99MS),
			fmt.Sprintf("%s; without validation %s ms", rounds, num(off, 2)))
	}
}

func writeValidation(w io.Writer, r *run) {
	runs := r.validationRuns()
	if len(runs) == 0 {
		return
	}
	fmt.Fprintln(w, "## Cost of R4 validation (issue 11)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "The same workloads on Herald and on its twin built with `-tags heraldnovalidate` (whose"+
		" fhir.Validate does nothing), in alternating rounds (validating, not validating, …), each server alone over"+
		" a fresh database. *Patient create* POSTs the small Patient of phase create; *30 KB transaction* POSTs a"+
		" transaction Bundle of a Patient and 24 vital-sign and laboratory Observations (25 resources). The ratio is"+
		" validating / not validating, per round, and its median; the target is at most 15% slower (≥ 0.85) and"+
		" p99 under 20 ms at 32 clients. Throughput and latency move with whatever else the machine runs; the"+
		" herald CPU ratio (CPU per request validating / not validating, median of rounds) is the steadier measure of"+
		" what validation adds.")
	fmt.Fprintln(w)
	header(w, "workload", "rounds", "req/s validating", "not validating", "ratio", "ratio per round",
		"resources/s validating", "not validating", "p50 validating", "not", "p99 validating", "not",
		"herald CPU µs/req validating", "not", "herald CPU ratio")
	for _, c := range r.validationCosts() {
		var per []string
		for _, p := range c.pairs {
			r, _ := p.ratio("rps")
			per = append(per, num(r, 3))
		}
		resOn, resOff := dash, dash
		if c.phase == "transaction" {
			resOn, resOff = c.medianCell("resources_per_s", true, 0), c.medianCell("resources_per_s", false, 0)
		}
		row(w, c.label, strconv.Itoa(len(c.pairs)), c.medianCell("rps", true, 0), c.medianCell("rps", false, 0),
			c.ratioCell("rps"), strings.Join(per, ", "), resOn, resOff,
			c.medianCell("p50_ms", true, 2), c.medianCell("p50_ms", false, 2),
			c.medianCell("p99_ms", true, 2), c.medianCell("p99_ms", false, 2),
			c.medianCell(cpuPerRequest, true, 0), c.medianCell(cpuPerRequest, false, 0), c.ratioCell(cpuPerRequest))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Every run, in the order run (medians above; CPU µs per request, machine busy as % of one core):")
	fmt.Fprintln(w)
	headerAligned(w, "rll"+strings.Repeat("r", 15), "round", "server", "workload", "clients", "s", "requests", "errors", "req/s", "resources/s",
		"p50", "p90", "p99", "max", "CPU µs/req herald", "postgres", "herald-load", "other", "machine busy %")
	for _, v := range runs {
		server := "not validating"
		if v.validating {
			server = "validating"
		}
		l := v.line
		row(w, append([]string{strconv.Itoa(v.round), server, l.phase, val(l, "c", 0), val(l, "duration_s", 1),
			val(l, "requests", 0), val(l, "errors", 0), val(l, "rps", 1), val(l, "resources_per_s", 0),
			val(l, "p50_ms", 2), val(l, "p90_ms", 2), val(l, "p99_ms", 2), val(l, "max_ms", 2)},
			cpuCells(l, "req")...)...)
	}
	fmt.Fprintln(w)
}
