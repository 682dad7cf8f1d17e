package refusal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// ErrorInfoWrongAgentID is the ErrorInfo reason of a refused agent
// session whose Hello names another agent than its certificate.
const ErrorInfoWrongAgentID = "WRONG_AGENT_ID"

// ErrorInfoDomain is the ErrorInfo domain of Turbulence's own reasons.
const ErrorInfoDomain = "turbulence"

// WithReason returns a status error of code with msg and an ErrorInfo
// naming reason (one of the ErrorInfo* constants), so that the recorder
// counts it under that reason rather than under its code's.
func WithReason(code codes.Code, reason, msg string) error {
	st := status.New(code, msg)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorInfoDomain}); err == nil {
		st = d
	}
	return st.Err()
}

// classify returns the reason err is counted under, or "" when err is
// not a refusal (success, bad input, unavailability).
func classify(err error) string {
	if err == nil {
		return ""
	}
	st := status.Convert(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == ErrorInfoDomain && info.GetReason() == ErrorInfoWrongAgentID {
			return ReasonWrongAgentID
		}
	}
	switch st.Code() {
	case codes.PermissionDenied:
		return ReasonPermissionDenied
	case codes.Unauthenticated:
		return ReasonUnauthenticated
	}
	return ""
}

// who names the caller of a gRPC call: its verified identity (or why it
// has none) and its address.
func who(ctx context.Context) string {
	addr := "unknown address"
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	id, err := tlsutil.PeerIdentity(ctx)
	if err != nil {
		return "no identity (" + err.Error() + ") from " + addr
	}
	return id.String() + " from " + addr
}

// UnaryInterceptor records every unary call refused with a refusal's
// code. Put it first in the chain, so that it sees the refusals of every
// later interceptor too.
func (r *Recorder) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if reason := classify(err); reason != "" {
			r.Record(ListenerGRPC, reason, who(ctx), info.FullMethod, status.Convert(err).Message())
		}
		return resp, err
	}
}

// StreamInterceptor is UnaryInterceptor for streams (agent sessions,
// event watches).
func (r *Recorder) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		err := handler(srv, ss)
		if reason := classify(err); reason != "" {
			r.Record(ListenerGRPC, reason, who(ss.Context()), info.FullMethod, status.Convert(err).Message())
		}
		return err
	}
}

// Credentials wraps a server's transport credentials so that every failed
// handshake is recorded: no certificate, another CA, an expired one, a
// plain-text client, or a connection that never spoke before the
// handshake deadline.
func (r *Recorder) Credentials(inner credentials.TransportCredentials) credentials.TransportCredentials {
	return &recordingCreds{TransportCredentials: inner, r: r}
}

type recordingCreds struct {
	credentials.TransportCredentials
	r *Recorder
}

func (c *recordingCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		c.r.Record(ListenerGRPC, ReasonTLSHandshake, "peer at "+raw.RemoteAddr().String(), "TLS handshake", HandshakeCause(err))
	}
	return conn, info, err
}

// Clone keeps the wrapper (grpc clones credentials per server).
func (c *recordingCreds) Clone() credentials.TransportCredentials {
	return &recordingCreds{TransportCredentials: c.TransportCredentials.Clone(), r: c.r}
}

// HandshakeCause says in a few words why a handshake failed, for the log
// line: the error itself, with a timeout named as such.
func HandshakeCause(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "no handshake before the deadline (idle or slow connection): " + err.Error()
	}
	if errors.Is(err, tlsutil.ErrWrongPeerRole) || strings.Contains(err.Error(), "certificate") {
		return "certificate refused: " + err.Error()
	}
	return fmt.Sprint(err)
}
