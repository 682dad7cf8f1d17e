package controlapi

import (
	"context"
	"fmt"

	"github.com/turbulence-sre/turbulence/controller/forward"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// permission is what a call needs.
type permission int

const (
	permRead permission = iota + 1
	permWrite
	// permHalt is the kill switch. Invariant 5: anyone who may look at
	// the fleet may also stop it.
	permHalt
)

func (p permission) String() string {
	switch p {
	case permRead:
		return "read"
	case permWrite:
		return "change"
	case permHalt:
		return "halt"
	}
	return "?"
}

// allowed reports whether a role holds a permission. Agent and
// controller certificates hold none: they are machines with their own
// service, not callers of this one.
func allowed(role string, p permission) bool {
	switch role {
	case tlsutil.RoleAdmin, tlsutil.RoleOperator:
		return true
	case tlsutil.RoleViewer:
		return p == permRead || p == permHalt
	}
	return false
}

// authorize returns the caller's identity if it holds p. The caller of a
// call a follower forwarded is the original one (forward.CallerIdentity),
// not the follower.
func authorize(ctx context.Context, p permission) (tlsutil.Identity, error) {
	id, err := forward.CallerIdentity(ctx)
	if err != nil {
		return tlsutil.Identity{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	if !allowed(id.Role, p) {
		return tlsutil.Identity{}, errorf(ErrPermissionDenied, "%s may not %s through the control API", id, p)
	}
	return id, nil
}
