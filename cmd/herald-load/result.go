package main

import (
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// result is one phase's measured window.
type result struct {
	phase      string
	warmup     time.Duration
	elapsed    time.Duration
	lat        []time.Duration            // sorted
	byKind     map[string][]time.Duration // sorted, per request kind of a mix
	errors     int
	errorKinds map[string]int
	samples    []string
	cpu        []cpuShare
	// resourcesPerRequest is how many resources each request writes, when
	// it writes several (a transaction Bundle); 0 otherwise.
	resourcesPerRequest int
}

func (r *result) requests() int { return len(r.lat) }

func (r *result) errorRate() float64 {
	if len(r.lat) == 0 {
		return 1 // nothing succeeded because nothing ran
	}
	return float64(r.errors) / float64(len(r.lat))
}

func (r *result) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(len(r.lat)) / r.elapsed.Seconds()
}

// resourcesPerSecond counts the resources of successful requests only.
func (r *result) resourcesPerSecond() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64((len(r.lat)-r.errors)*r.resourcesPerRequest) / r.elapsed.Seconds()
}

// percentile is the nearest-rank q-quantile (0 < q ≤ 1) of the sorted latencies.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(q*float64(len(sorted)) + 0.999999999)
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func (r *result) mean() time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range r.lat {
		sum += d
	}
	return sum / time.Duration(len(r.lat))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

func (r *result) print(w io.Writer) {
	fmt.Fprintf(w, "\n== phase %s: %.2fs measured after %s warm-up\n", r.phase, r.elapsed.Seconds(), r.warmup)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "requests\terrors\treq/s\tmean ms\tp50 ms\tp90 ms\tp99 ms\tmax ms\t")
	fmt.Fprintf(tw, "%d\t%d\t%.1f\t%s\t%s\t%s\t%s\t%s\t\n", r.requests(), r.errors, r.rps(), ms(r.mean()),
		ms(percentile(r.lat, 0.50)), ms(percentile(r.lat, 0.90)), ms(percentile(r.lat, 0.99)), ms(percentile(r.lat, 1)))
	tw.Flush()
	if len(r.byKind) > 0 {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "of which\trequests\tp50 ms\tp90 ms\tp99 ms\tmax ms\t")
		for _, k := range slices.Sorted(maps.Keys(r.byKind)) {
			lat := r.byKind[k]
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t\n", k, len(lat),
				ms(percentile(lat, 0.50)), ms(percentile(lat, 0.90)), ms(percentile(lat, 0.99)), ms(percentile(lat, 1)))
		}
		tw.Flush()
	}
	if r.resourcesPerRequest > 0 {
		fmt.Fprintf(w, "resources/s: %.1f (%d per request)\n", r.resourcesPerSecond(), r.resourcesPerRequest)
	}
	if r.errors > 0 {
		fmt.Fprintf(w, "errors (%.2f%%):", 100*r.errorRate())
		for _, k := range slices.Sorted(maps.Keys(r.errorKinds)) {
			fmt.Fprintf(w, " %s ×%d;", k, r.errorKinds[k])
		}
		fmt.Fprintln(w)
		for _, s := range r.samples {
			fmt.Fprintln(w, "  e.g.", s)
		}
	}
	if len(r.cpu) > 0 {
		var parts, per []string
		for _, c := range r.cpu {
			parts = append(parts, fmt.Sprintf("%s %.0f%%", c.label, c.pct))
			if c.label != "iowait" && c.label != "machine-busy" {
				per = append(per, fmt.Sprintf("%s %.0f", c.label, r.cpuPerRequest(c)))
			}
		}
		fmt.Fprintf(w, "CPU, %% of one core (%d cores = %d%%): %s\n", runtime.NumCPU(), 100*runtime.NumCPU(), strings.Join(parts, ", "))
		fmt.Fprintf(w, "CPU µs per request: %s\n", strings.Join(per, ", "))
	}
}

// cpuPerRequest is a share's CPU time per request in microseconds: unlike
// throughput, it hardly depends on what else the machine was doing.
func (r *result) cpuPerRequest(c cpuShare) float64 {
	if len(r.lat) == 0 {
		return 0
	}
	return c.pct / 100 * r.elapsed.Seconds() * 1e6 / float64(len(r.lat))
}

// benchLine is one machine-readable line of key=value pairs.
func (r *result) benchLine(c int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "BENCH phase=%s c=%d duration_s=%.2f requests=%d errors=%d error_rate=%.4f rps=%.1f mean_ms=%s p50_ms=%s p90_ms=%s p99_ms=%s max_ms=%s",
		r.phase, c, r.elapsed.Seconds(), r.requests(), r.errors, r.errorRate(), r.rps(), ms(r.mean()),
		ms(percentile(r.lat, 0.50)), ms(percentile(r.lat, 0.90)), ms(percentile(r.lat, 0.99)), ms(percentile(r.lat, 1)))
	if r.resourcesPerRequest > 0 {
		fmt.Fprintf(&b, " resources_per_request=%d resources_per_s=%.1f", r.resourcesPerRequest, r.resourcesPerSecond())
	}
	for _, s := range r.cpu {
		label := strings.ReplaceAll(s.label, "-", "_")
		fmt.Fprintf(&b, " cpu_%s_pct=%.0f", label, s.pct)
		if s.label != "iowait" && s.label != "machine-busy" {
			fmt.Fprintf(&b, " cpu_%s_us_per_req=%.0f", label, r.cpuPerRequest(s))
		}
	}
	return b.String()
}
