package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// hostile is text a caller may send: NUL, an ANSI screen clear and colour,
// an OSC title change ended by BEL, a carriage return, and the
// bidirectional controls that make "exe.png" read as "gnp.exe" (issue 13,
// finding 6).
const hostile = "a\x00b\x1b[2J\x1b[31mred\x1b]0;pwned\x07\rover\u202egnp.exe\u2066x\u2069\u200f"

// rawControls are what must never reach a terminal from a table.
var rawControls = []string{"\x00", "\x1b", "\x07", "\r", "\u202e", "\u2066", "\u2069", "\u200f"}

func hostileAgents() *turbulencev1.ListAgentsResponse {
	return &turbulencev1.ListAgentsResponse{Agents: []*turbulencev1.Agent{{
		Id:     "web-1" + hostile,
		Labels: map[string]string{"zone" + hostile: "eu" + hostile},
		Facts:  &turbulencev1.HostFacts{Hostname: "web" + hostile, Os: "linux", Arch: "amd64", Kernel: hostile, AgentVersion: hostile},
		Capabilities: &turbulencev1.Capabilities{
			FaultKinds: []string{"cpu", hostile}, KernelFeatures: []string{hostile},
		},
		RegisteredAt: ts(-time.Hour),
	}}}
}

func hostileFaults() *turbulencev1.ListFaultsResponse {
	f := goldenFaults().GetFaults()[0]
	f.Id, f.AgentId, f.CreatedBy, f.Reason = "f-1"+hostile, "web-1"+hostile, "operator/"+hostile, hostile
	f.Status.Reason = hostile
	f.Status.Exclusions = []string{hostile}
	return &turbulencev1.ListFaultsResponse{Faults: []*turbulencev1.Fault{f}}
}

func hostileCases() []goldenCase {
	return []goldenCase{
		{"escapes_agents_ls", func(a *app) error { return a.printAgents(hostileAgents()) }},
		{"escapes_agents_show", func(a *app) error { return a.printAgent(hostileAgents().GetAgents()[0]) }},
		{"escapes_fault_ls", func(a *app) error { return a.printFaults(hostileFaults()) }},
		{"escapes_fault_show", func(a *app) error { return a.printFault(hostileFaults().GetFaults()[0]) }},
		{"escapes_status", func(a *app) error {
			return a.printHalt(&turbulencev1.HaltStatus{Halted: true, Reason: hostile, By: "viewer/" + hostile, Since: ts(-time.Minute)})
		}},
		{"escapes_audit_ls", func(a *app) error {
			return a.printAudit(&turbulencev1.ListAuditResponse{Entries: []*turbulencev1.AuditEntry{{
				Sequence: 7, Time: ts(-time.Minute), Actor: "viewer/" + hostile, RequestId: hostile,
				Action: "fleet.halt", Summary: "halt the fleet: " + hostile, Error: hostile,
			}}})
		}},
		{"escapes_cluster_ls", func(a *app) error {
			return a.printServers(&turbulencev1.ListServersResponse{AnsweredBy: "c1" + hostile, Servers: []*turbulencev1.Server{{
				Id: "c1" + hostile, RaftAddress: hostile, GrpcAddress: hostile, Leader: true, Suffrage: hostile,
			}}})
		}},
	}
}

// TestGolden_Escapes renders hostile text through every table: the
// goldens show it escaped, and -o json keeps it exactly.
func TestGolden_Escapes(t *testing.T) {
	t.Parallel()
	checkGoldens(t, []string{"table", "json"}, hostileCases())
}

// TestTables_NoRawControls checks the rule itself on every table printer,
// independently of what the goldens hold.
func TestTables_NoRawControls(t *testing.T) {
	t.Parallel()
	for _, c := range hostileCases() {
		var out bytes.Buffer
		a := &app{env: env{now: func() time.Time { return goldenNow }}, stdout: &out, output: "table"}
		if err := c.print(a); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, raw := range rawControls {
			if strings.Contains(out.String(), raw) {
				t.Errorf("%s: the table holds the raw control %q", c.name, raw)
			}
		}
	}
	var out bytes.Buffer
	ev := &turbulencev1.Event{Sequence: 1, Time: ts(0), Type: "fleet.halted", AgentId: hostile, FaultId: hostile, Message: hostile}
	eventRow(&out, ev)
	for _, raw := range rawControls {
		if strings.Contains(out.String(), raw) {
			t.Errorf("events: the row holds the raw control %q", raw)
		}
	}
}

// TestJSON_KeepsTextExact: -o json is for scripts, which must get the
// bytes that were stored, escaped only as JSON escapes them.
func TestJSON_KeepsTextExact(t *testing.T) {
	t.Parallel()
	in := hostileAgents()
	var out bytes.Buffer
	a := &app{env: env{now: func() time.Time { return goldenNow }}, stdout: &out, output: "json"}
	if err := a.printAgents(in); err != nil {
		t.Fatal(err)
	}
	got := &turbulencev1.ListAgentsResponse{}
	if err := protojson.Unmarshal(out.Bytes(), got); err != nil {
		t.Fatalf("output is not JSON of the response: %v\n%s", err, out.String())
	}
	if diff := cmp.Diff(in, got, protocmp.Transform()); diff != "" {
		t.Errorf("JSON round trip changed the agents (-in +out):\n%s", diff)
	}
	if !proto.Equal(in, got) {
		t.Error("JSON round trip is not exact")
	}
}

// TestReport_EscapesServerText: an error from the controller that quotes a
// halt reason is printed escaped too.
func TestReport_EscapesServerText(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	report(&out, &rpcError{err: errors.New("the fleet was halted: " + hostile)})
	for _, raw := range rawControls {
		if strings.Contains(out.String(), raw) {
			t.Errorf("report() printed the raw control %q: %q", raw, out.String())
		}
	}
}
