package cli

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// goldenMemoryFault is an active memory fault that reached 99.8 % of the
// 2 GiB it asked for.
func goldenMemoryFault() *turbulencev1.Fault {
	return &turbulencev1.Fault{
		Id:      "f-0005",
		AgentId: "db-2",
		Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(5 * time.Minute),
			Kind: &turbulencev1.FaultSpec_Memory{Memory: &turbulencev1.MemorySpec{
				Size: &turbulencev1.MemorySpec_Bytes{Bytes: 2 << 30}, Ramp: durationpb.New(30 * time.Second), Mlock: true}}},
		State:     turbulencev1.FaultState_FAULT_STATE_ACTIVE,
		CreatedAt: ts(-time.Minute),
		Deadline:  ts(4 * time.Minute),
		CreatedBy: "admin/alice",
		Status: &turbulencev1.FaultStatus{FaultId: "f-0005", State: turbulencev1.FaultState_FAULT_STATE_ACTIVE,
			ResidentBytes: 2<<30 - 4<<20, WorkerPid: 5151, Deadline: ts(4 * time.Minute), AppliedAt: ts(-59 * time.Second)},
	}
}

// TestGoldenMemory renders `fault show` and `fault ls` of a memory fault:
// asked size beside achieved resident size. Regenerate with -update.
func TestGoldenMemory(t *testing.T) {
	t.Parallel()
	degraded := goldenMemoryFault()
	degraded.Spec.GetMemory().Size = &turbulencev1.MemorySpec_PercentOfTotal{PercentOfTotal: 25}
	degraded.Status.ResidentBytes = 3 << 30
	degraded.Status.Degraded = true
	checkGoldens(t, []string{"table", "json"}, []goldenCase{
		{"fault_show_memory", func(a *app) error { return a.printFault(goldenMemoryFault()) }},
		{"fault_show_memory_degraded", func(a *app) error { return a.printFault(degraded) }},
		{"fault_ls_memory", func(a *app) error {
			return a.printFaults(&turbulencev1.ListFaultsResponse{Faults: []*turbulencev1.Fault{goldenMemoryFault()}})
		}},
	})
}

func TestApplyMemory_SendsSpecAndPrintsID(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	r := runCLI(t, h.environ(), "fault", "apply", "memory", "--agent", "a1", "--bytes", "512MiB", "--ramp", "10s", "--mlock", "--duration", "2m")
	r.check(t, ExitOK)
	if r.stdout != "f-42\n" {
		t.Errorf("stdout = %q, want the fault ID %q", r.stdout, "f-42\n")
	}
	r = runCLI(t, h.environ(), "fault", "apply", "memory", "--agent", "a1", "--percent", "25")
	r.check(t, ExitOK)
	want := []*turbulencev1.ApplyFaultRequest{
		{RequestId: "req-fixed", AgentId: "a1", Spec: &turbulencev1.FaultSpec{
			Duration: durationpb.New(2 * time.Minute),
			Kind: &turbulencev1.FaultSpec_Memory{Memory: &turbulencev1.MemorySpec{
				Size: &turbulencev1.MemorySpec_Bytes{Bytes: 512 << 20}, Ramp: durationpb.New(10 * time.Second), Mlock: true}},
		}},
		{RequestId: "req-fixed", AgentId: "a1", Spec: &turbulencev1.FaultSpec{
			Kind: &turbulencev1.FaultSpec_Memory{Memory: &turbulencev1.MemorySpec{
				Size: &turbulencev1.MemorySpec_PercentOfTotal{PercentOfTotal: 25}}},
		}},
	}
	if diff := cmp.Diff(want, h.fake.requests(), protocmp.Transform()); diff != "" {
		t.Errorf("ApplyFault requests (-want +got):\n%s", diff)
	}
}

func TestApplyMemory_UsageErrors(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	apply := []string{"fault", "apply", "memory", "--agent", "a1"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no size", nil, "--bytes or --percent is required"},
		{"both sizes", []string{"--bytes", "1GiB", "--percent", "10"}, "--bytes and --percent exclude each other"},
		{"bad bytes", []string{"--bytes", "lots"}, `--bytes: "lots" is not a byte size`},
		{"zero bytes", []string{"--bytes", "0"}, "--bytes must be greater than 0"},
		{"percent 0", []string{"--percent", "0"}, "--percent must be between 1 and 100, got 0"},
		{"percent 101", []string{"--percent", "101"}, "--percent must be between 1 and 100, got 101"},
		{"negative ramp", []string{"--bytes", "1GiB", "--ramp", "-1s"}, "--ramp must be between 0s and 24h0m0s, got -1s"},
		{"ramp too long", []string{"--bytes", "1GiB", "--ramp", "25h"}, "--ramp must be between"},
	}
	usage := map[string]bool{"no size": true, "both sizes": true}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, h.environ(), append(append([]string(nil), apply...), tt.args...)...)
			code := ExitInvalid // a value turbctl can tell is wrong
			if usage[tt.name] {
				code = ExitUsage
			}
			r.check(t, code, tt.want)
		})
	}
	if n := len(h.fake.requests()); n != 0 {
		t.Errorf("usage errors sent %d ApplyFault calls to the controller, want 0", n)
	}
}

func TestResident(t *testing.T) {
	t.Parallel()
	bytesSpec := &turbulencev1.MemorySpec{Size: &turbulencev1.MemorySpec_Bytes{Bytes: 1 << 30}}
	pctSpec := &turbulencev1.MemorySpec{Size: &turbulencev1.MemorySpec_PercentOfTotal{PercentOfTotal: 10}}
	tests := []struct {
		spec *turbulencev1.MemorySpec
		got  uint64
		want string
	}{
		{bytesSpec, 0, none},
		{bytesSpec, 1 << 30, "1.0GiB (100.0% of 1.0GiB asked)"},
		{bytesSpec, 512 << 20, "512.0MiB (50.0% of 1.0GiB asked)"},
		{pctSpec, 512 << 20, "512.0MiB"},
		{nil, 4096, "4.0KiB"},
	}
	for _, tt := range tests {
		if got := resident(tt.spec, tt.got); got != tt.want {
			t.Errorf("resident(%v, %d) = %q, want %q", tt.spec, tt.got, got, tt.want)
		}
	}
}
