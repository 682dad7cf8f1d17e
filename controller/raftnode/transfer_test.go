package raftnode

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// A single voter has nobody to hand leadership to: the transfer fails at
// once with ErrNoOtherVoter, and the node still leads and shuts down
// cleanly (goleak checks the waiter is gone).
func TestNode_TransferLeadershipAloneFailsCleanly(t *testing.T) {
	dir := t.TempDir()
	pki, err := tlsutil.EnsureDevPKI(filepath.Join(dir, "tls"), "agent-1")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := startNode(t, filepath.Join(dir, "raft"), pki)
	to, err := n.TransferLeadership(5 * time.Second)
	if !errors.Is(err, ErrNoOtherVoter) || to != "" {
		t.Errorf("TransferLeadership on a one-node cluster = %q, %v; want ErrNoOtherVoter", to, err)
	}
	if !n.IsLeader() {
		t.Error("a failed transfer left the node without leadership")
	}
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
}
