package disk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/policy"
	"github.com/turbulence-sre/turbulence/agent/sweep"
	"github.com/turbulence-sre/turbulence/internal/config"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// testPolicy is the default policy with the given disk floors and no
// excluded filesystem types.
func testPolicy(minFreeBytes uint64, minFreePercent uint32) policy.Policy {
	p := policy.Default()
	p.Disk = policy.Disk{MinFreeBytes: config.ByteSize(minFreeBytes), MinFreePercent: minFreePercent}
	return p
}

func fillFault(id string, spec *turbulencev1.DiskFillSpec) *turbulencev1.Fault {
	return &turbulencev1.Fault{Id: id, Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute),
		Kind: &turbulencev1.FaultSpec_DiskFill{DiskFill: spec}}}
}

// avail is what the fill's guard sees: statfs f_bavail in bytes.
func avail(t testing.TB, path string) Space {
	t.Helper()
	sp, _, err := statSpace(path)
	if err != nil {
		t.Fatalf("statfs %s: %v", path, err)
	}
	return sp
}

// markedDirs lists the marked directories at the root of mnt.
func markedDirs(t testing.TB, mnt string) []string {
	t.Helper()
	var out []string
	entries, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".turbulence-") {
			out = append(out, e.Name())
		}
	}
	return out
}

func applyFill(t testing.TB, in *FillInjector, f *turbulencev1.Fault) inject.Handle {
	t.Helper()
	h, err := in.Apply(context.Background(), f, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return h
}

func revert(t testing.TB, h inject.Handle) {
	t.Helper()
	if err := h.Revert(context.Background()); err != nil {
		t.Fatalf("Revert: %v", err)
	}
}

// Bad input (invariant 6) on any machine: each refusal is a clear error
// and nothing is written.
func TestFill_RefusesBadTargetsWritingNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tg, err := resolveTarget("/proc", "spec.disk_fill.path", dir, testPolicy(0, 0))
	if err != nil {
		t.Fatalf("resolve %s: %v", dir, err)
	}
	excluding := testPolicy(0, 0)
	excluding.Disk.ExcludedFilesystems = []string{tg.fsType}
	tests := []struct {
		name string
		pol  policy.Policy
		spec *turbulencev1.DiskFillSpec
		want []string
	}{
		{"missing path", testPolicy(0, 0), &turbulencev1.DiskFillSpec{Path: filepath.Join(dir, "nope"), Size: &turbulencev1.DiskFillSpec_Bytes{Bytes: 4096}},
			[]string{"spec.disk_fill.path", "does not exist"}},
		{"excluded filesystem", excluding, &turbulencev1.DiskFillSpec{Path: dir, Size: &turbulencev1.DiskFillSpec_Bytes{Bytes: 4096}},
			[]string{"disk.excluded_filesystems", tg.fsType}},
		{"already below the floor", testPolicy(0, 100), &turbulencev1.DiskFillSpec{Path: dir, Size: &turbulencev1.DiskFillSpec_Bytes{Bytes: 4096}, Cap: true},
			[]string{"already at or below the minimum free space", "disk.min_free_percent 100 %"}},
		{"over the floor without cap", testPolicy(tg.space.Avail-1<<20, 0), &turbulencev1.DiskFillSpec{Path: dir, Size: &turbulencev1.DiskFillSpec_Bytes{Bytes: 8 << 20}},
			[]string{"spec.disk_fill.bytes", "disk.min_free_bytes", "cap"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := NewFill("/proc", inject.NewOwner("", t.TempDir()), tt.pol)
			h, err := in.Apply(context.Background(), fillFault("f-bad", tt.spec), time.Now().Add(time.Minute))
			if err == nil {
				revert(t, h)
				t.Fatal("Apply succeeded, want a refusal")
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if _, err := os.Stat(filepath.Join(tg.mountPoint, sweep.MarkedDirName(sweep.FillDirPrefix, "f-bad"))); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused fill left its directory behind (stat: %v)", err)
			}
		})
	}
}

func TestPrivilegedFill_RefusesReadOnlyFilesystem(t *testing.T) {
	mnt := mountTmpfs(t, 16<<20, unix.MS_RDONLY)
	in := NewFill("/proc", inject.NewOwner("", t.TempDir()), testPolicy(0, 0))
	_, err := in.Apply(context.Background(), fillFault("f-ro", &turbulencev1.DiskFillSpec{Path: mnt, Size: &turbulencev1.DiskFillSpec_Bytes{Bytes: 4096}}), time.Now().Add(time.Minute))
	if err == nil || !strings.Contains(err.Error(), "read-only filesystem") || !strings.Contains(err.Error(), "spec.disk_fill.path") {
		t.Fatalf("fill on a read-only tmpfs: %v, want a read-only refusal naming the field", err)
	}
}

// filesystems are the two the issue asks the fill to be proved on.
var filesystems = []struct {
	name  string
	mount func(testing.TB) string
}{
	{"tmpfs", func(tb testing.TB) string { return mountTmpfs(tb, 64<<20, 0) }},
	{"ext4", func(tb testing.TB) string { return mountExt4(tb, 128<<20) }},
}

// Fill to 90 % hits 90 % of the filesystem (±1 %), holds it, and the
// revert gives back exactly the free space found before.
func TestPrivilegedFill_NinetyPercentAndExactRevert(t *testing.T) {
	for _, fs := range filesystems {
		t.Run(fs.name, func(t *testing.T) {
			mnt := fs.mount(t)
			sub := filepath.Join(mnt, "data", "deep")
			if err := os.MkdirAll(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			before := avail(t, mnt)
			in := NewFill("/proc", inject.NewOwner("", t.TempDir()), testPolicy(0, 5), WithGuardInterval(20*time.Millisecond))
			h := applyFill(t, in, fillFault("f-90", &turbulencev1.DiskFillSpec{Path: sub, Size: &turbulencev1.DiskFillSpec_PercentOfFilesystem{PercentOfFilesystem: 90}}))
			got := avail(t, mnt)
			used := 100 * (1 - float64(got.Avail)/float64(got.Size))
			if used < 89 || used > 91 {
				t.Errorf("%s is %.2f %% used after a 90 %% fill, want 90 ±1", fs.name, used)
			}
			var st turbulencev1.FaultStatus
			h.Observe(&st)
			ds := st.GetDisk()
			if ds.GetMountPoint() != mnt || ds.GetFilledBytes() == 0 || ds.GetAvailableBytes() != got.Avail {
				t.Errorf("status = %v, want mount %s, filled bytes and available %d", ds, mnt, got.Avail)
			}
			if got := markedDirs(t, mnt); len(got) != 1 {
				t.Errorf("mount root holds %v, want one marked directory", got)
			}
			revert(t, h)
			revert(t, h) // idempotent
			testutil.WaitFor(t, 5*time.Second, func() (bool, string) {
				a := avail(t, mnt).Avail
				return a == before.Avail, fmt.Sprintf("available %d after revert, %d before", a, before.Avail)
			})
			if got := markedDirs(t, mnt); len(got) != 0 {
				t.Errorf("mount root holds %v after revert", got)
			}
		})
	}
}

// The guard: a fill never leaves less than the floor, asked for by cap or
// by the host's own later writes.
func TestPrivilegedFill_NeverPassesTheGuard(t *testing.T) {
	for _, fs := range filesystems {
		t.Run(fs.name, func(t *testing.T) {
			mnt := fs.mount(t)
			size := avail(t, mnt).Size
			pol := testPolicy(0, 20)
			floor, _ := Floor(pol.Disk, size)
			in := NewFill("/proc", inject.NewOwner("", t.TempDir()), pol, WithGuardInterval(10*time.Millisecond))
			spec := &turbulencev1.DiskFillSpec{Path: mnt, Size: &turbulencev1.DiskFillSpec_PercentOfFilesystem{PercentOfFilesystem: 95}}
			if _, err := in.Apply(context.Background(), fillFault("f-95", spec), time.Now().Add(time.Minute)); !errors.Is(err, ErrMinFree) {
				t.Fatalf("95 %% fill with a 20 %% floor: %v, want ErrMinFree", err)
			}
			spec.Cap = true
			h := applyFill(t, in, fillFault("f-95", spec))
			defer revert(t, h)
			a := avail(t, mnt).Avail
			if a < floor || a > floor+floor/50 {
				t.Errorf("capped fill left %d available, want the floor %d (within 2 %%)", a, floor)
			}
			var st turbulencev1.FaultStatus
			h.Observe(&st)
			if notes := st.GetDisk().GetNotes(); len(notes) == 0 || !strings.Contains(notes[0], "capped") {
				t.Errorf("notes = %q, want the cap said", notes)
			}
			// The host writes 4 MiB: the fill must give that much back.
			other, err := os.Create(filepath.Join(mnt, "host-data"))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = other.Close() }()
			if _, err := other.Write(make([]byte, 4<<20)); err != nil {
				t.Fatalf("host write: %v", err)
			}
			if err := other.Sync(); err != nil {
				t.Fatal(err)
			}
			testutil.WaitFor(t, 5*time.Second, func() (bool, string) {
				a := avail(t, mnt).Avail
				return a >= floor, fmt.Sprintf("available %d, floor %d", a, floor)
			})
		})
	}
}
