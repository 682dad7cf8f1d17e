package cli

import (
	"strings"
	"testing"

	"google.golang.org/grpc"

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
