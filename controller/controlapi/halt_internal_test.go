package controlapi

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// haltHub counts halt broadcasts and closes first at the first.
type haltHub struct {
	quietHub
	halts atomic.Int32
	first chan struct{}
}

func (h *haltHub) BroadcastHalt(string) {
	if h.halts.Add(1) == 1 {
		close(h.first)
	}
}

// stuckRaft is a Proposer whose writes wait until released, then fail.
type stuckRaft struct{ release chan struct{} }

func (r stuckRaft) Apply(ctx context.Context, _ *raftv1.LogEntry) (any, error) {
	<-r.release
	return nil, errors.New("raft unavailable")
}

// The halt reaches the connected agents before its raft write commits:
// a loaded cluster may take a second over the commit, and the brake must
// not wait for it. A write that then fails is reported to the caller.
func TestHalt_BroadcastsBeforeTheWriteCommits(t *testing.T) {
	t.Parallel()
	ca, _, _, err := tlsutil.NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	hub := &haltHub{first: make(chan struct{})}
	raft := stuckRaft{release: make(chan struct{})}
	s := New(Config{State: state.New(), Hub: hub, Raft: raft})
	ctx := callerCtx(t, ca, tlsutil.Identity{Role: tlsutil.RoleViewer, Name: "v"})
	done := make(chan error, 1)
	go func() {
		_, err := s.Halt(ctx, &turbulencev1.HaltRequest{RequestId: "h1", Reason: "test"})
		done <- err
	}()
	select {
	case <-hub.first:
	case err := <-done:
		t.Fatalf("Halt returned (%v) without a broadcast while its raft write was pending", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no halt broadcast while the raft write was pending")
	}
	close(raft.release)
	if err := <-done; err == nil {
		t.Error("Halt with a failed raft write = nil error, want the failure reported")
	}
}
