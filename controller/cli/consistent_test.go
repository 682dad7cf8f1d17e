package cli

import (
	"context"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// readFake answers every read of ControlService and ClusterService with
// an empty result and records, per method, the consistent-read metadata
// it was sent ("" when absent).
type readFake struct {
	turbulencev1.UnimplementedControlServiceServer
	turbulencev1.UnimplementedClusterServiceServer

	mu   sync.Mutex
	seen map[string]string // method name -> metadata value
}

func (f *readFake) record(ctx context.Context, method string) {
	v := ""
	if vs := metadata.ValueFromIncomingContext(ctx, mdConsistentRead); len(vs) > 0 {
		v = strings.Join(vs, ",")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen[method] = v
}

func (f *readFake) take() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.seen
	f.seen = map[string]string{}
	return out
}

func (f *readFake) ListAgents(ctx context.Context, _ *turbulencev1.ListAgentsRequest) (*turbulencev1.ListAgentsResponse, error) {
	f.record(ctx, "ListAgents")
	return &turbulencev1.ListAgentsResponse{}, nil
}

func (f *readFake) GetAgent(ctx context.Context, req *turbulencev1.GetAgentRequest) (*turbulencev1.Agent, error) {
	f.record(ctx, "GetAgent")
	return &turbulencev1.Agent{Id: req.GetId()}, nil
}

func (f *readFake) ListFaults(ctx context.Context, _ *turbulencev1.ListFaultsRequest) (*turbulencev1.ListFaultsResponse, error) {
	f.record(ctx, "ListFaults")
	// One fault: an empty local listing is confirmed through the leader
	// (TestFaultLs_EmptyIsConfirmedThroughTheLeader), a second call.
	return &turbulencev1.ListFaultsResponse{Faults: []*turbulencev1.Fault{{Id: "f-1"}}}, nil
}

func (f *readFake) GetFault(ctx context.Context, req *turbulencev1.GetFaultRequest) (*turbulencev1.Fault, error) {
	f.record(ctx, "GetFault")
	return &turbulencev1.Fault{Id: req.GetId()}, nil
}

func (f *readFake) ListAudit(ctx context.Context, _ *turbulencev1.ListAuditRequest) (*turbulencev1.ListAuditResponse, error) {
	f.record(ctx, "ListAudit")
	return &turbulencev1.ListAuditResponse{}, nil
}

func (f *readFake) GetHaltStatus(ctx context.Context, _ *turbulencev1.GetHaltStatusRequest) (*turbulencev1.HaltStatus, error) {
	f.record(ctx, "GetHaltStatus")
	return &turbulencev1.HaltStatus{}, nil
}

func (f *readFake) ListEvents(ctx context.Context, _ *turbulencev1.ListEventsRequest) (*turbulencev1.ListEventsResponse, error) {
	f.record(ctx, "ListEvents")
	return &turbulencev1.ListEventsResponse{}, nil
}

func (f *readFake) ListServers(ctx context.Context, _ *turbulencev1.ListServersRequest) (*turbulencev1.ListServersResponse, error) {
	f.record(ctx, "ListServers")
	// A leader, so that status (which asks first) goes on to its read.
	return &turbulencev1.ListServersResponse{Servers: []*turbulencev1.Server{{Id: "c1", Leader: true}}}, nil
}

func startReadFake(t *testing.T) (*readFake, map[string]string) {
	t.Helper()
	fake := &readFake{seen: map[string]string{}}
	addr, pki := serveFake(t, func(srv *grpc.Server) {
		turbulencev1.RegisterControlServiceServer(srv, fake)
		turbulencev1.RegisterClusterServiceServer(srv, fake)
	})
	h := &harness{addr: addr, admin: pki.Admin}
	return fake, h.environ()
}

// readCommands are every read command and the RPC it makes; status and
// the agents reads first ask ListServers whether there is a leader.
var readCommands = []struct {
	args   []string
	method string
	first  string
}{
	{[]string{"agents", "ls"}, "ListAgents", "ListServers"},
	{[]string{"agents", "show", "a1"}, "GetAgent", "ListServers"},
	{[]string{"fault", "ls"}, "ListFaults", ""},
	{[]string{"fault", "show", "f-1"}, "GetFault", ""},
	{[]string{"audit", "ls"}, "ListAudit", ""},
	{[]string{"status"}, "GetHaltStatus", "ListServers"},
	{[]string{"events"}, "ListEvents", ""},
	{[]string{"cluster", "ls"}, "ListServers", ""},
}

func TestConsistent_FlagSendsTheMetadataOnEveryRead(t *testing.T) {
	t.Parallel()
	fake, environ := startReadFake(t)
	for _, rc := range readCommands {
		name := strings.Join(rc.args, " ")
		runCLI(t, environ, append(rc.args, "-o", "json", "--consistent")...).check(t, ExitOK)
		want := 1
		if rc.first != "" {
			want = 2
		}
		if got := fake.take(); got[rc.method] != "true" || len(got) != want || rc.first != "" && got[rc.first] != "true" {
			t.Errorf("%s --consistent: the controller saw %v, want %s with %s: true", name, got, rc.method, mdConsistentRead)
		}
		// Without the flag the read stays local: no metadata at all.
		runCLI(t, environ, append(rc.args, "-o", "json")...).check(t, ExitOK)
		if got := fake.take(); got[rc.method] != "" || len(got) != want {
			t.Errorf("%s: the controller saw %v, want %s without %s", name, got, rc.method, mdConsistentRead)
		}
	}
}

func TestConsistent_DocumentedInHelp(t *testing.T) {
	t.Parallel()
	for _, rc := range readCommands {
		r := runCLI(t, nil, append(rc.args, "--help")...)
		r.check(t, ExitOK)
		if !strings.Contains(r.stdout, "--consistent") || !strings.Contains(r.stdout, "raft leader") {
			t.Errorf("%s --help does not document --consistent:\n%s", strings.Join(rc.args, " "), r.stdout)
		}
	}
	// Writes have no such flag: they always go to the leader.
	r := runCLI(t, nil, "halt", "--consistent")
	r.check(t, ExitUsage, "--consistent")
}

func TestConsistent_RefusedWithFollow(t *testing.T) {
	t.Parallel()
	_, environ := startReadFake(t)
	r := runCLI(t, environ, "events", "--follow", "--consistent")
	r.check(t, ExitUsage, "--consistent", "--follow")
}
