package cpu

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/worker"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// ErrHostUtilization refuses host_utilization_percent, which is not
// implemented yet.
var ErrHostUtilization = errors.New("spec.cpu.host_utilization_percent is not supported by this agent yet; use cores and load_percent")

// Injector applies CPU faults by starting workers.
type Injector struct {
	binary   string
	procRoot string
	numCPU   func() int
}

// New returns a CPU injector that re-executes binary as its worker and
// reads worker CPU time under procRoot (normally "/proc").
func New(binary, procRoot string) *Injector {
	return &Injector{binary: binary, procRoot: procRoot, numCPU: runtime.NumCPU}
}

var _ inject.Injector = (*Injector)(nil)

// Kind implements inject.Injector.
func (*Injector) Kind() string { return faultspec.KindCPU }

// Apply implements inject.Injector: it starts one worker whose own deadline
// is the fault's, so that it ends even if the agent stalls (invariant 1).
func (in *Injector) Apply(_ context.Context, f *turbulencev1.Fault, deadline time.Time) (inject.Handle, error) {
	spec := f.GetSpec().GetCpu()
	if spec == nil {
		return nil, fmt.Errorf("fault %s has no cpu spec", f.GetId())
	}
	if spec.GetHostUtilizationPercent() > 0 {
		return nil, ErrHostUtilization
	}
	ws := worker.Spec{
		FaultID:     f.GetId(),
		Cores:       int(spec.GetCores()),
		LoadPercent: int(spec.GetLoadPercent()),
		Deadline:    deadline,
	}
	for _, c := range spec.GetPinCpus() {
		ws.CPUs = append(ws.CPUs, int(c))
	}
	if ws.Cores == 0 {
		// cores 0 means all online CPUs, or the pinned list when given.
		ws.Cores = in.numCPU()
		if len(ws.CPUs) > 0 {
			ws.Cores = len(ws.CPUs)
		}
	}
	p, err := worker.Start(in.binary, ws)
	if err != nil {
		return nil, err // nothing started
	}
	return &handle{proc: p, meter: newMeter(in.procRoot, p.Pid(), ws.Cores, time.Now())}, nil
}

// handle is one running CPU worker.
type handle struct {
	proc  *worker.Process
	meter *meter
}

// Revert stops the worker and waits for it (SIGTERM, then SIGKILL).
func (h *handle) Revert(ctx context.Context) error { return h.proc.Stop(ctx) }

// Observe reports the worker's pid and its measured load.
func (h *handle) Observe(st *turbulencev1.FaultStatus) {
	st.WorkerPid = int32(h.proc.Pid())
	select {
	case <-h.proc.Done():
		st.MeasuredCpuPercent = 0
	default:
		st.MeasuredCpuPercent = h.meter.sample(time.Now())
	}
}

// Done is closed when the worker exited.
func (h *handle) Done() <-chan struct{} { return h.proc.Done() }

// Err says why the worker exited.
func (h *handle) Err() error { return h.proc.Err() }
