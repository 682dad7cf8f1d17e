//go:build !linux

package network

import "errors"

// hostOps off Linux: every method fails with errors.ErrUnsupported; the
// agent refuses to start there anyway, but every package builds and vets.
func hostOps() ops { return errOps{err: errors.ErrUnsupported} }

// NewInNetNS has no namespaces to work in here: every call fails.
func NewInNetNS(cfg Config, _ int) *Injector { return newWithOps(cfg, hostOps()) }
