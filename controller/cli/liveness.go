package cli

import (
	"context"
	"errors"
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

// confirmEmpty re-reads an empty fault listing through the leader. A
// controller that has just restarted answers from a replica that has
// not yet replayed the log: for seconds it listed no faults at all
// (issue 17), which reads as "nothing is running" at the worst moment.
// An empty local answer is therefore checked once more with a
// consistent read, which waits (within --timeout) until the leader has
// applied every committed entry. Only empty answers pay for it. When
// the leader cannot answer, the empty list is shown with a warning
// that it may be incomplete.
func (a *app) confirmEmpty(local *turbulencev1.ListFaultsResponse, list func() (*turbulencev1.ListFaultsResponse, error)) *turbulencev1.ListFaultsResponse {
	a.consistent = true
	defer func() { a.consistent = false }()
	got, err := list()
	if err != nil {
		fmt.Fprintf(a.stderr, "turbctl: warning: controller %s lists no faults, and the raft leader could not confirm it (%s): the controller may still be catching up after a restart, so the list may be incomplete\n",
			a.controller, status.Convert(errors.Unwrap(err)).Message())
		return local
	}
	if n := len(got.GetFaults()); n > 0 {
		fmt.Fprintf(a.stderr, "turbctl: controller %s had not caught up with the raft log yet (it listed no faults); these %d were read through the leader\n", a.controller, n)
	}
	return got
}
