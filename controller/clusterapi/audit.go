package clusterapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/turbulence-sre/turbulence/controller/controlapi"
	"github.com/turbulence-sre/turbulence/controller/raftnode"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// Audit actions of membership changes, as they appear in
// AuditEntry.action beside controlapi's.
const (
	AuditClusterJoin   = "cluster.join"
	AuditClusterRemove = "cluster.remove"
	// auditFailedSuffix marks the second record of a change that was
	// recorded and then failed ("cluster.join.failed").
	auditFailedSuffix = ".failed"
)

// failureRecordTimeout bounds the best-effort record of a failed change;
// the caller's context may be spent by then.
const failureRecordTimeout = 5 * time.Second

// audited commits the audit record of a membership change, then makes
// the change. A record that cannot be committed refuses the change: no
// membership change without its record (the issue's "a write whose audit
// entry cannot be committed fails"). A change that fails after its record
// gets a second record, under the same request ID, saying why, so the
// log does not claim a change that did not happen.
func (s *Server) audited(ctx context.Context, caller tlsutil.Identity, action, summary string, change func() error) error {
	requestID := newRequestID()
	if err := controlapi.ProposeAuditRecord(ctx, s.raft, caller, requestID, action, summary); err != nil {
		return err
	}
	err := change()
	if err == nil {
		return nil
	}
	// Best effort: the change's own error is what the caller gets.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), failureRecordTimeout)
	defer cancel()
	msg := fmt.Sprintf("failed: %s: %v", summary, err)
	if rerr := controlapi.ProposeAuditRecord(rctx, s.raft, caller, requestID, action+auditFailedSuffix, msg); rerr != nil {
		return fmt.Errorf("%w (and its failure could not be recorded: %w)", err, rerr)
	}
	return err
}

// isVoter reports whether id is a voter at addr already, so that a
// node repeating its join is answered without a new record.
func (s *Server) isVoter(id string, addr raftnode.Address) bool {
	servers, err := s.raft.Servers()
	if err != nil {
		return false
	}
	for _, sv := range servers {
		if sv.ID == id && sv.Address == addr && sv.Suffrage == "voter" {
			return true
		}
	}
	return false
}

// checkMember refuses to remove an ID that is not in the configuration,
// before anything is recorded (invariant 6). raftnode checks again, on
// the leader, at the moment of the change.
func (s *Server) checkMember(id string) error {
	servers, err := s.raft.Servers()
	if err != nil {
		return err
	}
	for _, sv := range servers {
		if sv.ID == id {
			return nil
		}
	}
	return fmt.Errorf("remove server %q: %w", id, raftnode.ErrUnknownServer)
}

// newRequestID names a membership change in the audit log; the requests
// carry no client ID. crypto/rand, made before proposing, never in the
// FSM (determinism).
func newRequestID() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "r-" + hex.EncodeToString(b[:])
}
