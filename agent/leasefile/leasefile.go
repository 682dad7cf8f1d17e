// Package leasefile keeps, in an agent's state directory, the time the
// agent's controller lease runs out, for the processes that outlive a
// frozen or dead agent — guardians (agent/guardian) and workers
// (agent/worker) — to judge the lease the same way (invariant 2,
// docs/design.md). It imports nothing of the agent's, so both can use it.
package leasefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Grace is how long past a lease's end (or a guarded fault's deadline) a
// guardian, and a worker, waits before acting on its own: while the agent
// is alive it does the revert itself, so both never race it.
const Grace = 500 * time.Millisecond

// leaseFile is the file in the state directory where the agent keeps the
// time its controller lease runs out.
const leaseFile = "lease"

// Write records that the agent's lease runs out at expiry. It is
// written at every renewal, through a new file renamed into place, so a
// reader never sees half of it. It is not fsynced: after a crash of the
// host no fault of the agent is left but disk fills, and the agent's
// start-up recovery takes those back.
func Write(stateDir string, expiry time.Time) error {
	tmp := filepath.Join(stateDir, leaseFile+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(expiry.UnixNano(), 10)+"\n"), 0o600); err != nil {
		return fmt.Errorf("write lease file: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(stateDir, leaseFile)); err != nil {
		return fmt.Errorf("write lease file: %w", err)
	}
	return nil
}

// Read returns when the agent's lease runs out, and false if the
// agent never wrote it.
func Read(stateDir string) (time.Time, bool, error) {
	data, err := os.ReadFile(filepath.Join(stateDir, leaseFile))
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("lease file: %w", err)
	}
	return time.Unix(0, n), true, nil
}

// Lapsed reports whether the lease recorded in stateDir ran out more
// than Grace before now, and when it ran out: the judgement a guardian
// makes of a live agent's lease, for the agent's workers to make too
// (agent/worker), so that a frozen agent's workers end at the same time
// as its guarded faults.
//
// A lease file that is missing or unreadable is not a lapsed lease, as it
// is not for a guardian: the agent writes it before it takes any fault, so
// its absence means a state directory being torn down or a write that
// failed, not a silent controller, and the fault's deadline still bounds
// the fault. Ending a healthy fault on a file-system hiccup would be the
// worse error.
func Lapsed(stateDir string, now time.Time) (time.Time, bool) {
	lease, ok, err := Read(stateDir)
	if err != nil || !ok {
		return time.Time{}, false
	}
	return lease, now.After(lease.Add(Grace))
}
