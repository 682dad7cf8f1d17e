package cli

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Liveness (who is connected, last seen) is soft state on the leader
// (docs/design.md, controller state): agents keep their session with the
// leader only, and a follower's replica says every agent is not
// connected. Reads from a follower used to show exactly that (issue 17).
//
// The choice: turbctl reads agents through the leader whenever the
// controller asked is a follower, using the consistent-read path the
// controller already has (--consistent: the follower forwards the read
// to the leader, which answers after a raft barrier). The barrier costs
// one raft round, paid only on this fallback. Marking the column
// "unknown" on a follower was the other option; it is kept for when no
// leader is known at all, since then nobody knows.

// readLivenessFromLeader asks the controller whether it leads. A
// follower that knows a leader makes the agents read go through it; a
// node that knows none makes the read local, with liveness shown as
// unknown and a note on stderr.
func (a *app) readLivenessFromLeader(ctx context.Context, c *client) error {
	var resp *turbulencev1.ListServersResponse
	err := c.call(ctx, func(ctx context.Context) (err error) {
		resp, err = turbulencev1.NewClusterServiceClient(c.conn).ListServers(ctx, &turbulencev1.ListServersRequest{})
		return err
	})
	if status.Code(err) == codes.Unimplemented {
		return nil // a server without the cluster service: read as asked
	}
	if err != nil || a.consistent {
		return err
	}
	leader := ""
	for _, s := range resp.GetServers() {
		if s.GetLeader() {
			leader = s.GetId()
		}
	}
	switch {
	case leader == "":
		a.livenessUnknown = true
		fmt.Fprintf(a.stderr, "turbctl: controller %s knows no raft leader: who is connected is known to the leader only, so CONNECTED is unknown\n", cell(resp.GetAnsweredBy()))
	case resp.GetAnsweredBy() != "" && resp.GetAnsweredBy() != leader:
		a.consistent = true
	}
	return nil
}

// connected renders an agent's connection: yes or no as the leader
// knows it, or unknown when no leader answered.
func connected(ag *turbulencev1.Agent, unknown bool) string {
	if unknown {
		return "unknown"
	}
	return yesNo(ag.GetConnected())
}
