package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/raftnode"
)

// recoverUsage is the help of `turbulence-controller recover`.
const recoverUsage = `usage: turbulence-controller recover --data-dir DIR --node-id ID --raft-addr HOST:PORT --grpc-addr HOST:PORT [--peer id=raft-addr/grpc-addr,…]

Rewrite the raft configuration of this STOPPED controller after its cluster
lost its quorum (no leader, and membership can no longer be changed): when
started again, the node has only the voters named here (itself alone
without --peer) and elects a leader at once. The addresses are those the
node advertises when it runs (--raft-addr, and --advertise-grpc-addr or
--grpc-addr). Run it on every server kept, with the same --peer list; never
start a server left out with its old data again. See docs/security.md.
`

// runRecover is `turbulence-controller recover`: exit 0 once the
// configuration is rewritten, 1 when recovery fails (the controller still
// runs, no raft state), 2 on a usage error.
func runRecover(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("turbulence-controller recover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, recoverUsage); fs.PrintDefaults() }
	var dataDir, nodeID, raftAddr, grpcAddr string
	var peers []raftnode.Peer
	fs.StringVar(&dataDir, "data-dir", "", "the stopped controller's data directory (raft.db and snapshots)")
	fs.StringVar(&nodeID, "node-id", "", "this controller's node ID")
	fs.StringVar(&raftAddr, "raft-addr", "", "this controller's raft address")
	fs.StringVar(&grpcAddr, "grpc-addr", "", "the gRPC address this controller advertises (its --advertise-grpc-addr, or --grpc-addr)")
	fs.Func("peer", "every voter to keep, this node included: id=raft-addr/grpc-addr; repeat or separate with commas (default: this node alone)", func(v string) error {
		p, err := parsePeers(v)
		peers = append(peers, p...)
		return err
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	servers, err := recoverServers(fs.NArg(), dataDir, nodeID, raftAddr, grpcAddr, peers)
	if err != nil {
		fmt.Fprintf(stderr, "turbulence-controller recover: %v\n", err)
		return exitUsage
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil)).With("node_id", nodeID)
	if err := controller.Recover(dataDir, servers, logger); err != nil {
		logger.Error("recovery failed; nothing was changed", "error", err)
		return exitFailure
	}
	ids := make([]string, 0, len(servers))
	for _, s := range servers {
		ids = append(ids, s.ID)
	}
	fmt.Fprintf(stderr, "turbulence-controller recover: the raft configuration of %s now holds the voters %v; start the controller again\n", nodeID, ids)
	return exitOK
}

// recoverServers checks the command line and returns the voters to keep.
func recoverServers(nargs int, dataDir, nodeID, raftAddr, grpcAddr string, peers []raftnode.Peer) ([]raftnode.Peer, error) {
	var errs []error
	if nargs > 0 {
		errs = append(errs, errors.New("unexpected arguments"))
	}
	for _, f := range []struct{ flag, val string }{{"--data-dir", dataDir}, {"--node-id", nodeID}, {"--raft-addr", raftAddr}, {"--grpc-addr", grpcAddr}} {
		if f.val == "" {
			errs = append(errs, fmt.Errorf("%s is required", f.flag))
		}
	}
	self := raftnode.Address{Raft: raftAddr, GRPC: grpcAddr}
	if raftAddr != "" && grpcAddr != "" {
		if _, err := raftnode.ParseAddress(self.String()); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(peers) == 0 {
		return []raftnode.Peer{{ID: nodeID, Address: self}}, nil
	}
	// This node first: raft recovers under the first server's ID.
	out := []raftnode.Peer{{ID: nodeID, Address: self}}
	seen := map[string]bool{nodeID: true}
	found := false
	for _, p := range peers {
		if p.ID == nodeID {
			found = true
			if p.Address != self {
				return nil, fmt.Errorf("--peer %s=%s: this node's address is %s (--raft-addr/--grpc-addr)", p.ID, p.Address, self)
			}
			continue
		}
		if seen[p.ID] {
			return nil, fmt.Errorf("--peer: id %q given twice", p.ID)
		}
		seen[p.ID] = true
		out = append(out, p)
	}
	if !found {
		return nil, fmt.Errorf("--peer: this node's ID %q is not among the %d peers; it must be one of the voters it keeps", nodeID, len(peers))
	}
	return out, nil
}
