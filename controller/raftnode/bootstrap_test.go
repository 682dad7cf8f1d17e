package raftnode

import (
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/controller/fsm"
	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

func TestNode_BootstrapServersOnceNeverTwice(t *testing.T) {
	dir := t.TempDir()
	pki, err := tlsutil.EnsureDevPKI(filepath.Join(dir, "tls"), "agent-1")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Join: no bootstrap at start, as with --bootstrap-expect and --join.
	n, err := New(Config{NodeID: "n1", DataDir: filepath.Join(dir, "raft"), Listener: l, TLS: pki.Controller,
		FSM: fsm.New(state.New(), nil), Tune: fastRaft, GRPCAddr: "127.0.0.1:7420", Join: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n.Shutdown() }()
	self := n.Self()
	if self.ID != "n1" || self.Address.Raft != n.Addr() || self.Address.GRPC != "127.0.0.1:7420" {
		t.Errorf("Self() = %+v, want n1 at %s/127.0.0.1:7420", self, n.Addr())
	}
	if err := n.BootstrapServers([]Peer{{ID: "other", Address: Address{Raft: "127.0.0.1:1"}}}); err == nil {
		t.Error("BootstrapServers without this node succeeded")
	}
	if err := n.BootstrapServers([]Peer{self}); err != nil {
		t.Fatalf("first BootstrapServers: %v", err)
	}
	waitFor(t, 10*time.Second, n.IsLeader)
	if err := n.BootstrapServers([]Peer{self}); !errors.Is(err, ErrHasState) {
		t.Errorf("second BootstrapServers = %v, want ErrHasState", err)
	}
}
