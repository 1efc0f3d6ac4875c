// Command benchreport turns the output of `make bench` (scripts/bench.sh and
// the BenchmarkPublish run, recorded in bench/bench-output.txt) into
// bench/report.md and bench/latency.png: the machine, the targets of the
// issues met or not, a table per phase, the delivery sweep and a chart of
// end-to-end latency percentiles against offered load and against the
// number of Subscriptions, and the cost of R4 validation (phase validation).
//
//	go run ./scripts/benchreport -in bench/bench-output.txt -out bench
//
// It reads what bench.sh prints: the "== machine" lines (date:, commit:,
// cpus:, …), the "BENCH phase=…" lines of herald-load and of the wrk phase
// (the sweep's tagged tag=sweep, the validation phase's tag=validation-on.N
// and tag=validation-off.N), "bench: …" and "warning: …" lines, and
// the go test benchmark lines.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

func main() {
	in := flag.String("in", "bench/bench-output.txt", "the recorded output of make bench")
	out := flag.String("out", "bench", "directory to write report.md and latency.png into")
	relayOnly := flag.Bool("relay-only", false, "replace (or add) only the relay section of the existing report.md, from a BENCH_RELAY=only run")
	flag.Parse()
	run := generate
	if *relayOnly {
		run = updateRelaySection
	}
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func generate(in, outDir string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := parse(f)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if len(r.lines) == 0 {
		// (A publish benchmark alone is not worth replacing a report with.)
		return fmt.Errorf("%s: no BENCH line: nothing to report", in)
	}
	chart := ""
	load, subs := r.sweeps()
	if len(load.points) > 0 || len(subs.points) > 0 {
		chart = "latency.png"
		if err := writeChart(filepath.Join(outDir, chart), load, subs); err != nil {
			return fmt.Errorf("chart: %w", err)
		}
	}
	var md strings.Builder
	writeReport(&md, r, chart)
	path := filepath.Join(outDir, "report.md")
	if err := os.WriteFile(path, []byte(md.String()), 0o644); err != nil {
		return err
	}
	fmt.Printf("benchreport: wrote %s", path)
	if chart != "" {
		fmt.Printf(" and %s", filepath.Join(outDir, chart))
	}
	fmt.Println()
	return nil
}

// benchLine is one "BENCH phase=… key=value …" line.
type benchLine struct {
	phase string
	tag   string
	kv    map[string]string
}

// num is the value of key as a number; wrk's durations (850.00us, 1.20ms,
// 1.02s) come out in milliseconds.
func (l benchLine) num(key string) (float64, bool) {
	v, ok := l.kv[key]
	if !ok {
		return 0, false
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return f, true
	}
	return wrkMS(v)
}

// wrkMS reads a wrk duration (us, ms, s, m, h) in milliseconds.
func wrkMS(s string) (float64, bool) {
	for _, u := range []struct {
		suffix string
		ms     float64
	}{{"us", 1e-3}, {"ms", 1}, {"s", 1e3}, {"m", 60e3}, {"h", 3600e3}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, false
			}
			return f * u.ms, true
		}
	}
	return 0, false
}

// publishResult is one go test benchmark line.
type publishResult struct {
	name    string
	iters   int64
	nsPerOp float64
	metrics map[string]float64 // unit → value
	units   []string           // in order of appearance
}

// run is everything read from the output.
type run struct {
	info       map[string]string // date, commit, cpus, memory, kernel, go, postgres, pg conf, server
	loads      []string
	status     string // bench.sh exit status, when it said
	lines      []benchLine
	publish    []publishResult
	publishEnv map[string]string // goos, goarch, pkg, cpu of go test
	notes      []string          // warnings and bench.sh's own messages
	seed       *searchSeed       // the search phase's load, when it ran
}

var (
	infoKeys   = []string{"date", "commit", "cpus", "memory", "kernel", "go", "postgres", "pg conf", "server"}
	infoRe     = regexp.MustCompile(`^([a-z][a-z ]*?):\s+(.*)$`)
	benchmarks = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+([\d.]+) ns/op((?:\s+[\d.eE+-]+ \S+)*)\s*$`)
	statusRe   = regexp.MustCompile(`^bench: exit status (\d+)$`)
)

func parse(rd io.Reader) (*run, error) {
	r := &run{info: map[string]string{}, publishEnv: map[string]string{}}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t\r")
		switch {
		case strings.HasPrefix(line, "BENCH "):
			l, err := parseBenchLine(line)
			if err != nil {
				return nil, err
			}
			r.lines = append(r.lines, l)
		case r.readSeed(line):
		case statusRe.MatchString(line):
			r.status = statusRe.FindStringSubmatch(line)[1]
		case strings.HasPrefix(line, "bench: ") || strings.HasPrefix(line, "warning: ") ||
			strings.HasPrefix(line, "herald-load: ") && !strings.Contains(line, " clients, warm-up "): // not the banner
			r.notes = append(r.notes, line)
		case benchmarks.MatchString(line):
			m := benchmarks.FindStringSubmatch(line)
			p := publishResult{name: m[1], metrics: map[string]float64{}}
			p.iters, _ = strconv.ParseInt(m[2], 10, 64)
			p.nsPerOp, _ = strconv.ParseFloat(m[3], 64)
			f := strings.Fields(m[4])
			for i := 0; i+1 < len(f); i += 2 {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					continue
				}
				p.metrics[f[i+1]] = v
				p.units = append(p.units, f[i+1])
			}
			r.publish = append(r.publish, p)
		default:
			m := infoRe.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			key, val := m[1], strings.TrimSpace(m[2])
			switch {
			case key == "load":
				r.loads = append(r.loads, val)
			case slices.Contains(infoKeys, key):
				if _, seen := r.info[key]; !seen {
					r.info[key] = val
				}
			case key == "goos" || key == "goarch" || key == "pkg" || key == "cpu":
				// go test's header (cpu: is the model as Go sees it)
				r.publishEnv[key] = val
			}
		}
	}
	return r, sc.Err()
}

func parseBenchLine(line string) (benchLine, error) {
	l := benchLine{kv: map[string]string{}}
	for _, f := range strings.Fields(strings.TrimPrefix(line, "BENCH ")) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return l, fmt.Errorf("BENCH line: %q is not key=value: %s", f, line)
		}
		l.kv[k] = v
	}
	l.phase, l.tag = l.kv["phase"], l.kv["tag"]
	if l.phase == "" {
		return l, fmt.Errorf("BENCH line without phase=: %s", line)
	}
	return l, nil
}

// find returns the last untagged line of phase (a later run supersedes an
// earlier one), and whether there is one.
func (r *run) find(phase string) (benchLine, bool) {
	for i := len(r.lines) - 1; i >= 0; i-- {
		if l := r.lines[i]; l.phase == phase && l.tag == "" {
			return l, true
		}
	}
	return benchLine{}, false
}

// sweep is a series of sweep points: x is the offered load or the number
// of Subscriptions, fixed the other.
type sweep struct {
	fixed  float64
	points []sweepPoint // by x
}

type sweepPoint struct {
	x    float64
	line benchLine
}

// sweeps splits the sweep's points (delivery lines tagged sweep) into the
// load sweep (points sharing the Subscription count that most offered
// loads were run at) and the Subscription sweep (points sharing the load
// that most Subscription counts were run at). A point may be in both.
func (r *run) sweeps() (load, subs sweep) {
	var pts []benchLine
	for _, l := range r.lines {
		_, okRate := l.num("rate")
		_, okSubs := l.num("subs")
		if l.phase == "delivery" && l.tag == "sweep" && okRate && okSubs {
			pts = append(pts, l)
		}
	}
	series := func(fixedKey, xKey string) sweep {
		xs := map[float64]map[float64]bool{} // fixed → distinct x
		for _, l := range pts {
			f, _ := l.num(fixedKey)
			x, _ := l.num(xKey)
			if xs[f] == nil {
				xs[f] = map[float64]bool{}
			}
			xs[f][x] = true
		}
		best, n := 0.0, 0
		for f, set := range xs {
			if len(set) > n || len(set) == n && f < best {
				best, n = f, len(set)
			}
		}
		s := sweep{fixed: best}
		if n < 2 {
			return s // a single point is no curve
		}
		for _, l := range pts {
			if f, _ := l.num(fixedKey); f != best {
				continue
			}
			x, _ := l.num(xKey)
			// A point run twice: the later one.
			if i := slices.IndexFunc(s.points, func(p sweepPoint) bool { return p.x == x }); i >= 0 {
				s.points[i].line = l
				continue
			}
			s.points = append(s.points, sweepPoint{x: x, line: l})
		}
		slices.SortFunc(s.points, func(a, b sweepPoint) int {
			switch {
			case a.x < b.x:
				return -1
			case a.x > b.x:
				return 1
			}
			return 0
		})
		return s
	}
	return series("subs", "rate"), series("rate", "subs")
}
