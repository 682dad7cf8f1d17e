package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/turbulence-sre/turbulence/controller/cli"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/controller/raftnode"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// phantomAddr is where the made-up voter "lives": nothing listens there.
const phantomAddr = "127.0.0.1:1/127.0.0.1:2"

// wedge makes, by hand, the state issue 13 found a one-node cluster in
// after a controller certificate joined a made-up node: the stopped
// node's log ends with a configuration entry that adds a voter at an
// unreachable address. Started again, the node needs that voter's vote to
// elect anyone, so there is no leader, for good.
func wedge(t *testing.T, dataDir, selfID, selfAddr string) {
	t.Helper()
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dataDir, "raft.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = store.Close() }()
	last, err := store.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	var tail raft.Log
	if err := store.GetLog(last, &tail); err != nil {
		t.Fatal(err)
	}
	conf := raft.Configuration{Servers: []raft.Server{
		{Suffrage: raft.Voter, ID: raft.ServerID(selfID), Address: raft.ServerAddress(selfAddr)},
		{Suffrage: raft.Voter, ID: "phantom", Address: phantomAddr},
	}}
	entry := &raft.Log{Index: last + 1, Term: tail.Term, Type: raft.LogConfiguration, Data: raft.EncodeConfiguration(conf)}
	if err := store.StoreLog(entry); err != nil {
		t.Fatal(err)
	}
}

func halt(t *testing.T, n *controllertest.Node, timeout time.Duration, requestID string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := n.AdminClient(t).Halt(ctx, &turbulencev1.HaltRequest{RequestId: requestID, Reason: "recovery test"})
	return err
}

// TestRecover_WedgedOneNodeClusterElectsItselfAgain: the documented
// recovery (docs/security.md) of exactly that wedge. Before it the node
// has no leader and refuses halt; after `turbulence-controller recover`
// and a restart it elects itself, lists itself alone and accepts halt.
func TestRecover_WedgedOneNodeClusterElectsItselfAgain(t *testing.T) {
	c := controllertest.NewCluster(t, 1, nil)
	n := c.Nodes[0]
	if err := halt(t, n, 20*time.Second, "before"); err != nil {
		t.Fatalf("halt on the healthy node: %v", err)
	}
	self := raftnode.Address{Raft: n.Config.RaftAddr, GRPC: n.Config.GRPCAddr}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	wedge(t, n.Config.DataDir, n.Config.NodeID, self.String())

	// Wedged: started again, it cannot elect itself; halt fails.
	n.Restart(t)
	if err := halt(t, n, 3*time.Second, "wedged"); err == nil {
		t.Fatal("halt succeeded on the wedged node; the test did not make the wedge")
	}
	if n.Controller.LeaderID() != "" {
		t.Fatalf("wedged node names leader %q", n.Controller.LeaderID())
	}
	// turbctl status says so, rather than "running" (issue 13, item 8).
	var out, errOut bytes.Buffer
	admin := c.PKI.Admin
	code := cli.Main([]string{"--controller", n.Addr, "--ca", admin.CA, "--cert", admin.Cert, "--key", admin.Key, "--timeout", "5s", "status"}, &out, &errOut)
	if code != cli.ExitUnavailable || strings.Contains(out.String(), "running") || !strings.Contains(errOut.String(), "knows no raft leader") {
		t.Errorf("turbctl status on the wedged node: exit %d, stdout %q, stderr %q; want exit %d saying there is no leader", code, out.String(), errOut.String(), cli.ExitUnavailable)
	}
	// Recovery refuses to touch a running controller's log.
	var stderr bytes.Buffer
	args := []string{"recover", "--data-dir", n.Config.DataDir, "--node-id", n.Config.NodeID, "--raft-addr", self.Raft, "--grpc-addr", self.GRPC}
	if code := run(args, &stderr); code != exitFailure || !strings.Contains(stderr.String(), "stop this controller first") {
		t.Fatalf("recover on a running controller: exit %d, want %d with 'stop this controller first':\n%s", code, exitFailure, stderr.String())
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}

	stderr.Reset()
	if code := run(args, &stderr); code != exitOK {
		t.Fatalf("recover: exit %d, want %d:\n%s", code, exitOK, stderr.String())
	}
	n.Restart(t)
	c.WaitLeader(t, 20*time.Second)
	if err := halt(t, n, 20*time.Second, "after"); err != nil {
		t.Fatalf("halt after recovery: %v", err)
	}
	servers, err := n.Controller.Servers()
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 1 || servers[0].ID != n.Config.NodeID || servers[0].Suffrage != "voter" {
		t.Errorf("configuration after recovery = %+v, want %s alone as a voter", servers, n.Config.NodeID)
	}
	// The halt recorded before the wedge survived the recovery.
	hs, err := n.AdminClient(t).GetHaltStatus(t.Context(), &turbulencev1.GetHaltStatusRequest{})
	if err != nil || !hs.GetHalted() {
		t.Errorf("halt status after recovery = %v, %v; want halted", hs, err)
	}
}

func TestRecover_UsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"recover"}, "--data-dir is required"},
		{[]string{"recover", "--data-dir", "d", "--node-id", "c1", "--raft-addr", "nope", "--grpc-addr", "127.0.0.1:2"}, "raft address"},
		{[]string{"recover", "--data-dir", "d", "--node-id", "c1", "--raft-addr", "127.0.0.1:1", "--grpc-addr", "127.0.0.1:2", "--peer", "c2=127.0.0.1:3/127.0.0.1:4"}, `this node's ID "c1" is not among`},
		{[]string{"recover", "--data-dir", "d", "--node-id", "c1", "--raft-addr", "127.0.0.1:1", "--grpc-addr", "127.0.0.1:2", "--peer", "c1=127.0.0.1:9/127.0.0.1:2"}, "this node's address is"},
	} {
		var stderr bytes.Buffer
		if code := run(tc.args, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d mentioning %q", tc.args, code, stderr.String(), exitUsage, tc.want)
		}
	}
	// Nothing to recover: no raft.db there.
	var stderr bytes.Buffer
	code := run([]string{"recover", "--data-dir", t.TempDir(), "--node-id", "c1", "--raft-addr", "127.0.0.1:1", "--grpc-addr", "127.0.0.1:2"}, &stderr)
	if code != exitFailure || !strings.Contains(stderr.String(), "raft.db") {
		t.Errorf("recover without raft.db: exit %d, stderr %q", code, stderr.String())
	}
}
