package controlapi

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/turbulence-sre/turbulence/internal/limits"
)

// ownServices prefixes the full method names of this project's services.
const ownServices = "/turbulence."

// BoundsUnary is the server interceptor that checks every unary request
// against its field bounds (internal/limits, docs/limits.md) before
// anything else runs: before rate limiting, forwarding, authorisation or
// raft. A 4 MiB halt reason or request ID is refused here with
// InvalidArgument naming the field and the limit, and costs the
// controller nothing but the read of one message (invariant 6). Install
// it first after panic recovery; it serves ControlService and
// ClusterService alike.
func BoundsUnary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		// Only this project's services: gRPC's own (health) have their
		// own small messages, are never stored, and are not ours to
		// bound; the message cap covers them.
		if !strings.HasPrefix(info.FullMethod, ownServices) {
			return handler(ctx, req)
		}
		if m, ok := req.(proto.Message); ok {
			if err := limits.Check(m); err != nil {
				return nil, boundsStatus(err)
			}
		}
		return handler(ctx, req)
	}
}

// boundsStatus is InvalidArgument with one BadRequest field violation per
// field over its bound, so clients can point at each one.
func boundsStatus(err error) error {
	var le *limits.Error
	if !errors.As(err, &le) {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	br := &errdetails.BadRequest{}
	for _, v := range le.Violations {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
	}
	st := status.New(codes.InvalidArgument, "request over its bounds (docs/limits.md): "+le.Error())
	if withDetails, derr := st.WithDetails(br); derr == nil {
		st = withDetails
	}
	return st.Err()
}
