package raftnode

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"

	"github.com/turbulence-sre/turbulence/controller/fsm"
	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func fastRaft(c *raft.Config) {
	c.HeartbeatTimeout = 100 * time.Millisecond
	c.ElectionTimeout = 100 * time.Millisecond
	c.LeaderLeaseTimeout = 50 * time.Millisecond
}

func startNode(t *testing.T, dir string, pki tlsutil.DevPKI) (*Node, *state.State) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st := state.New()
	n, err := New(Config{NodeID: "n1", DataDir: dir, Listener: l, TLS: pki.Controller, FSM: fsm.New(st, nil), Tune: fastRaft})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, n.IsLeader)
	return n, st
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		<-tick.C
	}
}

func TestNode_ApplySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	pki, err := tlsutil.EnsureDevPKI(filepath.Join(dir, "tls"), "agent-1")
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "raft")
	n, _ := startNode(t, data, pki)
	entry := &raftv1.LogEntry{Cmd: &raftv1.LogEntry_RegisterAgent{RegisterAgent: &raftv1.RegisterAgent{Agent: &turbulencev1.Agent{Id: "agent-1"}}}}
	resp, err := n.Apply(t.Context(), entry)
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := resp.(*turbulencev1.Agent); !ok || a.GetId() != "agent-1" {
		t.Fatalf("Apply response = %v", resp)
	}
	if entry.GetProposedAt() != nil {
		t.Error("Apply stamped the caller's entry instead of a copy")
	}
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}

	// A restarted node must recover its log rather than bootstrap again.
	n2, st2 := startNode(t, data, pki)
	defer func() { _ = n2.Shutdown() }()
	waitFor(t, 10*time.Second, func() bool { _, ok := st2.Agent("agent-1"); return ok })
}

func TestStreamLayer_RefusesNonControllerPeer(t *testing.T) {
	dir := t.TempDir()
	pki, err := tlsutil.EnsureDevPKI(filepath.Join(dir, "tls"), "agent-1")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := startNode(t, filepath.Join(dir, "raft"), pki)
	defer func() { _ = n.Shutdown() }()
	cfg, err := tlsutil.ClientConfig(pki.Agent, "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", n.Addr(), cfg)
	if err == nil {
		// TLS 1.3: the server's verdict on the client certificate arrives
		// with the first read.
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		_ = conn.Close()
	}
	if err == nil {
		t.Fatal("an agent certificate reached the raft transport")
	}
}
