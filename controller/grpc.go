package controller

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/internal/limits"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// maxMessageSize bounds every gRPC message in both directions. Every list
// page is sized to fit in it (docs/limits.md).
const maxMessageSize = limits.MaxMessageBytes

// newGRPCServer builds the gRPC server with mutual TLS, size limits,
// keepalive settings for agents' long-lived streams and panic recovery.
// unary interceptors run after recovery, in order (write forwarding).
func newGRPCServer(files tlsutil.Files, logger *slog.Logger, unary ...grpc.UnaryServerInterceptor) (*grpc.Server, error) {
	// Reloads the certificate files when they change, and warns in the
	// logs before they expire (tlsutil.Reloader).
	tlsCfg, err := tlsutil.ServerConfig(files, tlsutil.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	return grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsCfg)),
		grpc.MaxRecvMsgSize(maxMessageSize),
		grpc.MaxSendMsgSize(maxMessageSize),
		// Agents ping every 10s to notice a dead path to the controller
		// quickly; permit that (with margin) even without active calls.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 20 * time.Second, Timeout: 10 * time.Second}),
		grpc.ChainUnaryInterceptor(append([]grpc.UnaryServerInterceptor{recoverUnary(logger)}, unary...)...),
		grpc.ChainStreamInterceptor(recoverStream(logger)),
	), nil
}

// recoverUnary turns a handler panic into codes.Internal so that one bad
// request cannot take the controller (and the fleet's kill switch) down.
func recoverUnary(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				logger.Error("panic in gRPC handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				err = status.Errorf(codes.Internal, "internal error in %s", info.FullMethod)
			}
		}()
		return handler(ctx, req)
	}
}

func recoverStream(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				logger.Error("panic in gRPC stream handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				err = status.Errorf(codes.Internal, "internal error in %s", info.FullMethod)
			}
		}()
		return handler(srv, ss)
	}
}
