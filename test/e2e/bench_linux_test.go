package e2e

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/agent/policy"
	"github.com/turbulence-sre/turbulence/controller/cli"
	"github.com/turbulence-sre/turbulence/internal/stats"
	"github.com/turbulence-sre/turbulence/test/internal/testbuild"
)

// BenchmarkCPUFault_ApplyLatencyAndLateness applies one 1 s CPU fault per
// iteration through turbctl, one after the other, and reports:
//
//   - apply latency: from the turbctl call to the moment the agent records
//     the worker as started (its applied_at), so it covers the CLI, the
//     raft commit, the dispatch over the agent's stream and the worker's
//     start;
//   - deadline lateness: from the fault's deadline to the worker's exit,
//     observed through a pidfd, so it is the kill switch's own delay.
//
// Run it with -benchtime 50x (make bench does) to have 50 samples.
func BenchmarkCPUFault_ApplyLatencyAndLateness(b *testing.B) {
	// 50 lifetimes per case are more new faults a minute than the default
	// policy allows (60): raise that limit for this agent only.
	// The workers are the agent binary as `make build` makes it, not this
	// test binary: the lateness includes the worker's exit, and the
	// kernel's teardown of a process grows with what it has mapped.
	agentBin := testbuild.BuildBinaries(b, b.TempDir(), "./agent/cmd/turbulence-agent")[0]
	f := startFleet(b, func(c *agent.Config) {
		p := policy.Default()
		p.MaxNewFaultsPerMinute = 1000
		c.Policy = &p
		c.WorkerBinary = agentBin
	})
	b.Run("idle", func(b *testing.B) { lifetimes(b, f) })
	b.Run("saturated", func(b *testing.B) {
		// Our own fault holds every CPU at 100 %: the kill switch must
		// still be on time when the host is as busy as we can make it.
		code, id, stderr := f.turbctl(b, "fault", "apply", "cpu", "--agent", f.agent.ID(),
			"--cores", "0", "--load", "100", "--duration", "10m")
		if code != cli.ExitOK {
			b.Fatalf("turbctl fault apply (saturating): exit %d:\n%s", code, stderr)
		}
		defer f.turbctl(b, "fault", "revert", id)
		lifetimes(b, f)
	})
}

// lifetimes runs one fault lifetime per iteration and reports the figures.
func lifetimes(b *testing.B, f *fleet) {
	var applyMS, lateMS []float64
	for b.Loop() {
		start := time.Now()
		code, id, stderr := f.turbctl(b, "fault", "apply", "cpu", "--agent", f.agent.ID(),
			"--cores", "1", "--load", "50", "--duration", "1s")
		if code != cli.ExitOK {
			b.Fatalf("turbctl fault apply: exit %d:\n%s", code, stderr)
		}
		st := f.held(id)
		for ; st.GetWorkerPid() == 0 || st.GetAppliedAt() == nil; st = f.held(id) {
			if time.Since(start) > waitLong {
				b.Fatalf("fault %s: worker not running after %s", id, waitLong)
			}
			time.Sleep(200 * time.Microsecond) // polling the agent's own view, not synchronising
		}
		applyMS = append(applyMS, ms(st.GetAppliedAt().AsTime().Sub(start)))

		exited, err := waitExit(int(st.GetWorkerPid()), waitLong)
		if err != nil {
			b.Fatalf("fault %s: %v", id, err)
		}
		lateMS = append(lateMS, ms(exited.Sub(st.GetDeadline().AsTime())))
	}
	b.StopTimer()
	b.ReportMetric(stats.Median(applyMS), "apply-p50-ms")
	b.ReportMetric(stats.Percentile(applyMS, 99), "apply-p99-ms")
	b.ReportMetric(stats.Median(lateMS), "late-p50-ms")
	b.ReportMetric(stats.Percentile(lateMS, 99), "late-p99-ms")
	b.ReportMetric(stats.Percentile(lateMS, 100), "late-max-ms")
	b.ReportMetric(float64(len(lateMS)), "samples")
	b.ReportMetric(0, "ns/op") // one op is a whole fault lifetime; its time says nothing
}

// waitExit blocks until process pid exits and returns when it did, using
// a pidfd so the moment is the kernel's, not a polling interval's. When it
// may (root), the waiting thread runs at real-time priority, so that on a
// saturated host the observer's own wake-up is not counted as lateness.
func waitExit(pid int, timeout time.Duration) (time.Time, error) {
	runtime.LockOSThread()
	if unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 2}, 0) == nil {
		defer func() {
			if unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_NORMAL}, 0) == nil {
				runtime.UnlockOSThread()
			} // else the thread stays locked and ends with the goroutine
		}()
	} else {
		defer runtime.UnlockOSThread()
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return time.Time{}, err
	}
	defer func() { _ = unix.Close(fd) }()
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(timeout.Milliseconds()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return time.Time{}, err
		}
		if n == 0 {
			return time.Time{}, unix.ETIMEDOUT
		}
		return time.Now(), nil
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
