package chaos

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// campaignAgents is how many real agents the campaign runs, each in a
// namespace of its own with a tmpfs of its own for the disk faults.
const campaignAgents = 6

// campaignPolicy lets an agent take small faults of every kind that works
// on this kernel without the VM lab (no netem): cpu, memory, disk fill,
// disk I/O and partitions. The disk faults go to the agent's own tmpfs,
// which needs no free-space floor.
const campaignPolicy = `allowed_kinds: [cpu, memory, disk_fill, disk_io, partition]
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
`

// Each agent has two tmpfs: one for its fills (room for a few of
// fillBytes at once), one for its I/O loads, whose scratch file is 64 MiB
// (room for about four at once). Apart, so that a fill never takes the
// room an I/O load checked for when it was applied: the first long
// campaign had a disk_io worker end early on ENOSPC that way (honestly
// recorded, but not the agent's fault). A tmpfs costs memory only for
// what is written.
const (
	labFillBytes = 96 << 20
	labIOBytes   = 272 << 20
)

// labDataBytes is the size of each controller's data disk: a tmpfs of
// its own, so that the nemesis can fill it (nemFillLeader, nemFillFollower) without touching
// any disk the test did not make. A 10-minute campaign writes a few MiB
// of raft log and snapshots.
const labDataBytes = 64 << 20

// lab is the campaign's fleet: three controllers formed by
// --bootstrap-expect and campaignAgents agents, with real mTLS
// certificates from the test's CA, all on the test's bridge in
// 198.18.1.0/24 (cluster_linux_test.go, agents_linux_test.go).
type lab struct {
	c      *procCluster
	agents []*labAgent
}

// labAgent is one agent of the lab and what the host sampler reads: its
// fields are set once, before the campaign starts, and never change
// (restarts reuse them), so they are read without a lock.
type labAgent struct {
	*procAgent
	index int
	// state is the agent's state directory: every mark it makes names it
	// (a worker's --owner, a guardian's --state-dir).
	state string
	// fillDisk and ioDisk are the agent's own tmpfs, where its disk_fill
	// and disk_io faults go.
	fillDisk, ioDisk string
}

// newLab starts the controllers, waits for a leader and starts the agents
// attached to it.
func newLab(t *testing.T) *lab {
	t.Helper()
	c := newProcCluster(t, 3)
	for _, n := range c.nodes {
		c.dataOnTmpfs(n, labDataBytes)
		c.start(n)
	}
	leader := c.waitLeader(c.nodes, startLimit)
	l := &lab{c: c}
	var all []*procAgent
	for i := range campaignAgents {
		// The tmpfs is mounted before the agent starts and unmounted
		// after it stopped (cleanups run last in, first out).
		fill, io := tmpfs(t, labFillBytes), tmpfs(t, labIOBytes)
		a := c.addAgent(campaignPolicy, 0)
		l.agents = append(l.agents, &labAgent{procAgent: a, index: i, state: filepath.Join(a.dir, "state"), fillDisk: fill, ioDisk: io})
		all = append(all, a)
	}
	t.Logf("lab: 3 controllers (leader %s), %d agents attached after %s", leader.id, len(all),
		c.waitAttached(leader, all, startLimit).Round(time.Millisecond))
	return l
}

// dataOnTmpfs gives n's data directory a tmpfs of size bytes. At the
// test's end the node is stopped before the tmpfs is unmounted (cleanups
// run last in, first out).
func (c *procCluster) dataOnTmpfs(n *procNode, size int) {
	c.t.Helper()
	if err := os.MkdirAll(n.dataDir, 0o700); err != nil {
		c.t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", n.dataDir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		c.t.Fatalf("mount a tmpfs on %s's data directory: %v", n.id, err)
	}
	c.t.Cleanup(func() {
		c.stop(n)
		_ = unix.Unmount(n.dataDir, unix.MNT_DETACH)
	})
}

// fillDisk fills the filesystem of dir until at most leave bytes are
// free, with one file, and returns it and how much it took. Remove the
// file to free the space. The blocks are taken with fallocate (nothing is
// written), in chunks that halve on ENOSPC down to a page: what statfs
// says is free is not all a file can take, and the controller may take
// some meanwhile.
func fillDisk(dir string, leave int64) (path string, took int64, err error) {
	path = filepath.Join(dir, fillName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", 0, err
	}
	defer func() { _ = f.Close() }()
	for chunk := int64(1 << 20); chunk >= 4096; {
		err := unix.Fallocate(int(f.Fd()), 0, took, chunk)
		switch {
		case err == nil:
			took += chunk
		case errors.Is(err, unix.ENOSPC):
			chunk /= 2
		default:
			_ = os.Remove(path)
			return "", 0, fmt.Errorf("fallocate in %s: %w", dir, err)
		}
	}
	if leave > 0 && took > 0 {
		took = max(0, took-leave)
		if err := f.Truncate(took); err != nil {
			_ = os.Remove(path)
			return "", 0, fmt.Errorf("leave %d bytes free in %s: %w", leave, dir, err)
		}
	}
	return path, took, nil
}

// fillName is the file that fills a controller's data disk; the
// controller ignores files it does not know in its data directory.
const fillName = "chaos-fill"

// controllerIPs are the addresses an agent must reach to hear from any
// controller.
func (l *lab) controllerIPs() []string {
	var out []string
	for _, n := range l.c.nodes {
		out = append(out, n.ip)
	}
	return out
}

func (a *labAgent) String() string { return fmt.Sprintf("%s (%s)", a.name, a.ip) }
