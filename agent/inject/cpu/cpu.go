package cpu

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/inject/workerkind"
	"github.com/turbulence-sre/turbulence/agent/worker"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Injector applies CPU faults by starting workers.
type Injector struct {
	// Lifecycle recovers and sweeps CPU workers (Kind).
	workerkind.Lifecycle
	binary   string
	procRoot string
	numCPU   func() int
	nice     int
}

// Option configures an Injector.
type Option func(*Injector)

// WithNice sets the nice level of the workers (the policy's worker_nice).
func WithNice(n int) Option { return func(in *Injector) { in.nice = n } }

// WithOwner names the agent whose workers these are (invariant 7): its
// state directory goes into every worker's argv.
func WithOwner(o inject.Owner) Option { return func(in *Injector) { in.Owner = o } }

// New returns a CPU injector that re-executes binary as its worker and
// reads worker CPU time under procRoot (normally "/proc").
func New(binary, procRoot string, opts ...Option) *Injector {
	in := &Injector{binary: binary, procRoot: procRoot, numCPU: runtime.NumCPU,
		Lifecycle: workerkind.Lifecycle{Word: "cpu", Binary: binary, ProcRoot: procRoot}}
	for _, o := range opts {
		o(in)
	}
	return in
}

var _ inject.Kind = (*Injector)(nil)

// Kind implements inject.Injector.
func (*Injector) Kind() string { return faultspec.KindCPU }

// Apply implements inject.Injector: it starts one worker whose own deadline
// is the fault's, so that it ends even if the agent stalls (invariant 1).
func (in *Injector) Apply(_ context.Context, f *turbulencev1.Fault, deadline time.Time) (inject.Handle, error) {
	spec := f.GetSpec().GetCpu()
	if spec == nil {
		return nil, fmt.Errorf("fault %s has no cpu spec", f.GetId())
	}
	ws := worker.Spec{
		FaultID:         f.GetId(),
		Owner:           in.Owner.StateDir,
		Cores:           int(spec.GetCores()),
		LoadPercent:     int(spec.GetLoadPercent()),
		HostUtilPercent: int(spec.GetHostUtilizationPercent()),
		Deadline:        deadline,
		Nice:            in.nice,
	}
	if ws.HostUtilPercent > 0 {
		// Host-utilisation mode: the worker needs a thread per CPU to be
		// able to fill whatever gap the rest of the host leaves.
		ws.LoadPercent, ws.Cores = 0, 0
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
	now := time.Now()
	h := &handle{life: in.Lifecycle, proc: p, target: float64(ws.LoadPercent), started: now}
	h.meter = newMeter(in.procRoot, p.Pid(), ws.Cores, now)
	if ws.HostUtilPercent > 0 {
		// What was asked is the whole host's load, so that is what is
		// measured and judged.
		h.target = float64(ws.HostUtilPercent)
		h.meter = newHostMeter(in.procRoot, now)
	}
	return h, nil
}

const (
	// SettleTime is how long a CPU fault has to reach its target before a
	// miss is reported as degraded.
	SettleTime = 2 * time.Second
	// DegradedTolerance is how far, in points, the measured load may be
	// from the target before the fault is reported as degraded.
	DegradedTolerance = 5.0
	// minJudgedWindow: a figure over a shorter window is mostly /proc's
	// 10 ms tick rounding and is not judged.
	minJudgedWindow = time.Second
)

// handle is one running CPU worker.
type handle struct {
	life    workerkind.Lifecycle
	proc    *worker.Process
	meter   sampler
	target  float64
	started time.Time

	mu       sync.Mutex
	degraded bool // the latest verdict; kept while windows are too short to judge
}

// Revert stops the worker and waits for it (SIGTERM, then SIGKILL).
func (h *handle) Revert(ctx context.Context) error { return h.proc.Stop(ctx) }

// Undo names the worker for recovery (workerkind.Undo).
func (h *handle) Undo() []byte { return h.life.Encode(workerkind.Undo{WorkerPID: h.proc.Pid()}) }

// Observe reports the worker's pid and its measured load.
func (h *handle) Observe(st *turbulencev1.FaultStatus) {
	st.WorkerPid = int32(h.proc.Pid())
	select {
	case <-h.proc.Done():
		st.MeasuredCpuPercent = 0
	default:
		now := time.Now()
		st.MeasuredCpuPercent = h.meter.sample(now)
		st.Degraded = h.judge(now, st.MeasuredCpuPercent, h.meter.lastWindow())
	}
}

// judge returns whether the fault is degraded: settled, yet measured more
// than DegradedTolerance points from its target over a window long enough
// to trust. A fault that misses its target is never a silent success.
func (h *handle) judge(now time.Time, measured float64, window time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now.Sub(h.started) >= SettleTime && window >= minJudgedWindow {
		h.degraded = math.Abs(measured-h.target) > DegradedTolerance
	}
	return h.degraded
}

// Done is closed when the worker exited.
func (h *handle) Done() <-chan struct{} { return h.proc.Done() }

// Err says why the worker exited.
func (h *handle) Err() error { return h.proc.Err() }
