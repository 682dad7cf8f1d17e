package memory

import (
	"flag"
	"math"
	"os"
	"testing"
	"time"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

var (
	benchHold  = flag.Duration("memory.hold", 3*time.Second, "BenchmarkMemory_Resident: how long to hold the target once settled (the issue's figure is 30s)")
	benchBytes = flag.Uint64("memory.bytes", 256<<20, "BenchmarkMemory_Resident: target resident size in bytes")
)

// BenchmarkMemory_Resident holds -memory.bytes (256 MiB) through the
// injector, waits for it to settle, then samples the worker's resident size
// every 100 ms for -memory.hold and reports the worst and the mean absolute
// error in percent of the target, and the time it took to settle.
//
//	go test -run '^$' -bench Memory_Resident -benchtime 1x ./agent/inject/memory
//	go test -run '^$' -bench Memory_Resident -benchtime 1x -args -memory.hold=30s ./agent/inject/memory
func BenchmarkMemory_Resident(b *testing.B) {
	b.Run("256MiB", func(b *testing.B) { holdResident(b, *benchBytes) })
	b.Run("25pct-of-total", func(b *testing.B) {
		mi, err := readMeminfo("/proc")
		if err != nil {
			b.Fatal(err)
		}
		holdResident(b, mi.Total/100*25)
	})
}

// holdResident holds want bytes and reports the figures.
func holdResident(b *testing.B, want uint64) {
	var worst, sum, settle float64
	var n int
	for b.Loop() {
		in := New(os.Args[0], "/proc")
		start := time.Now()
		h, err := in.Apply(b.Context(), memFault("f-bench", bytesSpec(want)), start.Add(*benchHold+time.Minute))
		if err != nil {
			b.Fatalf("Apply: %v", err)
		}
		observe := func() uint64 {
			var st turbulencev1.FaultStatus
			h.Observe(&st)
			return st.GetResidentBytes()
		}
		for !withinTolerance(observe(), want) {
			if time.Since(start) > 30*time.Second {
				_ = h.Revert(b.Context())
				b.Fatalf("resident size did not reach %d bytes ±1%% within 30s", want)
			}
			time.Sleep(10 * time.Millisecond) // polling interval
		}
		settle += time.Since(start).Seconds()
		tick := time.NewTicker(100 * time.Millisecond)
		for end := time.Now().Add(*benchHold); time.Now().Before(end); <-tick.C {
			e := 100 * math.Abs(float64(observe())-float64(want)) / float64(want)
			worst = max(worst, e)
			sum += e
			n++
		}
		tick.Stop()
		if err := h.Revert(b.Context()); err != nil {
			b.Fatalf("Revert: %v", err)
		}
	}
	b.ReportMetric(worst, "max_error_%")
	b.ReportMetric(sum/float64(max(n, 1)), "mean_error_%")
	b.ReportMetric(settle/float64(b.N), "settle_s")
}
