package controller

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/controller/raftnode"
	"github.com/turbulence-sre/turbulence/internal/connlimit"
	"github.com/turbulence-sre/turbulence/internal/limits"
	"github.com/turbulence-sre/turbulence/internal/refusal"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// maxMessageSize bounds every gRPC message in both directions. Every list
// page is sized to fit in it (docs/limits.md).
const maxMessageSize = limits.MaxMessageBytes

// flowWindow is the fixed HTTP/2 flow-control window of each stream and
// connection (newGRPCServer): what one peer may send before the
// controller has read it. Above gRPC's 64 KiB default so that a listing
// of thousands of faults is not paced by window updates; a fixed value
// also bounds what a peer that stops reading can park in memory, which
// the estimator lets grow to 16 MiB.
const flowWindow = 1 << 20

// writeBuffer is the size of the buffer a connection borrows while it
// writes: one TLS record. gRPC's 32 KiB default, times the connections
// writing at a moment and what the pool keeps between, was the leader's
// largest heap item at 10,000 agents (docs/benchmarks.md).
const writeBuffer = 16 << 10

// Guards of the gRPC port (docs/security.md, "Guarded listeners").
const (
	// DefaultGRPCMaxConnsPerSource is the most gRPC connections held from
	// one address. An agent holds one, turbctl one per command, a
	// forwarding controller one per leader; 256 leaves room for a
	// bastion host full of operators or agents behind one NAT address,
	// and still stops one host from taking the port's whole budget.
	DefaultGRPCMaxConnsPerSource = 256
	// DefaultGRPCMaxConns is the most gRPC connections held in all: one
	// per agent of a fleet of thousands, with room to spare. It is
	// lowered to fit the descriptor limit (connlimit.Budget) when the
	// process has fewer descriptors.
	DefaultGRPCMaxConns = 16384
	// DefaultGRPCHandshakeTimeout bounds the TLS handshake and the HTTP/2
	// preface of a new connection (grpc.ConnectionTimeout).
	DefaultGRPCHandshakeTimeout = 10 * time.Second
	// DefaultGRPCIdleTimeout closes a connection that has had no call for
	// this long (keepalive MaxConnectionIdle): agents hold a stream all
	// the time and are never idle; turbctl closes its connection after
	// each command; anything else idle for 5 minutes has no business
	// holding a descriptor.
	DefaultGRPCIdleTimeout = 5 * time.Minute
	// DefaultGRPCMaxStreams caps the calls in flight on one connection. A
	// forwarding controller multiplexes its callers' writes on one
	// connection; past the cap they wait on the client side, which is
	// the back-pressure wanted.
	DefaultGRPCMaxStreams = 256
	// DefaultGRPCMaxHandshakes is how many TLS handshakes the gRPC port
	// runs at once. A handshake is about a millisecond of the server's
	// CPU and two round trips of waiting: 256 at once is a quarter of a
	// second of work queued on two cores, far inside any deadline, and
	// still 2,500 handshakes a second across a 100 ms round trip. The
	// bound is for a whole fleet dialling at once, which without it
	// shares the cores so thin that every handshake misses its
	// deadline (connlimit.Handshakes).
	DefaultGRPCMaxHandshakes = 256
	// handshakeHold is the longest one handshake keeps its turn: a
	// healthy one takes milliseconds; one that stalls longer lets the
	// next start (connlimit.Handshakes).
	handshakeHold = 500 * time.Millisecond
)

// GRPCGuard bounds the gRPC port. Zero fields take the defaults above.
type GRPCGuard struct {
	Limits           connlimit.Limits
	HandshakeTimeout time.Duration
	IdleTimeout      time.Duration
	MaxStreams       uint32
	// MaxHandshakes is how many TLS handshakes run at once; the others
	// wait for a turn within HandshakeTimeout (connlimit.Handshakes).
	MaxHandshakes int
}

func (g GRPCGuard) withDefaults() GRPCGuard {
	if g.Limits.PerSource == 0 {
		g.Limits.PerSource = DefaultGRPCMaxConnsPerSource
	}
	if g.Limits.Total == 0 {
		g.Limits.Total = DefaultGRPCMaxConns
	}
	if g.HandshakeTimeout <= 0 {
		g.HandshakeTimeout = DefaultGRPCHandshakeTimeout
	}
	if g.IdleTimeout <= 0 {
		g.IdleTimeout = DefaultGRPCIdleTimeout
	}
	if g.MaxStreams == 0 {
		g.MaxStreams = DefaultGRPCMaxStreams
	}
	if g.MaxHandshakes <= 0 {
		g.MaxHandshakes = DefaultGRPCMaxHandshakes
	}
	return g
}

// newGRPCServer builds the gRPC server with mutual TLS, size limits,
// keepalive settings for agents' long-lived streams, the port's guards
// and panic recovery. unary interceptors run after recovery, in order
// (write forwarding).
//
// Refusals (a refused call, a failed handshake) are counted and logged by
// refusals: its credentials wrapper sees every handshake, its
// interceptors run right after recovery so that they see the refusals of
// every later interceptor (forwarding's check of a forwarded identity).
func newGRPCServer(files tlsutil.Files, logger *slog.Logger, guard GRPCGuard, refusals *refusal.Recorder, unary ...grpc.UnaryServerInterceptor) (*grpc.Server, error) {
	// Reloads the certificate files when they change, and warns in the
	// logs before they expire (tlsutil.Reloader).
	tlsCfg, err := tlsutil.ServerConfig(files, tlsutil.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	return grpc.NewServer(
		grpc.Creds(refusals.Credentials(connlimit.Handshakes(credentials.NewTLS(tlsCfg), guard.MaxHandshakes, handshakeHold, guard.HandshakeTimeout))),
		grpc.MaxRecvMsgSize(maxMessageSize),
		grpc.MaxSendMsgSize(maxMessageSize),
		grpc.ConnectionTimeout(guard.HandshakeTimeout),
		grpc.MaxConcurrentStreams(guard.MaxStreams),
		// Agents ping every 10s to notice a dead path to the controller
		// quickly; permit that (with margin) even without active calls.
		// A client that pings faster is sent away (GOAWAY).
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 20 * time.Second, Timeout: 10 * time.Second, MaxConnectionIdle: guard.IdleTimeout}),
		// Per-connection cost, which 10,000 agent sessions multiply
		// (docs/benchmarks.md): no read buffer of gRPC's own (the TLS
		// connection below buffers whole records already), a smaller
		// write buffer (gRPC borrows it from a pool only while a flush
		// runs), and fixed flow-control windows, which turn off
		// gRPC's bandwidth estimator: it sends a ping on the first data
		// after each ack, i.e. one ping and one ack per agent heartbeat,
		// doubling the leader's writes for nothing a heartbeat-sized
		// stream needs.
		grpc.ReadBufferSize(0),
		grpc.WriteBufferSize(writeBuffer),
		grpc.InitialWindowSize(flowWindow),
		grpc.InitialConnWindowSize(flowWindow),
		grpc.ChainUnaryInterceptor(append([]grpc.UnaryServerInterceptor{recoverUnary(logger), refusals.UnaryInterceptor()}, unary...)...),
		grpc.ChainStreamInterceptor(recoverStream(logger), refusals.StreamInterceptor()),
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

// budgetGuards fills the ports' guards with their defaults and fits their
// total caps within nofile, the process's descriptor limit (0: unknown,
// caps kept). Raft keeps its cap: the cluster's own traffic must never be
// what runs out; the gRPC cap is lowered if need be, with a warning.
func budgetGuards(cfg Config, nofile uint64, logger *slog.Logger) (raftnode.Guard, GRPCGuard, error) {
	raftGuard, grpcGuard := cfg.RaftGuard.WithDefaults(), cfg.GRPCGuard.withDefaults()
	if nofile == 0 {
		return raftGuard, grpcGuard, nil
	}
	caps, err := connlimit.Budget(nofile, raftGuard.Limits.Total, grpcGuard.Limits.Total)
	if err != nil {
		return raftGuard, grpcGuard, fmt.Errorf("connection limits: %w", err)
	}
	if caps[1] < grpcGuard.Limits.Total {
		logger.Warn("gRPC connection cap lowered to fit the descriptor limit; raise LimitNOFILE for a larger fleet",
			"wanted", grpcGuard.Limits.Total, "cap", caps[1], "rlimit_nofile", nofile, "raft_cap", raftGuard.Limits.Total, "reserve", connlimit.Reserve)
		grpcGuard.Limits.Total = caps[1]
	}
	return raftGuard, grpcGuard, nil
}
