package disk

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func ioFault(id string, spec *turbulencev1.DiskIOSpec) *turbulencev1.Fault {
	return &turbulencev1.Fault{Id: id, Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute),
		Kind: &turbulencev1.FaultSpec_DiskIo{DiskIo: spec}}}
}

func selfBinary(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// settledRate waits until the load's scratch file is laid down and a full
// settle time has passed, and returns the status then.
func settledRate(t testing.TB, h *ioHandle) *turbulencev1.FaultStatus {
	t.Helper()
	testutil.WaitFor(t, 30*time.Second, func() (bool, string) {
		h.mu.Lock()
		ready := h.readyAt
		h.mu.Unlock()
		return !ready.IsZero() && time.Since(ready) >= settleTime, "scratch file laid down and settle time passed"
	})
	var st turbulencev1.FaultStatus
	h.Observe(&st)
	return &st
}

func errPercent(got, want float64) float64 { return 100 * math.Abs(got-want) / want }

// The I/O load reaches its target rate on tmpfs and ext4 (a loose check
// here; BenchmarkIOAccuracy has the figures), reports it, and its revert
// removes the worker and the scratch file.
func TestPrivilegedIO_ReachesTargetRate(t *testing.T) {
	cases := []struct {
		fs   string
		mode turbulencev1.DiskIOMode
		spec *turbulencev1.DiskIOSpec
	}{
		{"tmpfs", turbulencev1.DiskIOMode_DISK_IO_MODE_WRITE, &turbulencev1.DiskIOSpec{BytesPerSecond: 32 << 20, BlockSizeBytes: 64 << 10, Workers: 2}},
		{"tmpfs", turbulencev1.DiskIOMode_DISK_IO_MODE_MIXED, &turbulencev1.DiskIOSpec{Iops: 2000, Direct: true}},
		{"ext4", turbulencev1.DiskIOMode_DISK_IO_MODE_READ, &turbulencev1.DiskIOSpec{Iops: 1000, Direct: true, Workers: 2}},
		{"ext4", turbulencev1.DiskIOMode_DISK_IO_MODE_WRITE, &turbulencev1.DiskIOSpec{BytesPerSecond: 16 << 20, BlockSizeBytes: 64 << 10, Direct: true}},
	}
	for _, c := range cases {
		t.Run(c.fs+"/"+c.mode.String(), func(t *testing.T) {
			var mnt string
			if c.fs == "tmpfs" {
				mnt = mountTmpfs(t, 128<<20, 0)
			} else {
				mnt = mountExt4(t, 128<<20)
			}
			spec := c.spec
			spec.Path, spec.Mode = mnt, c.mode
			in := NewIO(selfBinary(t), "/proc", inject.NewOwner("", t.TempDir()), testPolicy(0, 5), WithScratchBytes(16<<20))
			hd, err := in.Apply(context.Background(), ioFault("f-io", spec), time.Now().Add(time.Minute))
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			h := hd.(*ioHandle)
			defer revert(t, h)
			st := settledRate(t, h)
			ds := st.GetDisk()
			got, want := ds.GetMeasuredIops(), ds.GetTargetIops()
			t.Logf("%s %s: %.0f IOPS, %.1f MiB/s (target %.0f IOPS), direct %v, notes %q",
				c.fs, c.mode, got, ds.GetMeasuredBytesPerSecond()/(1<<20), want, ds.GetDirect(), ds.GetNotes())
			// Behaviour, not accuracy (that is BenchmarkIOAccuracy's, on a
			// quiet machine): the load runs, and the pacing never lets it
			// exceed its target, however busy the machine is.
			if got <= 0 {
				t.Errorf("measured %.0f IOPS: no I/O load", got)
			}
			if got > want*1.25 {
				t.Errorf("measured %.0f IOPS, over the %.0f target: the pacing does not hold the load back", got, want)
			}
			if st.GetWorkerPid() == 0 {
				t.Error("status has no worker PID")
			}
			if spec.GetDirect() && !ds.GetDirect() && len(ds.GetNotes()) == 0 {
				t.Error("direct I/O asked, not used, and no note says why")
			}
			revert(t, h)
			select {
			case <-h.Done():
			default:
				t.Error("worker still running after Revert")
			}
			if got := markedDirs(t, mnt); len(got) != 0 {
				t.Errorf("mount root holds %v after revert", got)
			}
		})
	}
}

func TestIO_RefusesScratchBelowFloorAndMissingPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := NewIO(selfBinary(t), "/proc", inject.NewOwner("", t.TempDir()), testPolicy(0, 100))
	_, err := in.Apply(context.Background(), ioFault("f-io-bad", &turbulencev1.DiskIOSpec{Path: dir, Mode: turbulencev1.DiskIOMode_DISK_IO_MODE_READ}), time.Now().Add(time.Minute))
	if err == nil || !strings.Contains(err.Error(), "scratch file") || !strings.Contains(err.Error(), "disk.min_free_percent 100 %") {
		t.Errorf("I/O load with a 100 %% floor: %v, want a refusal naming the floor", err)
	}
	in = NewIO(selfBinary(t), "/proc", inject.NewOwner("", t.TempDir()), testPolicy(0, 0))
	_, err = in.Apply(context.Background(), ioFault("f-io-bad", &turbulencev1.DiskIOSpec{Path: filepath.Join(dir, "missing"), Mode: turbulencev1.DiskIOMode_DISK_IO_MODE_READ}), time.Now().Add(time.Minute))
	if err == nil || !strings.Contains(err.Error(), "spec.disk_io.path") || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("I/O load on a missing path: %v, want a refusal naming the field", err)
	}
}

func TestWithinRate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		got, want float64
		ok        bool
	}{{100, 100, true}, {90, 100, true}, {110, 100, true}, {89, 100, false}, {111.5, 100, false}} {
		if withinRate(tt.got, tt.want) != tt.ok {
			t.Errorf("withinRate(%v, %v) = %v", tt.got, tt.want, !tt.ok)
		}
	}
}
