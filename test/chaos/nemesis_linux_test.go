package chaos

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The nemesis's event types.
const (
	nemKillLeader     = "kill -9 leader"
	nemKillFollower   = "kill -9 follower"
	nemPartitionCtl   = "partition controller"
	nemStopCtl        = "SIGSTOP controller"
	nemCutAgent       = "cut agent off"
	nemKillAgent      = "kill -9 agent, restart"
	nemKillAgentNever = "kill -9 agent, never restart"
	nemStopAgent      = "SIGSTOP agent past lease"
	nemStarve         = "starve CPU"
	nemFillLeader     = "fill leader's disk"
	nemFillFollower   = "fill follower's disk"
)

// nemesisWeights are how often each type is drawn, among those allowed
// at that moment.
var nemesisWeights = map[string]int{
	nemKillLeader: 10, nemKillFollower: 8, nemPartitionCtl: 10, nemStopCtl: 6,
	nemCutAgent: 16, nemKillAgent: 12, nemKillAgentNever: 3, nemStopAgent: 8, nemStarve: 5,
	nemFillLeader: 4, nemFillFollower: 3,
}

// nemesisTypes is the types in a fixed order, so that a seed draws the
// same sequence every time (map order is random).
var nemesisTypes = []string{nemKillLeader, nemKillFollower, nemPartitionCtl, nemStopCtl,
	nemCutAgent, nemKillAgent, nemKillAgentNever, nemStopAgent, nemStarve, nemFillLeader, nemFillFollower}

const (
	// nemesisGapMin and nemesisGapMax bound the time between two events.
	nemesisGapMin = 2 * time.Second
	nemesisGapMax = 8 * time.Second
	// settle is how long a controller still counts as hurt after it was
	// healed (restarted, rejoined, woken): the next controller event waits
	// for it, so that the nemesis never takes the quorum away.
	settle = 3 * time.Second
	// maxAgentsHurt bounds the agents hurt at once.
	maxAgentsHurt = 2
	// starveWorkers is how many goroutines of the test spin when the
	// machine is starved: both cores of the machine, for a few seconds.
	starveWorkers = 2
	// fillLeave is what a filled controller disk keeps free: nothing. The
	// log store still writes into the pages its file holds already (a
	// disk left 64 KiB free was never refused a write in a campaign);
	// it is refused once it needs one more.
	fillLeave = 0
)

// event is one nemesis event: what, on which controller (node ≥ 0) or
// agent (agent ≥ 0), from start until healed at end (zero: never, for an
// agent that is never restarted).
type event struct {
	kind        string
	node, agent int
	// leader: the controller hurt was the leader when it was hurt (as the
	// cluster said then), which holds every agent's session.
	leader bool
	// pastLease: a cut-off aimed at an agent holding a long fault, made
	// to outlast the lease.
	pastLease  bool
	start, end time.Time
	heal       func() // undoes it; nil once done
	healAt     time.Time
	// outcome says, for a filled disk, what became of its controller.
	outcome string
	// exited: the controller hurt was found exited when healed (and was
	// restarted then, as systemd's Restart=on-failure would).
	exited bool
}

func (e *event) String() string {
	end := "never healed"
	if !e.end.IsZero() {
		end = e.end.Sub(e.start).Round(time.Millisecond).String()
	}
	return fmt.Sprintf("%s %s for %s", e.kind, e.target(), end)
}

func (e *event) target() string {
	switch {
	case e.node >= 0:
		return fmt.Sprintf("c%d", e.node+1)
	case e.agent >= 0:
		return fmt.Sprintf("agent-%d", e.agent+1)
	}
	return "machine"
}

// nemesis hurts the lab at random over time, from a seed. It runs in the
// test's goroutine (it may fail the test); each event is started and
// healed there, at the times drawn.
type nemesis struct {
	t      *testing.T
	lab    *lab
	w      *workload // what the clients were told, to aim cut-offs
	samp   *sampler  // what the hosts show, to aim cut-offs
	rnd    *rand.Rand
	events []*event
	dead   map[int]bool // agents killed and never restarted
	spin   sync.WaitGroup
}

func newNemesis(t *testing.T, l *lab, w *workload, samp *sampler, seed uint64) *nemesis {
	// The stream is the campaign's seed with a constant of its own, so
	// that the nemesis and the clients draw apart.
	return &nemesis{t: t, lab: l, w: w, samp: samp, rnd: rand.New(rand.NewPCG(seed, 0x6e656d)), dead: map[int]bool{}}
}

// run starts events until until, heals each when its time comes, and
// heals whatever is still hurt at the end (an agent never restarted
// stays dead).
func (n *nemesis) run(until time.Time) {
	next := time.Now().Add(n.gap())
	for {
		now := time.Now()
		for _, e := range n.events {
			if e.heal != nil && !now.Before(e.healAt) {
				n.healOne(e)
			}
		}
		if !now.Before(until) {
			break
		}
		if !now.Before(next) {
			n.startOne()
			next = time.Now().Add(n.gap())
		}
		wake := next
		if until.Before(wake) {
			wake = until
		}
		for _, e := range n.events {
			if e.heal != nil && e.healAt.Before(wake) {
				wake = e.healAt
			}
		}
		pauseFor(time.Until(wake))
	}
	for _, e := range n.events {
		if e.heal != nil {
			n.healOne(e)
		}
	}
	n.spin.Wait()
}

func (n *nemesis) gap() time.Duration {
	return nemesisGapMin + time.Duration(n.rnd.Int64N(int64(nemesisGapMax-nemesisGapMin)))
}

func (n *nemesis) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(n.rnd.Int64N(int64(hi-lo)))
}

func (n *nemesis) healOne(e *event) {
	e.heal()
	e.heal = nil
	e.end = time.Now()
	if e.outcome != "" {
		n.t.Logf("nemesis: healed %s: %s", e, e.outcome)
		return
	}
	n.t.Logf("nemesis: healed %s", e)
}

// hurt reports which controllers and agents are hurt now, or were
// healed too recently (controllers: settle).
func (n *nemesis) hurt() (nodes, agents map[int]bool) {
	nodes, agents = map[int]bool{}, map[int]bool{}
	now := time.Now()
	for _, e := range n.events {
		open := e.heal != nil
		if e.node >= 0 && (open || now.Sub(e.end) < settle) {
			nodes[e.node] = true
		}
		if e.agent >= 0 && open {
			agents[e.agent] = true
		}
	}
	for i := range n.dead {
		agents[i] = true
	}
	return nodes, agents
}

// startOne draws an event among those allowed now and starts it: at most
// one controller hurt at a time (the other two keep the quorum), at most
// maxAgentsHurt agents, at most one agent never restarted, one starving
// at a time.
func (n *nemesis) startOne() {
	nodes, agents := n.hurt()
	starving := slices.ContainsFunc(n.events, func(e *event) bool { return e.kind == nemStarve && e.heal != nil })
	var allowed []string
	total := 0
	for _, k := range nemesisTypes {
		ok := true
		switch k {
		case nemKillLeader, nemKillFollower, nemPartitionCtl, nemStopCtl, nemFillLeader, nemFillFollower:
			ok = len(nodes) == 0
		case nemKillAgentNever:
			ok = len(n.dead) == 0 && len(agents) < maxAgentsHurt
		case nemCutAgent, nemKillAgent, nemStopAgent:
			ok = len(agents) < maxAgentsHurt
		case nemStarve:
			ok = !starving
		}
		if ok {
			allowed = append(allowed, k)
			total += nemesisWeights[k]
		}
	}
	if total == 0 {
		return
	}
	p := n.rnd.IntN(total)
	kind := allowed[0]
	for _, k := range allowed {
		if p -= nemesisWeights[k]; p < 0 {
			kind = k
			break
		}
	}
	e := &event{kind: kind, node: -1, agent: -1}
	switch kind {
	case nemKillLeader, nemKillFollower, nemPartitionCtl, nemStopCtl, nemFillLeader, nemFillFollower:
		e.node, e.leader = n.pickNode(kind)
	case nemCutAgent, nemKillAgent, nemKillAgentNever, nemStopAgent:
		var free []int
		for i := range n.lab.agents {
			if !agents[i] {
				free = append(free, i)
			}
		}
		pick := n.rnd.IntN(len(free))
		e.agent = free[pick]
		// A cut-off is aimed at an agent holding a fault that only its
		// lease can end, whenever one does, and then outlasts the lease
		// (check 7): halts and reverts leave few such agents at times,
		// and a short campaign draws only two or three cut-offs. The
		// draws are the same whatever the clients did; which agents hold
		// what depends on the timing, as the clients' own draws do.
		if kind == nemCutAgent {
			if holders := n.holdingLong(free, time.Now().Add(leaseTTL+2*time.Second)); len(holders) > 0 {
				e.agent, e.pastLease = holders[pick%len(holders)], true
			}
		}
	}
	n.apply(e)
	n.events = append(n.events, e)
	n.t.Logf("nemesis: %s %s", e.kind, e.target())
}

// holdingLong returns the agents among free (lab indexes) that hold, as
// the latest look at the hosts saw, a fault that outlives t and that no
// client asked to revert: the agents whose faults only the lease can end
// if they are cut off now.
func (n *nemesis) holdingLong(free []int, t time.Time) []int {
	long := n.w.longFaults(t)
	marks := n.samp.latest()
	var out []int
	for _, i := range free {
		ids := long[n.lab.agents[i].name]
		if slices.ContainsFunc(marks, func(m mark) bool {
			return m.agent == i && m.effect() && faultOf(m, ids) != "" && slices.Contains(ids, faultOf(m, ids))
		}) {
			out = append(out, i)
		}
	}
	return out
}

// pickNode chooses the controller of a controller event: the leader (as
// the cluster says now) for a leader kill or disk fill, another node for
// a follower's, any node otherwise; and says whether it leads. The draw
// happens whatever the answer, so that the seed's sequence does not
// depend on who leads.
func (n *nemesis) pickNode(kind string) (node int, leads bool) {
	draw := n.rnd.IntN(len(n.lab.c.nodes))
	leader := -1
	for i, nd := range n.lab.c.nodes {
		if ok, _ := n.lab.c.claimsLeadership(nd); ok {
			leader = i
		}
	}
	switch {
	case (kind == nemKillLeader || kind == nemFillLeader) && leader >= 0:
		draw = leader
	case (kind == nemKillFollower || kind == nemFillFollower) && draw == leader:
		draw = (draw + 1) % len(n.lab.c.nodes)
	}
	return draw, draw == leader
}

// apply hurts what e names and sets how and when it is healed.
func (n *nemesis) apply(e *event) {
	c := n.lab.c
	e.start = time.Now()
	switch e.kind {
	case nemKillLeader, nemKillFollower:
		nd := c.nodes[e.node]
		c.kill(nd)
		e.heal = func() { c.start(nd) }
		e.healAt = e.start.Add(n.between(time.Second, 8*time.Second))
	case nemPartitionCtl:
		nd := c.nodes[e.node]
		e.heal = c.partition(nd, c.others(nd))
		e.healAt = e.start.Add(n.between(3*time.Second, 10*time.Second))
	case nemStopCtl:
		nd := c.nodes[e.node]
		n.signal(nd.cmd.Process, syscall.SIGSTOP, nd.id)
		e.heal = func() { n.signal(nd.cmd.Process, syscall.SIGCONT, nd.id) }
		e.healAt = e.start.Add(n.between(2*time.Second, 6*time.Second))
	case nemFillLeader, nemFillFollower:
		nd := c.nodes[e.node]
		logFrom := fileSize(nd.logPath)
		path, took, err := fillDisk(nd.dataDir, fillLeave)
		if err != nil {
			n.t.Fatalf("fill %s's data disk: %v", nd.id, err)
		}
		e.heal = func() {
			if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
				n.t.Fatalf("free %s's data disk: %v", nd.id, err)
			}
			// What the node said of it: its log's lines since the fill that
			// name the full disk.
			full := countLines(nd.logPath, logFrom, "no space left on device")
			led := countLines(nd.logPath, logFrom, `msg="entering leader state"`)
			e.outcome = fmt.Sprintf("%d KiB filled, %d log lines of the node name the full disk, elected leader %d times while full; still running", took>>10, full, led)
			if !nd.running() {
				// A node whose disk was full may have stopped itself (raft
				// cannot persist a new term): it is started again once the
				// space is back, as its unit's Restart=on-failure would.
				e.exited = true
				e.outcome = fmt.Sprintf("%d KiB filled, %d log lines of the node name the full disk, elected leader %d times while full; exited (%v), restarted with the space back", took>>10, full, led, nd.exitErr)
				c.start(nd)
			}
		}
		e.healAt = e.start.Add(n.between(4*time.Second, 12*time.Second))
	case nemCutAgent:
		a := n.lab.agents[e.agent]
		undo, err := dropIn(a.ns, n.lab.controllerIPs())
		if err != nil {
			n.t.Fatalf("cut %s off: %v", a.name, err)
		}
		e.heal = func() {
			if err := undo(); err != nil {
				n.t.Fatalf("reconnect %s: %v", a.name, err)
			}
		}
		// Sometimes shorter than the lease (nothing may be reverted),
		// sometimes longer (everything must be).
		lo := 4 * time.Second
		if e.pastLease {
			lo = leaseTTL + 2*time.Second
		}
		e.healAt = e.start.Add(n.between(lo, leaseTTL+6*time.Second))
	case nemKillAgent, nemKillAgentNever:
		a := n.lab.agents[e.agent]
		n.signal(a.cmd.Process, syscall.SIGKILL, a.name)
		<-a.exited
		if e.kind == nemKillAgentNever {
			n.dead[e.agent] = true
			e.heal = nil
			return
		}
		e.heal = func() { c.startAgent(a.procAgent) }
		e.healAt = e.start.Add(n.between(time.Second, leaseTTL+5*time.Second))
	case nemStopAgent:
		a := n.lab.agents[e.agent]
		n.signal(a.cmd.Process, syscall.SIGSTOP, a.name)
		e.heal = func() { n.signal(a.cmd.Process, syscall.SIGCONT, a.name) }
		e.healAt = e.start.Add(n.between(leaseTTL+time.Second, leaseTTL+4*time.Second))
	case nemStarve:
		end := e.start.Add(n.between(3*time.Second, 8*time.Second))
		for range starveWorkers {
			n.spin.Go(func() {
				// Bounded: it ends by itself at end, whatever the test does.
				for spins := 0; time.Now().Before(end); spins++ {
				}
			})
		}
		e.heal = func() { n.spin.Wait() }
		e.healAt = end
	}
}

// fileSize is the size of the file at path, 0 if it cannot be read.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// countLines counts the lines of the file at path, from byte offset from
// on, that contain what.
func countLines(path string, from int64, what string) int {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < from {
		return 0
	}
	n := 0
	for line := range strings.Lines(string(b[from:])) {
		if strings.Contains(line, what) {
			n++
		}
	}
	return n
}

func (n *nemesis) signal(p *os.Process, sig syscall.Signal, who string) {
	n.t.Helper()
	if err := p.Signal(sig); err != nil {
		n.t.Fatalf("signal %v to %s: %v", sig, who, err)
	}
}

// counts returns how many events of each type were started.
func (n *nemesis) counts() map[string]int {
	out := map[string]int{}
	for _, e := range n.events {
		out[e.kind]++
	}
	return out
}

// lastHeal is when the last event was healed (or started, for an agent
// never restarted).
func (n *nemesis) lastHeal() time.Time {
	var last time.Time
	for _, e := range n.events {
		at := e.end
		if at.IsZero() {
			at = e.start
		}
		if at.After(last) {
			last = at
		}
	}
	return last
}
