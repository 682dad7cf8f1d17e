package cli

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestAgentsLs_NoLeaderLivenessUnknown: a controller that knows no leader
// cannot know who is connected; the agents table says unknown rather
// than "no", and stderr says why.
func TestAgentsLs_NoLeaderLivenessUnknown(t *testing.T) {
	t.Parallel()
	fake := &fakeControl{faults: map[string]*turbulencev1.Fault{}}
	addr, pki := serveFake(t, func(srv *grpc.Server) {
		turbulencev1.RegisterControlServiceServer(srv, fake)
		turbulencev1.RegisterClusterServiceServer(srv, leaderCluster{none: true})
	})
	h := &harness{addr: addr, fake: fake, admin: pki.Admin}
	r := runCLI(t, h.environ(), "agents", "ls")
	r.check(t, ExitOK, "knows no raft leader", "CONNECTED is unknown")
	if !strings.Contains(r.stdout, "a1  unknown") {
		t.Errorf("agents ls without a leader:\n%s", r.stdout)
	}
	// With a leader, the fake's own answer stands.
	h2 := startFake(t)
	r = runCLI(t, h2.environ(), "agents", "ls")
	r.check(t, ExitOK)
	if !strings.Contains(r.stdout, "a1  yes") {
		t.Errorf("agents ls with a leader:\n%s", r.stdout)
	}
}

// catchingUp answers ListFaults as a just-restarted controller does: its
// own replica is empty, while a consistent read (through the leader,
// after a barrier) sees the faults.
type catchingUp struct {
	turbulencev1.UnimplementedControlServiceServer
	// leaderDown makes the consistent read fail, as without a leader.
	leaderDown bool
}

func (c catchingUp) ListFaults(ctx context.Context, _ *turbulencev1.ListFaultsRequest) (*turbulencev1.ListFaultsResponse, error) {
	if v := metadata.ValueFromIncomingContext(ctx, mdConsistentRead); len(v) == 0 || v[0] != "true" {
		return &turbulencev1.ListFaultsResponse{}, nil
	}
	if c.leaderDown {
		return nil, status.Error(codes.Unavailable, "no controller leader reachable within the 5s hold time")
	}
	return &turbulencev1.ListFaultsResponse{Faults: []*turbulencev1.Fault{{Id: "f-0001", AgentId: "web-1", State: turbulencev1.FaultState_FAULT_STATE_ACTIVE}}}, nil
}

// TestFaultLs_EmptyIsConfirmedThroughTheLeader: a just-restarted node
// listed no faults for seconds (issue 17). An empty local answer is read
// again through the leader; when that fails, the empty list comes with a
// warning that it may be incomplete.
func TestFaultLs_EmptyIsConfirmedThroughTheLeader(t *testing.T) {
	t.Parallel()
	for _, down := range []bool{false, true} {
		addr, pki := serveFake(t, func(srv *grpc.Server) {
			turbulencev1.RegisterControlServiceServer(srv, catchingUp{leaderDown: down})
		})
		h := &harness{addr: addr, admin: pki.Admin}
		r := runCLI(t, h.environ(), "fault", "ls")
		if !down {
			r.check(t, ExitOK, "had not caught up", "read through the leader")
			if !strings.Contains(r.stdout, "f-0001") {
				t.Errorf("fault ls on a catching-up node:\n%s", r.stdout)
			}
			continue
		}
		r.check(t, ExitOK, "may still be catching up", "may be incomplete", "no controller leader reachable")
	}
}

// TestAgentsShow_MetricsUnknownSaysWhy: `agents show` still shows the
// agent when its host metrics cannot be had, and says why: no leader
// (then it does not ask at all), or a controller without the call.
func TestAgentsShow_MetricsUnknownSaysWhy(t *testing.T) {
	t.Parallel()
	fake := &fakeControl{faults: map[string]*turbulencev1.Fault{}}
	addr, pki := serveFake(t, func(srv *grpc.Server) {
		turbulencev1.RegisterControlServiceServer(srv, fake)
		turbulencev1.RegisterClusterServiceServer(srv, leaderCluster{none: true})
	})
	h := &harness{addr: addr, fake: fake, admin: pki.Admin}
	r := runCLI(t, h.environ(), "agents", "show", "a1")
	r.check(t, ExitOK)
	if !strings.Contains(r.stdout, "Host metrics:     unknown (no raft leader, which alone keeps them)") {
		t.Errorf("agents show without a leader:\n%s", r.stdout)
	}
	r = runCLI(t, startFake(t).environ(), "agents", "show", "a1")
	r.check(t, ExitOK)
	if !strings.Contains(r.stdout, "Host metrics:     unknown (this controller does not serve them)") {
		t.Errorf("agents show against a controller without GetAgentMetrics:\n%s", r.stdout)
	}
}
