package testutil

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// CPUCgroup is a cgroup v2 a test or benchmark creates for itself, so that
// the CPU time of the processes it puts there (and of their children and
// threads) is counted by the kernel's cgroup accounting, from outside
// them: a benchmark of a worker that regulates its load with its own CPU
// clock is then judged by a figure the worker never reads.
type CPUCgroup struct {
	dir string
	fd  int
}

// cgroupSeq makes each CPUCgroup's name unique within the process.
var cgroupSeq atomic.Int64

// cgroup2Root returns the mount point of the cgroup v2 hierarchy: the
// unified /sys/fs/cgroup, or its "unified" subdirectory on a hybrid host.
func cgroup2Root() (string, error) {
	for _, dir := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(dir, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return dir, nil
		}
	}
	return "", fmt.Errorf("no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified")
}

// NewCPUCgroup creates an empty cgroup named after the test, removed when
// the test ends (after moving back anything still in it). It skips the
// test with a kernel-feature reason where there is no writable cgroup v2
// hierarchy.
func NewCPUCgroup(tb testing.TB) *CPUCgroup {
	tb.Helper()
	root, err := cgroup2Root()
	if err == nil {
		dir := filepath.Join(root, fmt.Sprintf("turbulence-test-%d-%d", os.Getpid(), cgroupSeq.Add(1)))
		if err = os.Mkdir(dir, 0o755); err == nil {
			fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				_ = os.Remove(dir)
				tb.Fatalf("open %s: %v", dir, err)
			}
			c := &CPUCgroup{dir: dir, fd: fd}
			tb.Cleanup(func() { c.remove(tb, root) })
			return c
		}
	}
	SkipKernelFeature(tb, "cgroup2", "cannot create a cgroup v2 to account CPU time: "+err.Error())
	return nil
}

// FD is an open descriptor of the cgroup's directory, for
// syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: c.FD()}: a process
// started that way is in the cgroup from its first instruction.
func (c *CPUCgroup) FD() int { return c.fd }

// Add moves pid (all its threads) into the cgroup; children it forks
// later are born there.
func (c *CPUCgroup) Add(pid int) error {
	return os.WriteFile(filepath.Join(c.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
}

// Usage is the CPU time every process that was in the cgroup used while
// there (cpu.stat usage_usec).
func (c *CPUCgroup) Usage() (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, "cpu.stat"))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "usage_usec "); ok {
			us, err := strconv.ParseUint(v, 10, 64)
			return time.Duration(us) * time.Microsecond, err
		}
	}
	return 0, fmt.Errorf("%s/cpu.stat has no usage_usec", c.dir)
}

// remove moves any process left back to the root and removes the cgroup.
func (c *CPUCgroup) remove(tb testing.TB, root string) {
	_ = unix.Close(c.fd)
	if b, err := os.ReadFile(filepath.Join(c.dir, "cgroup.procs")); err == nil {
		for _, pid := range strings.Fields(string(b)) {
			_ = os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte(pid), 0o644)
		}
	}
	// A process that just exited can keep the cgroup busy for a moment.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := os.Remove(c.dir)
		if err == nil || os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			tb.Errorf("remove cgroup %s: %v", c.dir, err)
			return
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}
