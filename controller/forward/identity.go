package forward

import (
	"context"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// callerKey is the context key of a forwarded caller's identity.
type callerKey struct{}

// CallerIdentity is who made the call: the original caller of a call a
// controller forwarded (vouched for by the forwarding controller's
// verified certificate), otherwise the verified identity of the peer.
// Handlers authorise with this, never with the raw metadata.
func CallerIdentity(ctx context.Context) (tlsutil.Identity, error) {
	if id, ok := ctx.Value(callerKey{}).(tlsutil.Identity); ok {
		return id, nil
	}
	return tlsutil.PeerIdentity(ctx)
}

// inbound reads the forwarding metadata of an incoming call. It trusts the
// forwarded identity only when the peer's own certificate has the
// controller role; a forwarded identity from anyone else is refused, so an
// operator cannot pose as an admin by setting a header.
func inbound(ctx context.Context) (context.Context, int, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	fwd := md.Get(MDForwardedFor)
	if len(fwd) == 0 {
		return ctx, 0, nil
	}
	peerID, err := tlsutil.PeerIdentity(ctx)
	if err != nil {
		return nil, 0, status.Errorf(codes.Unauthenticated, "forwarded call: %v", err)
	}
	if peerID.Role != tlsutil.RoleController {
		return nil, 0, status.Errorf(codes.PermissionDenied, "%s may not forward calls: only controller certificates may set %s", peerID, MDForwardedFor)
	}
	if len(fwd) != 1 {
		return nil, 0, status.Errorf(codes.InvalidArgument, "forwarded call: %s must be set once, got %d values", MDForwardedFor, len(fwd))
	}
	role, name, ok := strings.Cut(fwd[0], "/")
	if !ok || !tlsutil.ValidRole(role) || name == "" || strings.Contains(name, "/") {
		return nil, 0, status.Errorf(codes.InvalidArgument, "forwarded call: %s %q is not role/name", MDForwardedFor, fwd[0])
	}
	hops := 1
	if h := md.Get(MDHops); len(h) == 1 {
		if n, err := strconv.Atoi(h[0]); err == nil && n > 0 {
			hops = n
		}
	}
	return context.WithValue(ctx, callerKey{}, tlsutil.Identity{Role: role, Name: name}), hops, nil
}
