package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const searchOutput = `search: seeded 400 Patients with 10000 resources in 20.0 s (500 resources/s)
BENCH phase=search c=32 duration_s=1.0 requests=10 errors=0 rps=10 p99_ms=5 tag=seed
BENCH phase=search c=32 duration_s=10.0 requests=30000 errors=0 rps=3000.0 mean_ms=9 p50_ms=8 p90_ms=15 p99_ms=30.5 max_ms=50
BENCH phase=search-index resources=10000 index_bytes=1600000 index_bytes_per_resource=160
`

// TestSearchSection: the search phase's load, targets (the untagged line,
// not the seeding one) and index size reach the report.
func TestSearchSection(t *testing.T) {
	r, err := parse(strings.NewReader(searchOutput))
	require.NoError(t, err)
	var b strings.Builder
	writeReport(&b, r, "")
	md := b.String()
	require.Contains(t, md, "| patient-scoped search p99 < 25 ms | 14 | 30.50 ms | **not met** | over 32 clients, 10000 resources |")
	require.Contains(t, md, "| searches ≥ 2,000/s | 14 | 3,000/s | met |")
	require.Contains(t, md, "10000 resources of 400 Patients in 20.0 s (500 resources/s)")
	require.Contains(t, md, "160 bytes per resource")
	require.NotContains(t, md, "search: seeded", "the load line is not a note")
}

// TestSearchSectionBulkSeed: the load line of herald-load -bulk-seed ends
// with "by COPY", and the report says so rather than losing the load.
func TestSearchSectionBulkSeed(t *testing.T) {
	out := strings.Replace(searchOutput, "resources/s)\n", "resources/s) by COPY\n", 1)
	r, err := parse(strings.NewReader(out))
	require.NoError(t, err)
	var b strings.Builder
	writeReport(&b, r, "")
	md := b.String()
	require.Contains(t, md, "written by COPY")
	require.Contains(t, md, "10000 resources of 400 Patients in 20.0 s (500 resources/s)")
	require.NotContains(t, md, "search: seeded")
}
