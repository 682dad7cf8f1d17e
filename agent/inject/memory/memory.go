package memory

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/inject/workerkind"
	"github.com/turbulence-sre/turbulence/agent/policy"
	"github.com/turbulence-sre/turbulence/agent/worker"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

const (
	// DefaultReserveBytes is the memory the injector never takes, whatever
	// the policy allows: room for the kernel's own allocations, the agent
	// and an operator's SSH session while the fault holds.
	DefaultReserveBytes = 128 << 20
	// TolerancePercent is the promise: the resident size within 1 % of the
	// target for the whole hold.
	TolerancePercent = 1.0
	// settleGrace is the time after the ramp that the worker gets to reach
	// its target before the fault is marked degraded: process start-up and
	// the first page faults, on a busy host.
	settleGrace = 3 * time.Second
	// touchRate is a deliberately low page-touching rate (one thread, a
	// loaded or ballooned host) used to give large targets a longer grace.
	touchRate = 512 << 20 // bytes per second
)

// ErrNotEnoughMemory refuses a fault that would take memory the host does
// not have to give. It is wrapped with the field, the target and the limit.
var ErrNotEnoughMemory = errors.New("not enough memory")

// Injector applies memory faults by starting workers.
type Injector struct {
	// Lifecycle recovers and sweeps memory workers (Kind).
	workerkind.Lifecycle
	binary   string
	procRoot string
	nice     int
	reserve  uint64
	now      func() time.Time
}

// Option tunes an Injector.
type Option func(*Injector)

// WithNice runs every memory worker at nice level n (worker.MinNice ..
// worker.MaxNice). A positive level keeps the worker's page faults from
// competing with the host's own work for CPU; it does not change how much
// memory is held.
func WithNice(n int) Option { return func(in *Injector) { in.nice = n } }

// WithReserve sets the bytes of MemAvailable that no fault may take
// (default DefaultReserveBytes).
func WithReserve(bytes uint64) Option { return func(in *Injector) { in.reserve = bytes } }

// WithOwner names the agent whose workers these are (invariant 7): its
// state directory goes into every worker's argv.
func WithOwner(o inject.Owner) Option { return func(in *Injector) { in.Owner = o } }

// New returns a memory injector that re-executes binary as its worker and
// reads meminfo and the workers' statm under procRoot (normally "/proc").
func New(binary, procRoot string, opts ...Option) *Injector {
	in := &Injector{binary: binary, procRoot: procRoot, reserve: DefaultReserveBytes, now: time.Now,
		Lifecycle: workerkind.Lifecycle{Word: "memory", Binary: binary, ProcRoot: procRoot}}
	for _, o := range opts {
		o(in)
	}
	return in
}

var _ inject.Kind = (*Injector)(nil)

// Kind implements inject.Injector.
func (*Injector) Kind() string { return faultspec.KindMemory }

// Apply implements inject.Injector: it resolves and checks the target,
// then starts one worker whose own deadline is the fault's, so that it
// ends even if the agent stalls (invariant 1). A refusal starts nothing
// (invariant 6).
func (in *Injector) Apply(_ context.Context, f *turbulencev1.Fault, deadline time.Time) (inject.Handle, error) {
	spec := f.GetSpec().GetMemory()
	if spec == nil {
		return nil, fmt.Errorf("fault %s has no memory spec", f.GetId())
	}
	target, err := in.Target(spec)
	if err != nil {
		return nil, err
	}
	ws := worker.MemorySpec{
		FaultID:  f.GetId(),
		Owner:    in.Owner.StateDir,
		Bytes:    target,
		Deadline: deadline,
		Ramp:     spec.GetRamp().AsDuration(),
		Mlock:    spec.GetMlock(),
		Nice:     in.nice,
	}
	start := in.now()
	p, err := worker.Start(in.binary, ws)
	if err != nil {
		return nil, err // nothing started
	}
	return &handle{
		life:     in.Lifecycle,
		proc:     p,
		procRoot: in.procRoot,
		target:   target,
		settleAt: start.Add(settleTime(ws.Ramp, target)),
		now:      in.now,
	}, nil
}

// Target resolves spec to a byte count on this host and checks it against
// the memory the host has available, minus the reserve. The error names
// the spec field, what was asked and the limit.
func (in *Injector) Target(spec *turbulencev1.MemorySpec) (uint64, error) {
	mi, err := readMeminfo(in.procRoot)
	if err != nil {
		return 0, fmt.Errorf("resolve the memory target: %w", err)
	}
	field, asked := "spec.memory.bytes", fmt.Sprintf("%d bytes", spec.GetBytes())
	if pct := spec.GetPercentOfTotal(); pct > 0 {
		field, asked = "spec.memory.percent_of_total", fmt.Sprintf("%d %% of MemTotal %s", pct, iec(mi.Total))
	}
	target := policy.MemoryTarget(spec, mi.Total)
	if target == 0 {
		return 0, fmt.Errorf("%s: %s resolves to 0 bytes", field, asked)
	}
	var limit uint64
	if mi.Available > in.reserve {
		limit = mi.Available - in.reserve
	}
	if target > limit {
		return 0, fmt.Errorf("%w: %s: %s (%s) is more than the %s available to faults (MemAvailable %s minus the %s reserve)",
			ErrNotEnoughMemory, field, asked, iec(target), iec(limit), iec(mi.Available), iec(in.reserve))
	}
	return target, nil
}

// settleTime is how long after the start a worker may take to reach its
// target: the ramp, plus a grace for start-up and for touching the pages.
func settleTime(ramp time.Duration, target uint64) time.Duration {
	touch := time.Duration(float64(target) / touchRate * float64(time.Second))
	return ramp + settleGrace + touch
}

// handle is one running memory worker.
type handle struct {
	life     workerkind.Lifecycle
	proc     *worker.Process
	procRoot string
	target   uint64
	settleAt time.Time
	now      func() time.Time
}

// Revert stops the worker and waits for it (SIGTERM, then SIGKILL). The
// worker unmaps its memory as it exits.
func (h *handle) Revert(ctx context.Context) error { return h.proc.Stop(ctx) }

// Undo names the worker for recovery (workerkind.Undo).
func (h *handle) Undo() []byte { return h.life.Encode(workerkind.Undo{WorkerPID: h.proc.Pid()}) }

// Observe reports the worker's pid, its resident size and, after the
// settle time, whether that size misses the target by more than 1 %.
func (h *handle) Observe(st *turbulencev1.FaultStatus) {
	st.WorkerPid = int32(h.proc.Pid())
	select {
	case <-h.proc.Done():
		st.ResidentBytes = 0 // gone; a stale figure would claim memory is held
		return
	default:
	}
	rss, err := residentBytes(h.procRoot, h.proc.Pid())
	if err != nil {
		return // exited between the check and the read
	}
	st.ResidentBytes = rss
	if !h.now().Before(h.settleAt) && !withinTolerance(rss, h.target) {
		// L6: applied but not achieved is reported, never hidden.
		st.Degraded = true
	}
}

// Done is closed when the worker exited.
func (h *handle) Done() <-chan struct{} { return h.proc.Done() }

// Err says why the worker exited; an OOM kill reads "signal: killed".
func (h *handle) Err() error { return h.proc.Err() }

// withinTolerance reports whether rss is within TolerancePercent of target.
func withinTolerance(rss, target uint64) bool {
	return math.Abs(float64(rss)-float64(target)) <= float64(target)*TolerancePercent/100
}
