package disk

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/inject/workerkind"
	"github.com/turbulence-sre/turbulence/agent/internal/procfs"
	"github.com/turbulence-sre/turbulence/agent/policy"
	"github.com/turbulence-sre/turbulence/agent/sweep"
	"github.com/turbulence-sre/turbulence/agent/worker"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

const (
	// DefaultBlockSize and DefaultWorkers apply when the spec leaves them 0.
	DefaultBlockSize = 4096
	DefaultWorkers   = 1
	// DefaultScratchBytes is the scratch file size: large enough that
	// random offsets rarely repeat in a device's own cache, small enough
	// to lay down in well under a second on most storage.
	DefaultScratchBytes = 64 << 20
	// RateTolerancePercent is the promise: the measured rate within 10 %
	// of the target once settled.
	RateTolerancePercent = 10.0
	// settleTime is how long after the scratch file is laid down the load
	// gets before a miss marks it degraded: worker start-up and a full
	// measuring window.
	settleTime = 3 * time.Second
	// sampleEvery and rateWindow: the rate is measured over the last
	// rateWindow from /proc/<pid>/io samples taken every sampleEvery.
	sampleEvery = 250 * time.Millisecond
	rateWindow  = 2 * time.Second
)

// IOInjector applies disk_io faults by starting workers.
type IOInjector struct {
	// Lifecycle recovers and sweeps disk I/O workers (Kind).
	workerkind.Lifecycle
	binary   string
	procRoot string
	owner    inject.Owner
	pol      policy.Policy
	nice     int
	scratch  uint64
	now      func() time.Time
}

// IOOption tunes an IOInjector.
type IOOption func(*IOInjector)

// WithNice runs every disk I/O worker at nice level n.
func WithNice(n int) IOOption { return func(in *IOInjector) { in.nice = n } }

// WithScratchBytes sets the scratch file size (default DefaultScratchBytes).
func WithScratchBytes(n uint64) IOOption { return func(in *IOInjector) { in.scratch = n } }

// NewIO returns an I/O load injector that re-executes binary as its
// worker, reads the mount table and the workers' counters under procRoot,
// marks its scratch files as owner's and keeps pol's disk rules.
func NewIO(binary, procRoot string, owner inject.Owner, pol policy.Policy, opts ...IOOption) *IOInjector {
	in := &IOInjector{binary: binary, procRoot: procRoot, owner: owner, pol: pol, scratch: DefaultScratchBytes, now: time.Now,
		Lifecycle: workerkind.Lifecycle{Word: "disk-io", Binary: binary, ProcRoot: procRoot, Owner: owner}}
	for _, o := range opts {
		o(in)
	}
	return in
}

var _ inject.Kind = (*IOInjector)(nil)

// Kind implements inject.Injector.
func (*IOInjector) Kind() string { return faultspec.KindDiskIO }

// modeWord is the worker's --mode for a spec mode.
func modeWord(m turbulencev1.DiskIOMode) string {
	return strings.ToLower(strings.TrimPrefix(m.String(), "DISK_IO_MODE_"))
}

// Apply implements inject.Injector: it resolves the target filesystem,
// checks that the scratch file fits above the minimum free space, makes
// the marked directory, probes direct I/O and starts the worker, whose
// own deadline is the fault's (invariant 1).
func (in *IOInjector) Apply(ctx context.Context, f *turbulencev1.Fault, deadline time.Time) (inject.Handle, error) {
	spec := f.GetSpec().GetDiskIo()
	if spec == nil {
		return nil, fmt.Errorf("fault %s has no disk_io spec", f.GetId())
	}
	tg, err := resolveTarget(in.procRoot, "spec.disk_io.path", spec.GetPath(), in.pol)
	if err != nil {
		return nil, err
	}
	ws := worker.DiskIOSpec{
		FaultID:        f.GetId(),
		Owner:          in.owner.StateDir,
		Mode:           modeWord(spec.GetMode()),
		BytesPerSecond: spec.GetBytesPerSecond(),
		IOPS:           spec.GetIops(),
		BlockSize:      cmp.Or(spec.GetBlockSizeBytes(), DefaultBlockSize),
		Workers:        max(spec.GetWorkers(), DefaultWorkers),
		Deadline:       deadline,
		Nice:           in.nice,
	}
	bs := uint64(ws.BlockSize)
	ws.FileBytes = roundUp(max(in.scratch, 16*bs*uint64(ws.Workers)), bs)
	floor, rule := Floor(in.pol.Disk, tg.space.Size)
	// Invariant 4: the scratch file must not take the filesystem below
	// its minimum free space either.
	if tg.space.Avail < floor || tg.space.Avail-floor < ws.FileBytes {
		return nil, fmt.Errorf("%w: spec.disk_io.path: the %s scratch file would leave %s available, below the minimum free space of %s (%s)",
			ErrMinFree, iec(ws.FileBytes), iec(tg.space.Avail-min(tg.space.Avail, ws.FileBytes)), iec(floor), rule)
	}
	// Invariant 3: the directory is in the journal before it is on disk.
	dir := filepath.Join(tg.mountPoint, sweep.MarkedDirName(sweep.IODirPrefix, f.GetId()))
	if err := inject.RecordUndo(ctx, markedDirsUndo(dir)); err != nil {
		return nil, err
	}
	dir, err = sweep.CreateMarkedDir(tg.mountPoint, sweep.Mark{Prefix: sweep.IODirPrefix, FaultID: f.GetId(), Owner: in.owner.StateDir, Agent: in.owner.AgentID})
	if err != nil {
		return nil, fmt.Errorf("spec.disk_io.path: %s: %w", tg.mountPoint, err)
	}
	ws.File = filepath.Join(dir, worker.DiskIOScratchName)
	var notes []string
	if spec.GetDirect() {
		ok, err := probeDirect(ws.File, int(ws.BlockSize))
		if err != nil {
			return nil, errors.Join(fmt.Errorf("spec.disk_io.direct: probe O_DIRECT on %s: %w", tg.mountPoint, err), sweep.RemoveMarkedDir(dir, in.owner.StateDir))
		}
		ws.Direct = ok
		if !ok {
			notes = append(notes, fmt.Sprintf("direct I/O refused by %s (EINVAL) for %d-byte blocks: running buffered", tg.fsType, ws.BlockSize))
		}
	}
	p, err := worker.Start(in.binary, ws)
	if err != nil {
		return nil, errors.Join(err, sweep.RemoveMarkedDir(dir, in.owner.StateDir))
	}
	h := &ioHandle{
		life: in.Lifecycle, proc: p, procRoot: in.procRoot, dir: dir, owner: in.owner.StateDir, mount: tg.mountPoint, now: in.now,
		targetBPS: float64(ws.OpsPerSecond() * float64(ws.BlockSize)), targetIOPS: ws.OpsPerSecond(),
		direct: ws.Direct, blockSize: uint64(ws.BlockSize), notes: notes, stop: make(chan struct{}), stopped: make(chan struct{}),
	}
	go h.sample()
	return h, nil
}

// ioSample is one reading of the worker's counters.
type ioSample struct {
	at         time.Time
	bytes, ops uint64
}

// ioHandle is one running I/O load.
type ioHandle struct {
	life       workerkind.Lifecycle
	proc       *worker.Process
	procRoot   string
	dir, owner string
	mount      string
	now        func() time.Time
	targetBPS  float64
	targetIOPS float64
	direct     bool
	blockSize  uint64
	stop       chan struct{}
	stopped    chan struct{}
	stopOnce   sync.Once

	mu       sync.Mutex
	notes    []string
	readyAt  time.Time // zero until the scratch file is laid down
	samples  []ioSample
	bps, ops float64 // the last measured rates
	reverted bool
}

// sample reads the worker's counters every sampleEvery until the handle
// stops or the worker exits, and keeps the rate over the last rateWindow.
func (h *ioHandle) sample() {
	defer close(h.stopped)
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-h.proc.Done():
			return
		case <-tick.C:
		}
		h.takeSample()
	}
}

func (h *ioHandle) takeSample() {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.readyAt.IsZero() {
		// The rate counts the load, not the laying down of the file.
		if _, err := os.Stat(filepath.Join(h.dir, worker.DiskIOReadyName)); err != nil {
			return
		}
		h.readyAt = now
	}
	c, err := procfs.ReadIO(h.procRoot, h.proc.Pid())
	if err != nil {
		return // exited between two samples
	}
	// Operations are counted as bytes over the block size, not as system
	// calls: the Go runtime's own eventfd reads and writes (timer and
	// netpoll wake-ups) inflate syscr/syscw by hundreds per second, but
	// add only 8 bytes each to the byte counts.
	s := ioSample{at: now, bytes: c.RChar + c.WChar}
	s.ops = s.bytes / h.blockSize
	h.samples = append(h.samples, s)
	// Keep one sample at least rateWindow old: the window's start.
	for len(h.samples) > 2 && now.Sub(h.samples[1].at) >= rateWindow {
		h.samples = h.samples[1:]
	}
	first := h.samples[0]
	if dt := s.at.Sub(first.at).Seconds(); dt > 0 {
		h.bps = float64(s.bytes-first.bytes) / dt
		h.ops = float64(s.ops-first.ops) / dt
	}
}

// Revert stops the worker (SIGTERM, then SIGKILL) and waits for it, then
// removes the scratch file and its marked directory. Idempotent.
func (h *ioHandle) Revert(ctx context.Context) error {
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.stopped
	if err := h.proc.Stop(ctx); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reverted {
		return nil
	}
	if err := sweep.RemoveMarkedDir(h.dir, h.owner); err != nil {
		return err
	}
	h.reverted = true
	return nil
}

// Observe reports the worker and the measured rates and, once settled,
// whether they miss the target by more than RateTolerancePercent.
func (h *ioHandle) Observe(st *turbulencev1.FaultStatus) {
	st.WorkerPid = int32(h.proc.Pid())
	h.mu.Lock()
	ds := &turbulencev1.DiskStats{
		MountPoint:             h.mount,
		TargetBytesPerSecond:   h.targetBPS,
		TargetIops:             h.targetIOPS,
		MeasuredBytesPerSecond: h.bps,
		MeasuredIops:           h.ops,
		Direct:                 h.direct,
		Notes:                  append([]string(nil), h.notes...),
	}
	settled := !h.readyAt.IsZero() && !h.now().Before(h.readyAt.Add(settleTime))
	h.mu.Unlock()
	if sp, _, err := statSpace(h.mount); err == nil {
		ds.FilesystemBytes, ds.AvailableBytes = sp.Size, sp.Avail
	}
	select {
	case <-h.proc.Done():
		ds.MeasuredBytesPerSecond, ds.MeasuredIops = 0, 0 // gone; a stale rate would claim load
	default:
		if settled && h.targetIOPS > 0 && !withinRate(ds.MeasuredIops, h.targetIOPS) {
			// Applied but not achieved is reported, never hidden.
			st.Degraded = true
		}
	}
	st.Disk = ds
}

// withinRate reports whether got is within RateTolerancePercent of want.
func withinRate(got, want float64) bool {
	return math.Abs(got-want) <= want*RateTolerancePercent/100
}

// Done is closed when the worker exited.
func (h *ioHandle) Done() <-chan struct{} { return h.proc.Done() }

// Err says why the worker exited.
func (h *ioHandle) Err() error { return h.proc.Err() }

// Undo implements inject.Handle: recovery kills the worker and removes the
// marked directory.
func (h *ioHandle) Undo() []byte {
	return h.life.Encode(workerkind.Undo{WorkerPID: h.proc.Pid(), MarkedDirs: []string{h.dir}})
}

// Guarded implements inject.Kind: the worker ends at its deadline and dies
// with the agent, but its scratch directory does not; a guardian removes it
// when the agent cannot.
func (*IOInjector) Guarded() bool { return true }

// Sweep implements inject.Kind: this owner's orphan I/O workers, then its
// scratch directories that no open fault names.
func (in *IOInjector) Sweep(ctx context.Context, open []inject.Recorded) (inject.Swept, error) {
	w, werr := in.Lifecycle.Sweep(ctx, open)
	d, derr := sweepDirs(in.procRoot, in.owner, sweep.IODirPrefix, open)
	return inject.Swept{Removed: append(w.Removed, d.Removed...), Foreign: append(w.Foreign, d.Foreign...)}, errors.Join(werr, derr)
}
