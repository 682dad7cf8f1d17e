package raftnode

import (
	"errors"
	"strings"
	"syscall"
)

// ErrDiskFull: the node could not write its raft log or snapshot because
// its data disk (or the user's quota on it) is full. It wraps
// ErrUnavailable: nothing was committed, the same request succeeds once
// space is freed, and callers (turbctl halt among them) report the
// controller unavailable (exit 6), not an internal error (issue 13, item
// 8). The log says which directory to look at.
var ErrDiskFull = errors.New("the controller's raft data disk is full")

// isDiskFull recognises a full disk in what raft returns from its log
// store. bbolt hands back the write's *os.PathError, which wraps the
// errno, but raft v1.7.3 formats that error into the text of its own
// ("unable to store logs within log store, err: %q"), so the errno is
// lost by then and only the text says it (seen in
// TestPrivilegedHalt_FullDataDiskIsUnavailable).
func isDiskFull(err error) bool {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "no space left on device") || strings.Contains(msg, "disk quota exceeded")
}
