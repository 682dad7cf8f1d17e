package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/stats"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
	"github.com/turbulence-sre/turbulence/test/internal/testbuild"
)

// BenchmarkApplyWait measures `turbctl fault apply cpu` (which waits for
// the agent's verdict, pushed by the controller) as a user sees it: from
// the exec of the real turbctl binary to its exit, through a real
// one-node controller and a real agent whose worker is the agent binary.
// Beside it, when the worker process started, from outside: the
// starttime field of /proc/PID/stat of the worker minus that of turbctl
// (both in the kernel's clock ticks since boot, so 10 ms apart at
// USER_HZ 100, on one clock). The gap between the two is what turbctl
// spends after the work is done on the host: before issue 17 it polled
// every 100 ms. Each op is one whole apply; the fault is reverted, and
// its worker gone, before the next (make bench: -benchtime 50x).
func BenchmarkApplyWait(b *testing.B) {
	bins := testbuild.BuildBinaries(b, b.TempDir(), "./agent/cmd/turbulence-agent", "./controller/cmd/turbctl")
	agentBin, turbctl := bins[0], bins[1]
	f := startFleet(b, func(c *agent.Config) { c.WorkerBinary = agentBin })
	admin := f.srv.PKI.Admin
	// Each op makes two mutating calls (the apply, the revert) as one
	// identity; the controller allows 20 a second (controlapi's
	// DefaultWriteRate, burst 40), so ops are paced at under 10 a second
	// rather than hitting the limit. The pause is outside the timer.
	pace := time.NewTicker(110 * time.Millisecond)
	defer pace.Stop()
	var total, worker []time.Duration
	for b.Loop() {
		cmd := exec.Command(turbctl, "--controller", f.srv.Addr, "--ca", admin.CA, "--cert", admin.Cert, "--key", admin.Key,
			"fault", "apply", "cpu", "--agent", f.agent.ID(), "--cores", "1", "--load", "10", "--duration", "30s")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatalf("start turbctl: %v", err)
		}
		// Read while the process exists (it is not reaped before Wait).
		ctlTicks, err := startTicks(cmd.Process.Pid)
		if err != nil {
			b.Fatalf("turbctl start time: %v", err)
		}
		if err := cmd.Wait(); err != nil {
			b.Fatalf("turbctl fault apply: %v\n%s", err, stderr.String())
		}
		total = append(total, time.Since(start))
		b.StopTimer()
		id := strings.TrimSpace(stdout.String())
		st := f.held(id)
		if st.GetState() != turbulencev1.FaultState_FAULT_STATE_ACTIVE || st.GetWorkerPid() <= 0 {
			b.Fatalf("turbctl returned but agent holds fault %q as %v (worker %d)", id, st.GetState(), st.GetWorkerPid())
		}
		pid := st.GetWorkerPid()
		wTicks, err := startTicks(int(pid))
		if err != nil {
			b.Fatalf("worker %d start time: %v", pid, err)
		}
		worker = append(worker, time.Duration(wTicks-ctlTicks)*time.Second/userHZ)
		if _, err := f.api.RevertFault(b.Context(), &turbulencev1.RevertFaultRequest{RequestId: "revert-" + id, Id: id}); err != nil {
			b.Fatalf("revert %s: %v", id, err)
		}
		controllertest.WaitFor(b, waitLong, "worker "+strconv.Itoa(int(pid))+" to exit", func() bool { return !alive(pid) })
		<-pace.C
		b.StartTimer()
	}
	b.StopTimer()
	ms, wms := stats.Millis(total), stats.Millis(worker)
	b.ReportMetric(stats.Median(ms), "turbctl-p50-ms")
	b.ReportMetric(stats.Percentile(ms, 99), "turbctl-p99-ms")
	b.ReportMetric(stats.Median(wms), "worker-start-p50-ms")
	b.ReportMetric(stats.Percentile(wms, 99), "worker-start-p99-ms")
	b.ReportMetric(float64(len(ms)), "samples")
	b.ReportMetric(0, "ns/op") // one op is a whole apply
	b.Logf("turbctl exec→exit p50 %.1f ms p99 %.1f ms; worker started at +%.0f ms (p50) after turbctl (tick %d ms)",
		stats.Median(ms), stats.Percentile(ms, 99), stats.Median(wms), 1000/userHZ)
}

// startTicks returns field 22 of /proc/PID/stat: when the process
// started, in clock ticks since boot.
func startTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after its
	// closing parenthesis are plain.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	const starttime = 22 - 3 // fields[0] is field 3
	if len(fields) <= starttime {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields)+2)
	}
	return strconv.ParseInt(fields[starttime], 10, 64)
}

// userHZ is the unit of /proc/PID/stat's starttime: Linux reports it in
// USER_HZ, which is 100 on every architecture Go runs on.
const userHZ = 100
