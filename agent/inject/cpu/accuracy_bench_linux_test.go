package cpu

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent/internal/procfs"
	"github.com/turbulence-sre/turbulence/agent/worker"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

const (
	accuracySettle = 2 * time.Second // the settle target
	accuracyWindow = 3 * time.Second
	benchCPU       = 0
)

// BenchmarkCPUAccuracy measures the load our worker holds on one pinned
// core at 10…90 %, alone and with a busy process competing for the same
// core, side by side with `stress-ng --cpu 1 --cpu-load P` under the same
// conditions (when stress-ng is installed; make bench installs it). Each
// sub-benchmark settles for 2 s, then measures the process's own CPU time
// over 3 s from /proc; it reports the load achieved and its error in
// points. Run with -benchtime 1x: one measurement per case.
func BenchmarkCPUAccuracy(b *testing.B) {
	stressNG, _ := exec.LookPath("stress-ng")
	for _, contended := range []bool{false, true} {
		cond := "alone"
		if contended {
			cond = "contended"
		}
		for _, load := range []int{10, 25, 50, 75, 90} {
			b.Run(fmt.Sprintf("turbulence/%s/%d%%", cond, load), func(b *testing.B) {
				if contended {
					startCompetitor(b)
				}
				p, err := worker.Start(os.Args[0], worker.Spec{FaultID: "bench", Cores: 1, LoadPercent: load, CPUs: []int{benchCPU}, Deadline: time.Now().Add(time.Minute)})
				if err != nil {
					b.Fatal(err)
				}
				defer func() { _ = p.Stop(context.Background()) }()
				report(b, load, measure(b, []int{p.Pid()}))
			})
			b.Run(fmt.Sprintf("stress-ng/%s/%d%%", cond, load), func(b *testing.B) {
				if stressNG == "" {
					b.Skip("stress-ng is not installed (apt-get install stress-ng)")
				}
				if contended {
					startCompetitor(b)
				}
				cmd := exec.Command(stressNG, "--cpu", "1", "--cpu-load", strconv.Itoa(load),
					"--taskset", strconv.Itoa(benchCPU), "--timeout", "30s", "--quiet")
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
				// stress-ng runs its stressor in a child process.
				var kids []int
				deadline := time.Now().Add(5 * time.Second)
				for len(kids) == 0 && time.Now().Before(deadline) {
					kids = children(cmd.Process.Pid)
					time.Sleep(20 * time.Millisecond) // waiting for stress-ng to fork
				}
				if len(kids) == 0 {
					b.Fatal("stress-ng started no stressor process")
				}
				report(b, load, measure(b, kids))
			})
		}
	}
}

// startCompetitor runs a process that wants all of benchCPU for the rest
// of the sub-benchmark: a worker at 100 % on that core.
func startCompetitor(b *testing.B) {
	p, err := worker.Start(os.Args[0], worker.Spec{FaultID: "competitor", Cores: 1, LoadPercent: 100, CPUs: []int{benchCPU}, Deadline: time.Now().Add(time.Minute)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Stop(context.Background()) })
}

// measure waits accuracySettle, then returns the CPU time the processes
// used over accuracyWindow, in percent of one core.
func measure(b *testing.B, pids []int) float64 {
	b.Helper()
	time.Sleep(accuracySettle) // the settle time under test, not synchronisation
	before, t0 := cpuTicks(b, pids), time.Now()
	time.Sleep(accuracyWindow) // the measurement window
	after, t1 := cpuTicks(b, pids), time.Now()
	used := time.Duration(after-before) * time.Second / procfs.UserHZ
	return 100 * float64(used) / float64(t1.Sub(t0))
}

func cpuTicks(b *testing.B, pids []int) uint64 {
	var sum uint64
	for _, pid := range pids {
		st, err := procfs.ReadStat("/proc", pid)
		if err != nil {
			b.Fatalf("read /proc/%d/stat: %v", pid, err)
		}
		sum += st.CPUTicks
	}
	return sum
}

func children(parent int) []int {
	pids, _ := procfs.PIDs("/proc")
	var out []int
	for _, pid := range pids {
		if st, err := procfs.ReadStat("/proc", pid); err == nil && st.PPID == parent {
			out = append(out, pid)
		}
	}
	return out
}

func report(b *testing.B, target int, achieved float64) {
	for b.Loop() {
		// One measurement per case; its figures are the result.
	}
	b.ReportMetric(achieved, "load-%")
	b.ReportMetric(math.Abs(achieved-float64(target)), "err-points")
}

// BenchmarkCPUHostUtilization measures host-utilisation mode: the whole
// host's CPU, as /proc/stat counts it, held at 30/60/90 %, with the host
// otherwise quiet and with a process keeping one core busy (which the
// worker must leave room for). Reported over 3 s after a 2 s settle.
func BenchmarkCPUHostUtilization(b *testing.B) {
	for _, contended := range []bool{false, true} {
		cond := "quiet"
		if contended {
			cond = "one-core-busy"
		}
		targets := []int{30, 60, 90}
		if contended {
			// The busy core alone is 100/ncpu % of the host: only targets
			// above it can be reached.
			targets = []int{60, 75, 90}
		}
		for _, target := range targets {
			b.Run(fmt.Sprintf("%s/%d%%", cond, target), func(b *testing.B) {
				if contended {
					startCompetitor(b)
				}
				in := New(os.Args[0], "/proc")
				h, err := in.Apply(b.Context(), cpuFault("bench-host", &turbulencev1.CPUSpec{HostUtilizationPercent: uint32(target)}, time.Minute), time.Now().Add(time.Minute))
				if err != nil {
					b.Fatal(err)
				}
				defer func() { _ = h.Revert(context.Background()) }()
				time.Sleep(accuracySettle) // the settle time under test, not synchronisation
				before, err := procfs.ReadCPUTimes("/proc")
				if err != nil {
					b.Fatal(err)
				}
				time.Sleep(accuracyWindow) // the measurement window
				after, err := procfs.ReadCPUTimes("/proc")
				if err != nil {
					b.Fatal(err)
				}
				report(b, target, 100*float64(after.Busy-before.Busy)/float64(after.Total-before.Total))
			})
		}
	}
}
