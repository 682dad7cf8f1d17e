package cpu

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent/internal/procfs"
	"github.com/turbulence-sre/turbulence/agent/worker"
	"github.com/turbulence-sre/turbulence/internal/stats"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// The accuracy benchmarks judge a worker by a figure it does not
// regulate with: the worker holds its load with its own CPU clock (and
// host utilisation with /proc/stat), while the benchmark reads the CPU
// time of a cgroup it created for the worker (the kernel's accounting of
// every thread and child), or the per-process CPU time of the whole
// process tree. Each case is several consecutive windows after the
// settle time, reported as their median and spread; one "op" is a whole
// case, so ns/op is suppressed.
const (
	accuracySettle  = 2 * time.Second // the settle target
	accuracyWindow  = time.Second
	accuracySamples = 5
	benchCPU        = 0
)

// BenchmarkCPUAccuracy measures the load our worker holds on one pinned
// core at 10…90 %, alone and with a busy process competing for the same
// core, side by side with `stress-ng --cpu 1 --cpu-load P` under the same
// conditions and measured the same way (when stress-ng is installed; make
// bench installs it). Run with -benchtime 1x.
func BenchmarkCPUAccuracy(b *testing.B) {
	stressNG, _ := exec.LookPath("stress-ng")
	for _, contended := range []bool{false, true} {
		cond := "alone"
		if contended {
			cond = "contended"
		}
		for _, load := range []int{10, 25, 50, 75, 90} {
			b.Run(fmt.Sprintf("turbulence/%s/%d%%", cond, load), func(b *testing.B) {
				cg := testutil.NewCPUCgroup(b)
				if contended {
					startCompetitor(b)
				}
				p, err := worker.Start(os.Args[0], worker.Spec{FaultID: "bench", Cores: 1, LoadPercent: load, CPUs: []int{benchCPU}, Deadline: time.Now().Add(time.Minute)})
				if err != nil {
					b.Fatal(err)
				}
				defer func() { _ = p.Stop(context.Background()) }()
				if err := cg.Add(p.Pid()); err != nil {
					b.Fatalf("move the worker into the benchmark's cgroup: %v", err)
				}
				report(b, load, sampleLoad(b, cg))
			})
			b.Run(fmt.Sprintf("stress-ng/%s/%d%%", cond, load), func(b *testing.B) {
				if stressNG == "" {
					b.Skip("stress-ng is not installed (apt-get install stress-ng)")
				}
				cg := testutil.NewCPUCgroup(b)
				if contended {
					startCompetitor(b)
				}
				cmd := exec.Command(stressNG, "--cpu", "1", "--cpu-load", strconv.Itoa(load),
					"--taskset", strconv.Itoa(benchCPU), "--timeout", "30s", "--quiet")
				// Born in the cgroup, with every process it forks.
				cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cg.FD()}
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
				report(b, load, sampleLoad(b, cg))
			})
		}
	}
}

// startCompetitor runs a process that wants all of benchCPU for the rest
// of the sub-benchmark: a worker at 100 % on that core, outside the
// measured cgroup.
func startCompetitor(b *testing.B) {
	p, err := worker.Start(os.Args[0], worker.Spec{FaultID: "competitor", Cores: 1, LoadPercent: 100, CPUs: []int{benchCPU}, Deadline: time.Now().Add(time.Minute)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Stop(context.Background()) })
}

// sampleLoad waits accuracySettle, then returns the load of the cgroup
// over accuracySamples consecutive windows, each in percent of one core.
func sampleLoad(b *testing.B, cg *testutil.CPUCgroup) []float64 {
	b.Helper()
	time.Sleep(accuracySettle) // the settle time under test, not synchronisation
	usage := func() (time.Duration, time.Time) {
		u, err := cg.Usage()
		if err != nil {
			b.Fatal(err)
		}
		return u, time.Now()
	}
	var loads []float64
	u0, t0 := usage()
	for range accuracySamples {
		time.Sleep(accuracyWindow) // the measurement window
		u1, t1 := usage()
		loads = append(loads, 100*float64(u1-u0)/float64(t1.Sub(t0)))
		u0, t0 = u1, t1
	}
	return loads
}

// report prints and reports the median and spread of the samples and the
// median's error.
func report(b *testing.B, target int, loads []float64) {
	for b.Loop() {
		// One case per run; its samples are the result.
	}
	s := stats.Summarize(loads)
	b.Logf("target %d %%: samples %.1f (median %.1f, spread %.1f points)", target, loads, s.Median, s.Spread())
	b.ReportMetric(s.Median, "load-median-%")
	b.ReportMetric(s.Spread(), "spread-points")
	b.ReportMetric(math.Abs(s.Median-float64(target)), "err-points")
	b.ReportMetric(float64(s.N), "samples")
	b.ReportMetric(0, "ns/op") // suppressed: one op is a whole case
}

// treeTicks is the CPU time of every process on the host, from each
// one's /proc/<pid>/stat: the process tree's own accounting, not the
// per-CPU counters of /proc/stat the worker regulates with. A process
// that exits within a window takes its ticks with it, so this is a lower
// bound on a busy shared machine.
func treeTicks(b *testing.B) map[int]uint64 {
	pids, err := procfs.PIDs("/proc")
	if err != nil {
		b.Fatal(err)
	}
	out := make(map[int]uint64, len(pids))
	for _, pid := range pids {
		if st, err := procfs.ReadStat("/proc", pid); err == nil {
			out[pid] = st.CPUTicks
		}
	}
	return out
}

// BenchmarkCPUHostUtilization measures host-utilisation mode: the whole
// host's CPU held at 30/60/90 %, with the host otherwise quiet and with a
// process keeping one core busy (which the worker must leave room for).
// The load is judged from the process tree (treeTicks) over consecutive
// windows after the settle time, and the worker's own part from its
// cgroup; /proc/stat, the figure the worker regulates with, is logged
// beside them for comparison only.
func BenchmarkCPUHostUtilization(b *testing.B) {
	ncpu := float64(numCPU(b))
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
				cg := testutil.NewCPUCgroup(b)
				if contended {
					startCompetitor(b)
				}
				in := New(os.Args[0], "/proc")
				h, err := in.Apply(b.Context(), cpuFault("bench-host", &turbulencev1.CPUSpec{HostUtilizationPercent: uint32(target)}, time.Minute), time.Now().Add(time.Minute))
				if err != nil {
					b.Fatal(err)
				}
				defer func() { _ = h.Revert(context.Background()) }()
				var st turbulencev1.FaultStatus
				h.Observe(&st)
				// The worker and what it forked already; what it forks
				// later is born in the cgroup.
				for _, pid := range append([]int{int(st.GetWorkerPid())}, descendants(b, int(st.GetWorkerPid()))...) {
					if err := cg.Add(pid); err != nil {
						b.Fatalf("move worker process %d into the benchmark's cgroup: %v", pid, err)
					}
				}
				time.Sleep(accuracySettle) // the settle time under test, not synchronisation
				var host, own, procStat []float64
				t0, tree0, ps0 := time.Now(), treeTicks(b), cpuTimes(b)
				u0, _ := cg.Usage()
				for range accuracySamples {
					time.Sleep(accuracyWindow) // the measurement window
					t1, tree1, ps1 := time.Now(), treeTicks(b), cpuTimes(b)
					u1, _ := cg.Usage()
					var ticks uint64
					for pid, v := range tree1 {
						if v0, ok := tree0[pid]; ok && v >= v0 {
							ticks += v - v0
						}
					}
					wall := float64(t1.Sub(t0))
					cpuTime := float64(time.Duration(ticks) * time.Second / procfs.UserHZ)
					host = append(host, 100*cpuTime/(wall*ncpu))
					own = append(own, 100*float64(u1-u0)/(wall*ncpu))
					procStat = append(procStat, 100*float64(ps1.Busy-ps0.Busy)/float64(ps1.Total-ps0.Total))
					t0, tree0, ps0, u0 = t1, tree1, ps1, u1
				}
				report(b, target, host)
				b.ReportMetric(stats.Median(own), "worker-median-%host")
				b.Logf("/proc/stat (what the worker regulates with): median %.1f %%; the worker's own cgroup: median %.1f %% of the host",
					stats.Median(procStat), stats.Median(own))
			})
		}
	}
}

func cpuTimes(b *testing.B) procfs.CPUTimes {
	ct, err := procfs.ReadCPUTimes("/proc")
	if err != nil {
		b.Fatal(err)
	}
	return ct
}

func numCPU(b *testing.B) int {
	ct := cpuTimes(b)
	if ct.CPUs == 0 {
		b.Fatal("/proc/stat lists no CPU")
	}
	return ct.CPUs
}

// descendants returns every process below pid, from /proc.
func descendants(b *testing.B, pid int) []int {
	pids, err := procfs.PIDs("/proc")
	if err != nil {
		b.Fatal(err)
	}
	parent := map[int]int{}
	for _, p := range pids {
		if st, err := procfs.ReadStat("/proc", p); err == nil {
			parent[p] = st.PPID
		}
	}
	var out []int
	for _, p := range pids {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}
