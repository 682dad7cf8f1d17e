package cpu

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/internal/procfs"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func cpuFault(id string, spec *turbulencev1.CPUSpec, d time.Duration) *turbulencev1.Fault {
	return &turbulencev1.Fault{Id: id, Spec: &turbulencev1.FaultSpec{
		Duration: durationpb.New(d),
		Kind:     &turbulencev1.FaultSpec_Cpu{Cpu: spec},
	}}
}

func TestInjector_AppliesWorkerAndReverts(t *testing.T) {
	in := New(os.Args[0], "/proc")
	in.numCPU = func() int { return 1 } // cores 0 = all CPUs; keep the test machine usable
	m := inject.NewManager(slog.New(slog.NewTextHandler(io.Discard, nil)), in)
	defer m.Close(inject.ReasonAgentStopping)

	st, err := m.Apply(t.Context(), cpuFault("f-cpu", &turbulencev1.CPUSpec{LoadPercent: 60}, time.Minute))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	pid := int(st.GetWorkerPid())
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		t.Fatalf("Apply status worker_pid = %d, want a live process", pid)
	}
	var measured float64
	deadline := time.Now().Add(10 * time.Second)
	for measured == 0 && time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond) // polling interval
		if held := m.Held(); len(held) == 1 {
			measured = held[0].GetMeasuredCpuPercent()
		}
	}
	if measured <= 0 || measured > 110 {
		t.Errorf("measured_cpu_percent = %v, want a positive figure near 60", measured)
	}

	st, err = m.Revert(t.Context(), "f-cpu", inject.ReasonRevertRequested)
	if err != nil || st.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTED {
		t.Fatalf("Revert = %v, %v, want REVERTED", st, err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("kill(%d, 0) after revert = %v, want ESRCH", pid, err)
	}
}

func TestInjector_HostUtilizationStartsWorkerPerCPU(t *testing.T) {
	t.Parallel()
	in := New(os.Args[0], "/proc", WithNice(5))
	in.numCPU = func() int { return 2 }
	h, err := in.Apply(t.Context(), cpuFault("f-host", &turbulencev1.CPUSpec{HostUtilizationPercent: 20}, time.Minute), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatalf("Apply(host_utilization_percent): %v", err)
	}
	defer func() { _ = h.Revert(context.Background()) }()
	var st turbulencev1.FaultStatus
	h.Observe(&st)
	args, err := procfs.Cmdline("/proc", int(st.GetWorkerPid()))
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(args, " ")
	for _, want := range []string{"--cores 2", "--host-util 20", "--nice 5"} {
		if !strings.Contains(joined, want) {
			t.Errorf("worker argv %q lacks %q", joined, want)
		}
	}
	if strings.Contains(joined, "--load") {
		t.Errorf("worker argv %q has --load in host-utilisation mode", joined)
	}
}
