package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/turbulence-sre/turbulence/internal/limits"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// clusterCommand is `turbctl cluster ls | join | remove`: the raft
// membership of the controller cluster.
func (a *app) clusterCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "List, add and remove controller nodes",
		Long: `The controller cluster's raft membership. Any node answers: ls is read
from the node asked (from the leader with --consistent); join and remove
are forwarded to the leader.
ls needs the viewer role or more; join and remove need the admin role.`,
		Args: noSubcommand,
		RunE: missingSubcommand,
	}
	cmd.AddCommand(a.clusterLsCommand(), a.clusterJoinCommand(), a.clusterRemoveCommand())
	return cmd
}

func (a *app) clusterLsCommand() *cobra.Command {
	return a.consistentFlag(&cobra.Command{
		Use:   "ls",
		Short: "List the controller nodes and show the leader",
		Long: `List the raft membership as the controller asked knows it, the leader
marked, and which node answered. With --consistent the leader answers:
its configuration is the latest, and a follower's may lag it by a moment.

The table's STATE column says whether each node answered turbctl itself
within a short timeout (a gRPC health check on its GRPC address, at most
2s): "up", or "unreachable" with the reason. A dead node is a member
until removed; this is how it shows. -o json prints the membership alone.`,
		Args: exactArgs(),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			a.probeMembers = !a.json()
			return a.clusterCall(cmd.Context(), false, func(ctx context.Context, cs turbulencev1.ClusterServiceClient) (*turbulencev1.ListServersResponse, error) {
				// Follow the pages (docs/limits.md); a cluster of 3 or 5
				// nodes is one page.
				var all *turbulencev1.ListServersResponse
				for token := ""; ; {
					resp, err := cs.ListServers(ctx, &turbulencev1.ListServersRequest{PageToken: token, PageSize: limits.MaxPageServers})
					if err != nil {
						return nil, err
					}
					if all == nil {
						all = resp
					} else {
						all.Servers = append(all.Servers, resp.GetServers()...)
					}
					next := resp.GetNextPageToken()
					if next == "" || next == token {
						all.NextPageToken = ""
						return all, nil
					}
					token = next
				}
			})
		}),
	})
}

func (a *app) clusterJoinCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "join ID RAFT-ADDR GRPC-ADDR",
		Short: "Add a running controller node: a non-voter first, a voter once caught up",
		Long: `Add a controller to the raft configuration. The new node must be running,
started with no data (normally with --join, which makes this call by
itself); this command is for adding it by hand. The leader first checks
that the node answers on RAFT-ADDR with the controller certificate of ID
(refused otherwise, exit 5, nothing changed), adds it as a non-voter, and
promotes it to voter once it has caught up with the log; a node that needs
longer stays a non-voter and the call says so (exit 6: run it again). A
stale member with the same ID or raft address is replaced.`,
		Args: exactArgs("ID", "RAFT-ADDR", "GRPC-ADDR"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			req := &turbulencev1.JoinRequest{Id: args[0], RaftAddress: args[1], GrpcAddress: args[2]}
			return a.clusterCall(cmd.Context(), true, func(ctx context.Context, cs turbulencev1.ClusterServiceClient) (*turbulencev1.ListServersResponse, error) {
				return cs.Join(ctx, req)
			})
		}),
	}
}

func (a *app) clusterRemoveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a controller node from the cluster",
		Long: `Remove a controller from the raft configuration, e.g. a dead node that
will not come back. A removal is not retried: check with 'cluster ls'.
A removal that would leave the voters without a quorum is refused (exit
5): the last voter, or a live voter while others are silent (remove the
silent one first). A cluster that has lost its quorum already is
recovered offline with 'turbulence-controller recover' (docs/security.md).`,
		Args: exactArgs("ID"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			req := &turbulencev1.RemoveServerRequest{Id: args[0]}
			return a.clusterCall(cmd.Context(), false, func(ctx context.Context, cs turbulencev1.ClusterServiceClient) (*turbulencev1.ListServersResponse, error) {
				return cs.RemoveServer(ctx, req)
			})
		}),
	}
}

// clusterCall runs fn and prints the membership it returns. retry makes
// an Unavailable answer be tried again (join is idempotent; a removal is
// an operator action and is not retried).
func (a *app) clusterCall(ctx context.Context, retry bool, fn func(context.Context, turbulencev1.ClusterServiceClient) (*turbulencev1.ListServersResponse, error)) error {
	return a.withClient(func(c *client) error {
		cs := turbulencev1.NewClusterServiceClient(c.conn)
		var resp *turbulencev1.ListServersResponse
		call := func(ctx context.Context) (err error) {
			resp, err = fn(ctx, cs)
			return err
		}
		var err error
		if retry {
			err = c.mutate(ctx, "", call)
		} else {
			err = c.call(ctx, call)
		}
		if err != nil {
			return err
		}
		if a.probeMembers {
			return a.printServersState(resp, a.probeServers(ctx, resp.GetServers()))
		}
		return a.printServers(resp)
	})
}

func (a *app) printServers(resp *turbulencev1.ListServersResponse) error {
	return a.printServersState(resp, nil)
}

// printServersState prints the membership; with state (node ID → "up"
// or "unreachable: …") it adds the STATE column.
func (a *app) printServersState(resp *turbulencev1.ListServersResponse, state map[string]string) error {
	if a.json() {
		return writeJSONList(a.stdout, resp, len(resp.GetServers()))
	}
	w := table(a.stdout)
	head := []string{"ID", "LEADER", "SUFFRAGE", "RAFT", "GRPC"}
	if state != nil {
		head = append(head, "STATE")
	}
	row(w, head...)
	for _, s := range resp.GetServers() {
		leader := ""
		if s.GetLeader() {
			leader = "*"
		}
		cells := []string{s.GetId(), orNone(leader), s.GetSuffrage(), s.GetRaftAddress(), orNone(s.GetGrpcAddress())}
		if state != nil {
			cells = append(cells, orNone(state[s.GetId()]))
		}
		row(w, cells...)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if resp.GetAnsweredBy() != "" {
		_, err := fmt.Fprintf(a.stdout, "(answered by %s)\n", cell(strings.TrimSpace(resp.GetAnsweredBy())))
		return err
	}
	return nil
}
