//go:build !linux

package localapi

import (
	"errors"
	"io/fs"
	"net"
)

// peerUID fails closed where SO_PEERCRED is not available: the agent runs
// on Linux only, and an unverifiable caller is refused.
func peerUID(*net.UnixConn) (int, error) {
	return 0, errors.New("peer credentials are not supported on this system")
}

// ownerUID is unknown here; the mode check still applies.
func ownerUID(fs.FileInfo) (int, bool) { return 0, false }
