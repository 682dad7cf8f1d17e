package controller_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// haltWithin asks for a fleet halt with a deadline.
func haltWithin(t *testing.T, api turbulencev1.ControlServiceClient, requestID string, timeout time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := api.Halt(ctx, &turbulencev1.HaltRequest{RequestId: requestID, Reason: "membership test"})
	return err
}

// TestJoin_PhantomIsRefusedAndTheClusterStaysWritable is issue 13's
// finding 4: a controller certificate joined a made-up node at an
// unreachable address, after which a one-node cluster had no leader and
// refused halt for good. Now a controller may join only as itself, and
// even then only if it answers on its raft port as that controller;
// either way nothing changes and halt keeps working.
func TestJoin_PhantomIsRefusedAndTheClusterStaysWritable(t *testing.T) {
	t.Parallel()
	s := controllertest.NewServer(t, nil)
	for _, tc := range []struct {
		name   string
		caller string
		want   codes.Code
	}{
		{"controller certificate asks for another ID", "c2", codes.PermissionDenied},
		{"controller certificate of the phantom, nobody listening", "phantom", codes.FailedPrecondition},
	} {
		files := s.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleController, Name: tc.caller})
		req := &turbulencev1.JoinRequest{Id: "phantom", RaftAddress: "127.0.0.1:1", GrpcAddress: "127.0.0.1:2"}
		before := s.Controller.LastRaftIndex()
		_, err := s.ClusterClient(t, files).Join(t.Context(), req)
		if status.Code(err) != tc.want {
			t.Errorf("%s: Join = %v, want %s", tc.name, err, tc.want)
		}
		if after := s.Controller.LastRaftIndex(); after != before {
			t.Errorf("%s: raft log grew from %d to %d, want nothing proposed", tc.name, before, after)
		}
	}
	servers, err := s.Controller.Servers()
	if err != nil || len(servers) != 1 {
		t.Fatalf("configuration = %+v, %v; want this node alone", servers, err)
	}
	if err := haltWithin(t, s.AdminClient(t), "after-phantom", 20*time.Second); err != nil {
		t.Fatalf("halt after the refused joins: %v", err)
	}
}

// TestRemove_RefusedWhenItWouldLoseQuorum: raft would let an admin remove
// the last voter, or a live voter while another is down, leaving a
// cluster that can never elect a leader again. Such removals are refused
// (FailedPrecondition, turbctl exit 5) and the cluster stays writable;
// removing the dead voter instead is allowed.
func TestRemove_RefusedWhenItWouldLoseQuorum(t *testing.T) {
	t.Parallel()
	t.Run("last voter", func(t *testing.T) {
		t.Parallel()
		s := controllertest.NewServer(t, nil)
		_, err := s.ClusterClient(t, s.PKI.Admin).RemoveServer(t.Context(), &turbulencev1.RemoveServerRequest{Id: s.Config.NodeID})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "last voter") {
			t.Fatalf("RemoveServer(only voter) = %v, want FailedPrecondition naming the last voter", err)
		}
		if err := haltWithin(t, s.AdminClient(t), "after-refusal", 20*time.Second); err != nil {
			t.Fatalf("halt after the refused removal: %v", err)
		}
	})
	t.Run("live voter while another is down", func(t *testing.T) {
		t.Parallel()
		c := controllertest.NewCluster(t, 3, nil)
		leader := c.Leader()
		followers := c.Followers()
		live, dead := followers[0], followers[1]
		if err := dead.Crash(); err != nil {
			t.Fatal(err)
		}
		controllertest.WaitFor(t, 20*time.Second, "the leader to see "+dead.Config.NodeID+"'s heartbeats fail", func() bool {
			return slices.Contains(leader.Controller.FailingPeers(), dead.Config.NodeID)
		})
		admin := leader.ClusterClient(t, c.PKI.Admin)
		_, err := admin.RemoveServer(t.Context(), &turbulencev1.RemoveServerRequest{Id: live.Config.NodeID})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "quorum") {
			t.Fatalf("RemoveServer(live follower while one is down) = %v, want FailedPrecondition about quorum", err)
		}
		if err := haltWithin(t, leader.AdminClient(t), "after-refusal", 20*time.Second); err != nil {
			t.Fatalf("halt after the refused removal: %v", err)
		}
		if _, err := admin.RemoveServer(t.Context(), &turbulencev1.RemoveServerRequest{Id: dead.Config.NodeID}); err != nil {
			t.Fatalf("RemoveServer(dead follower) = %v, want it removed", err)
		}
	})
}
