// Package sweep takes back what the agent's faults leave on a host when
// nothing else remembers them: at every start and in `turbulence-agent
// cleanup`, after the journal's own faults are reverted, it looks for the
// agent's marks and removes them (invariant 3: a restart leaves nothing
// behind, even if the journal lost a record).
//
// Marks, by kind of leftover:
//   - worker processes: the agent's own binary run as `… worker KIND
//     --fault-id ID …` (its fixed argv) whose parent is not this agent. A
//     live agent's workers are its children; anything else is an orphan of
//     an agent that died, since workers never outlive their agent by design
//     (PR_SET_PDEATHSIG) but a kernel may still leave one behind.
//   - network faults: root qdiscs whose handle major is in the agent's
//     range 0x7400–0x74ff (agent/inject/network), and inet nftables tables
//     named "turbulence-…" (agent/inject/partition); see Network.
//
// Fill files join this list with the disk faults. Every sweep is
// idempotent: running it twice, or on a clean host, removes nothing the
// second time.
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

// workerSubcommand is argv[1] of every worker (agent/worker.Subcommand;
// not imported, so that the sweep depends on the argv contract only).
const workerSubcommand = "worker"

// killWait bounds how long KillWorker waits for a killed worker to go.
const killWait = 5 * time.Second

// Worker is a worker process found on the host.
type Worker struct {
	PID        int
	StartTicks uint64
	// FaultID is the value of its --fault-id flag.
	FaultID string
}

// OrphanWorkers lists the processes under procRoot that run binary as a
// worker and whose parent is not self (the calling agent's PID).
//
// A worker is recognised by its executable — the same file as binary, or
// a deleted file of the same name, as after an upgrade replaced the agent
// under a running worker — and by argv[1] being "worker" with a
// --fault-id flag.
func OrphanWorkers(procRoot, binary string, self int) ([]Worker, error) {
	pids, err := procfs.PIDs(procRoot)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	want, err := os.Stat(binary)
	if err != nil {
		return nil, fmt.Errorf("agent binary: %w", err)
	}
	var out []Worker
	for _, pid := range pids {
		if pid == self {
			continue
		}
		w, ok := workerAt(procRoot, pid, binary, want)
		if !ok {
			continue
		}
		st, err := procfs.ReadStat(procRoot, pid)
		if err != nil || st.PPID == self || st.State == 'Z' {
			continue // gone, ours, or already dead and waiting for its reaper
		}
		w.StartTicks = st.StartTicks
		out = append(out, w)
	}
	return out, nil
}

// workerAt reports whether pid runs binary in worker mode.
func workerAt(procRoot string, pid int, binary string, want fs.FileInfo) (Worker, bool) {
	args, err := procfs.Cmdline(procRoot, pid)
	if err != nil || len(args) < 2 || args[1] != workerSubcommand {
		return Worker{}, false
	}
	i := slices.Index(args, "--fault-id")
	if i < 0 || i+1 >= len(args) {
		return Worker{}, false
	}
	exe := filepath.Join(procRoot, fmt.Sprint(pid), "exe")
	same := false
	if fi, err := os.Stat(exe); err == nil {
		same = os.SameFile(fi, want)
	}
	if !same {
		// An upgraded agent: the running worker's file was replaced.
		target, err := os.Readlink(exe)
		same = err == nil && strings.HasSuffix(target, " (deleted)") &&
			filepath.Base(strings.TrimSuffix(target, " (deleted)")) == filepath.Base(binary)
	}
	if !same {
		return Worker{}, false
	}
	return Worker{PID: pid, FaultID: args[i+1]}, true
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

// Workers kills every orphan worker of binary (see OrphanWorkers) and
// returns those it killed.
func Workers(procRoot, binary string, self int) ([]Worker, error) {
	found, err := OrphanWorkers(procRoot, binary, self)
	if err != nil {
		return nil, err
	}
	var killed []Worker
	var errs []error
	for _, w := range found {
		if err := KillWorker(procRoot, w.PID, w.StartTicks); err != nil {
			errs = append(errs, fmt.Errorf("worker %d of fault %s: %w", w.PID, w.FaultID, err))
			continue
		}
		killed = append(killed, w)
	}
	return killed, errors.Join(errs...)
}
