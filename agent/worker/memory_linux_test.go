package worker

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/internal/testutil"
)

// residentOf reads the resident size of pid from /proc/<pid>/statm, as the
// injector does.
func residentOf(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, err
	}
	pages, err := parseStatmResident(data)
	return pages * uint64(os.Getpagesize()), err
}

// errorPercent is how far got is from want, in percent of want.
func errorPercent(got, want uint64) float64 {
	return 100 * math.Abs(float64(got)-float64(want)) / float64(want)
}

func startMemory(t *testing.T, spec MemorySpec) *Process {
	t.Helper()
	p, err := Start(selfBinary(t), spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = p.Stop(t.Context()) })
	return p
}

// waitResident polls the worker until its resident size is within 1 % of
// want and returns when it got there.
func waitResident(t *testing.T, p *Process, want uint64, timeout time.Duration) time.Time {
	t.Helper()
	testutil.WaitFor(t, timeout, func() (bool, string) {
		rss, err := residentOf(p.Pid())
		if err != nil {
			return false, err.Error()
		}
		return errorPercent(rss, want) <= 1, fmt.Sprintf("resident %d bytes, want %d ±1%%", rss, want)
	})
	return time.Now()
}

func TestMemory_HoldsTargetResidentWithinOnePercent(t *testing.T) {
	const want = 64 << 20
	p := startMemory(t, MemorySpec{FaultID: "f-mem-hold", Bytes: want, Deadline: time.Now().Add(time.Minute)})
	waitResident(t, p, want, 10*time.Second)

	// Settled: it must now HOLD the target, not just pass through it.
	// Sampled for a second, every 50 ms (a measurement, not a wait).
	var worst float64
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		rss, err := residentOf(p.Pid())
		if err != nil {
			t.Fatalf("read statm: %v", err)
		}
		worst = max(worst, errorPercent(rss, want))
	}
	if worst > 1 {
		t.Errorf("resident size strayed %.2f%% from %d bytes during the hold, want within 1%%", worst, want)
	}
	start := time.Now()
	if err := p.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if took := time.Since(start); took >= StopGrace {
		t.Errorf("Stop took %s: the memory worker ignored SIGTERM", took)
	}
	if err := p.Err(); err != nil && err.Error() != "signal: terminated" {
		t.Errorf("worker exit after SIGTERM = %v, want status 0", err)
	}
}

func TestMemory_RampReachesTargetNoSooner(t *testing.T) {
	const (
		want = 64 << 20
		ramp = 1500 * time.Millisecond
	)
	start := time.Now()
	p := startMemory(t, MemorySpec{FaultID: "f-mem-ramp", Bytes: want, Ramp: ramp, Deadline: start.Add(time.Minute)})
	// Half-way through the ramp the worker must hold roughly half.
	testutil.WaitFor(t, 10*time.Second, func() (bool, string) {
		return time.Since(start) >= ramp/2, ""
	})
	mid, err := residentOf(p.Pid())
	if err != nil {
		t.Fatalf("read statm: %v", err)
	}
	reached := waitResident(t, p, want, ramp+10*time.Second)
	// 0.8 of the ramp leaves room for the worker's start-up, which the
	// ramp begins after; reaching the target sooner means no ramp.
	if took := reached.Sub(start); took < ramp*8/10 {
		t.Errorf("reached %d bytes after %s, want no sooner than about the %s ramp", want, took, ramp)
	}
	if mid > want*8/10 {
		t.Errorf("resident %d bytes half-way through the ramp, want well below %d", mid, want)
	}
}

func TestMemory_ExitsByItselfAtDeadlineAndFreesMemory(t *testing.T) {
	deadline := time.Now().Add(1500 * time.Millisecond)
	p := startMemory(t, MemorySpec{FaultID: "f-mem-deadline", Bytes: 16 << 20, Deadline: deadline})
	waitDone(t, p, 10*time.Second)
	if err := p.Err(); err != nil {
		t.Errorf("worker exit = %v, want status 0", err)
	}
	if early := time.Until(deadline); early > 0 {
		t.Errorf("worker exited %s before its deadline", early)
	}
	if late := time.Since(deadline); late > 3*time.Second {
		t.Errorf("worker exited %s after its deadline", late)
	}
	if err := syscall.Kill(p.Pid(), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("kill(%d, 0) = %v after its deadline, want ESRCH", p.Pid(), err)
	}
}

func TestMemory_OOMScoreAdjIs1000(t *testing.T) {
	p := startMemory(t, MemorySpec{FaultID: "f-mem-oom-adj", Bytes: 4 << 20, Deadline: time.Now().Add(time.Minute)})
	path := "/proc/" + strconv.Itoa(p.Pid()) + "/oom_score_adj"
	testutil.WaitFor(t, 10*time.Second, func() (bool, string) {
		raw, err := os.ReadFile(path)
		if err != nil {
			return false, err.Error()
		}
		got := strings.TrimSpace(string(raw))
		return got == "1000", path + " = " + got + ", want 1000"
	})
	// The test process (the agent's stand-in) kept its own value.
	if raw, err := os.ReadFile("/proc/self/oom_score_adj"); err == nil && strings.TrimSpace(string(raw)) == "1000" {
		t.Errorf("the parent's oom_score_adj became 1000 too")
	}
}

// threadNice reads the nice value (field 19) of every thread of pid.
func threadNice(pid int) ([]int, error) {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "task")
	tids, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var nices []int
	for _, tid := range tids {
		data, err := os.ReadFile(filepath.Join(dir, tid.Name(), "stat"))
		if err != nil {
			continue // the thread ended
		}
		fields := bytes.Fields(data[bytes.LastIndexByte(data, ')')+1:])
		n, err := strconv.Atoi(string(fields[16])) // fields[0] is field 3
		if err != nil {
			return nil, err
		}
		nices = append(nices, n)
	}
	return nices, nil
}

func TestWorker_NiceReachesEveryThread(t *testing.T) {
	p := startMemory(t, MemorySpec{FaultID: "f-nice", Bytes: 4 << 20, Deadline: time.Now().Add(time.Minute), Nice: 7})
	testutil.WaitFor(t, 10*time.Second, func() (bool, string) {
		nices, err := threadNice(p.Pid())
		if err != nil {
			return false, err.Error()
		}
		// Wait until the worker is past start-up: it has mapped memory.
		if rss, _ := residentOf(p.Pid()); rss < 4<<20*99/100 {
			return false, "worker not settled yet"
		}
		for _, n := range nices {
			if n != 7 {
				return false, fmt.Sprintf("thread nice values %v, want all 7", nices)
			}
		}
		return len(nices) > 1, fmt.Sprintf("thread nice values %v", nices)
	})
}

// cgroupMemory is a memory cgroup made for one test: v2 when the unified
// hierarchy has the memory controller, else v1.
type cgroupMemory struct {
	dir   string
	limit string // file that takes the byte limit
	v1    bool
}

// newMemoryCgroup creates a child of this process's own memory cgroup with
// a limit of max bytes, or skips t naming what the kernel lacks.
func newMemoryCgroup(t *testing.T, limit uint64) *cgroupMemory {
	t.Helper()
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		testutil.SkipKernelFeature(t, "cgroup", err.Error())
	}
	var cg *cgroupMemory
	for line := range strings.SplitSeq(strings.TrimSpace(string(own)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
				ctrl, err := os.ReadFile(filepath.Join(root, parts[2], "cgroup.controllers"))
				if err == nil && strings.Contains(" "+string(ctrl)+" ", " memory ") {
					cg = &cgroupMemory{dir: filepath.Join(root, parts[2]), limit: "memory.max"}
				}
			}
		case strings.Contains(","+parts[1]+",", ",memory,"):
			dir := filepath.Join("/sys/fs/cgroup/memory", parts[2])
			if _, err := os.Stat(filepath.Join(dir, "memory.limit_in_bytes")); err == nil && cg == nil {
				cg = &cgroupMemory{dir: dir, limit: "memory.limit_in_bytes", v1: true}
			}
		}
	}
	if cg == nil {
		testutil.SkipKernelFeature(t, "memory cgroup", "neither cgroup v2 nor v1 offers the memory controller to this process")
	}
	cg.dir = filepath.Join(cg.dir, fmt.Sprintf("turbulence-oom-%d", os.Getpid()))
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		testutil.SkipKernelFeature(t, "memory cgroup", "cannot create a child cgroup: "+err.Error())
	}
	t.Cleanup(func() {
		// A cgroup is removed with rmdir once it has no process left.
		testutil.WaitFor(t, 10*time.Second, func() (bool, string) {
			err := os.Remove(cg.dir)
			return err == nil || errors.Is(err, os.ErrNotExist), fmt.Sprintf("rmdir %s: %v", cg.dir, err)
		})
	})
	if !cg.v1 {
		// v2 only: without it the kernel may swap instead of killing.
		_ = os.WriteFile(filepath.Join(cg.dir, "memory.swap.max"), []byte("0"), 0o644)
	}
	if err := os.WriteFile(filepath.Join(cg.dir, cg.limit), []byte(strconv.FormatUint(limit, 10)), 0o644); err != nil {
		t.Fatalf("set %s: %v", cg.limit, err)
	}
	return cg
}

func (cg *cgroupMemory) add(t *testing.T, pid int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(cg.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		t.Fatalf("move %d into %s: %v", pid, cg.dir, err)
	}
}

// TestPrivilegedMemory_OOMKillerPicksWorker proves the point of
// oom_score_adj 1000: in a memory cgroup of 64 MiB, a bystander process
// holding 48 MiB with the default score and a memory worker asking for
// 128 MiB compete; the OOM killer must kill the worker, although it is the
// SMALLER of the two when the limit is hit, and leave the bystander alone.
func TestPrivilegedMemory_OOMKillerPicksWorker(t *testing.T) {
	testutil.RequirePrivileged(t)
	const limit = 64 << 20
	cg := newMemoryCgroup(t, limit)

	// The bystander is a memory worker whose score the test lowers back to
	// the default 0, the agent's stand-in. It ramps, so that its pages are
	// charged to the cgroup it is moved into at once.
	by := startMemory(t, MemorySpec{FaultID: "f-bystander", Bytes: 48 << 20, Ramp: 500 * time.Millisecond, Deadline: time.Now().Add(time.Minute)})
	cg.add(t, by.Pid())
	testutil.WaitFor(t, 10*time.Second, func() (bool, string) {
		raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", by.Pid()))
		return strings.TrimSpace(string(raw)) == "1000", "bystander has not set its score yet"
	})
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", by.Pid()), []byte("0"), 0o644); err != nil {
		t.Fatalf("lower the bystander's oom_score_adj: %v", err)
	}
	waitResident(t, by, 48<<20, 10*time.Second)

	hog := startMemory(t, MemorySpec{FaultID: "f-oom", Bytes: 2 * limit, Ramp: time.Second, Deadline: time.Now().Add(time.Minute)})
	cg.add(t, hog.Pid())
	waitDone(t, hog, 15*time.Second)

	var exit *exec.ExitError
	if err := hog.Err(); !errors.As(err, &exit) {
		t.Fatalf("memory worker over the cgroup limit exited with %v, want killed by SIGKILL (OOM)", err)
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("memory worker exit = %v, want killed by SIGKILL (OOM)", exit)
	}
	select {
	case <-by.Done():
		t.Fatalf("the bystander died too (%v): the OOM killer did not prefer the worker", by.Err())
	default:
	}
	if rss, err := residentOf(by.Pid()); err != nil || errorPercent(rss, 48<<20) > 1 {
		t.Errorf("bystander resident = %d, %v after the OOM kill, want still 48 MiB", rss, err)
	}
	if cg.v1 {
		// v1 counts OOM kills in memory.oom_control (oom_kill N), v2 in
		// memory.events; either way the kernel says it was the OOM killer.
		raw, err := os.ReadFile(filepath.Join(cg.dir, "memory.oom_control"))
		if err == nil && !bytes.Contains(raw, []byte("oom_kill 1")) {
			t.Errorf("memory.oom_control = %q, want oom_kill 1", raw)
		}
	} else {
		raw, err := os.ReadFile(filepath.Join(cg.dir, "memory.events"))
		if err == nil && !bytes.Contains(raw, []byte("oom_kill 1")) {
			t.Errorf("memory.events = %q, want oom_kill 1", raw)
		}
	}
	if err := by.Stop(t.Context()); err != nil {
		t.Errorf("stop bystander: %v", err)
	}
}
