package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const relayOutput = `== machine
date:     2026-12-07 02:30:00 UTC
commit:   abc
BENCH phase=delivery subs=100 fan=1 writers=32 writes_per_s=700 events_per_s=600 missing=0 dups=0 reordered=0 gaps=0 events=10 tag=relay-herald.1.closed
BENCH phase=delivery subs=100 fan=1 writers=32 writes_per_s=1000 events_per_s=1000 missing=0 dups=0 reordered=0 gaps=0 events=10 tag=relay-relay.1.closed
BENCH phase=delivery subs=100 fan=1 rate=100 xacts_per_event=3.5 events=5 missing=1 tag=relay-herald.1.light
BENCH phase=delivery subs=100 fan=1 rate=100 xacts_per_event=2 events=5 tag=relay-relay.1.light
`

// TestRelayRatios: Herald / relay per round, with each figure's target.
func TestRelayRatios(t *testing.T) {
	r, err := parse(strings.NewReader(relayOutput))
	require.NoError(t, err)
	var b strings.Builder
	writeRelay(&b, r)
	md := b.String()
	require.Contains(t, md, "| closed loop, 32 writers: writes/s | 700.0 [700.0–700.0] | 1,000.0 [1,000.0–1,000.0] | 0.70 [0.70–0.70] | ≥ 0.7× | met |")
	require.Contains(t, md, "| events delivered/s in that window | 600.0 [600.0–600.0] | 1,000.0 [1,000.0–1,000.0] | 0.60 [0.60–0.60] | ≥ 0.7× | **not met** |")
	require.Contains(t, md, "| PostgreSQL transactions per event at 100 writes/s | 3.50 [3.50–3.50] | 2.00 [2.00–2.00] | 1.75 [1.75–1.75] | ≤ 2.0 | **not met** |")
	require.Contains(t, md, "herald: 15 events checked, 1 missing")
}

func TestSpliceSection(t *testing.T) {
	report := "# R\n\n## A\n\n" + relayHeading + "\n\nold\n\n## Notes from the run\n\nn\n"
	got := spliceSection(report, relayHeading+"\n\nnew\n\n")
	require.Equal(t, "# R\n\n## A\n\n"+relayHeading+"\n\nnew\n\n## Notes from the run\n\nn\n", got)
	got = spliceSection("# R\n\n## Notes from the run\n", relayHeading+"\n\nnew\n\n")
	require.Equal(t, "# R\n\n"+relayHeading+"\n\nnew\n\n## Notes from the run\n", got)
}
