package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCPUShareSurvivesExitedProcesses: a target matched by name counts
// what each of its processes used in the window. Another workload's
// backend that exits in the window used to take its whole lifetime's ticks
// out of the sum, so the target's share came out negative, shown as 0%.
func TestCPUShareSurvivesExitedProcesses(t *testing.T) {
	targets := []cpuTarget{{label: "postgres", comm: "postgres"}}
	before := cpuSample{ok: true, busy: 1000, targets: []map[int]int64{{10: 500, 11: 4000}}}
	// 10 ran 50 ticks, 11 exited after a long life, 12 started and ran 30.
	after := cpuSample{ok: true, busy: 1200, targets: []map[int]int64{{10: 550, 12: 30}}}
	shares := cpuUsage(targets, before, after, time.Second)
	require.Equal(t, "postgres", shares[0].label)
	require.InDelta(t, 80, shares[0].pct, 0.001, "ticks of 10 and 12, in percent of one core at 100 ticks/s")
}
