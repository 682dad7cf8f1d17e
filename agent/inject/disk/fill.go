package disk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/policy"
	"github.com/turbulence-sre/turbulence/agent/sweep"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

const (
	// fillFileName is the fill file inside the fault's marked directory.
	fillFileName = "fill"
	// correctionRounds bounds the passes that bring an exact fill to its
	// target free space; one is nearly always enough.
	correctionRounds = 4
	// writeChunk is the unit of the write fallback, between two checks of
	// the context.
	writeChunk = 1 << 20
	// DefaultGuardInterval is how often a held fill checks that the host's
	// own writes have not brought the free space below the floor.
	DefaultGuardInterval = time.Second
)

// FillInjector applies disk_fill faults.
type FillInjector struct {
	procRoot string
	owner    inject.Owner
	pol      policy.Policy
	guardInt time.Duration
}

// FillOption tunes a FillInjector.
type FillOption func(*FillInjector)

// WithGuardInterval sets how often a held fill re-checks the minimum free
// space (default DefaultGuardInterval).
func WithGuardInterval(d time.Duration) FillOption {
	return func(in *FillInjector) { in.guardInt = d }
}

// NewFill returns a fill injector that resolves paths with the mount table
// under procRoot, marks its files as owner's (invariant 7) and keeps pol's
// minimum free space and excluded filesystem types.
func NewFill(procRoot string, owner inject.Owner, pol policy.Policy, opts ...FillOption) *FillInjector {
	in := &FillInjector{procRoot: procRoot, owner: owner, pol: pol, guardInt: DefaultGuardInterval}
	for _, o := range opts {
		o(in)
	}
	return in
}

var _ inject.Kind = (*FillInjector)(nil)

// Kind implements inject.Injector.
func (*FillInjector) Kind() string { return faultspec.KindDiskFill }

// Apply implements inject.Injector: it resolves the target filesystem and
// the fill size, refusing before anything is written (invariant 6), then
// makes the marked directory and allocates the fill. Any failure after
// that removes what was made.
func (in *FillInjector) Apply(ctx context.Context, f *turbulencev1.Fault, _ time.Time) (inject.Handle, error) {
	spec := f.GetSpec().GetDiskFill()
	if spec == nil {
		return nil, fmt.Errorf("fault %s has no disk_fill spec", f.GetId())
	}
	tg, err := resolveTarget(in.procRoot, "spec.disk_fill.path", spec.GetPath(), in.pol)
	if err != nil {
		return nil, err
	}
	plan, err := PlanFill(spec, tg.space, in.pol.Disk)
	if err != nil {
		return nil, err
	}
	// Invariant 3: the directory is in the journal before it is on disk,
	// so that recovery and the guardian know it with no other memory.
	undo := markedDirsUndo(filepath.Join(tg.mountPoint, sweep.MarkedDirName(sweep.FillDirPrefix, f.GetId())))
	if err := inject.RecordUndo(ctx, undo); err != nil {
		return nil, err
	}
	dir, err := sweep.CreateMarkedDir(tg.mountPoint, in.mark(sweep.FillDirPrefix, f.GetId()))
	if err != nil {
		return nil, fmt.Errorf("spec.disk_fill.path: %s: %w", tg.mountPoint, err)
	}
	h := &fillHandle{dir: dir, owner: in.owner.StateDir, undo: undo, tg: tg, plan: plan, stop: make(chan struct{}), stopped: make(chan struct{})}
	if plan.Note != "" {
		h.notes = append(h.notes, plan.Note)
	}
	if err := h.fill(ctx); err != nil {
		// Invariant 6: a failed apply leaves nothing behind.
		return nil, errors.Join(err, h.remove())
	}
	go h.guard(in.guardInt)
	return h, nil
}

// fillHandle is one held fill.
type fillHandle struct {
	dir, owner string
	undo       []byte
	tg         target
	plan       Plan
	stop       chan struct{}
	stopped    chan struct{}
	stopOnce   sync.Once

	mu       sync.Mutex
	file     *os.File // nil once reverted
	size     uint64   // the file's length
	notes    []string
	writes   bool // fallocate unsupported: grown by writing
	reverted bool
}

// fill makes the fill file and brings it to the plan.
func (h *fillHandle) fill(ctx context.Context) error {
	f, err := os.OpenFile(filepath.Join(h.dir, fillFileName), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create the fill file: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.file = f
	if err := h.resizeLocked(ctx, h.plan.Bytes); err != nil {
		return err
	}
	// Correct against what statfs says now: the filesystem's metadata for
	// the file, and rounding, move the free space by a few blocks.
	block := max(h.tg.space.Block, 1)
	for range correctionRounds {
		sp, _, err := statSpace(h.dir)
		if err != nil {
			return fmt.Errorf("statfs after the fill: %w", err)
		}
		want := h.size
		switch {
		case sp.Avail < h.plan.Floor:
			// Invariant 4: never below the floor, whatever the metadata.
			want = h.size - min(h.size, roundUp(h.plan.Floor-sp.Avail, block))
		case h.plan.Exact && sp.Avail >= h.plan.WantAvail+block:
			grow := (sp.Avail - h.plan.WantAvail) / block * block
			grow = min(grow, (sp.Avail-h.plan.Floor)/block*block)
			want = h.size + grow
		case h.plan.Exact && sp.Avail+block <= h.plan.WantAvail:
			want = h.size - min(h.size, roundUp(h.plan.WantAvail-sp.Avail, block))
		}
		if want == h.size {
			break
		}
		if err := h.resizeLocked(ctx, want); err != nil {
			return err
		}
	}
	return nil
}

// resizeLocked makes the fill file size bytes long, allocated. Caller
// holds h.mu.
func (h *fillHandle) resizeLocked(ctx context.Context, size uint64) error {
	if size <= h.size {
		if err := h.file.Truncate(int64(size)); err != nil {
			return fmt.Errorf("shrink the fill file to %s: %w", iec(size), err)
		}
		h.size = size
		return nil
	}
	if !h.writes {
		err := allocate(h.file, size)
		if err == nil {
			h.size = size
			return nil
		}
		if !errors.Is(err, errNoFallocate) {
			return fmt.Errorf("fallocate %s: %w", iec(size), err)
		}
		h.writes = true
		h.notes = append(h.notes, fmt.Sprintf("fallocate unsupported on %s: filled by writing", h.tg.fsType))
	}
	return h.writeToLocked(ctx, size)
}

// writeToLocked grows the file to size by writing a non-zero pattern, so
// that a compressing or deduplicating filesystem cannot fold it away.
func (h *fillHandle) writeToLocked(ctx context.Context, size uint64) error {
	buf := make([]byte, writeChunk)
	for i := range buf {
		buf[i] = byte(i*131 + i>>8*7 + 1)
	}
	for h.size < size {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("fill interrupted at %s of %s: %w", iec(h.size), iec(size), err)
		}
		n := min(uint64(len(buf)), size-h.size)
		if _, err := h.file.WriteAt(buf[:n], int64(h.size)); err != nil {
			return fmt.Errorf("write the fill file at %s: %w", iec(h.size), err)
		}
		h.size += n
	}
	return h.file.Sync() // so the space is taken now, not at writeback
}

// guard gives space back while the fill holds whenever the host's own
// writes bring the available space below the floor (invariant 4: the
// fault yields to the host, never the host to the fault).
func (h *fillHandle) guard(every time.Duration) {
	defer close(h.stopped)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-tick.C:
		}
		h.mu.Lock()
		if h.file != nil && h.size > 0 {
			if sp, _, err := statSpace(h.dir); err == nil && sp.Avail < h.plan.Floor {
				give := min(h.size, roundUp(h.plan.Floor-sp.Avail, max(h.tg.space.Block, 1)))
				if err := h.resizeLocked(context.Background(), h.size-give); err == nil {
					h.notes = append(h.notes, fmt.Sprintf("gave back %s at %s: the host's own writes brought the free space below the minimum of %s (%s)",
						iec(give), time.Now().UTC().Format(time.RFC3339), iec(h.plan.Floor), h.plan.FloorRule))
				}
			}
		}
		h.mu.Unlock()
	}
}

// Revert removes the fill file and its marked directory and fsyncs the
// mount root, so that the space is back before it returns. Idempotent.
func (h *fillHandle) Revert(context.Context) error {
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.stopped
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.remove(); err != nil {
		return err
	}
	h.reverted = true
	return nil
}

// remove closes and removes everything of the fill. It may run again after
// a failure.
func (h *fillHandle) remove() error {
	if h.file != nil {
		_ = h.file.Close() // the removal below is what gives the space back
		h.file = nil
		h.size = 0
	}
	return sweep.RemoveMarkedDir(h.dir, h.owner)
}

// Observe reports the bytes the fill holds and the filesystem's space.
func (h *fillHandle) Observe(st *turbulencev1.FaultStatus) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ds := &turbulencev1.DiskStats{MountPoint: h.tg.mountPoint, TargetBytes: h.plan.Bytes, Notes: append([]string(nil), h.notes...)}
	if h.file != nil {
		if n, err := allocatedBytes(h.file); err == nil {
			ds.FilledBytes = n
		}
	}
	if sp, _, err := statSpace(h.tg.mountPoint); err == nil {
		ds.FilesystemBytes, ds.AvailableBytes = sp.Size, sp.Avail
	}
	st.Disk = ds
}

// Done is nil: a fill never ends by itself.
func (*fillHandle) Done() <-chan struct{} { return nil }

// Err is nil: a fill never ends by itself.
func (*fillHandle) Err() error { return nil }

// Undo implements inject.Handle: recovery removes the marked directory.
func (h *fillHandle) Undo() []byte { return h.undo }

// mark is the marker of a directory of this injector's.
func (in *FillInjector) mark(prefix, faultID string) sweep.Mark {
	return sweep.Mark{Prefix: prefix, FaultID: faultID, Owner: in.owner.StateDir, Agent: in.owner.AgentID}
}

// Guarded implements inject.Kind: a fill has no worker, so a guardian
// removes it if the agent cannot.
func (*FillInjector) Guarded() bool { return true }

// Recover implements inject.Kind: it removes the fault's marked directory.
// With no undo record nothing was made (the record comes first).
func (in *FillInjector) Recover(_ context.Context, r inject.Recorded) error {
	return removeRecordedDirs(r, in.owner)
}

// Sweep implements inject.Kind: this owner's fill directories that no open
// fault names; other owners' are reported.
func (in *FillInjector) Sweep(_ context.Context, open []inject.Recorded) (inject.Swept, error) {
	return sweepDirs(in.procRoot, in.owner, sweep.FillDirPrefix, open)
}
