//go:build !linux

package network

import "errors"

// hostOps off Linux: every method fails with errors.ErrUnsupported; the
// agent refuses to start there anyway, but every package builds and vets.
func hostOps() ops { return errOps{err: errors.ErrUnsupported} }
