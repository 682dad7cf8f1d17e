package worker

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/turbulence-sre/turbulence/internal/testutil"
)

// TestPrivilegedWorker_DeadlineThreadIsRealTime: run as root, a worker has
// exactly one real-time thread, the one asleep until the deadline, so that
// it ends the fault on time however busy the host is; the load itself runs
// at normal priority.
func TestPrivilegedWorker_DeadlineThreadIsRealTime(t *testing.T) {
	testutil.RequirePrivileged(t)
	p, err := Start(selfBinary(t), Spec{FaultID: "f-rt", Cores: 1, LoadPercent: 20, Deadline: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = p.Stop(t.Context()) })
	testutil.WaitFor(t, 10*time.Second, func() (bool, string) {
		fifo, others, err := threadPolicies(p.Pid())
		if err != nil {
			return false, err.Error()
		}
		return fifo == 1 && others > 0, fmt.Sprintf("%d SCHED_FIFO thread(s) and %d other(s), want exactly one real-time thread", fifo, others)
	})
}

// threadPolicies counts the threads of pid by scheduling policy, from
// field 41 of /proc/<pid>/task/<tid>/stat.
func threadPolicies(pid int) (fifo, others int, err error) {
	tasks, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "stat"))
	if err != nil {
		return 0, 0, err
	}
	for _, path := range tasks {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue // the thread ended
		}
		// Fields after the command, which may hold spaces, in parentheses.
		rest := string(raw[strings.LastIndexByte(string(raw), ')')+2:])
		fields := strings.Fields(rest)
		const policyField = 41 - 3 // fields 1 and 2 precede rest
		if len(fields) <= policyField {
			return 0, 0, fmt.Errorf("%s: %d fields", path, len(fields)+2)
		}
		if fields[policyField] == strconv.Itoa(unix.SCHED_FIFO) {
			fifo++
		} else {
			others++
		}
	}
	return fifo, others, nil
}
