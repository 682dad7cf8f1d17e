// Package clusterapi serves ClusterService: the controller cluster's
// membership as turbctl sees it (`turbctl cluster ls | join | remove`) and
// the call a new node started with --join makes to be added.
//
// Membership is raft's own configuration, not a record of the FSM: Join
// and RemoveServer are writes that controller/forward sends to the
// leader, where raft's AddNonvoter, AddVoter and RemoveServer run.
//
// Safe membership (docs/security.md): a controller certificate joins only
// its own node ID; a new node must answer on its raft port as that
// controller, is added as a non-voter and promoted to voter only once it
// has caught up; a removal that would leave the voters without a quorum
// is refused (raftnode.ErrWouldLoseQuorum). A cluster that lost its
// quorum all the same is recovered offline (turbulence-controller
// recover, raftnode.Recover).
//
// Audit (audit.go): every membership change is recorded in the replicated
// audit log with the caller's identity (docs/design.md, controller state: "an
// audit log of every mutating call"). A configuration change is a raft
// configuration entry, not a LogEntry, so its record cannot ride in the
// same entry as ControlService writes do; instead the record is committed
// first, through controlapi.ProposeAuditRecord, and the change is refused
// if the record cannot be committed. The record therefore says what was
// asked; a change that then fails gets a second record saying so.
//
// Bad input (no ID, malformed addresses, removing an unknown server) is
// refused before anything is proposed and leaves no record (invariant 6),
// as on ControlService.
package clusterapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/controller/controlapi"
	"github.com/turbulence-sre/turbulence/controller/forward"
	"github.com/turbulence-sre/turbulence/controller/raftnode"
	"github.com/turbulence-sre/turbulence/internal/limits"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Membership is the part of the raft node the service needs: the
// configuration, and Apply for the audit records.
type Membership interface {
	controlapi.Proposer
	ID() string
	// Self is this node as a configuration would list it, member or not
	// (--bootstrap-expect discovery reads it through ListServers).
	Self() raftnode.Peer
	Servers() ([]raftnode.Server, error)
	// VerifyPeer succeeds only if the server at addr's raft port holds
	// the controller certificate of id.
	VerifyPeer(ctx context.Context, id string, addr raftnode.Address) error
	AddNonvoter(ctx context.Context, id string, addr raftnode.Address) error
	Promote(ctx context.Context, id string) error
	RemoveServer(ctx context.Context, id string) error
}

// Prober asks the controller id, at its gRPC address, for the raft
// configuration it knows (its ListServers), over mutual TLS that accepts
// only id's controller certificate. The leader uses it to see a new node
// catch up before it gets a vote.
type Prober func(ctx context.Context, id, grpcAddr string) ([]raftnode.Server, error)

// Bounds of the wait for a new node to catch up (Join).
const (
	// DefaultCatchUpTimeout bounds one Join's wait, within the joining
	// node's 15 s call limit (controller/join.go). A node that needs
	// longer (a large snapshot) stays a non-voter; its next Join attempt
	// waits again and promotes it then.
	DefaultCatchUpTimeout = 10 * time.Second
	catchUpPoll           = 100 * time.Millisecond
	probeCallTimeout      = 2 * time.Second
)

// errNotCaughtUp: the new node did not show, within the catch-up
// timeout, that it holds the log up to its own addition.
var errNotCaughtUp = errors.New("the new node has not caught up with the log yet; it stays a non-voter and its next join attempt will promote it")

// Server implements turbulencev1.ClusterServiceServer.
type Server struct {
	turbulencev1.UnimplementedClusterServiceServer
	raft  Membership
	probe Prober
	// CatchUpTimeout, if set before use, replaces DefaultCatchUpTimeout.
	CatchUpTimeout time.Duration
}

var _ turbulencev1.ClusterServiceServer = (*Server)(nil)

// New returns a Server; probe is how Join sees a new node catch up.
func New(m Membership, probe Prober) *Server { return &Server{raft: m, probe: probe} }

// ListServers returns a page of the raft configuration as this node knows
// it, by ID (docs/limits.md).
func (s *Server) ListServers(ctx context.Context, req *turbulencev1.ListServersRequest) (*turbulencev1.ListServersResponse, error) {
	if _, err := authorize(ctx, tlsutil.RoleAdmin, tlsutil.RoleOperator, tlsutil.RoleViewer, tlsutil.RoleController); err != nil {
		return nil, err
	}
	n, err := controlapi.PageSize("page_size", req.GetPageSize(), limits.DefaultPageServer, limits.MaxPageServers)
	if err != nil {
		return nil, err
	}
	after, err := controlapi.DecodeToken(controlapi.TokenServers, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp, err := s.list()
	if err != nil {
		return nil, err
	}
	slices.SortFunc(resp.Servers, func(a, b *turbulencev1.Server) int { return cmp.Compare(a.GetId(), b.GetId()) })
	resp.Servers = slices.DeleteFunc(resp.Servers, func(sv *turbulencev1.Server) bool { return sv.GetId() <= after })
	if len(resp.Servers) > n {
		resp.Servers = resp.Servers[:n]
		resp.NextPageToken = controlapi.EncodeToken(controlapi.TokenServers, resp.Servers[n-1].GetId())
	}
	return resp, nil
}

// Join adds a controller: first as a non-voter, which counts for no
// quorum, and as a voter only once it has answered over mutual TLS as
// that controller and caught up with the log (docs/security.md, "Safe
// membership"). A server that does not exist or cannot be reached can
// therefore never become a voter and take the cluster's quorum with it
// (issue 13, finding 4).
func (s *Server) Join(ctx context.Context, req *turbulencev1.JoinRequest) (*turbulencev1.ListServersResponse, error) {
	// A controller certificate may ask: that is how a node started with
	// --join adds itself. People need the admin role.
	caller, err := authorize(ctx, tlsutil.RoleAdmin, tlsutil.RoleController)
	if err != nil {
		return nil, err
	}
	// A controller joins itself, never another ID: its certificate
	// proves who it is, not who else may vote.
	if caller.Role == tlsutil.RoleController && req.GetId() != caller.Name {
		return nil, status.Errorf(codes.PermissionDenied, "join: %s may join only as node %q (its certificate's name), not as %q; an admin adds other nodes", caller, caller.Name, req.GetId())
	}
	var problems []error
	if req.GetId() == "" {
		problems = append(problems, errors.New("id is required"))
	}
	addr := raftnode.Address{Raft: req.GetRaftAddress(), GRPC: req.GetGrpcAddress()}
	if req.GetRaftAddress() == "" || req.GetGrpcAddress() == "" {
		problems = append(problems, errors.New("raft_address and grpc_address are required (host:port)"))
	} else if _, err := raftnode.ParseAddress(addr.String()); err != nil {
		problems = append(problems, err)
	}
	if len(problems) > 0 {
		return nil, status.Errorf(codes.InvalidArgument, "join: %v", errors.Join(problems...))
	}
	if s.isVoter(req.GetId(), addr) {
		// A node retrying its join: nothing changes, nothing to record.
		return s.list()
	}
	// Before anything is recorded or replicated: the node must answer on
	// its raft port as the controller it claims to be.
	if err := s.raft.VerifyPeer(ctx, req.GetId(), addr); err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "join %s as requested by %s: nothing was changed: %v", req.GetId(), caller, err)
	}
	summary := fmt.Sprintf("add controller %s (raft %s, gRPC %s) as a non-voter, and as a voter once caught up", req.GetId(), addr.Raft, addr.GRPC)
	err = s.audited(ctx, caller, AuditClusterJoin, summary, func() error {
		if err := s.raft.AddNonvoter(ctx, req.GetId(), addr); err != nil {
			return err
		}
		if err := s.waitCaughtUp(ctx, req.GetId(), addr.GRPC); err != nil {
			return err
		}
		return s.raft.Promote(ctx, req.GetId())
	})
	if err != nil {
		return nil, toStatus(fmt.Errorf("join %s as requested by %s: %w", req.GetId(), caller, err))
	}
	return s.list()
}

// waitCaughtUp polls the new node until the configuration it knows lists
// itself: raft replicates the log in order, so a node that holds the
// entry that added it holds everything before it, which is the log as it
// was when the join began.
func (s *Server) waitCaughtUp(ctx context.Context, id, grpcAddr string) error {
	timeout := s.CatchUpTimeout
	if timeout <= 0 {
		timeout = DefaultCatchUpTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(catchUpPoll)
	defer t.Stop()
	var last error
	for {
		pctx, pcancel := context.WithTimeout(ctx, probeCallTimeout)
		servers, err := s.probe(pctx, id, grpcAddr)
		pcancel()
		if err == nil && slices.ContainsFunc(servers, func(sv raftnode.Server) bool { return sv.ID == id }) {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last answer: %w)", errNotCaughtUp, last)
			}
			return errNotCaughtUp
		case <-t.C:
		}
	}
}

// RemoveServer removes a controller from the cluster.
func (s *Server) RemoveServer(ctx context.Context, req *turbulencev1.RemoveServerRequest) (*turbulencev1.ListServersResponse, error) {
	caller, err := authorize(ctx, tlsutil.RoleAdmin)
	if err != nil {
		return nil, err
	}
	if req.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "remove: id is required")
	}
	if err := s.checkMember(req.GetId()); err != nil {
		return nil, toStatus(fmt.Errorf("removal asked by %s: %w", caller, err))
	}
	summary := "remove controller " + req.GetId() + " from the cluster"
	err = s.audited(ctx, caller, AuditClusterRemove, summary, func() error { return s.raft.RemoveServer(ctx, req.GetId()) })
	if err != nil {
		return nil, toStatus(fmt.Errorf("removal asked by %s: %w", caller, err))
	}
	return s.list()
}

func (s *Server) list() (*turbulencev1.ListServersResponse, error) {
	servers, err := s.raft.Servers()
	if err != nil {
		return nil, toStatus(err)
	}
	self := s.raft.Self()
	resp := &turbulencev1.ListServersResponse{
		AnsweredBy: s.raft.ID(),
		Self:       &turbulencev1.Server{Id: self.ID, RaftAddress: self.Address.Raft, GrpcAddress: self.Address.GRPC},
	}
	for _, sv := range servers {
		resp.Servers = append(resp.Servers, &turbulencev1.Server{
			Id:          sv.ID,
			RaftAddress: sv.Address.Raft,
			GrpcAddress: sv.Address.GRPC,
			Leader:      sv.Leader,
			Suffrage:    sv.Suffrage,
		})
	}
	return resp, nil
}

// authorize returns the caller (the original one of a forwarded call) if
// its role is one of roles.
func authorize(ctx context.Context, roles ...string) (tlsutil.Identity, error) {
	id, err := forward.CallerIdentity(ctx)
	if err != nil {
		return tlsutil.Identity{}, status.Errorf(codes.Unauthenticated, "cluster API: %v", err)
	}
	for _, r := range roles {
		if id.Role == r {
			return id, nil
		}
	}
	return tlsutil.Identity{}, status.Errorf(codes.PermissionDenied, "%s may not do this through the cluster API (allowed roles: %v)", id, roles)
}

// toStatus maps membership errors to gRPC codes. Not-leader is
// Unavailable so that the forwarder retries at the new leader.
func toStatus(err error) error {
	switch {
	case errors.Is(err, raftnode.ErrNotLeader), errors.Is(err, raftnode.ErrUnavailable):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, raftnode.ErrUnknownServer):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, raftnode.ErrWouldLoseQuorum), errors.Is(err, raftnode.ErrPeerUnverified):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, errNotCaughtUp):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
