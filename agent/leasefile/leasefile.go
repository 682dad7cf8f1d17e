// Package leasefile keeps, in an agent's state directory, the time the
// agent's controller lease runs out, for the processes that outlive a
// frozen or dead agent — guardians (agent/guardian) and workers
// (agent/worker) — to judge the lease the same way (invariant 2,
// docs/design.md). It imports nothing of the agent's but agent/bootclock,
// so both can use it.
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

	"github.com/turbulence-sre/turbulence/agent/bootclock"
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
//
// The file holds expiry twice: on the wall clock, first line (what an
// operator reads, and what Read returns), and on the boot clock, second
// line ("boottime BOOT-ID NANOS", agent/bootclock), which is what Until
// and Lapsed judge. expiry should carry a monotonic reading (the agent's
// lease timer makes it from time.Now), so that a step of the wall clock
// since moves neither (docs/design.md, "Clocks").
func Write(stateDir string, expiry time.Time) error {
	text := strconv.FormatInt(expiry.UnixNano(), 10) + "\n"
	if at, err := bootclock.At(expiry); err == nil {
		text += fmt.Sprintf("%s %s %d\n", bootPrefix, at.Boot, at.Nanos)
	}
	tmp := filepath.Join(stateDir, leaseFile+".tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		return fmt.Errorf("write lease file: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(stateDir, leaseFile)); err != nil {
		return fmt.Errorf("write lease file: %w", err)
	}
	return nil
}

// bootPrefix starts the lease file's boot-clock line.
const bootPrefix = "boottime"

// lease is the lease file's content.
type lease struct {
	wall time.Time
	boot bootclock.Instant // zero in a file of an agent before the boot clock
}

func read(stateDir string) (lease, bool, error) {
	data, err := os.ReadFile(filepath.Join(stateDir, leaseFile))
	if errors.Is(err, fs.ErrNotExist) {
		return lease{}, false, nil
	}
	if err != nil {
		return lease{}, false, err
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	n, err := strconv.ParseInt(strings.TrimSpace(lines[0]), 10, 64)
	if err != nil {
		return lease{}, false, fmt.Errorf("lease file: %w", err)
	}
	l := lease{wall: time.Unix(0, n)}
	if len(lines) > 1 {
		f := strings.Fields(lines[1])
		if len(f) != 3 || f[0] != bootPrefix || f[1] == "" {
			return lease{}, false, fmt.Errorf("lease file: line 2 is %q, want %q BOOT-ID NANOS", lines[1], bootPrefix)
		}
		ns, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return lease{}, false, fmt.Errorf("lease file: %w", err)
		}
		l.boot = bootclock.Instant{Boot: f[1], Nanos: ns}
	}
	return l, true, nil
}

// Read returns when the agent's lease runs out on the wall clock, and
// false if the agent never wrote it. It is for messages: to judge the
// lease, use Until.
func Read(stateDir string) (time.Time, bool, error) {
	l, ok, err := read(stateDir)
	return l.wall, ok, err
}

// Until returns how long from now until the agent's lease runs out
// (negative once it has), with its wall-clock time for messages, and
// false if the agent never wrote it or wrote it in an earlier boot.
//
// It is judged on the boot clock, so that a step of the wall clock moves
// no lease: stepped forward, it would end a healthy agent's faults early;
// stepped back, it would let a frozen agent's faults outlive the lease by
// the step. A lease of an earlier boot is no lease: no process of that
// boot is left to hold a fault. Only a file with no boot-clock line (an
// agent of an older version) is judged on the wall clock.
func Until(stateDir string) (time.Duration, time.Time, bool, error) {
	l, ok, err := read(stateDir)
	if err != nil || !ok {
		return 0, time.Time{}, false, err
	}
	if l.boot.IsZero() {
		return time.Until(l.wall), l.wall, true, nil
	}
	left, ok := l.boot.Until()
	return left, l.wall, ok, nil
}

// Lapsed reports whether the lease recorded in stateDir ran out more
// than Grace ago, and when it ran out on the wall clock: the judgement a
// guardian makes of a live agent's lease, for the agent's workers to make
// too (agent/worker), so that a frozen agent's workers end at the same
// time as its guarded faults.
//
// A lease file that is missing or unreadable is not a lapsed lease, as it
// is not for a guardian: the agent writes it before it takes any fault, so
// its absence means a state directory being torn down or a write that
// failed, not a silent controller, and the fault's deadline still bounds
// the fault. Ending a healthy fault on a file-system hiccup would be the
// worse error.
func Lapsed(stateDir string) (time.Time, bool) {
	left, wall, ok, err := Until(stateDir)
	if err != nil || !ok {
		return time.Time{}, false
	}
	return wall, left < -Grace
}
