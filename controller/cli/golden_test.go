package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenNow is the fixed "now" of every golden rendering.
var goldenNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ts(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(goldenNow.Add(d)) }

func goldenAgents() *turbulencev1.ListAgentsResponse {
	return &turbulencev1.ListAgentsResponse{Agents: []*turbulencev1.Agent{
		{
			Id:     "web-1",
			Labels: map[string]string{"role": "web", "env": "prod"},
			Facts: &turbulencev1.HostFacts{Hostname: "web-1.example", Os: "linux", Arch: "amd64",
				Kernel: "6.12.0", Cpus: 8, MemoryBytes: 16 << 30, AgentVersion: "v0.1.0"},
			Capabilities: &turbulencev1.Capabilities{FaultKinds: []string{"cpu"}, KernelFeatures: []string{"sch_netem", "nftables"}},
			RegisteredAt: ts(-26 * time.Hour),
			Connected:    true,
			LastSeen:     ts(-800 * time.Millisecond),
		},
		{
			Id:            "db-2",
			Facts:         &turbulencev1.HostFacts{Hostname: "db-2.example", Os: "linux", Arch: "arm64", Cpus: 64, MemoryBytes: 256 << 30},
			Capabilities:  &turbulencev1.Capabilities{FaultKinds: []string{"cpu", "memory"}},
			RegisteredAt:  ts(-3 * time.Hour),
			LastSeen:      ts(-12 * time.Second),
			LocallyHalted: true,
		},
		{Id: "new-3"},
	}}
}

func f64(v float64) *float64 { return &v }

// goldenMetrics is a short series of web-1: the second sample has every
// figure, the first lacks what the agent could not read yet.
func goldenMetrics() *turbulencev1.GetAgentMetricsResponse {
	return &turbulencev1.GetAgentMetricsResponse{
		AgentId: "web-1", Window: durationpb.New(10 * time.Minute), Capacity: 600,
		Samples: []*turbulencev1.HostMetricsSample{
			{SampledAt: ts(-2 * time.Second), MemoryUsedPercent: f64(41.25), MemoryUsedBytes: f64(7 << 30), Load1: f64(0.5), Load5: f64(0.25), Load15: f64(0.125), DiskUsedPercent: f64(71)},
			{SampledAt: ts(-time.Second), CpuPercent: f64(37.5), MemoryUsedPercent: f64(42.5), MemoryUsedBytes: f64(6.8 * (1 << 30)),
				Load1: f64(1.25), Load5: f64(0.8), Load15: f64(0.5), DiskUsedPercent: f64(71.04),
				DiskIoBytesPerSecond: f64(12.5 * (1 << 20)), NetworkBytesPerSecond: f64(1536)},
		},
	}
}

func goldenFaults() *turbulencev1.ListFaultsResponse {
	return &turbulencev1.ListFaultsResponse{Faults: []*turbulencev1.Fault{
		{
			Id:      "f-0001",
			AgentId: "web-1",
			Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(30 * time.Second),
				Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 2, LoadPercent: 80, PinCpus: []uint32{0, 2}}}},
			State:     turbulencev1.FaultState_FAULT_STATE_ACTIVE,
			CreatedAt: ts(-22 * time.Second),
			Deadline:  ts(8 * time.Second),
			CreatedBy: "admin/alice",
			Status: &turbulencev1.FaultStatus{FaultId: "f-0001", State: turbulencev1.FaultState_FAULT_STATE_ACTIVE,
				MeasuredCpuPercent: 158.4, WorkerPid: 4242, Deadline: ts(8 * time.Second), AppliedAt: ts(-21 * time.Second)},
		},
		{
			Id:      "f-0002",
			AgentId: "db-2",
			Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(90 * time.Minute),
				Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{HostUtilizationPercent: 70}}},
			State:     turbulencev1.FaultState_FAULT_STATE_PENDING,
			CreatedAt: ts(-1 * time.Second),
			Deadline:  ts(90*time.Minute - time.Second),
			CreatedBy: "operator/bob",
		},
		{
			Id:      "f-0003",
			AgentId: "web-1",
			Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(5 * time.Minute),
				Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 0, LoadPercent: 100}}},
			State:     turbulencev1.FaultState_FAULT_STATE_REVERTED,
			CreatedAt: ts(-2 * time.Hour),
			Deadline:  ts(-2*time.Hour + 5*time.Minute),
			EndedAt:   ts(-2*time.Hour + 2*time.Minute),
			Reason:    "halt",
			CreatedBy: "admin/alice",
		},
		{
			Id:      "f-0004",
			AgentId: "db-2",
			Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute),
				Kind: &turbulencev1.FaultSpec_Memory{Memory: &turbulencev1.MemorySpec{Size: &turbulencev1.MemorySpec_PercentOfTotal{PercentOfTotal: 20}}}},
			State:     turbulencev1.FaultState_FAULT_STATE_FAILED,
			CreatedAt: ts(-10 * time.Minute),
			EndedAt:   ts(-10 * time.Minute),
			Reason:    "policy: memory above the host's ceiling of 10%",
			CreatedBy: "admin/alice",
		},
		{
			// Its agent went silent: the lease ran out 3s ago and nobody
			// knows what became of the fault (invariant 8).
			Id:      "f-0005",
			AgentId: "web-1",
			Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(10 * time.Minute),
				Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: 60}}},
			State:            turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED,
			CreatedAt:        ts(-time.Minute),
			Deadline:         ts(9 * time.Minute),
			Reason:           "lease expired: agent unreachable; outcome unknown until it reports",
			UnconfirmedSince: ts(-3 * time.Second),
			CreatedBy:        "admin/alice",
			Status: &turbulencev1.FaultStatus{FaultId: "f-0005", State: turbulencev1.FaultState_FAULT_STATE_ACTIVE,
				MeasuredCpuPercent: 59.7, WorkerPid: 5151, Deadline: ts(9 * time.Minute), AppliedAt: ts(-59 * time.Second)},
		},
		{
			// Its agent came back and said how and when it really ended.
			Id:      "f-0006",
			AgentId: "web-1",
			Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(10 * time.Minute),
				Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: 60}}},
			State:     turbulencev1.FaultState_FAULT_STATE_REVERTED,
			CreatedAt: ts(-5 * time.Minute),
			Deadline:  ts(5 * time.Minute),
			EndedAt:   ts(-2 * time.Minute),
			Reason:    "agent restarted: reverted at start-up",
			CreatedBy: "admin/alice",
			Status: &turbulencev1.FaultStatus{FaultId: "f-0006", State: turbulencev1.FaultState_FAULT_STATE_REVERTED,
				Reason: "agent restarted: reverted at start-up", MeasuredCpuPercent: 60.2, WorkerPid: 5252,
				Deadline: ts(5 * time.Minute), AppliedAt: ts(-299 * time.Second), EndedAt: ts(-2 * time.Minute)},
		},
	}}
}

// TestGolden renders fixed protos at a fixed now through the same
// printers the commands use and compares them with testdata/*.golden.
// Regenerate with: go test ./controller/cli -update
func TestGolden(t *testing.T) {
	t.Parallel()
	faults := goldenFaults()
	checkGoldens(t, []string{"table", "json"}, []goldenCase{
		{"agents_ls", func(a *app) error { return a.printAgents(goldenAgents()) }},
		{"agents_show", func(a *app) error { return a.printAgent(goldenAgents().GetAgents()[0]) }},
		{"agents_show_halted_locally", func(a *app) error { return a.printAgent(goldenAgents().GetAgents()[1]) }},
		{"agents_metrics", func(a *app) error { return a.printAgentMetrics(goldenMetrics()) }},
		{"agents_metrics_empty", func(a *app) error {
			return a.printAgentMetrics(&turbulencev1.GetAgentMetricsResponse{AgentId: "new-3", Window: durationpb.New(10 * time.Minute), Capacity: 600})
		}},
		{"fault_ls", func(a *app) error { return a.printFaults(faults) }},
		{"fault_ls_empty", func(a *app) error { return a.printFaults(&turbulencev1.ListFaultsResponse{}) }},
		{"fault_show_active", func(a *app) error { return a.printFault(faults.GetFaults()[0]) }},
		{"fault_show_pending", func(a *app) error { return a.printFault(faults.GetFaults()[1]) }},
		{"fault_show_reverted", func(a *app) error { return a.printFault(faults.GetFaults()[2]) }},
		{"fault_show_unconfirmed", func(a *app) error { return a.printFault(faults.GetFaults()[4]) }},
		{"fault_show_reverted_reported", func(a *app) error { return a.printFault(faults.GetFaults()[5]) }},
		{"status_halted", func(a *app) error {
			return a.printHalt(&turbulencev1.HaltStatus{Halted: true, Reason: "SLO burn on checkout", By: "admin/alice", Since: ts(-90 * time.Second)})
		}},
	})
}

// TestGoldenAgentShowMetrics: `agents show` adds the latest host metrics
// to its table. Its JSON stays the Agent record alone (scripts read it);
// `agents metrics -o json` has the metrics.
func TestGoldenAgentShowMetrics(t *testing.T) {
	t.Parallel()
	checkGoldens(t, []string{"table"}, []goldenCase{
		{"agents_show_metrics", func(a *app) error {
			a.hostMetrics = goldenMetrics().GetSamples()[1]
			return a.printAgent(goldenAgents().GetAgents()[0])
		}},
		{"agents_show_metrics_none", func(a *app) error {
			a.hostMetricsWhy = "none yet (none in the leader's window)"
			return a.printAgent(goldenAgents().GetAgents()[2])
		}},
	})
}

// goldenCase is one printer call whose output is compared, in each format,
// with testdata/<name>.txt (table) or testdata/<name>.json.
type goldenCase struct {
	name  string
	print func(a *app) error
}

// checkGoldens renders every case in every format at goldenNow, each in a
// parallel subtest named <name>/<format>, and compares it with its file.
func checkGoldens(t *testing.T, formats []string, cases []goldenCase) {
	t.Helper()
	for _, c := range cases {
		for _, format := range formats {
			t.Run(c.name+"/"+format, func(t *testing.T) {
				t.Parallel()
				var out bytes.Buffer
				a := &app{env: env{now: func() time.Time { return goldenNow }}, stdout: &out, output: format}
				if err := c.print(a); err != nil {
					t.Fatalf("print: %v", err)
				}
				ext := map[string]string{"table": ".txt", "json": ".json"}[format]
				checkGolden(t, filepath.Join("testdata", c.name+ext), out.Bytes())
			})
		}
	}
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./controller/cli -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func TestHuman(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{850 * time.Millisecond, "850ms"},
		{8 * time.Second, "8s"},
		{8*time.Second + 600*time.Millisecond, "9s"},
		{2*time.Minute + 30*time.Second, "2m30s"},
		{5 * time.Minute, "5m"},
		{time.Hour + 5*time.Minute + 20*time.Second, "1h5m"},
		{26 * time.Hour, "26h"},
		{76 * time.Hour, "3d4h"},
		{-12 * time.Second, "12s"},
	}
	for _, tt := range tests {
		if got := human(tt.in); got != tt.want {
			t.Errorf("human(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRelative(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   time.Duration
		want string
	}{
		{8 * time.Second, "in 8s"},
		{-12 * time.Second, "12s ago"},
		{100 * time.Millisecond, "now"},
		{-90 * time.Minute, "1h30m ago"},
	}
	for _, tt := range tests {
		if got := relative(ts(tt.in), goldenNow); got != tt.want {
			t.Errorf("relative(now%+v) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := relative(nil, goldenNow); got != none {
		t.Errorf("relative(nil) = %q, want %q", got, none)
	}
}

// goldenEvents are events as the controller makes them: fault IDs of
// "f-" and 12 hex digits, the longest event type, a fleet event without
// agent or fault.
func goldenEvents() []*turbulencev1.Event {
	return []*turbulencev1.Event{
		{Sequence: 7, Time: ts(-3 * time.Minute), Type: "agent.registered", AgentId: "web-1", Message: "agent web-1 registered"},
		{Sequence: 8, Time: ts(-2 * time.Minute), Type: "fault.created", AgentId: "web-1", FaultId: "f-4eedeb274c8f", Message: "cpu fault for 5m0s by admin/alice"},
		{Sequence: 9, Time: ts(-2 * time.Minute), Type: "fault.active", AgentId: "web-1", FaultId: "f-4eedeb274c8f", Message: "worker 4242"},
		{Sequence: 10, Time: ts(-time.Minute), Type: "fault.unconfirmed", AgentId: "web-1", FaultId: "f-4eedeb274c8f", Message: "lease expired"},
		{Sequence: 11, Time: ts(-30 * time.Second), Type: "fleet.halted", Message: "halted by admin/alice: SLO burn"},
	}
}

// TestGoldenEvents: the event table (listing and --follow) in golden
// files, and, beyond what a reviewer sees in them, every FAULT cell starts
// under the FAULT header (issue 17: it did not).
func TestGoldenEvents(t *testing.T) {
	t.Parallel()
	checkGoldens(t, []string{"table"}, []goldenCase{
		{"events_ls", func(a *app) error { return eventTable(a.stdout, goldenEvents()) }},
		{"events_follow", func(a *app) error {
			eventHeader(a.stdout)
			for _, ev := range goldenEvents() {
				eventRow(a.stdout, ev)
			}
			return nil
		}},
	})
	for name, print := range map[string]func(*bytes.Buffer){
		"listing": func(b *bytes.Buffer) { _ = eventTable(b, goldenEvents()) },
		"follow": func(b *bytes.Buffer) {
			eventHeader(b)
			for _, ev := range goldenEvents() {
				eventRow(b, ev)
			}
		},
	} {
		var out bytes.Buffer
		print(&out)
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		col := strings.Index(lines[0], "FAULT")
		for _, l := range lines[1:] {
			if !strings.Contains(l, "f-4eedeb274c8f") {
				continue
			}
			if got := strings.Index(l, "f-4eedeb274c8f"); got != col {
				t.Errorf("%s: fault ID at column %d, FAULT header at %d:\n%s", name, got, col, out.String())
			}
		}
		if msg := strings.Index(lines[0], "MESSAGE"); strings.Index(lines[2], "cpu fault") != msg {
			t.Errorf("%s: MESSAGE misaligned:\n%s", name, out.String())
		}
	}
}

// TestGoldenDegradedSaysWhy: a degraded fault always says why, a
// whole-host CPU target above all (issue 17: "Degraded: yes" alone).
func TestGoldenDegradedSaysWhy(t *testing.T) {
	t.Parallel()
	hostUtil := func(measured float64) *turbulencev1.Fault {
		return &turbulencev1.Fault{
			Id: "f-0100", AgentId: "web-1", State: turbulencev1.FaultState_FAULT_STATE_ACTIVE,
			Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(5 * time.Minute),
				Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{HostUtilizationPercent: 50}}},
			CreatedAt: ts(-time.Minute), Deadline: ts(4 * time.Minute), CreatedBy: "admin/alice",
			Status: &turbulencev1.FaultStatus{FaultId: "f-0100", State: turbulencev1.FaultState_FAULT_STATE_ACTIVE,
				MeasuredCpuPercent: measured, WorkerPid: 7171, Degraded: true, Deadline: ts(4 * time.Minute), AppliedAt: ts(-59 * time.Second)},
		}
	}
	checkGoldens(t, []string{"table"}, []goldenCase{
		{"fault_show_cpu_host_busier", func(a *app) error { return a.printFault(hostUtil(71.5)) }},
		{"fault_show_cpu_host_short", func(a *app) error { return a.printFault(hostUtil(38.2)) }},
	})
	for _, f := range []*turbulencev1.Fault{hostUtil(71.5), hostUtil(38.2)} {
		var out bytes.Buffer
		a := &app{env: env{now: func() time.Time { return goldenNow }}, stdout: &out, output: "table"}
		if err := a.printFault(f); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "Degraded:") || strings.Contains(out.String(), "Degraded:          yes\n") ||
			!strings.Contains(out.String(), "target of 50%") {
			t.Errorf("degraded fault without the why:\n%s", out.String())
		}
	}
}

// TestGoldenClusterState: cluster ls with the STATE column, a dead node
// among live ones.
func TestGoldenClusterState(t *testing.T) {
	t.Parallel()
	resp := &turbulencev1.ListServersResponse{AnsweredBy: "c1", Servers: []*turbulencev1.Server{
		{Id: "c1", Leader: true, Suffrage: "voter", RaftAddress: "10.0.0.1:7421", GrpcAddress: "10.0.0.1:7420"},
		{Id: "c2", Suffrage: "voter", RaftAddress: "10.0.0.2:7421", GrpcAddress: "10.0.0.2:7420"},
		{Id: "c3", Suffrage: "voter", RaftAddress: "10.0.0.3:7421", GrpcAddress: "10.0.0.3:7420"},
	}}
	state := map[string]string{"c1": "up", "c2": "up", "c3": "unreachable: no answer within 2s"}
	checkGoldens(t, []string{"table"}, []goldenCase{
		{"cluster_ls_state", func(a *app) error { return a.printServersState(resp, state) }},
	})
}
