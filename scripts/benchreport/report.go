package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// The targets of the issues.
const (
	targetCreates     = 2000  // creates/s (issue 3)
	targetReads       = 10000 // reads/s (issue 3)
	targetP99MS       = 20    // create and read p99, ms (issue 3)
	targetDeliveryP99 = 50    // delivery p99 at 200 writes/s over 100 Subscriptions, ms (issue 6)
	targetDeliveryRt  = 200
	targetDeliverySub = 100
	targetFanout      = 2000 // notifications/s fanning out to 1,000 Subscriptions (issue 6)
	targetFanoutSubs  = 1000
)

const dash = "–"

// val formats key of l with prec decimals, or a dash.
func val(l benchLine, key string, prec int) string {
	v, ok := l.num(key)
	if !ok {
		return dash
	}
	return num(v, prec)
}

// num formats v with prec decimals and thin groups of thousands.
func num(v float64, prec int) string {
	s := strconv.FormatFloat(v, 'f', prec, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(intPart, "-")
	intPart = strings.TrimPrefix(intPart, "-")
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	out := b.String()
	if neg {
		out = "-" + out
	}
	if frac != "" {
		out += "." + frac
	}
	return out
}

// row writes one Markdown table row.
func row(w io.Writer, cells ...string) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
}

// header writes a table's header row and its alignment row: the first
// column left-aligned, the others right-aligned.
func header(w io.Writer, cells ...string) {
	headerAligned(w, "l"+strings.Repeat("r", len(cells)-1), cells...)
}

// headerAligned is header with each column's alignment, l or r.
func headerAligned(w io.Writer, align string, cells ...string) {
	row(w, cells...)
	marks := make([]string, len(cells))
	for i := range marks {
		marks[i] = "---"
		if i < len(align) && align[i] == 'r' {
			marks[i] = "---:"
		}
	}
	row(w, marks...)
}

func writeReport(w io.Writer, r *run, chart string) {
	fmt.Fprintln(w, "# Herald benchmark report")
	fmt.Fprintln(w)
	date, commit := r.info["date"], r.info["commit"]
	if date == "" {
		date = "an unrecorded date"
	}
	if commit == "" {
		commit = "unknown"
	}
	fmt.Fprintf(w, "Written by `make bench` (scripts/bench.sh, then scripts/benchreport) from a run on %s, commit %s.", date, commit)
	switch r.status {
	case "":
		fmt.Fprint(w, " The run's exit status was not recorded: it may have been cut short.")
	case "0":
	default:
		fmt.Fprintf(w, " **bench.sh exited with status %s**: figures may be missing (see the notes at the end).", r.status)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "One run on one machine, the server, PostgreSQL and the load generator sharing its cores: the figures are"+
		" what this machine did then, not a capacity guarantee, and other work on the machine (see the load average and"+
		" the *other* CPU column) makes them worse. Latencies are nearest-rank percentiles in milliseconds. The raw"+
		" output is bench/bench-output.txt (not committed).")
	fmt.Fprintln(w)

	writeMachine(w, r)
	writeTargets(w, r)
	writeRequests(w, r)
	writeSearch(w, r)
	writeDelivery(w, r)
	writeSweep(w, r, chart)
	writeRelay(w, r)
	writeValidation(w, r)
	writePublish(w, r)
	if len(r.notes) > 0 {
		fmt.Fprintln(w, "## Notes from the run")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Warnings and messages of bench.sh and herald-load, as printed:")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "```")
		notes := r.notes
		if len(notes) > 40 {
			notes = append(slices.Clip(notes[:40]), fmt.Sprintf("… and %d more in bench/bench-output.txt", len(r.notes)-40))
		}
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
		fmt.Fprintln(w, "```")
	}
}

func writeMachine(w io.Writer, r *run) {
	fmt.Fprintln(w, "## Machine")
	fmt.Fprintln(w)
	headerAligned(w, "ll", "", "")
	for _, kv := range []struct{ label, key string }{
		{"CPUs", "cpus"}, {"memory", "memory"}, {"kernel", "kernel"}, {"Go", "go"},
		{"PostgreSQL", "postgres"}, {"PostgreSQL settings", "pg conf"},
	} {
		v := r.info[kv.key]
		if v == "" {
			continue
		}
		if kv.key == "pg conf" {
			v = "`" + v + "`"
		}
		row(w, kv.label, v)
	}
	if len(r.loads) > 0 {
		row(w, "load average", strings.Join(r.loads, "; "))
	}
	if c := r.publishEnv["cpu"]; c != "" {
		row(w, "CPU (go test)", c)
	}
	fmt.Fprintln(w)
}

// check compares v with a limit: op is ">=", "<" or "<=".
func check(v float64, op string, limit float64) bool {
	switch op {
	case ">=":
		return v >= limit
	case "<":
		return v < limit
	default:
		return v <= limit
	}
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "**not met**"
}

func writeTargets(w io.Writer, r *run) {
	fmt.Fprintln(w, "## Targets")
	fmt.Fprintln(w)
	headerAligned(w, "lrrll", "target", "issue", "measured", "result", "note")
	simple := func(what, issue, phase, key, op string, limit float64, unit string, prec int) {
		l, ok := r.find(phase)
		v, okV := l.num(key)
		if !ok || !okV {
			row(w, what, issue, dash, "not measured", "")
			return
		}
		note := ""
		if e, _ := l.num("errors"); e > 0 {
			note = num(e, 0) + " errors"
		}
		row(w, what, issue, num(v, prec)+unit, verdict(check(v, op, limit)), note)
	}
	simple("creates ≥ 2,000/s", "3", "create", "rps", ">=", targetCreates, "/s", 0)
	simple("reads ≥ 10,000/s (herald-load)", "3", "read", "rps", ">=", targetReads, "/s", 0)
	simple("reads ≥ 10,000/s (wrk)", "3", "read-wrk", "rps", ">=", targetReads, "/s", 0)
	simple("create p99 < 20 ms", "3", "create", "p99_ms", "<", targetP99MS, " ms", 2)
	simple("read p99 < 20 ms (herald-load)", "3", "read", "p99_ms", "<", targetP99MS, " ms", 2)
	simple("read p99 < 20 ms (wrk)", "3", "read-wrk", "p99", "<", targetP99MS, " ms", 2)
	searchTargets(w, r)

	// Delivery: only where it ran at the target's load.
	deliveryRow := func(what string, l benchLine, ok bool) {
		rate, _ := l.num("rate")
		subs, _ := l.num("subs")
		p99, okP := l.num("p99_ms")
		switch {
		case !ok || !okP:
			row(w, what, "6", dash, "not measured", "")
			return
		case rate != targetDeliveryRt || subs != targetDeliverySub:
			row(w, what, "6", dash, "not measured", fmt.Sprintf("ran at %s writes/s over %s Subscriptions", num(rate, 0), num(subs, 0)))
			return
		}
		met := p99 <= targetDeliveryP99
		var notes []string
		missing, _ := l.num("missing")
		events, _ := l.num("events")
		if missing > 0 {
			notes = append(notes, fmt.Sprintf("%s of %s events never arrived", num(missing, 0), num(events, 0)))
			if events == 0 || missing/events > 0.01 {
				met = false // over 1% lost: the 99th percentile is "never"
			}
		}
		if d, _ := l.num("dups"); d > 0 {
			notes = append(notes, num(d, 0)+" duplicates")
		}
		if e, _ := l.num("write_errors"); e > 0 {
			notes = append(notes, num(e, 0)+" write errors")
		}
		if s, _ := l.num("duration_s"); s > 0 {
			notes = append(notes, num(s, 1)+" s measured")
		}
		row(w, what, "6", num(p99, 2)+" ms", verdict(met), strings.Join(notes, "; "))
	}
	l, ok := r.find("delivery")
	deliveryRow("delivery p99 ≤ 50 ms at 200 writes/s over 100 Subscriptions", l, ok)
	var sp benchLine
	spOK := false
	for _, l := range r.lines {
		rate, _ := l.num("rate")
		subs, _ := l.num("subs")
		if l.phase == "delivery" && l.tag == "sweep" && rate == targetDeliveryRt && subs == targetDeliverySub {
			sp, spOK = l, true
		}
	}
	deliveryRow("the same, sweep point", sp, spOK)

	f, ok := r.find("fanout")
	subs, _ := f.num("subs")
	posts, okP := f.num("notifications_per_s")
	events, okE := f.num("events_per_s")
	per, _ := f.num("events_per_notification")
	switch {
	case !ok || !okP || !okE:
		row(w, "fan-out to 1,000 Subscriptions ≥ 2,000 notifications/s", "6", dash, "not measured", "")
	case subs != targetFanoutSubs:
		row(w, "fan-out to 1,000 Subscriptions ≥ 2,000 notifications/s", "6", dash, "not measured",
			fmt.Sprintf("ran with %s Subscriptions", num(subs, 0)))
	default:
		row(w, "fan-out to 1,000 Subscriptions ≥ 2,000 notifications/s, counting POSTs", "6",
			num(posts, 0)+" POSTs/s", verdict(posts >= targetFanout),
			fmt.Sprintf("each POST carried %s events on average", num(per, 2)))
		row(w, "the same, counting events (write × Subscription)", "6",
			num(events, 0)+" events/s", verdict(events >= targetFanout),
			"an event is one write reaching one Subscription; several can share a POST")
	}
	writeValidationTargets(w, r)
	publishRatio(w, r, "a write matching 1,000 Subscriptions with 20 filters each ≤ 2× one matching 1,000 unfiltered",
		"BenchmarkPublishFanOut/subscriptions=1000/filters=20", "BenchmarkPublishFanOut/subscriptions=1000/filters=0", 2)
	publishRatio(w, r, "publish with 100,000 other Subscriptions ≤ 1.2× with none",
		"BenchmarkPublish/others=100000", "BenchmarkPublish/others=0", 1.2)
	fmt.Fprintln(w)
}

// publishRatio is a target row comparing the p50 of two publish benchmarks
// (issue 12).
func publishRatio(w io.Writer, r *run, what, name, base string, limit float64) {
	p50 := func(name string) (float64, bool) {
		for _, p := range r.publish {
			if p.name == name {
				v, ok := p.metrics["p50-µs"]
				return v, ok && v > 0
			}
		}
		return 0, false
	}
	v, okV := p50(name)
	b, okB := p50(base)
	if !okV || !okB {
		row(w, what, "12", dash, "not measured", "")
		return
	}
	row(w, what, "12", num(v/b, 2)+"×", verdict(v/b <= limit), fmt.Sprintf("p50 %s µs against %s µs", num(v, 0), num(b, 0)))
}

// cpuCells are the CPU µs per request or event of the usual labels, and
// the machine's busy share.
func cpuCells(l benchLine, per string) []string {
	var cells []string
	for _, label := range []string{"herald", "postgres", "herald_load", "other"} {
		cells = append(cells, val(l, "cpu_"+label+"_us_per_"+per, 0))
	}
	return append(cells, val(l, "cpu_machine_busy_pct", 0))
}

func writeRequests(w io.Writer, r *run) {
	create, okC := r.find("create")
	read, okR := r.find("read")
	wrk, okW := r.find("read-wrk")
	if !okC && !okR && !okW {
		return
	}
	fmt.Fprintln(w, "## Creates and reads")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "herald-load: closed loop, each client sending its next request when the last one answered;"+
		" create POSTs small Patients, read GETs them by id. wrk: the same reads from a C load generator that"+
		" takes less of the shared CPU. CPU is µs per request (the machine-busy column is % of one core).")
	fmt.Fprintln(w)
	header(w, "phase", "clients", "s", "requests", "errors", "req/s", "mean", "p50", "p90", "p99", "max",
		"CPU µs/req herald", "postgres", "herald-load", "other", "machine busy %")
	for _, p := range []struct {
		name string
		l    benchLine
		ok   bool
	}{{"create", create, okC}, {"read", read, okR}} {
		if !p.ok {
			continue
		}
		l := p.l
		row(w, append([]string{p.name, val(l, "c", 0), val(l, "duration_s", 1), val(l, "requests", 0), val(l, "errors", 0),
			val(l, "rps", 0), val(l, "mean_ms", 2), val(l, "p50_ms", 2), val(l, "p90_ms", 2), val(l, "p99_ms", 2), val(l, "max_ms", 2)},
			cpuCells(l, "req")...)...)
	}
	if okW {
		row(w, "read (wrk)", val(wrk, "c", 0), dash, dash, dash, val(wrk, "rps", 0), dash,
			val(wrk, "p50", 2), val(wrk, "p90", 2), val(wrk, "p99", 2), dash, dash, dash, dash, dash, dash)
	}
	fmt.Fprintln(w)
}

// load describes a delivery line's offered load.
func load(l benchLine) string {
	if v, ok := l.num("rate"); ok {
		return "open loop, " + num(v, 0) + " writes/s"
	}
	if v, ok := l.num("backlog"); ok {
		return "flow controlled, " + num(v, 0) + " writes outstanding"
	}
	return dash
}

func writeDelivery(w io.Writer, r *run) {
	var ls []benchLine
	for _, p := range []string{"delivery", "fanout"} {
		if l, ok := r.find(p); ok {
			ls = append(ls, l)
		}
	}
	if len(ls) == 0 {
		return
	}
	fmt.Fprintln(w, "## Delivery")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Rest-hook delivery to herald-load's own receiver on loopback, which answers 200 at once. End-to-end"+
		" latency runs from the Encounter write's response (accepted) to the arrival of the notification naming it."+
		" *delivery*: each write matches one Subscription (each filtered to a patient of its own); *fanout*: every write"+
		" matches every Subscription. *Missing*: events of measured writes not received after the drain wait;"+
		" *early*: events received before the write's response (counted as 0 ms).")
	fmt.Fprintln(w)
	header(w, "phase", "Subscriptions", "fan-out", "load", "s", "writes", "write errors", "writes/s", "events", "missing", "dups", "early",
		"p50", "p90", "p99", "max", "p99 from request", "write p50", "write p99")
	for _, l := range ls {
		row(w, l.phase, val(l, "subs", 0), val(l, "fan", 0), load(l), val(l, "duration_s", 1), val(l, "writes", 0), val(l, "write_errors", 0),
			val(l, "writes_per_s", 1), val(l, "events", 0), val(l, "missing", 0), val(l, "dups", 0), val(l, "early", 0),
			val(l, "p50_ms", 2), val(l, "p90_ms", 2), val(l, "p99_ms", 2), val(l, "max_ms", 2), val(l, "sent_p99_ms", 2),
			val(l, "write_p50_ms", 2), val(l, "write_p99_ms", 2))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Received in the measured window (a notification is one POST; it carries one event or several, when a"+
		" Subscription has a backlog). CPU is µs per event received, all the work of the window divided by its events:"+
		" in phase delivery, where each write makes one event, it includes the write itself (machine busy: % of one core).")
	fmt.Fprintln(w)
	header(w, "phase", "notifications", "notifications/s", "events/s", "events per notification",
		"CPU µs/event herald", "postgres", "herald-load", "other", "machine busy %")
	for _, l := range ls {
		row(w, append([]string{l.phase, val(l, "notifications", 0), val(l, "notifications_per_s", 0), val(l, "events_per_s", 0),
			val(l, "events_per_notification", 2)}, cpuCells(l, "event")...)...)
	}
	fmt.Fprintln(w)
}

func writeSweep(w io.Writer, r *run, chart string) {
	load, subs := r.sweeps()
	if len(load.points) == 0 && len(subs.points) == 0 {
		return
	}
	fmt.Fprintln(w, "## Delivery sweep")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "The delivery phase again, one short herald-load run per point (its own patients and Subscriptions,"+
		" deleted afterwards): end-to-end latency against the offered load, and against the number of"+
		" Subscriptions (each write still matching one of them). A point is a few seconds: its p99 rests on a"+
		" few hundred to a few thousand events and moves from run to run.")
	fmt.Fprintln(w)
	if chart != "" {
		fmt.Fprintf(w, "![End-to-end latency percentiles against offered load and against Subscriptions](%s)\n\n", chart)
	}
	table := func(title string, s sweep) {
		if len(s.points) == 0 {
			return
		}
		fmt.Fprintf(w, "### %s\n\n", title)
		header(w, "writes/s offered", "Subscriptions", "s", "writes/s accepted", "events", "missing", "dups", "write errors",
			"p50", "p90", "p99", "max", "write p99", "herald CPU %", "CPU µs/event herald", "postgres", "machine busy %")
		for _, p := range s.points {
			l := p.line
			row(w, val(l, "rate", 0), val(l, "subs", 0), val(l, "duration_s", 1), val(l, "writes_per_s", 1), val(l, "events", 0),
				val(l, "missing", 0), val(l, "dups", 0), val(l, "write_errors", 0),
				val(l, "p50_ms", 2), val(l, "p90_ms", 2), val(l, "p99_ms", 2), val(l, "max_ms", 2), val(l, "write_p99_ms", 2),
				val(l, "cpu_herald_pct", 0), val(l, "cpu_herald_us_per_event", 0), val(l, "cpu_postgres_us_per_event", 0),
				val(l, "cpu_machine_busy_pct", 0))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "CPU per event includes the write that made it (one event per write).")
	fmt.Fprintln(w)
	table(fmt.Sprintf("Against offered load, %s Subscriptions", num(load.fixed, 0)), load)
	table(fmt.Sprintf("Against Subscriptions, %s writes/s", num(subs.fixed, 0)), subs)
}

func writePublish(w io.Writer, r *run) {
	if len(r.publish) == 0 {
		return
	}
	fmt.Fprintln(w, "## Publish (BenchmarkPublish)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "An Encounter write that fires encounter-start for one Subscription while *others* Subscriptions on the"+
		" same topic are pinned to other patients (unpinned: without patient keys, for comparison); and"+
		" (BenchmarkPublishFanOut) a write that 1,000 Subscriptions match, unfiltered and with 20 filters each;"+
		" in-process against PostgreSQL; µs per write.")
	fmt.Fprintln(w)
	var units []string
	for _, p := range r.publish {
		for _, u := range p.units {
			if !slices.Contains(units, u) {
				units = append(units, u)
			}
		}
	}
	cells := []string{"benchmark", "writes", "µs/op"}
	for _, u := range units {
		cells = append(cells, u)
	}
	header(w, cells...)
	for _, p := range r.publish {
		cells := []string{"`" + p.name + "`", num(float64(p.iters), 0), num(p.nsPerOp/1e3, 0)}
		for _, u := range units {
			if v, ok := p.metrics[u]; ok {
				cells = append(cells, num(v, 0))
			} else {
				cells = append(cells, dash)
			}
		}
		row(w, cells...)
	}
	fmt.Fprintln(w)
}
