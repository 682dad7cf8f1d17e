package raftnode

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
)

// TestClassify_DiskFullIsUnavailable: a write that failed on a full data
// disk is "unavailable" (turbctl exit 6, retry once space is freed), not
// an internal error (exit 1) as it was (issue 13, item 8).
func TestClassify_DiskFullIsUnavailable(t *testing.T) {
	t.Parallel()
	for _, err := range []error{
		&os.PathError{Op: "write", Path: "/var/lib/turbulence-controller/raft.db", Err: syscall.ENOSPC},
		fmt.Errorf("commit: %w", syscall.EDQUOT),
		errors.New("failed to commit logs: write raft.db: no space left on device"),
	} {
		got := classify(err)
		if !errors.Is(got, ErrUnavailable) || !errors.Is(got, ErrDiskFull) {
			t.Errorf("classify(%v) = %v, want ErrUnavailable and ErrDiskFull", err, got)
		}
	}
	if got := classify(errors.New("something else")); errors.Is(got, ErrUnavailable) {
		t.Errorf("classify(other error) = %v, want it left alone", got)
	}
	if classify(nil) != nil {
		t.Error("classify(nil) != nil")
	}
}
