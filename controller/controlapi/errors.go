package controlapi

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/controller/raftnode"
	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/errkind"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	"github.com/turbulence-sre/turbulence/internal/limits"
)

// Sentinels of this package; state and raftnode have their own, which the
// mapper knows too.
var (
	ErrNotFound         = state.ErrNotFound
	ErrHalted           = state.ErrHalted
	ErrNotLeader        = raftnode.ErrNotLeader
	ErrUnsupportedKind  = errors.New("fault kind not supported by the agent")
	ErrPermissionDenied = errors.New("permission denied")
	ErrUnauthenticated  = errors.New("unauthenticated")
	// ErrGroupTooSmall: fewer agents would be chosen than the group's min.
	ErrGroupTooSmall = errors.New("fault group below its minimum")
)

// errorf words a refusal for people and gives it a sentinel for code.
var errorf = errkind.Errorf

// toStatus turns any error of this service into a gRPC status. It is the
// only place that chooses codes.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var specErr *faultspec.Error
	var boundsErr *limits.Error
	switch {
	case errors.As(err, &specErr):
		return invalidSpec(specErr)
	case errors.As(err, &boundsErr):
		return boundsStatus(boundsErr)
	case errors.Is(err, ErrPermissionDenied):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, ErrUnauthenticated):
		return status.Error(codes.Unauthenticated, err.Error())
	case errors.Is(err, state.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, state.ErrExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, state.ErrHalted), errors.Is(err, ErrUnsupportedKind), errors.Is(err, state.ErrInvalidTransition),
		errors.Is(err, ErrGroupTooSmall):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, state.ErrInvalidEntry):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, raftnode.ErrNotLeader), errors.Is(err, raftnode.ErrUnavailable):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// invalidSpec is InvalidArgument with the faultspec message and one
// BadRequest field violation per problem, so clients can point at each
// field (invariant 6).
func invalidSpec(e *faultspec.Error) error {
	br := &errdetails.BadRequest{}
	for _, p := range e.Problems {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: p.Field, Description: p.Reason})
	}
	st, err := status.New(codes.InvalidArgument, e.Error()).WithDetails(br)
	if err != nil {
		return status.Error(codes.InvalidArgument, e.Error())
	}
	return st.Err()
}
