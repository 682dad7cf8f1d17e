// Package sweep holds the tools every fault kind uses to find and take
// back its own leftovers when nothing else remembers them (invariants 3 and
// 7; docs/design.md, "Marks and ownership"): processes run from the agent's
// binary, and marked directories on the host's filesystems. Each fault
// kind's Sweep (agent/inject.Kind) calls them with its own marks; the
// network kinds read their kernel marks themselves.
//
// Every mark names its owner, the agent's state directory, and these tools
// touch only the marks of the owner they are given: a worker's argv carries
// --owner DIR, a guardian's --state-dir DIR, a marked directory's marker
// file an "owner" line. Anything else is reported as foreign and left
// alone; a mark that cannot be read is foreign too, never an error. Every
// sweep is idempotent.
package sweep

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/turbulence-sre/turbulence/agent/internal/procfs"
)

// killWait bounds how long KillWorker waits for a killed process to go.
const killWait = 5 * time.Second

// Process is a process of the agent's binary found on the host.
type Process struct {
	PID        int
	StartTicks uint64
	// Args is its argv, argv[0] first.
	Args []string
}

// Flag returns the value that follows the word name ("--owner") in p's
// argv, or "".
func (p Process) Flag(name string) string {
	i := slices.Index(p.Args, name)
	if i < 0 || i+1 >= len(p.Args) {
		return ""
	}
	return p.Args[i+1]
}

// Processes lists the live processes under procRoot that run binary and
// whose parent is not self (the calling agent's PID): orphans, or another
// agent's children. A process runs binary when its executable is the same
// file, or a deleted file of the same name (an upgrade replaced the agent
// under a running process). The caller decides from the argv which are its
// own; nothing is matched by name alone.
func Processes(procRoot, binary string, self int) ([]Process, error) {
	pids, err := procfs.PIDs(procRoot)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	want, err := os.Stat(binary)
	if err != nil {
		return nil, fmt.Errorf("agent binary: %w", err)
	}
	var out []Process
	for _, pid := range pids {
		if pid == self || !runs(procRoot, pid, binary, want) {
			continue
		}
		args, err := procfs.Cmdline(procRoot, pid)
		if err != nil || len(args) < 2 {
			continue
		}
		st, err := procfs.ReadStat(procRoot, pid)
		if err != nil || st.PPID == self || st.State == 'Z' {
			continue // gone, ours, or already dead and waiting for its reaper
		}
		out = append(out, Process{PID: pid, StartTicks: st.StartTicks, Args: args})
	}
	return out, nil
}

// runs reports whether pid's executable is binary.
func runs(procRoot string, pid int, binary string, want fs.FileInfo) bool {
	exe := filepath.Join(procRoot, fmt.Sprint(pid), "exe")
	if fi, err := os.Stat(exe); err == nil && os.SameFile(fi, want) {
		return true
	}
	target, err := os.Readlink(exe)
	return err == nil && strings.HasSuffix(target, " (deleted)") &&
		filepath.Base(strings.TrimSuffix(target, " (deleted)")) == filepath.Base(binary)
}

// ErrNotThatProcess means the PID now names a different process than the
// one recorded (its start time differs): the worker is long gone and its
// PID was reused, so nothing is killed.
var ErrNotThatProcess = errors.New("pid was reused by another process")

// KillWorker kills the worker's whole process group with SIGKILL, if pid
// still names the process that started at startTicks, and waits until it
// has exited. A worker that is already gone is not an error.
func KillWorker(procRoot string, pid int, startTicks uint64) error {
	st, err := procfs.ReadStat(procRoot, pid)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if startTicks != 0 && st.StartTicks != startTicks {
		return ErrNotThatProcess
	}
	if st.State == 'Z' {
		return nil
	}
	// The worker leads its own process group (Setpgid): the group takes
	// any helper it started with it.
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill worker group %d: %w", pid, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill worker %d: %w", pid, err)
	}
	deadline := time.Now().Add(killWait)
	for {
		st, err := procfs.ReadStat(procRoot, pid)
		if err != nil || st.State == 'Z' || st.StartTicks != startTicks && startTicks != 0 {
			return nil // gone, or dead and waiting for its reaper
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("worker %d still running %s after SIGKILL", pid, killWait)
		}
		time.Sleep(5 * time.Millisecond) // waiting for the kernel, not synchronising goroutines
	}
}

// Kill kills each process in ps (KillWorker) and returns those it killed.
func Kill(procRoot string, ps []Process) ([]Process, error) {
	var killed []Process
	var errs []error
	for _, p := range ps {
		if err := KillWorker(procRoot, p.PID, p.StartTicks); err != nil {
			errs = append(errs, fmt.Errorf("process %d (%s): %w", p.PID, strings.Join(p.Args[1:], " "), err))
			continue
		}
		killed = append(killed, p)
	}
	return killed, errors.Join(errs...)
}
