package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/agent/inject/network"
	"github.com/turbulence-sre/turbulence/agent/inject/partition"
	"github.com/turbulence-sre/turbulence/agent/sweep"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// allKindsPolicy lets an agent take small faults of every kind; the disk
// faults go to the test's own tmpfs, which has no minimum free space.
const allKindsPolicy = `allowed_kinds: [cpu, memory, disk_fill, disk_io, network, partition]
max_duration: 1h
worker_nice: 19
cpu:
  max_load_percent: 10
  max_cores: 1
memory:
  max_percent_of_total: 5
  reserve_bytes: 0
disk:
  min_free_bytes: 0
  min_free_percent: 0
network:
  protected_interfaces: [lo]
`

// victim is an address on the bridge that nothing has: network faults and
// partitions target it, so that they hurt no traffic the test needs.
const victim = subnet + "250/32"

// hostMark is one thing a fault leaves on the host, sampled from the host
// itself (processes, qdiscs, nftables, files), not from what any daemon
// says.
type hostMark struct {
	kind, what string
	faultID    string
	deadline   time.Time
	present    func() bool
	gone       time.Time // when it was first seen gone
}

// TestPrivilegedAgentKilled_NothingOutlivesItsDeadlineOrLease proves
// invariants 3 and 7 on real processes, one controller and real agents in
// namespaces of their own:
//
//   - another agent's `cleanup`, and another agent starting beside a live
//     one in its namespace, leave every mark of the live agent alone: its
//     workers, its fill and scratch directories, its qdisc tree and its
//     nftables table;
//   - an agent holding a fault of every kind (CPU, memory, disk I/O, disk
//     fill, a bandwidth limit on its interface, a partition) is SIGKILLed
//     and never restarted: every mark is gone from the host by the fault's
//     deadline + 1 s (workers die with the agent; its guardians take the
//     rest back at the deadline), sampled from the host;
//   - another agent, with faults far from their deadline, is SIGKILLed:
//     its guardians take them back when its lease runs out, within the
//     lease TTL + 1 s of the kill;
//   - the controller, hearing nothing more from either agent, records
//     every one of their faults UNCONFIRMED, never REVERTED (invariant 8).
//
// The worst time each kind outlived its deadline is logged.
func TestPrivilegedAgentKilled_NothingOutlivesItsDeadlineOrLease(t *testing.T) {
	testutil.RequirePrivileged(t)
	c := newProcCluster(t, 1)
	c.start(c.nodes[0])
	leader := c.waitLeader(c.nodes, electionLimit)
	disk := tmpfs(t, 256<<20)

	// Phase 1: a fault of every kind, ending in a few seconds.
	a := c.addAgent(allKindsPolicy, 0)
	c.waitAttached(leader, []*procAgent{a}, startLimit)
	marks := c.applyEveryKind(leader, a, disk, 20*time.Second)

	// Neither a cleanup of another state directory nor another agent
	// starting beside it touch any of it.
	other := t.TempDir()
	var out []byte
	var err error
	testutil.InNS(t, a.ns, func() {
		out, err = exec.Command(c.agentBin, "cleanup", "--state-dir", other).CombinedOutput()
	})
	if err != nil {
		t.Fatalf("cleanup of another state directory: %v\n%s", err, out)
	}
	t.Logf("cleanup --state-dir %s:\n%s", other, out)
	for _, want := range []string{"worker", "table inet " + partition.TablePrefix, sweep.FillDirPrefix} {
		if !strings.Contains(string(out), want) {
			t.Errorf("cleanup of another state directory does not report the live agent's %q as left alone:\n%s", want, out)
		}
	}
	checkPresent(t, "after another state directory's cleanup", marks)
	beside := c.addAgent(allKindsPolicy, a.ns)
	c.waitAttached(leader, []*procAgent{a, beside}, startLimit)
	checkPresent(t, "after a second agent started in the same namespace", marks)
	// It says what it left: in its local status, for the host's operator.
	if st, err := beside.status(); err != nil {
		t.Errorf("status of the second agent: %v", err)
	} else {
		seen := strings.Join(st.ForeignMarks, "\n")
		for _, want := range []string{"worker", "table inet " + partition.TablePrefix, sweep.FillDirPrefix, "qdisc 7400: dev eth0"} {
			if !strings.Contains(seen, want) {
				t.Errorf("the second agent's status does not list the first one's %q as not its own:\n%s", want, seen)
			}
		}
	}
	c.stopAgent(beside)
	checkPresent(t, "after the second agent stopped", marks)

	// Killed and never restarted, close enough to the deadline that the
	// deadline, not the lease, comes first.
	first := slices.MinFunc(marks, func(x, y *hostMark) int { return x.deadline.Compare(y.deadline) }).deadline
	killAt := first.Add(-3 * time.Second)
	if time.Now().After(killAt) {
		t.Fatalf("the set-up took too long: past %s, 3 s before the first deadline", killAt.Format(time.StampMilli))
	}
	time.Sleep(time.Until(killAt)) // the kill is timed against the faults' deadline
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.exited
	waitGone(t, marks, func(m *hostMark) time.Time { return m.deadline.Add(time.Second) })
	worst := map[string]time.Duration{}
	for _, m := range marks {
		late := m.gone.Sub(m.deadline)
		t.Logf("killed agent, %-9s %-60s gone %+8.1f ms from its deadline", m.kind, m.what, float64(late.Microseconds())/1000)
		worst[m.kind] = max(worst[m.kind], late)
		if m.gone.After(m.deadline.Add(time.Second)) {
			t.Errorf("%s (%s) outlived its deadline by %s with its agent dead: the limit is 1 s", m.what, m.kind, late)
		}
	}
	t.Logf("worst time past the deadline with the agent dead, by kind: %v", worst)

	// Phase 2: faults far from their deadline; the lease ends them.
	b := c.addAgent(allKindsPolicy, 0)
	c.waitAttached(leader, []*procAgent{b}, startLimit)
	lmarks := c.applyEveryKind(leader, b, disk, time.Hour)
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-b.exited
	waitGone(t, lmarks, func(*hostMark) time.Time { return killed.Add(leaseTTL + time.Second) })
	for _, m := range lmarks {
		after := m.gone.Sub(killed)
		t.Logf("killed agent, lease: %-9s %-60s gone %8.1f ms after the kill (lease TTL %s)", m.kind, m.what, float64(after.Microseconds())/1000, leaseTTL)
		if !strings.HasPrefix(m.what, "worker ") && after < leaseTTL-2*heartbeatInterval {
			t.Errorf("%s (%s) was taken back %s after the kill, before its lease could have run out", m.what, m.kind, after)
		}
	}

	// Invariant 8: the controller, which heard nothing from either agent
	// since, does not call their faults reverted: their outcome is
	// unknown, from the moment their lease ran out.
	for _, m := range append(marks, lmarks...) {
		var got *turbulencev1.Fault
		waitFor(t, leaseTTL+10*time.Second, "the controller to record "+m.faultID+" unconfirmed", func() bool {
			f, err := c.consistentFault(leader, m.faultID)
			got = f
			return err == nil && f.GetState() == turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED
		})
		if got.GetUnconfirmedSince() == nil {
			t.Errorf("%s is UNCONFIRMED with no time since when", m.faultID)
		}
	}
}

// tmpfs mounts a tmpfs of size bytes for the disk faults and unmounts it
// at the end.
func tmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Fatalf("mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// applyEveryKind applies one small fault of each kind to a, lasting d,
// waits until the agent holds each, and returns their marks on the host.
func (c *procCluster) applyEveryKind(leader *procNode, a *procAgent, disk string, d time.Duration) []*hostMark {
	c.t.Helper()
	target := &turbulencev1.TrafficTarget{Cidrs: []string{victim}}
	specs := map[string]*turbulencev1.FaultSpec{
		"cpu":    {Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: 3}}},
		"memory": {Kind: &turbulencev1.FaultSpec_Memory{Memory: &turbulencev1.MemorySpec{Size: &turbulencev1.MemorySpec_Bytes{Bytes: 32 << 20}}}},
		"disk_io": {Kind: &turbulencev1.FaultSpec_DiskIo{DiskIo: &turbulencev1.DiskIOSpec{Path: disk, Mode: turbulencev1.DiskIOMode_DISK_IO_MODE_WRITE,
			BytesPerSecond: 1 << 20}}},
		"disk_fill": {Kind: &turbulencev1.FaultSpec_DiskFill{DiskFill: &turbulencev1.DiskFillSpec{Path: disk, Size: &turbulencev1.DiskFillSpec_Bytes{Bytes: 16 << 20}}}},
		"network": {Kind: &turbulencev1.FaultSpec_Network{Network: &turbulencev1.NetworkSpec{Interface: "eth0", Direction: turbulencev1.Direction_DIRECTION_EGRESS,
			Bandwidth: &turbulencev1.BandwidthSpec{RateBytesPerSecond: 125000}, Target: target}}},
		"partition": {Kind: &turbulencev1.FaultSpec_Partition{Partition: &turbulencev1.PartitionSpec{Target: target}}},
	}
	ids := map[string]string{}
	for kind, spec := range specs {
		spec.Duration = durationpb.New(d)
		ctx, cancel := context.WithTimeout(context.Background(), callLimit)
		f, err := turbulencev1.NewControlServiceClient(c.conn(leader)).ApplyFault(ctx, &turbulencev1.ApplyFaultRequest{
			RequestId: a.name + "-" + kind, AgentId: a.name, Spec: spec})
		cancel()
		if err != nil {
			c.t.Fatalf("apply a %s fault to %s: %v", kind, a.name, err)
		}
		ids[kind] = f.GetId()
	}
	var marks []*hostMark
	for kind, id := range ids {
		var held *localAgentFault
		waitFor(c.t, 30*time.Second, a.name+" holding its "+kind+" fault", func() bool {
			lf, err := agentHolds(a, id)
			if err != nil || lf.Deadline == nil || (kind == "cpu" || kind == "memory" || kind == "disk_io") && lf.WorkerPID == 0 {
				return false
			}
			held = &localAgentFault{deadline: *lf.Deadline, pid: int(lf.WorkerPID)}
			return true
		})
		marks = append(marks, c.marksOf(a, kind, id, disk, *held)...)
	}
	checkPresent(c.t, "once applied", marks)
	return marks
}

type localAgentFault struct {
	deadline time.Time
	pid      int
}

// marksOf lists what a fault of kind leaves on the host.
func (c *procCluster) marksOf(a *procAgent, kind, id, disk string, f localAgentFault) []*hostMark {
	c.t.Helper()
	var out []*hostMark
	add := func(what string, present func() bool) {
		out = append(out, &hostMark{kind: kind, what: what, faultID: id, deadline: f.deadline, present: present})
	}
	if f.pid > 0 {
		w := openWorker(c.t, a.name, id, f.pid)
		add(fmt.Sprintf("worker %d", f.pid), w.alive)
	}
	switch kind {
	case "disk_fill", "disk_io":
		prefix := sweep.FillDirPrefix
		if kind == "disk_io" {
			prefix = sweep.IODirPrefix
		}
		dir := filepath.Join(disk, sweep.MarkedDirName(prefix, id))
		add("directory "+dir, func() bool {
			_, err := os.Stat(dir)
			return !errors.Is(err, os.ErrNotExist)
		})
	case "network":
		add("qdisc root on eth0 of "+a.name, func() bool { return hasAgentRoot(c.t, a.ns, "eth0") })
	case "partition":
		add("nftables table of "+id, func() bool { return hasTableFor(c.t, a.ns, id) })
	}
	return out
}

func hasAgentRoot(t *testing.T, ns netns.NsHandle, link string) bool {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Errorf("netlink: %v", err)
		return true
	}
	defer h.Close()
	l, err := h.LinkByName(link)
	if err != nil {
		t.Errorf("link %s: %v", link, err)
		return true
	}
	qs, err := h.QdiscList(l)
	if err != nil {
		return true // a dump the kernel interrupted: look again
	}
	return slices.ContainsFunc(qs, func(q netlink.Qdisc) bool {
		return q.Attrs().Parent == netlink.HANDLE_ROOT && network.IsAgentHandle(q.Attrs().Handle)
	})
}

func hasTableFor(t *testing.T, ns netns.NsHandle, faultID string) bool {
	conn, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Errorf("nftables: %v", err)
		return true
	}
	ts, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return true
	}
	return slices.ContainsFunc(ts, func(tb *nftables.Table) bool {
		return strings.HasPrefix(tb.Name, partition.TablePrefix) && strings.HasSuffix(tb.Name, "-"+faultID)
	})
}

func checkPresent(t *testing.T, when string, marks []*hostMark) {
	t.Helper()
	for _, m := range marks {
		if !m.present() {
			t.Fatalf("%s: the %s fault's %s is gone", when, m.kind, m.what)
		}
	}
}

// waitGone samples every mark until each is gone, or until its limit
// passes, and records when each was first seen gone. Sampling every few
// milliseconds is the measurement: the host has no event for a qdisc or
// a file going.
func waitGone(t *testing.T, marks []*hostMark, limit func(*hostMark) time.Time) {
	t.Helper()
	for {
		left := 0
		now := time.Now()
		for _, m := range marks {
			if !m.gone.IsZero() {
				continue
			}
			if !m.present() {
				m.gone = now
				continue
			}
			if now.After(limit(m).Add(5 * time.Second)) {
				t.Fatalf("the %s fault's %s is still on the host at %s, past its limit %s", m.kind, m.what, now.Format(time.StampMilli), limit(m).Format(time.StampMilli))
			}
			left++
		}
		if left == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond) // the sampling period of the host's state
	}
}
