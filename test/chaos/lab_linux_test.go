package chaos

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
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
