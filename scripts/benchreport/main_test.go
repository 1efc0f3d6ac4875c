package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// sample is a cut-down bench-output.txt: real lines of a make bench run
// (create, read, wrk, delivery, fanout, five of the sweep's eight points, in
// another order, and the publish benchmark), the tables around them left out.
const sample = `== machine
date:     2026-11-25 18:23:28 UTC
commit:   7fd7cbdc622f (with uncommitted changes)
cpus:     2 (AMD EPYC)
memory:   23.5 GiB
kernel:   Linux 6.18.44-fc-v669
go:       go1.26.8 linux/amd64
load:     0.94 1.86 3.73 (1, 5, 15 min; other work on the machine skews the figures)
postgres: 15.20 (Debian 15.20-0+deb12u1)
pg conf:  commit_delay=0 fsync=on full_page_writes=on max_connections=100 shared_buffers=128MB synchronous_commit=on wal_sync_method=fdatasync
server:   herald pid 5684 on 127.0.0.1:21083, database herald_bench_5582
herald-load: http://127.0.0.1:21083/fhir, 32 clients, warm-up 2s + 10s per phase, phases create,read

BENCH phase=create c=32 duration_s=10.00 requests=41327 errors=0 error_rate=0.0000 rps=4131.7 mean_ms=7.74 p50_ms=7.33 p90_ms=11.35 p99_ms=15.92 max_ms=135.41 cpu_herald_pct=76 cpu_herald_us_per_req=183 cpu_postgres_pct=84 cpu_postgres_us_per_req=204 cpu_pg_bench_pct=84 cpu_pg_bench_us_per_req=203 cpu_herald_load_pct=27 cpu_herald_load_us_per_req=66 cpu_other_pct=7 cpu_other_us_per_req=17 cpu_machine_busy_pct=194 cpu_iowait_pct=0
BENCH phase=read c=32 duration_s=10.00 requests=114049 errors=0 error_rate=0.0000 rps=11404.2 mean_ms=2.81 p50_ms=2.51 p90_ms=4.91 p99_ms=8.19 max_ms=25.49 cpu_herald_pct=85 cpu_herald_us_per_req=74 cpu_postgres_pct=59 cpu_postgres_us_per_req=52 cpu_pg_bench_pct=59 cpu_pg_bench_us_per_req=52 cpu_herald_load_pct=46 cpu_herald_load_us_per_req=41 cpu_other_pct=1 cpu_other_us_per_req=1 cpu_machine_busy_pct=191 cpu_iowait_pct=0
BENCH phase=read-wrk c=32 rps=15357.21 p50=1.95ms p90=4.09ms p99=6.97ms
BENCH phase=delivery subs=100 fan=1 rate=200 duration_s=9.99 writes=2000 write_errors=0 writes_per_s=200.2 events=2000 missing=0 early=13 dups=0 p50_ms=0.94 p90_ms=1.78 p99_ms=10.76 max_ms=59.29 sent_p99_ms=21.42 write_p50_ms=1.95 write_p99_ms=10.54 notifications=2000 notifications_per_s=200.2 events_per_s=200.2 events_per_notification=1.00 cpu_herald_pct=34 cpu_herald_us_per_event=1700 cpu_postgres_pct=35 cpu_postgres_us_per_event=1735 cpu_pg_bench_pct=34 cpu_pg_bench_us_per_event=1720 cpu_herald_load_pct=11 cpu_herald_load_us_per_event=570 cpu_other_pct=12 cpu_other_us_per_event=620 cpu_machine_busy_pct=93 cpu_iowait_pct=2
BENCH phase=fanout subs=1000 fan=1000 backlog=2 duration_s=9.99 writes=67 write_errors=0 writes_per_s=6.7 events=67000 missing=0 early=0 dups=0 p50_ms=310.19 p90_ms=557.88 p99_ms=686.61 max_ms=751.81 sent_p99_ms=770.09 write_p50_ms=73.23 write_p99_ms=103.99 notifications=15539 notifications_per_s=1555.3 events_per_s=6691.8 events_per_notification=4.30 cpu_herald_pct=58 cpu_herald_us_per_event=87 cpu_postgres_pct=92 cpu_postgres_us_per_event=137 cpu_pg_bench_pct=90 cpu_pg_bench_us_per_event=134 cpu_herald_load_pct=20 cpu_herald_load_us_per_event=30 cpu_other_pct=3 cpu_other_us_per_event=5 cpu_machine_busy_pct=173 cpu_iowait_pct=1

== delivery sweep
load:     3.69 2.47 3.81 (1, 5, 15 min, before the sweep)
BENCH phase=delivery subs=100 fan=1 rate=800 duration_s=4.99 writes=4000 write_errors=0 writes_per_s=801.5 events=4000 missing=0 early=0 dups=0 p50_ms=131.38 p90_ms=259.34 p99_ms=382.54 max_ms=454.74 sent_p99_ms=412.23 write_p50_ms=21.78 write_p99_ms=49.63 notifications=2516 notifications_per_s=504.2 events_per_s=801.7 events_per_notification=1.59 cpu_herald_pct=60 cpu_herald_us_per_event=745 cpu_postgres_pct=110 cpu_postgres_us_per_event=1375 cpu_pg_bench_pct=109 cpu_pg_bench_us_per_event=1362 cpu_herald_load_pct=19 cpu_herald_load_us_per_event=232 cpu_other_pct=3 cpu_other_us_per_event=35 cpu_machine_busy_pct=191 cpu_iowait_pct=0 tag=sweep
BENCH phase=delivery subs=100 fan=1 rate=50 duration_s=4.99 writes=250 write_errors=0 writes_per_s=50.1 events=250 missing=0 early=0 dups=0 p50_ms=2.81 p90_ms=3.40 p99_ms=4.24 max_ms=6.32 sent_p99_ms=7.83 write_p50_ms=2.76 write_p99_ms=6.23 notifications=250 notifications_per_s=50.1 events_per_s=50.1 events_per_notification=1.00 cpu_herald_pct=13 cpu_herald_us_per_event=2560 cpu_postgres_pct=22 cpu_postgres_us_per_event=4480 cpu_pg_bench_pct=22 cpu_pg_bench_us_per_event=4440 cpu_herald_load_pct=5 cpu_herald_load_us_per_event=960 cpu_other_pct=5 cpu_other_us_per_event=920 cpu_machine_busy_pct=45 cpu_iowait_pct=1 tag=sweep
BENCH phase=delivery subs=100 fan=1 rate=200 duration_s=4.99 writes=1000 write_errors=0 writes_per_s=200.3 events=1000 missing=0 early=0 dups=0 p50_ms=3.21 p90_ms=6.30 p99_ms=13.93 max_ms=65.84 sent_p99_ms=43.19 write_p50_ms=2.93 write_p99_ms=21.06 notifications=1000 notifications_per_s=200.3 events_per_s=200.3 events_per_notification=1.00 cpu_herald_pct=38 cpu_herald_us_per_event=1890 cpu_postgres_pct=77 cpu_postgres_us_per_event=3830 cpu_pg_bench_pct=76 cpu_pg_bench_us_per_event=3820 cpu_herald_load_pct=13 cpu_herald_load_us_per_event=640 cpu_other_pct=0 cpu_other_us_per_event=0 cpu_machine_busy_pct=122 cpu_iowait_pct=3 tag=sweep
BENCH phase=delivery subs=10 fan=1 rate=200 duration_s=4.99 writes=1000 write_errors=0 writes_per_s=200.1 events=1000 missing=0 early=0 dups=0 p50_ms=2.10 p90_ms=3.48 p99_ms=5.73 max_ms=8.53 sent_p99_ms=10.92 write_p50_ms=2.56 write_p99_ms=6.45 notifications=999 notifications_per_s=200.1 events_per_s=200.1 events_per_notification=1.00 cpu_herald_pct=33 cpu_herald_us_per_event=1672 cpu_postgres_pct=76 cpu_postgres_us_per_event=3794 cpu_pg_bench_pct=76 cpu_pg_bench_us_per_event=3784 cpu_herald_load_pct=11 cpu_herald_load_us_per_event=551 cpu_other_pct=0 cpu_other_us_per_event=0 cpu_machine_busy_pct=116 cpu_iowait_pct=2 tag=sweep
BENCH phase=delivery subs=3000 fan=1 rate=200 duration_s=4.99 writes=1000 write_errors=0 writes_per_s=200.0 events=1000 missing=0 early=0 dups=0 p50_ms=3.60 p90_ms=6.54 p99_ms=11.08 max_ms=36.24 sent_p99_ms=18.00 write_p50_ms=2.49 write_p99_ms=8.88 notifications=999 notifications_per_s=200.0 events_per_s=200.0 events_per_notification=1.00 cpu_herald_pct=35 cpu_herald_us_per_event=1772 cpu_postgres_pct=79 cpu_postgres_us_per_event=3934 cpu_pg_bench_pct=78 cpu_pg_bench_us_per_event=3914 cpu_herald_load_pct=12 cpu_herald_load_us_per_event=581 cpu_other_pct=4 cpu_other_us_per_event=210 cpu_machine_busy_pct=130 cpu_iowait_pct=2 tag=sweep
load:     4.28 2.88 3.86 (1, 5, 15 min, at the end)
bench: exit status 0

== publish: ...
goos: linux
goarch: amd64
pkg: github.com/herald-fhir/herald/internal/publish
cpu: AMD EPYC
BenchmarkPublish/others=0-2         	    1558	   1480518 ns/op	       655.6 hook-µs/op	       441.7 load-µs/op	      1471 p50-µs	      2167 p99-µs
BenchmarkPublish/others=1000-2      	    1507	   1767151 ns/op	       816.6 hook-µs/op	       553.3 load-µs/op	      1754 p50-µs	      2703 p99-µs
BenchmarkPublish/others=100000-2    	    1752	   1421689 ns/op	       656.1 hook-µs/op	       450.5 load-µs/op	      1361 p50-µs	      2096 p99-µs
BenchmarkPublish/others=1000/unpinned-2         	     385	   7286046 ns/op	      6063 hook-µs/op	      3975 load-µs/op	      6861 p50-µs	     12990 p99-µs
PASS
`

func TestParse(t *testing.T) {
	r, err := parse(strings.NewReader(sample))
	require.NoError(t, err)
	require.Equal(t, "2026-11-25 18:23:28 UTC", r.info["date"])
	require.Equal(t, "7fd7cbdc622f (with uncommitted changes)", r.info["commit"])
	require.Equal(t, "2 (AMD EPYC)", r.info["cpus"])
	require.Equal(t, "15.20 (Debian 15.20-0+deb12u1)", r.info["postgres"])
	require.Contains(t, r.info["pg conf"], "synchronous_commit=on")
	require.Len(t, r.loads, 3)
	require.Equal(t, "0", r.status)
	require.Empty(t, r.notes, "herald-load's banner is no note")
	require.Equal(t, "AMD EPYC", r.publishEnv["cpu"])

	require.Len(t, r.lines, 10)
	create, ok := r.find("create")
	require.True(t, ok)
	rps, _ := create.num("rps")
	require.Equal(t, 4131.7, rps)
	// find skips the sweep's tagged lines: the delivery phase is the untagged one.
	d, ok := r.find("delivery")
	require.True(t, ok)
	require.Empty(t, d.tag)
	require.Equal(t, "9.99", d.kv["duration_s"])
	_, ok = r.find("nothing")
	require.False(t, ok)

	// wrk's durations come out in ms.
	wrk, ok := r.find("read-wrk")
	require.True(t, ok)
	for key, want := range map[string]float64{"p50": 1.95, "p90": 4.09, "p99": 6.97} {
		v, ok := wrk.num(key)
		require.True(t, ok, key)
		require.InDelta(t, want, v, 1e-9, key)
	}
	_, ok = wrk.num("p75")
	require.False(t, ok)

	require.Len(t, r.publish, 4)
	p := r.publish[0]
	require.Equal(t, "BenchmarkPublish/others=0", p.name)
	require.Equal(t, int64(1558), p.iters)
	require.Equal(t, 1480518.0, p.nsPerOp)
	require.Equal(t, []string{"hook-µs/op", "load-µs/op", "p50-µs", "p99-µs"}, p.units)
	require.Equal(t, 441.7, p.metrics["load-µs/op"])
	require.Equal(t, "BenchmarkPublish/others=1000/unpinned", r.publish[3].name)
}

func TestWrkMS(t *testing.T) {
	for in, want := range map[string]float64{"850.00us": 0.85, "6.97ms": 6.97, "1.02s": 1020, "2.00m": 120000} {
		v, ok := wrkMS(in)
		require.True(t, ok, in)
		require.InDelta(t, want, v, 1e-9, in)
	}
	for _, in := range []string{"", "ms", "1.2", "fast"} {
		_, ok := wrkMS(in)
		require.False(t, ok, in)
	}
}

func TestNotes(t *testing.T) {
	r, err := parse(strings.NewReader(sample + `warning: 2 duplicate events, 0 events of unknown writes, 0 unreadable notifications, 0 writes skipped (over 512 in flight)
herald-load: phase delivery: write error rate 2.00% exceeds 1.00%
bench: sweep point 800 writes/s, 100 Subscriptions failed (exit 1); going on with the others
bench: exit status 1
`))
	require.NoError(t, err)
	require.Equal(t, "1", r.status, "the last exit status")
	require.Len(t, r.notes, 3)
	var b strings.Builder
	writeReport(&b, r, "")
	require.Contains(t, b.String(), "## Notes from the run")
	require.Contains(t, b.String(), "\nherald-load: phase delivery: write error rate 2.00% exceeds 1.00%\n")
	require.Contains(t, b.String(), "**bench.sh exited with status 1**")
}

func TestSweeps(t *testing.T) {
	r, err := parse(strings.NewReader(sample))
	require.NoError(t, err)
	load, subs := r.sweeps()
	xs := func(s sweep) []float64 {
		var out []float64
		for _, p := range s.points {
			out = append(out, p.x)
		}
		return out
	}
	require.Equal(t, 100.0, load.fixed)
	require.Equal(t, []float64{50, 200, 800}, xs(load), "by offered load, whatever the order run")
	require.Equal(t, 200.0, subs.fixed)
	require.Equal(t, []float64{10, 100, 3000}, xs(subs), "200 writes/s over 100 Subscriptions is in both")

	// A single point makes no curve.
	r, err = parse(strings.NewReader("BENCH phase=delivery subs=100 fan=1 rate=200 p99_ms=2 tag=sweep\n"))
	require.NoError(t, err)
	load, subs = r.sweeps()
	require.Empty(t, load.points)
	require.Empty(t, subs.points)
}

func TestParseRejectsMalformedBenchLines(t *testing.T) {
	_, err := parse(strings.NewReader("BENCH phase=create rps\n"))
	require.ErrorContains(t, err, "key=value")
	_, err = parse(strings.NewReader("BENCH rps=1\n"))
	require.ErrorContains(t, err, "phase")
}

func TestReport(t *testing.T) {
	r, err := parse(strings.NewReader(sample))
	require.NoError(t, err)
	var b strings.Builder
	writeReport(&b, r, "latency.png")
	md := b.String()
	for _, want := range []string{
		"from a run on 2026-11-25 18:23:28 UTC, commit 7fd7cbdc622f (with uncommitted changes).",
		"| PostgreSQL settings | `commit_delay=0 fsync=on",
		"| creates ≥ 2,000/s | 3 | 4,132/s | met |",
		"| reads ≥ 10,000/s (herald-load) | 3 | 11,404/s | met |",
		"| reads ≥ 10,000/s (wrk) | 3 | 15,357/s | met |",
		"| create p99 < 20 ms | 3 | 15.92 ms | met |",
		"| read p99 < 20 ms (wrk) | 3 | 6.97 ms | met |",
		"| delivery p99 ≤ 50 ms at 200 writes/s over 100 Subscriptions | 6 | 10.76 ms | met | 10.0 s measured |",
		"| the same, sweep point | 6 | 13.93 ms | met | 5.0 s measured |",
		"| fan-out to 1,000 Subscriptions ≥ 2,000 notifications/s, counting POSTs | 6 | 1,555 POSTs/s | **not met** | each POST carried 4.30 events on average |",
		"| the same, counting events (write × Subscription) | 6 | 6,692 events/s | met |",
		"| create | 32 | 10.0 | 41,327 | 0 | 4,132 | 7.74 | 7.33 | 11.35 | 15.92 | 135.41 | 183 | 204 | 66 | 17 | 194 |",
		"| read (wrk) | 32 | – | – | – | 15,357 | – | 1.95 | 4.09 | 6.97 | – |",
		"| fanout | 1,000 | 1,000 | flow controlled, 2 writes outstanding | 10.0 | 67 | 0 | 6.7 | 67,000 | 0 | 0 | 0 | 310.19 |",
		"| fanout | 15,539 | 1,555 | 6,692 | 4.30 | 87 | 137 | 30 | 5 | 173 |",
		"![End-to-end latency percentiles against offered load and against Subscriptions](latency.png)",
		"### Against offered load, 100 Subscriptions",
		"| 800 | 100 | 5.0 | 801.5 | 4,000 | 0 | 0 | 0 | 131.38 | 259.34 | 382.54 | 454.74 | 49.63 | 60 | 745 | 1,375 | 191 |",
		"### Against Subscriptions, 200 writes/s",
		"| 200 | 3,000 | 5.0 | 200.0 | 1,000 | 0 | 0 | 0 | 3.60 | 6.54 | 11.08 | 36.24 |",
		"| benchmark | writes | µs/op | hook-µs/op | load-µs/op | p50-µs | p99-µs |",
		"| `BenchmarkPublish/others=0` | 1,558 | 1,481 | 656 | 442 | 1,471 | 2,167 |",
	} {
		require.Contains(t, md, want)
	}
	require.NotContains(t, md, "exited with status")
	require.NotContains(t, md, "## Notes from the run")

	// Events lost beyond 1% fail the delivery target whatever the p99 of
	// those that came; a phase that did not run, or ran at another load,
	// is not measured.
	r.lines = slicesWithout(r.lines, "create")
	d, _ := r.find("delivery")
	d.kv["missing"] = "30"
	f, _ := r.find("fanout")
	f.kv["subs"] = "500"
	b.Reset()
	writeReport(&b, r, "")
	md = b.String()
	require.Contains(t, md, "| creates ≥ 2,000/s | 3 | – | not measured |")
	require.Contains(t, md, "| 10.76 ms | **not met** | 30 of 2,000 events never arrived; 10.0 s measured |")
	require.Contains(t, md, "| not measured | ran with 500 Subscriptions |")
	require.NotContains(t, md, "latency.png")
	d.kv["rate"] = "100"
	b.Reset()
	writeReport(&b, r, "")
	require.Contains(t, b.String(), "| not measured | ran at 100 writes/s over 100 Subscriptions |")
}

func slicesWithout(ls []benchLine, phase string) []benchLine {
	var out []benchLine
	for _, l := range ls {
		if l.phase != phase {
			out = append(out, l)
		}
	}
	return out
}

func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "bench-output.txt")
	require.NoError(t, os.WriteFile(in, []byte(sample), 0o644))
	require.NoError(t, generate(in, dir))
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	require.NoError(t, err)
	require.Contains(t, string(md), "# Herald benchmark report")
	img, err := os.ReadFile(filepath.Join(dir, "latency.png"))
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(img, []byte("\x89PNG\r\n\x1a\n")), "a PNG")

	empty := filepath.Join(dir, "empty.txt")
	require.NoError(t, os.WriteFile(empty, []byte("== machine\n"), 0o644))
	require.ErrorContains(t, generate(empty, dir), "nothing to report")
}

func TestNum(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.891: "1,234,567.89", -2500: "-2,500"} {
		require.Equal(t, want, num(v, map[bool]int{true: 2, false: 0}[v == 1234567.891]))
	}
}
