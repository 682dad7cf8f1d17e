package cli

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// goldenDiskFill is an active fill capped at the agent's minimum free space.
func goldenDiskFill() *turbulencev1.Fault {
	return &turbulencev1.Fault{
		Id: "f-0007", AgentId: "db-2",
		Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(10 * time.Minute),
			Kind: &turbulencev1.FaultSpec_DiskFill{DiskFill: &turbulencev1.DiskFillSpec{
				Path: "/var/lib/postgresql", Size: &turbulencev1.DiskFillSpec_PercentOfFilesystem{PercentOfFilesystem: 99}, Cap: true}}},
		State: turbulencev1.FaultState_FAULT_STATE_ACTIVE, CreatedAt: ts(-time.Minute), Deadline: ts(9 * time.Minute), CreatedBy: "admin/alice",
		Status: &turbulencev1.FaultStatus{FaultId: "f-0007", State: turbulencev1.FaultState_FAULT_STATE_ACTIVE, Deadline: ts(9 * time.Minute), AppliedAt: ts(-59 * time.Second),
			Disk: &turbulencev1.DiskStats{MountPoint: "/var", FilesystemBytes: 100 << 30, AvailableBytes: 5 << 30, TargetBytes: 75 << 30, FilledBytes: 75 << 30,
				Notes: []string{"capped at the minimum free space: 75.0GiB filled of the 79.0GiB asked, leaving 5.0GiB (disk.min_free_percent 5 % of 100.0GiB)"}}},
	}
}

// goldenDiskIO is an active I/O load that misses its target.
func goldenDiskIO() *turbulencev1.Fault {
	return &turbulencev1.Fault{
		Id: "f-0008", AgentId: "db-2",
		Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(5 * time.Minute),
			Kind: &turbulencev1.FaultSpec_DiskIo{DiskIo: &turbulencev1.DiskIOSpec{
				Path: "/var/lib/postgresql", Mode: turbulencev1.DiskIOMode_DISK_IO_MODE_MIXED, Iops: 2000, Workers: 4, Direct: true}}},
		State: turbulencev1.FaultState_FAULT_STATE_ACTIVE, CreatedAt: ts(-time.Minute), Deadline: ts(4 * time.Minute), CreatedBy: "admin/alice",
		Status: &turbulencev1.FaultStatus{FaultId: "f-0008", State: turbulencev1.FaultState_FAULT_STATE_ACTIVE, Deadline: ts(4 * time.Minute), AppliedAt: ts(-59 * time.Second),
			WorkerPid: 6161, Degraded: true,
			Disk: &turbulencev1.DiskStats{MountPoint: "/var", FilesystemBytes: 100 << 30, AvailableBytes: 60 << 30,
				TargetBytesPerSecond: 2000 * 4096, TargetIops: 2000, MeasuredBytesPerSecond: 1500 * 4096, MeasuredIops: 1500,
				Notes: []string{"direct I/O refused by tmpfs (EINVAL) for 4096-byte blocks: running buffered"}}},
	}
}

// TestGoldenDisk renders `fault show` and `fault ls` of disk faults: what
// was asked beside what the agent achieved. Regenerate with -update.
func TestGoldenDisk(t *testing.T) {
	t.Parallel()
	checkGoldens(t, []string{"table", "json"}, []goldenCase{
		{"fault_show_disk_fill", func(a *app) error { return a.printFault(goldenDiskFill()) }},
		{"fault_show_disk_io", func(a *app) error { return a.printFault(goldenDiskIO()) }},
		{"fault_ls_disk", func(a *app) error {
			return a.printFaults(&turbulencev1.ListFaultsResponse{Faults: []*turbulencev1.Fault{goldenDiskFill(), goldenDiskIO()}})
		}},
	})
}

func TestApplyDisk_SendsSpec(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	runCLI(t, h.environ(), "fault", "apply", "disk-fill", "--agent", "a1", "--path", "/var", "--percent", "90", "--cap").check(t, ExitOK)
	runCLI(t, h.environ(), "fault", "apply", "disk-fill", "--agent", "a1", "--path", "/var", "--leave-free", "2GiB").check(t, ExitOK)
	runCLI(t, h.environ(), "fault", "apply", "disk-io", "--agent", "a1", "--path", "/var", "--mode", "write",
		"--rate", "50MiB", "--block-size", "64KiB", "--workers", "4", "--direct").check(t, ExitOK)
	want := []*turbulencev1.ApplyFaultRequest{
		{RequestId: "req-fixed", AgentId: "a1", Spec: &turbulencev1.FaultSpec{Kind: &turbulencev1.FaultSpec_DiskFill{DiskFill: &turbulencev1.DiskFillSpec{
			Path: "/var", Size: &turbulencev1.DiskFillSpec_PercentOfFilesystem{PercentOfFilesystem: 90}, Cap: true}}}},
		{RequestId: "req-fixed", AgentId: "a1", Spec: &turbulencev1.FaultSpec{Kind: &turbulencev1.FaultSpec_DiskFill{DiskFill: &turbulencev1.DiskFillSpec{
			Path: "/var", Size: &turbulencev1.DiskFillSpec_LeaveFreeBytes{LeaveFreeBytes: 2 << 30}}}}},
		{RequestId: "req-fixed", AgentId: "a1", Spec: &turbulencev1.FaultSpec{Kind: &turbulencev1.FaultSpec_DiskIo{DiskIo: &turbulencev1.DiskIOSpec{
			Path: "/var", Mode: turbulencev1.DiskIOMode_DISK_IO_MODE_WRITE, BytesPerSecond: 50 << 20, BlockSizeBytes: 64 << 10, Workers: 4, Direct: true}}}},
	}
	if diff := cmp.Diff(want, h.fake.requests(), protocmp.Transform()); diff != "" {
		t.Errorf("ApplyFault requests (-want +got):\n%s", diff)
	}
}

func TestApplyDisk_UsageErrors(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"fill no path", []string{"disk-fill", "--bytes", "1GiB"}, "--path is required"},
		{"fill no size", []string{"disk-fill", "--path", "/var"}, "exactly one of --bytes, --percent or --leave-free is required"},
		{"fill two sizes", []string{"disk-fill", "--path", "/var", "--bytes", "1GiB", "--percent", "5"}, "exactly one of"},
		{"fill percent 0", []string{"disk-fill", "--path", "/var", "--percent", "0"}, "--percent must be between 1 and 100, got 0"},
		{"fill relative path", []string{"disk-fill", "--path", "var", "--bytes", "1GiB"}, "spec.disk_fill.path"},
		{"io no mode", []string{"disk-io", "--path", "/var"}, "--mode is required"},
		{"io bad mode", []string{"disk-io", "--path", "/var", "--mode", "both"}, `--mode must be read, write or mixed, got "both"`},
		{"io bad block", []string{"disk-io", "--path", "/var", "--mode", "read", "--block-size", "1000"}, "--block-size must be a multiple of 512"},
		{"io workers", []string{"disk-io", "--path", "/var", "--mode", "read", "--workers", "65"}, "--workers must be between 1 and 64, got 65"},
	}
	usage := map[string]bool{"fill no path": true, "fill no size": true, "fill two sizes": true, "io no mode": true}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, h.environ(), append([]string{"fault", "apply", tt.args[0], "--agent", "a1"}, tt.args[1:]...)...)
			code := ExitInvalid // a value turbctl can tell is wrong
			if usage[tt.name] {
				code = ExitUsage
			}
			r.check(t, code, tt.want)
		})
	}
}
