// Package heaptest measures, in tests, how much heap a piece of work makes
// the process hold at its peak.
package heaptest

import (
	"runtime"
	"time"
)

// PeakGrowth runs work and returns the highest heap in use while it ran,
// sampled every 2 ms, less the heap in use (after a GC) before it started.
// It is an estimate for bounds of many MiB, not a byte count.
func PeakGrowth(work func()) int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	base, peak := m.HeapInuse, m.HeapInuse
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	work()
	close(stop)
	<-sampled
	return int64(peak) - int64(base)
}
