package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/agent/inject/network"
	"github.com/turbulence-sre/turbulence/agent/policy"
	"github.com/turbulence-sre/turbulence/agent/sweep"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Lateness end to end: a fault applied through the controller and a real
// agent, and the moment its effect on the host is gone, seen by the
// kernel's own notification — the worker's exit (pidfd), the agent's
// qdisc deleted (an rtnetlink RTM_DELQDISC), its nftables table deleted
// (an nftables NFT_MSG_DELTABLE), the fill's directory removed (inotify)
// — never by the agent's word. Network and partition faults work in a
// namespace the test made (agent.Config.NetNS); the fill in a tmpfs the
// test mounted.

// effectFleet is a controller and an agent whose network faults go to a
// veth in a namespace of the test's own and whose fills go to a tmpfs.
type effectFleet struct {
	*fleet
	pair *testutil.NSPair
	fill string // the tmpfs the disk fills go to
}

func startEffectFleet(tb testing.TB, configure ...func(*agent.Config)) *effectFleet {
	tb.Helper()
	testutil.RequirePrivileged(tb)
	p := testutil.NewNSPair(tb, 0)
	mnt := tb.TempDir()
	if err := unix.Mount("turbulence-e2e", mnt, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=67108864,mode=0755"); err != nil {
		tb.Fatalf("mount tmpfs on %s: %v", mnt, err)
	}
	tb.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	f := startFleet(tb, append([]func(*agent.Config){func(c *agent.Config) {
		c.NetNS = int(p.A)
		pol := policy.Default()
		pol.MaxNewFaultsPerMinute = 1000
		pol.Disk.MinFreeBytes = 8 << 20 // the tmpfs is 64 MiB; the fills 8
		c.Policy = &pol
	}}, configure...)...)
	return &effectFleet{fleet: f, pair: p, fill: mnt}
}

// effectKind is one kind of fault: its spec, and how to watch its effect
// end.
type effectKind struct {
	name string
	spec func(e *effectFleet) *turbulencev1.FaultSpec
	// arm starts watching once the agent reports the fault active, and
	// returns a wait for the effect's end. It fails if the effect is not
	// there to watch.
	arm func(tb testing.TB, e *effectFleet, st *turbulencev1.FaultStatus) func(timeout time.Duration) (time.Time, error)
}

var effectKinds = []effectKind{
	{name: "cpu-worker", spec: func(*effectFleet) *turbulencev1.FaultSpec {
		return &turbulencev1.FaultSpec{Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: 50}}}
	}, arm: armWorker},
	{name: "network", spec: func(e *effectFleet) *turbulencev1.FaultSpec {
		return &turbulencev1.FaultSpec{Kind: &turbulencev1.FaultSpec_Network{Network: &turbulencev1.NetworkSpec{
			Interface: e.pair.LinkA, Bandwidth: &turbulencev1.BandwidthSpec{RateBytesPerSecond: 125_000}}}}
	}, arm: armQdisc},
	{name: "partition", spec: func(e *effectFleet) *turbulencev1.FaultSpec {
		return &turbulencev1.FaultSpec{Kind: &turbulencev1.FaultSpec_Partition{Partition: &turbulencev1.PartitionSpec{
			Direction: turbulencev1.Direction_DIRECTION_BOTH, Target: &turbulencev1.TrafficTarget{Cidrs: []string{e.pair.AddrsB[0].String() + "/32"}}}}}
	}, arm: armTable},
	{name: "disk-fill", spec: func(e *effectFleet) *turbulencev1.FaultSpec {
		return &turbulencev1.FaultSpec{Kind: &turbulencev1.FaultSpec_DiskFill{DiskFill: &turbulencev1.DiskFillSpec{
			Path: e.fill, Size: &turbulencev1.DiskFillSpec_Bytes{Bytes: 8 << 20}}}}
	}, arm: armFill},
}

// lifetime applies one fault of kind k lasting duration and returns how
// late after its deadline its effect was gone, and the agent's reason.
func (e *effectFleet) lifetime(tb testing.TB, k effectKind, duration time.Duration) (late time.Duration, reason string) {
	tb.Helper()
	spec := k.spec(e)
	spec.Duration = durationpb.New(duration)
	flt, err := e.api.ApplyFault(tb.Context(), &turbulencev1.ApplyFaultRequest{AgentId: e.agent.ID(), Spec: spec})
	if err != nil {
		tb.Fatalf("apply %s: %v", k.name, err)
	}
	id := flt.GetId()
	var st *turbulencev1.FaultStatus
	controllertest.WaitFor(tb, waitLong, "the agent to hold "+id, func() bool {
		st = e.held(id)
		return st.GetState() == stateActive && st.GetDeadline() != nil
	})
	wait := k.arm(tb, e, st)
	gone, err := wait(waitLong)
	if err != nil {
		tb.Fatalf("%s fault %s: its effect did not end within %s of being watched: %v", k.name, id, waitLong, err)
	}
	controllertest.WaitFor(tb, waitLong, "the agent to record "+id+" ended", func() bool {
		st = e.held(id)
		return st.GetState() == stateReverted
	})
	return gone.Sub(st.GetDeadline().AsTime()), st.GetReason()
}

// observe runs wait on a thread of its own at real-time priority when it
// may (root): the observer's own wake-up on a saturated host is not the
// agent's lateness. The agent and the load stay at normal priority.
func observe(wait func() (time.Time, error)) (time.Time, error) {
	type result struct {
		t   time.Time
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 2}, 0) != nil {
			runtime.UnlockOSThread()
		} // else the thread ends with the goroutine, its priority with it
		t, err := wait()
		done <- result{t, err}
	}()
	r := <-done
	return r.t, r.err
}

// waitFD blocks on fd until read data satisfies match, and returns when
// it did; an error after timeout. A nil match returns at the first
// wake-up without reading (a pidfd: readable once the process exits).
func waitFD(fd int, timeout time.Duration, match func([]byte) bool) (time.Time, error) {
	end := time.Now().Add(timeout)
	buf := make([]byte, 1<<16)
	for {
		left := time.Until(end)
		if left <= 0 {
			return time.Time{}, errors.New("the kernel gave no notice of it")
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) || n == 0 {
			continue
		}
		if err != nil {
			return time.Time{}, err
		}
		now := time.Now()
		if match == nil {
			return now, nil
		}
		k, err := unix.Read(fd, buf)
		if err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
				continue
			}
			return time.Time{}, err
		}
		if match(buf[:k]) {
			return now, nil
		}
	}
}

// armWorker watches the worker's exit through a pidfd.
func armWorker(tb testing.TB, _ *effectFleet, st *turbulencev1.FaultStatus) func(time.Duration) (time.Time, error) {
	tb.Helper()
	fd, err := unix.PidfdOpen(int(st.GetWorkerPid()), 0)
	if err != nil {
		tb.Fatalf("pidfd of worker %d: %v", st.GetWorkerPid(), err)
	}
	return func(timeout time.Duration) (time.Time, error) {
		defer func() { _ = unix.Close(fd) }()
		return observe(func() (time.Time, error) { return waitFD(fd, timeout, nil) })
	}
}

// netlinkIn opens a netlink socket of proto in ns, subscribed to group.
func netlinkIn(tb testing.TB, ns netns.NsHandle, proto int, group uint) int {
	tb.Helper()
	var fd int
	var err error
	testutil.InNS(tb, ns, func() {
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err == nil {
			err = unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (group - 1)})
		}
	})
	if err != nil {
		tb.Fatalf("netlink socket in the test's namespace: %v", err)
	}
	return fd
}

// armQdisc watches for the agent's root qdisc on the veth to be deleted.
func armQdisc(tb testing.TB, e *effectFleet, _ *turbulencev1.FaultStatus) func(time.Duration) (time.Time, error) {
	tb.Helper()
	fd := netlinkIn(tb, e.pair.A, unix.NETLINK_ROUTE, unix.RTNLGRP_TC)
	l, err := e.pair.HA.LinkByName(e.pair.LinkA)
	if err != nil {
		tb.Fatal(err)
	}
	qs, err := e.pair.HA.QdiscList(l)
	if err != nil {
		tb.Fatal(err)
	}
	present := false
	for _, q := range qs {
		present = present || q.Attrs().Handle == network.RootHandle
	}
	if !present {
		_ = unix.Close(fd)
		tb.Fatalf("the agent's root qdisc is not on %s to be watched: %v", e.pair.LinkA, qs)
	}
	index := int32(l.Attrs().Index)
	return func(timeout time.Duration) (time.Time, error) {
		defer func() { _ = unix.Close(fd) }()
		return observe(func() (time.Time, error) {
			return waitFD(fd, timeout, func(b []byte) bool {
				msgs, err := syscall.ParseNetlinkMessage(b)
				if err != nil {
					return false
				}
				for _, m := range msgs {
					// struct tcmsg: family, 3 pad bytes, ifindex, handle.
					if m.Header.Type == unix.RTM_DELQDISC && len(m.Data) >= 12 &&
						int32(nativeUint32(m.Data[4:8])) == index && nativeUint32(m.Data[8:12]) == network.RootHandle {
						return true
					}
				}
				return false
			})
		})
	}
}

// armTable watches for an nftables table to be deleted in the namespace
// (the agent's is the only one there).
func armTable(tb testing.TB, e *effectFleet, _ *turbulencev1.FaultStatus) func(time.Duration) (time.Time, error) {
	tb.Helper()
	fd := netlinkIn(tb, e.pair.A, unix.NETLINK_NETFILTER, unix.NFNLGRP_NFTABLES)
	c, err := nftables.New(nftables.WithNetNSFd(int(e.pair.A)))
	var tables []*nftables.Table
	if err == nil {
		tables, err = c.ListTablesOfFamily(nftables.TableFamilyINet)
	}
	if err != nil || len(tables) != 1 {
		_ = unix.Close(fd)
		tb.Fatalf("nftables tables in the test's namespace = %d (%v), want the agent's one to watch", len(tables), err)
	}
	delTable := uint16(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_DELTABLE)
	return func(timeout time.Duration) (time.Time, error) {
		defer func() { _ = unix.Close(fd) }()
		return observe(func() (time.Time, error) {
			return waitFD(fd, timeout, func(b []byte) bool {
				msgs, err := syscall.ParseNetlinkMessage(b)
				if err != nil {
					return false
				}
				for _, m := range msgs {
					if m.Header.Type == delTable {
						return true
					}
				}
				return false
			})
		})
	}
}

// armFill watches the tmpfs for the fill's marked directory to go.
func armFill(tb testing.TB, e *effectFleet, _ *turbulencev1.FaultStatus) func(time.Duration) (time.Time, error) {
	tb.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := unix.InotifyAddWatch(fd, e.fill, unix.IN_DELETE|unix.IN_ONLYDIR); err != nil {
		_ = unix.Close(fd)
		tb.Fatal(err)
	}
	ents, _ := os.ReadDir(e.fill)
	var names []string
	for _, d := range ents {
		if strings.HasPrefix(d.Name(), sweep.FillDirPrefix) {
			names = append(names, d.Name())
		}
	}
	if len(names) != 1 {
		_ = unix.Close(fd)
		tb.Fatalf("fill directories in %s = %v, want the one of the fault", e.fill, names)
	}
	return func(timeout time.Duration) (time.Time, error) {
		defer func() { _ = unix.Close(fd) }()
		return observe(func() (time.Time, error) {
			return waitFD(fd, timeout, func(b []byte) bool {
				for len(b) >= unix.SizeofInotifyEvent {
					mask := nativeUint32(b[4:8])
					n := int(nativeUint32(b[12:16]))
					name := strings.TrimRight(string(b[16:16+n]), "\x00")
					if mask&unix.IN_ISDIR != 0 && name == names[0] {
						return true
					}
					b = b[16+n:]
				}
				return false
			})
		})
	}
}

// saturate starts one busy loop per CPU in a cgroup of the test's own,
// stopped at the test's end, and returns a meter of the load achieved.
func saturate(tb testing.TB) *loadMeter {
	tb.Helper()
	cg := testutil.NewCPUCgroup(tb)
	ncpu := runtime.NumCPU()
	for range ncpu {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), spinEnv+"="+strconv.Itoa(os.Getpid()))
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cg.FD()}
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	return newLoadMeter(tb, cg, ncpu)
}

// loadMeter measures, between its start and Done, how busy the host was
// (/proc/stat) and how much of it the busy loops got (their cgroup).
type loadMeter struct {
	cg    *testutil.CPUCgroup
	ncpu  int
	t0    time.Time
	ps0   cpuTimes
	used0 time.Duration
}

func newLoadMeter(tb testing.TB, cg *testutil.CPUCgroup, ncpu int) *loadMeter {
	tb.Helper()
	m := &loadMeter{cg: cg, ncpu: ncpu}
	m.start(tb)
	return m
}

func (m *loadMeter) start(tb testing.TB) {
	tb.Helper()
	var err error
	m.t0 = time.Now()
	if m.ps0, err = readCPUTimes(); err != nil {
		tb.Fatal(err)
	}
	if m.used0, err = m.cg.Usage(); err != nil {
		tb.Fatal(err)
	}
}

// done returns the host's busy percentage and the busy loops' share of
// all CPU time since start.
func (m *loadMeter) done(tb testing.TB) (hostBusy, loops float64) {
	tb.Helper()
	ps, err := readCPUTimes()
	if err != nil {
		tb.Fatal(err)
	}
	used, err := m.cg.Usage()
	if err != nil {
		tb.Fatal(err)
	}
	wall := time.Since(m.t0)
	hostBusy = 100 * float64(ps.Busy-m.ps0.Busy) / float64(ps.Total-m.ps0.Total)
	loops = 100 * float64(used-m.used0) / (float64(wall) * float64(m.ncpu))
	return hostBusy, loops
}

// rtThreads counts the threads of pid with a real-time policy (field 41
// of /proc/<pid>/task/<tid>/stat: 1 FIFO, 2 RR).
func rtThreads(pid int32) (rt, all int) {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		all++
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		// fields[0] is field 3 (state); policy is field 41.
		if len(fields) > 38 && (fields[38] == "1" || fields[38] == "2") {
			rt++
		}
	}
	return rt, all
}

func nativeUint32(b []byte) uint32 { return binary.NativeEndian.Uint32(b) }

// cpuTimes are the host's busy and total CPU time, in clock ticks.
type cpuTimes struct{ Busy, Total uint64 }

// readCPUTimes reads the first line of /proc/stat: busy is everything but
// idle and iowait.
func readCPUTimes() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var ct cpuTimes
	for i, f := range fields[1:] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("/proc/stat: %w", err)
		}
		ct.Total += v
		if i != 3 && i != 4 { // idle, iowait
			ct.Busy += v
		}
	}
	return ct, nil
}

// workerRT starts one CPU fault and counts its worker's real-time threads
// once it runs, then reverts it.
func (e *effectFleet) workerRT(tb testing.TB) (rt, all int) {
	tb.Helper()
	spec := effectKinds[0].spec(e)
	spec.Duration = durationpb.New(time.Minute)
	flt, err := e.api.ApplyFault(tb.Context(), &turbulencev1.ApplyFaultRequest{AgentId: e.agent.ID(), Spec: spec})
	if err != nil {
		tb.Fatal(err)
	}
	var st *turbulencev1.FaultStatus
	controllertest.WaitFor(tb, waitLong, "the worker to run", func() bool {
		st = e.held(flt.GetId())
		return st.GetState() == stateActive && st.GetWorkerPid() > 0
	})
	// The deadline thread raises its own priority once it runs: look for
	// a few seconds, and report what was found.
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) { // polling interval
		if rt, all = rtThreads(st.GetWorkerPid()); rt > 0 {
			break
		}
	}
	if _, err := e.api.RevertFault(tb.Context(), &turbulencev1.RevertFaultRequest{Id: flt.GetId()}); err != nil {
		tb.Fatal(err)
	}
	controllertest.WaitFor(tb, waitLong, "the worker to go", func() bool { return !alive(st.GetWorkerPid()) })
	return rt, all
}
