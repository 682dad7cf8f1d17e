// Package clusterapi serves ClusterService: the controller cluster's
// membership as turbctl sees it (`turbctl cluster ls | join | remove`) and
// the call a new node started with --join makes to be added.
//
// Membership is raft's own configuration, not a record of the FSM: Join
// and RemoveServer are writes that controller/forward sends to the
// leader, where raft's AddVoter and RemoveServer run.
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
	AddVoter(ctx context.Context, id string, addr raftnode.Address) error
	RemoveServer(ctx context.Context, id string) error
}

// Server implements turbulencev1.ClusterServiceServer.
type Server struct {
	turbulencev1.UnimplementedClusterServiceServer
	raft Membership
}

var _ turbulencev1.ClusterServiceServer = (*Server)(nil)

// New returns a Server.
func New(m Membership) *Server { return &Server{raft: m} }

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

// Join adds a controller as a voter.
func (s *Server) Join(ctx context.Context, req *turbulencev1.JoinRequest) (*turbulencev1.ListServersResponse, error) {
	// A controller certificate may ask: that is how a node started with
	// --join adds itself. People need the admin role.
	caller, err := authorize(ctx, tlsutil.RoleAdmin, tlsutil.RoleController)
	if err != nil {
		return nil, err
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
	summary := fmt.Sprintf("add controller %s (raft %s, gRPC %s) as a voter", req.GetId(), addr.Raft, addr.GRPC)
	err = s.audited(ctx, caller, AuditClusterJoin, summary, func() error { return s.raft.AddVoter(ctx, req.GetId(), addr) })
	if err != nil {
		return nil, toStatus(fmt.Errorf("join %s as requested by %s: %w", req.GetId(), caller, err))
	}
	return s.list()
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
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
