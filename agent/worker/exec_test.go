package worker

import (
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/internal/stats"
)

// selfBinary is the test binary, which TestMain turns into a worker.
func selfBinary(t testing.TB) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("workers run on Linux only")
	}
	return os.Args[0]
}

func waitDone(t testing.TB, p *Process, timeout time.Duration) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(timeout):
		t.Fatalf("worker %d still running after %s", p.Pid(), timeout)
	}
}

func TestWorker_ExitsByItselfAtDeadline(t *testing.T) {
	bin := selfBinary(t)
	deadline := time.Now().Add(700 * time.Millisecond)
	spec := Spec{FaultID: "f-deadline", Cores: 1, LoadPercent: 20, Deadline: deadline}
	p, err := Start(bin, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = p.Stop(t.Context()) })

	wantArgs := []string{bin, "worker", "cpu", "--fault-id", "f-deadline", "--cores", "1", "--load", "20",
		"--deadline", strconv.FormatInt(deadline.UnixNano(), 10)}
	if !slices.Equal(p.Args(), wantArgs) {
		t.Errorf("argv = %q, want %q", p.Args(), wantArgs)
	}
	// The kernel's view of the argv: exactly the fixed words, no shell.
	if raw, err := os.ReadFile("/proc/" + strconv.Itoa(p.Pid()) + "/cmdline"); err == nil {
		got := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
		if !slices.Equal(got, wantArgs) {
			t.Errorf("/proc/%d/cmdline = %q, want %q", p.Pid(), got, wantArgs)
		}
	}
	if pgid, err := syscall.Getpgid(p.Pid()); err == nil && pgid != p.Pid() {
		t.Errorf("worker pgid = %d, want its own group %d", pgid, p.Pid())
	}

	// The test does nothing to stop it: the worker must leave on its own.
	waitDone(t, p, 10*time.Second)
	if err := p.Err(); err != nil {
		t.Errorf("worker exit = %v, want status 0", err)
	}
	if early := time.Until(deadline); early > 0 {
		t.Errorf("worker exited %s before its deadline", early)
	}
	if late := time.Since(deadline); late > 3*time.Second {
		t.Errorf("worker exited %s after its deadline", late)
	}
}

func TestProcess_StopEndsWorkerWithSIGTERM(t *testing.T) {
	bin := selfBinary(t)
	p, err := Start(bin, Spec{FaultID: "f-stop", Cores: 1, LoadPercent: 10, Deadline: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	start := time.Now()
	if err := p.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if took := time.Since(start); took >= StopGrace {
		t.Errorf("Stop took %s; the worker ignored SIGTERM", took)
	}
	// Status 0 once the worker's handler is installed; a worker stopped
	// during its start-up dies of the signal itself. Either way it is gone.
	if err := p.Err(); err != nil && err.Error() != "signal: terminated" {
		t.Errorf("worker exit after SIGTERM = %v, want status 0 or SIGTERM", err)
	}
	if err := p.Stop(t.Context()); err != nil {
		t.Errorf("second Stop = %v, want nil", err)
	}
	if err := syscall.Kill(p.Pid(), 0); err != syscall.ESRCH {
		t.Errorf("kill(%d, 0) = %v after Stop, want ESRCH (no zombie)", p.Pid(), err)
	}
}

func TestStart_RefusesInvalidSpec(t *testing.T) {
	t.Parallel()
	if _, err := Start("/nonexistent", Spec{FaultID: "f", Cores: 1, LoadPercent: 50}); err == nil {
		t.Fatal("Start without deadline succeeded, want an error")
	}
}

// measureLoad runs a worker and returns its CPU time per core over its wall
// time, in percent.
func measureLoad(t testing.TB, load, cores int, d time.Duration) float64 {
	t.Helper()
	start := time.Now()
	p, err := Start(selfBinary(t), Spec{FaultID: "f-load", Cores: cores, LoadPercent: load, Deadline: start.Add(d)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitDone(t, p, d+10*time.Second)
	wall := time.Since(start)
	st := p.cmd.ProcessState
	cpu := st.UserTime() + st.SystemTime()
	return 100 * float64(cpu) / float64(wall) / float64(cores)
}

func TestCPU_DutyCycleHitsTarget(t *testing.T) {
	// A loose band: CI machines have 2 noisy cores, shared with the other
	// test binaries of `go test ./...`, and this binary is built with
	// -race. A broken duty cycle misses every attempt; a neighbour's burst
	// of load misses one. BenchmarkCPUAccuracy gives the precise figures.
	var got []float64
	for range 3 {
		m := measureLoad(t, 50, 1, 1200*time.Millisecond)
		if m >= 30 && m <= 70 {
			return
		}
		got = append(got, m)
	}
	t.Errorf("measured load = %.1f%%, want 50%% (30..70) in one of 3 runs", got)
}

// BenchmarkCPUAccuracy reports how close the measured load of a worker is
// to its target; run with `go test -run '^$' -bench CPUAccuracy ./agent/worker`.
// The load is the worker's CPU time as its parent sees it when it is
// reaped (rusage of every thread), not the thread clock the worker
// regulates with; five workers of 2 s each per target, reported as the
// median and the spread (internal/stats). ns/op is suppressed: one op is
// a whole case.
func BenchmarkCPUAccuracy(b *testing.B) {
	for _, target := range []int{25, 50, 75} {
		b.Run(strconv.Itoa(target)+"pct", func(b *testing.B) {
			var loads []float64
			for b.Loop() {
				for range 5 {
					loads = append(loads, measureLoad(b, target, 1, 2*time.Second))
				}
			}
			s := stats.Summarize(loads)
			b.Logf("target %d %%: samples %.1f", target, loads)
			b.ReportMetric(s.Median, "measured_%")
			b.ReportMetric(s.Median-float64(target), "error_points")
			b.ReportMetric(s.Spread(), "spread_points")
			b.ReportMetric(float64(s.N), "samples")
			b.ReportMetric(0, "ns/op")
		})
	}
}
