package memory

import (
	"bufio"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/internal/stats"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

var (
	benchHold  = flag.Duration("memory.hold", 3*time.Second, "BenchmarkMemory_Resident: how long to hold the target once settled (the issue's figure is 30s)")
	benchBytes = flag.Uint64("memory.bytes", 256<<20, "BenchmarkMemory_Resident: target resident size in bytes")
)

// BenchmarkMemory_Resident holds -memory.bytes (256 MiB) through the
// injector, waits for it to settle, then samples the worker's resident
// size every 100 ms for -memory.hold and reports the median and the
// spread of the error in percent of the target, the worst error, and the
// time it took to settle.
//
// The worker regulates with its own /proc/self/statm (the kernel's RSS
// counters of its mm). The benchmark judges from outside it, with a
// different count: the Rss of /proc/<pid>/smaps_rollup, which the kernel
// computes by walking the worker's page tables when it is read. Settling
// is still detected through the injector (what the agent reports), and
// the two figures' largest disagreement is reported too.
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

// smapsRss reads the Rss line of /proc/<pid>/smaps_rollup, in bytes.
func smapsRss(b *testing.B, pid int32) uint64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Rss:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatalf("smaps_rollup Rss %q: %v", v, err)
			}
			return kb << 10
		}
	}
	b.Fatalf("/proc/%d/smaps_rollup has no Rss line", pid)
	return 0
}

// holdResident holds want bytes and reports the figures.
func holdResident(b *testing.B, want uint64) {
	var errs []float64
	var settle, disagree float64
	for b.Loop() {
		in := New(os.Args[0], "/proc")
		start := time.Now()
		h, err := in.Apply(b.Context(), memFault("f-bench", bytesSpec(want)), start.Add(*benchHold+time.Minute))
		if err != nil {
			b.Fatalf("Apply: %v", err)
		}
		var st turbulencev1.FaultStatus
		observe := func() uint64 {
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
		pid := st.GetWorkerPid()
		tick := time.NewTicker(100 * time.Millisecond)
		for end := time.Now().Add(*benchHold); time.Now().Before(end); <-tick.C {
			outside := smapsRss(b, pid)
			errs = append(errs, 100*(float64(outside)-float64(want))/float64(want))
			disagree = max(disagree, 100*math.Abs(float64(outside)-float64(observe()))/float64(want))
		}
		tick.Stop()
		if err := h.Revert(b.Context()); err != nil {
			b.Fatalf("Revert: %v", err)
		}
	}
	abs := make([]float64, len(errs))
	for i, e := range errs {
		abs[i] = math.Abs(e)
	}
	s := stats.Summarize(errs)
	b.Logf("target %d bytes: error from smaps_rollup over %d samples: median %+.3f %%, min %+.3f %%, max %+.3f %%; worker's own figure differs by at most %.3f %%",
		want, s.N, s.Median, s.Min, s.Max, disagree)
	b.ReportMetric(s.Median, "median_error_%")
	b.ReportMetric(s.Spread(), "spread_%")
	b.ReportMetric(stats.Percentile(abs, 100), "max_abs_error_%")
	b.ReportMetric(disagree, "own_vs_outside_%")
	b.ReportMetric(float64(s.N), "samples")
	b.ReportMetric(settle/float64(b.N), "settle_s")
	b.ReportMetric(0, "ns/op") // suppressed: one op is a whole hold
}
