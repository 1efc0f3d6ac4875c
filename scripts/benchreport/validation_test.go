package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// validationSample is bench.sh's validation phase, two rounds (the lines
// shortened); round 3 measured only the validating server.
const validationSample = `
== validation: Patient creates and 30 KB transactions, validating (herald) and not (herald -tags heraldnovalidate) in turn; 2 rounds, 2s warm-up + 8s measured each
BENCH phase=create c=32 duration_s=8.01 requests=24000 errors=0 error_rate=0.0000 rps=3000.0 mean_ms=10.00 p50_ms=9.00 p90_ms=13.00 p99_ms=18.00 max_ms=40.00 cpu_herald_pct=80 cpu_herald_us_per_req=220 cpu_postgres_pct=80 cpu_postgres_us_per_req=210 cpu_herald_load_pct=25 cpu_herald_load_us_per_req=70 cpu_other_pct=10 cpu_other_us_per_req=20 cpu_machine_busy_pct=195 cpu_iowait_pct=0 tag=validation-on.1
BENCH phase=transaction c=32 duration_s=8.20 requests=820 errors=0 error_rate=0.0000 rps=100.0 mean_ms=300.00 p50_ms=290.00 p90_ms=400.00 p99_ms=500.00 max_ms=600.00 resources_per_request=25 resources_per_s=2500.0 cpu_herald_pct=90 cpu_herald_us_per_req=9000 tag=validation-on.1
BENCH phase=create c=32 duration_s=8.01 requests=32000 errors=0 error_rate=0.0000 rps=4000.0 mean_ms=8.00 p50_ms=7.00 p90_ms=11.00 p99_ms=16.00 max_ms=30.00 cpu_herald_pct=80 cpu_herald_us_per_req=180 tag=validation-off.1
BENCH phase=transaction c=32 duration_s=8.20 requests=902 errors=0 error_rate=0.0000 rps=110.0 mean_ms=280.00 p50_ms=270.00 p90_ms=380.00 p99_ms=450.00 max_ms=550.00 resources_per_request=25 resources_per_s=2750.0 cpu_herald_pct=90 cpu_herald_us_per_req=8000 tag=validation-off.1
BENCH phase=create c=32 duration_s=8.01 requests=28000 errors=0 error_rate=0.0000 rps=3500.0 mean_ms=9.00 p50_ms=8.00 p90_ms=12.00 p99_ms=19.00 max_ms=35.00 cpu_herald_us_per_req=210 tag=validation-on.2
BENCH phase=transaction c=32 duration_s=8.20 requests=861 errors=0 error_rate=0.0000 rps=105.0 mean_ms=290.00 p50_ms=280.00 p90_ms=390.00 p99_ms=520.00 max_ms=610.00 resources_per_request=25 resources_per_s=2625.0 cpu_herald_us_per_req=9100 tag=validation-on.2
BENCH phase=create c=32 duration_s=8.01 requests=29600 errors=0 error_rate=0.0000 rps=3700.0 mean_ms=8.50 p50_ms=7.50 p90_ms=11.50 p99_ms=17.00 max_ms=33.00 cpu_herald_us_per_req=175 tag=validation-off.2
BENCH phase=transaction c=32 duration_s=8.20 requests=861 errors=0 error_rate=0.0000 rps=105.0 mean_ms=285.00 p50_ms=275.00 p90_ms=385.00 p99_ms=470.00 max_ms=560.00 resources_per_request=25 resources_per_s=2625.0 cpu_herald_us_per_req=8100 tag=validation-off.2
BENCH phase=create c=32 duration_s=8.01 requests=8000 errors=0 error_rate=0.0000 rps=1000.0 p50_ms=30.00 p99_ms=90.00 tag=validation-on.3
`

func TestValidationCosts(t *testing.T) {
	r, err := parse(strings.NewReader(sample + validationSample))
	require.NoError(t, err)
	_, ok := r.find("transaction")
	require.False(t, ok, "the tagged lines are not the main run's")
	require.Len(t, r.validationRuns(), 9)

	costs := r.validationCosts()
	require.Len(t, costs, 2)
	create := costs[0]
	require.Equal(t, "create", create.phase)
	require.Len(t, create.pairs, 2, "round 3 lacks the not-validating run")
	ratio := func(p validationPair) float64 { r, _ := p.ratio("rps"); return r }
	require.InDelta(t, 0.75, ratio(create.pairs[0]), 1e-9)
	require.InDelta(t, 3500.0/3700, ratio(create.pairs[1]), 1e-9)
	got, ok := create.ratio("rps")
	require.True(t, ok)
	require.InDelta(t, (0.75+3500.0/3700)/2, got, 1e-9, "the median of two is their mean")
	got, _ = create.ratio(cpuPerRequest)
	require.InDelta(t, (220.0/180+210.0/175)/2, got, 1e-9)
	_, ok = create.ratio("no_such_key")
	require.False(t, ok)
	p99, ok := create.median("p99_ms", true)
	require.True(t, ok)
	require.InDelta(t, 18.5, p99, 1e-9)

	tx := costs[1]
	require.Equal(t, "transaction", tx.phase)
	got, _ = tx.ratio("rps")
	require.InDelta(t, (100.0/110+1)/2, got, 1e-9)

	require.Equal(t, 2.0, median([]float64{3, 1, 2}))
	require.Zero(t, median(nil))
}

func TestValidationReport(t *testing.T) {
	r, err := parse(strings.NewReader(sample + validationSample))
	require.NoError(t, err)
	var b strings.Builder
	writeReport(&b, r, "")
	md := b.String()
	for _, want := range []string{
		"| Patient create with R4 validation at most 15% slower (throughput ratio ≥ 0.85) | 11 | 0.848× | **not met** | median of 2 rounds; herald CPU per request ×1.211 |",
		"| Patient create p99 < 20 ms with R4 validation | 11 | 18.50 ms | met | median of 2 rounds; without validation 16.50 ms |",
		"| 30 KB transaction with R4 validation at most 15% slower (throughput ratio ≥ 0.85) | 11 | 0.955× | met | median of 2 rounds; herald CPU per request ×1.124 |",
		"| 30 KB transaction p99 < 20 ms with R4 validation | 11 | 510.00 ms | **not met** | median of 2 rounds; without validation 460.00 ms |",
		"## Cost of R4 validation (issue 11)",
		"| Patient create | 2 | 3,250 | 3,850 | 0.848 | 0.750, 0.946 | – | – | 8.50 | 7.25 | 18.50 | 16.50 | 215 | 178 | 1.211 |",
		"| 30 KB transaction | 2 | 102 | 108 | 0.955 | 0.909, 1.000 | 2,562 | 2,688 | 285.00 | 272.50 | 510.00 | 460.00 | 9,050 | 8,050 | 1.124 |",
		"| 1 | validating | create | 32 | 8.0 | 24,000 | 0 | 3,000.0 | – | 9.00 | 13.00 | 18.00 | 40.00 | 220 | 210 | 70 | 20 | 195 |",
		"| 1 | not validating | transaction | 32 | 8.2 | 902 | 0 | 110.0 | 2,750 | 270.00 |",
		"| 3 | validating | create | 32 | 8.0 | 8,000 | 0 | 1,000.0 |",
	} {
		require.Contains(t, md, want)
	}

	// Without the phase: not measured, and no section.
	r, err = parse(strings.NewReader(sample))
	require.NoError(t, err)
	b.Reset()
	writeReport(&b, r, "")
	md = b.String()
	require.Contains(t, md, "| Patient create with R4 validation at most 15% slower (throughput ratio ≥ 0.85) | 11 | – | not measured |")
	require.Contains(t, md, "| 30 KB transaction p99 < 20 ms with R4 validation | 11 | – | not measured |")
	require.NotContains(t, md, "## Cost of R4 validation")
}
