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

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/agent/killswitch"
	"github.com/turbulence-sre/turbulence/agent/localapi"
	"github.com/turbulence-sre/turbulence/controller/forward"
	"github.com/turbulence-sre/turbulence/internal/linearize"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

const (
	// agentHost is the last octet of the first agent's address; the
	// agents are 198.18.1.101, .102…
	agentHost = 101
	// agentLoad is the CPU fault each agent holds: a few percent of one
	// core, at nice 19, so that it costs the shared machine nothing.
	agentLoad = 3
	// agentFaultDuration is far beyond any test: only a revert (lease,
	// halt, an agent or controller bug) can end the fault while a test
	// runs.
	agentFaultDuration = 30 * time.Minute
	// agentPolicy is the agents' local policy: cpu faults only, small.
	agentPolicy = "allowed_kinds: [cpu]\nmax_duration: 1h\nworker_nice: 19\ncpu:\n  max_load_percent: 10\n  max_cores: 1\n"
)

// procAgent is one turbulence-agent process in its own namespace on the
// bridge, configured with every controller's address.
type procAgent struct {
	name, ip string
	ns       netns.NsHandle
	dir      string // state dir, policy, socket and log under it
	socket   string
	tls      tlsutil.Files
	logPath  string
	// rack is the agent's label rack=…: r0, r1 or r2 by its number, for
	// the selectors of fault groups.
	rack    string
	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error // set before exited is closed
}

// leaseReason is the reason of a fault the agent's lease took back.
const leaseReason = killswitch.Reason

// agentFault is one fault held by a real agent, and its worker.
type agentFault struct {
	agent  *procAgent
	id     string
	worker *worker
}

// addAgents makes n agents (namespaces, certificates, state dirs) and
// starts them. They are stopped (SIGTERM: every fault reverted) before
// the controllers at the test's cleanup.
func (c *procCluster) addAgents(n int) []*procAgent {
	c.t.Helper()
	var out []*procAgent
	for range n {
		out = append(out, c.addAgent(agentPolicy, 0))
	}
	return out
}

// addAgent makes one agent with the local policy pol and starts it, in a
// namespace of its own on the bridge, or in ns when it is not 0 (beside
// another agent). It is stopped (SIGTERM: every fault reverted) before
// the controllers at the test's cleanup, if it still runs.
func (c *procCluster) addAgent(pol string, ns netns.NsHandle) *procAgent {
	c.t.Helper()
	c.agents++
	i := c.agents - 1
	a := &procAgent{name: fmt.Sprintf("agent-%d", i+1), ip: fmt.Sprintf("%s%d", subnet, agentHost+i), ns: ns, rack: fmt.Sprintf("r%d", i%3)}
	if a.ns == 0 {
		a.ns = c.plug(fmt.Sprintf("va%d", i+1), a.ip)
	}
	a.tls = c.issue(a.name, tlsutil.Identity{Role: tlsutil.RoleAgent, Name: a.name})
	// A short directory of its own: the socket path must fit in
	// sun_path (108 bytes), which t.TempDir's long names may not.
	dir, err := os.MkdirTemp("", "tca-")
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = os.RemoveAll(dir) })
	a.dir = dir
	a.socket = filepath.Join(dir, "run", "agent.sock")
	a.logPath = filepath.Join(c.dir, a.name+".log")
	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(pol), 0o600); err != nil {
		c.t.Fatal(err)
	}
	c.startAgent(a)
	c.t.Cleanup(func() {
		c.stopAgent(a)
		if c.t.Failed() {
			logTail(c.t, a.name, a.logPath)
		}
	})
	return a
}

// startAgent runs the agent inside its namespace (forked from a thread
// that has entered it, as controllers are).
func (c *procCluster) startAgent(a *procAgent) {
	c.t.Helper()
	var controllers []string
	for _, n := range c.nodes {
		controllers = append(controllers, n.grpcAddr())
	}
	// Its workers die with it too (PDEATHSIG), should the test binary die.
	a.cmd, a.exited = c.startDaemon(a.name, a.ns, a.logPath, &a.exitErr, c.agentBin, "run",
		"--controller", strings.Join(controllers, ","),
		"--ca", a.tls.CA, "--cert", a.tls.Cert, "--key", a.tls.Key,
		"--state-dir", filepath.Join(a.dir, "state"),
		"--policy", filepath.Join(a.dir, "policy.yaml"),
		"--socket", a.socket,
		"--label", "chaos=true", "--label", "rack="+a.rack)
}

// stopAgent ends the agent with SIGTERM, which reverts every fault it
// holds before it exits 0; anything else is an error.
func (c *procCluster) stopAgent(a *procAgent) {
	select {
	case <-a.exited:
		return
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
		if a.exitErr != nil {
			c.t.Errorf("%s: exit after SIGTERM: %v (0 means every fault reverted)", a.name, a.exitErr)
		}
	case <-time.After(30 * time.Second):
		c.t.Errorf("%s ignored SIGTERM for 30 s; killing it", a.name)
		_ = a.cmd.Process.Signal(syscall.SIGKILL)
		<-a.exited
	}
}

// status asks the agent over its local socket.
func (a *procAgent) status() (*localapi.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := localapi.Call(ctx, a.socket, localapi.Request{Op: localapi.OpStatus})
	if err != nil {
		return nil, err
	}
	if resp.Status == nil {
		return nil, errors.New("status answer without a status")
	}
	return resp.Status, nil
}

// reverts returns the lines of the agent's log that record a revert
// (agent/inject logs each one, with its fault ID and reason). The local
// status shows only the faults held, so the log is where an ended fault
// is told.
func (a *procAgent) reverts() []string {
	b, err := os.ReadFile(a.logPath)
	if err != nil {
		return nil
	}
	var out []string
	for line := range strings.Lines(string(b)) {
		if strings.Contains(line, `msg="fault reverted"`) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

// agentFaultRequest is the light, long CPU fault each real agent holds.
func agentFaultRequest(agent, req string) *turbulencev1.ApplyFaultRequest {
	return &turbulencev1.ApplyFaultRequest{
		RequestId: req,
		AgentId:   agent,
		Spec: &turbulencev1.FaultSpec{
			Duration: durationpb.New(agentFaultDuration),
			Kind:     &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: agentLoad}},
		},
	}
}

// waitAttached waits until every agent has its session with leader: the
// leader lists it as connected (its soft state, which only the leader
// has) and the agent says leader is its controller. It returns how long
// that took.
func (c *procCluster) waitAttached(leader *procNode, agents []*procAgent, limit time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	var why string
	ok := poll(limit, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		l, err := turbulencev1.NewControlServiceClient(c.conn(leader)).ListAgents(ctx, &turbulencev1.ListAgentsRequest{})
		if err != nil {
			why = "list agents on " + leader.id + ": " + err.Error()
			return false
		}
		connected := map[string]bool{}
		for _, ag := range l.GetAgents() {
			connected[ag.GetId()] = ag.GetConnected()
		}
		for _, a := range agents {
			if !connected[a.name] {
				why = leader.id + " does not list " + a.name + " as connected"
				return false
			}
			st, err := a.status()
			if err != nil {
				why = a.name + " status: " + err.Error()
				return false
			}
			if st.Controller != leader.grpcAddr() {
				why = fmt.Sprintf("%s has its session with %q, not the leader %s", a.name, st.Controller, leader.grpcAddr())
				return false
			}
		}
		return true
	})
	if !ok {
		c.t.Fatalf("agents not attached to the leader %s within %s: %s", leader.id, limit, why)
	}
	return time.Since(start)
}

// applyAgentFaults writes one fault for each agent through leader, as
// client 0 of history, and waits until each runs: ACTIVE in the
// controller and on the agent, with a worker process, which it opens a
// pidfd on.
func (c *procCluster) applyAgentFaults(leader *procNode, agents []*procAgent, history *linearize.History) []*agentFault {
	c.t.Helper()
	var out []*agentFault
	for _, a := range agents {
		req := "real-" + a.name
		ctx, cancel := context.WithTimeout(context.Background(), callLimit)
		call := time.Now()
		f, err := turbulencev1.NewControlServiceClient(c.conn(leader)).ApplyFault(ctx, agentFaultRequest(a.name, req))
		cancel()
		if err != nil {
			c.t.Fatalf("apply the fault of %s: %v", a.name, err)
		}
		if history != nil {
			history.Record(0, linearize.Input{Op: linearize.OpApply, Req: req}, linearize.Output{FaultID: f.GetId()}, call, time.Now(), "via "+leader.id+" (driver)")
		}
		out = append(out, &agentFault{agent: a, id: f.GetId()})
	}
	for _, af := range out {
		var pid int32
		var why string
		ok := poll(30*time.Second, func() bool {
			cf, err := c.consistentFault(leader, af.id)
			if err != nil || cf.GetState() != turbulencev1.FaultState_FAULT_STATE_ACTIVE {
				why = fmt.Sprintf("controller: %v %v", cf.GetState(), err)
				return false
			}
			lf, err := agentHolds(af.agent, af.id)
			if err != nil {
				why = err.Error()
				return false
			}
			pid, why = lf.WorkerPID, "no worker PID yet"
			return pid > 0
		})
		if !ok {
			c.t.Fatalf("the fault %s of %s does not run: %s", af.id, af.agent.name, why)
		}
		af.worker = openWorker(c.t, af.agent.name, af.id, int(pid))
	}
	return out
}

// agentHolds returns the agent's own record of an active fault.
func agentHolds(a *procAgent, faultID string) (localapi.Fault, error) {
	st, err := a.status()
	if err != nil {
		return localapi.Fault{}, fmt.Errorf("%s status: %w", a.name, err)
	}
	i := slices.IndexFunc(st.Faults, func(f localapi.Fault) bool { return f.ID == faultID })
	if i < 0 {
		return localapi.Fault{}, fmt.Errorf("%s does not hold %s", a.name, faultID)
	}
	if f := st.Faults[i]; f.State != "active" {
		return f, fmt.Errorf("%s holds %s in state %q (%s)", a.name, faultID, f.State, f.Reason)
	}
	return st.Faults[i], nil
}

// consistentFault reads one fault with a consistent read through n.
func (c *procCluster) consistentFault(n *procNode, id string) (*turbulencev1.Fault, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callLimit)
	defer cancel()
	return turbulencev1.NewControlServiceClient(c.conn(n)).GetFault(consistentRead(ctx), &turbulencev1.GetFaultRequest{Id: id})
}

// consistentRead asks the controller for a read served by the leader
// after a barrier.
func consistentRead(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, forward.MDConsistent, "true")
}

// checkFaultsRun checks, now, that nothing took any agent fault back:
// the controller (through leader, consistently) records it ACTIVE and
// not ended, the agent holds it active with the same worker, and that
// very worker process (its pidfd) is still alive.
func (c *procCluster) checkFaultsRun(leader *procNode, faults []*agentFault) {
	c.t.Helper()
	for _, af := range faults {
		cf, err := c.consistentFault(leader, af.id)
		switch {
		case err != nil:
			c.t.Errorf("read %s (of %s) through %s: %v", af.id, af.agent.name, leader.id, err)
		case cf.GetState() != turbulencev1.FaultState_FAULT_STATE_ACTIVE || cf.GetEndedAt() != nil:
			c.t.Errorf("the controller records %s (of %s) as %v, ended %v (%s); want ACTIVE", af.id, af.agent.name, cf.GetState(), cf.GetEndedAt().AsTime(), cf.GetReason())
		}
		lf, err := agentHolds(af.agent, af.id)
		switch {
		case err != nil:
			c.t.Errorf("%v", err)
		case int(lf.WorkerPID) != af.worker.pid:
			c.t.Errorf("%s runs %s with worker %d, want the original %d: it was reverted and applied again", af.agent.name, af.id, lf.WorkerPID, af.worker.pid)
		}
		if !af.worker.alive() {
			c.t.Errorf("the worker %d of %s (on %s) has exited: the fault was reverted", af.worker.pid, af.id, af.agent.name)
		}
	}
}

// worker is a fault's worker process, held by a pidfd so that its exit is
// seen even if the PID is reused afterwards.
type worker struct {
	agent, faultID string
	pid, fd        int
}

// openWorker opens a pidfd on pid after checking that it is the worker of
// faultID (its argv: `turbulence-agent worker KIND --fault-id ID …`), and
// checks again after, so that a reused PID cannot slip in between.
func openWorker(t *testing.T, agent, faultID string, pid int) *worker {
	t.Helper()
	isWorker := func() error {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			return err
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) < 2 || args[1] != "worker" || !slices.Contains(args, faultID) {
			return fmt.Errorf("process %d runs %q, not the worker of %s", pid, args, faultID)
		}
		return nil
	}
	if err := isWorker(); err != nil {
		t.Fatalf("worker of %s on %s: %v", faultID, agent, err)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	if err := isWorker(); err != nil {
		t.Fatalf("worker of %s on %s: %v", faultID, agent, err)
	}
	return &worker{agent: agent, faultID: faultID, pid: pid, fd: fd}
}

// alive reports whether the worker has not exited: a pidfd becomes
// readable when its process exits.
func (w *worker) alive() bool {
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n == 0
	}
}

// waitExits waits, until deadline, for every worker to exit, and returns
// when each did (workers still running are missing from the map). The
// exit is seen by poll on the pidfds, as it happens: no polling interval
// blurs the figure.
func waitExits(ws []*worker, deadline time.Time) map[*worker]time.Time {
	exited := map[*worker]time.Time{}
	for len(exited) < len(ws) {
		var fds []unix.PollFd
		var open []*worker
		for _, w := range ws {
			if _, ok := exited[w]; !ok {
				fds = append(fds, unix.PollFd{Fd: int32(w.fd), Events: unix.POLLIN})
				open = append(open, w)
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		now := time.Now()
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n == 0 {
			break
		}
		for i, p := range fds {
			if p.Revents != 0 {
				exited[open[i]] = now
			}
		}
	}
	return exited
}

// checkNoReverts looks everywhere a revert of the agents' faults would be
// recorded: the controller's events (no fault.reverting, fault.reverted
// or fault.failed for them, every page of ListEvents), its audit log (no
// revert, no halt), and each agent's log (no "fault reverted" at all). It
// returns how many it found.
func (c *procCluster) checkNoReverts(n *procNode, faults []*agentFault) int {
	c.t.Helper()
	ours := map[string]string{}
	for _, af := range faults {
		ours[af.id] = af.agent.name
	}
	api := turbulencev1.NewControlServiceClient(c.conn(n))
	found := 0
	var after uint64
	for {
		ctx, cancel := context.WithTimeout(context.Background(), callLimit)
		l, err := api.ListEvents(ctx, &turbulencev1.ListEventsRequest{AfterSequence: after, Limit: 1000})
		cancel()
		if err != nil {
			c.t.Fatalf("list events on %s: %v", n.id, err)
		}
		for _, e := range l.GetEvents() {
			after = e.GetSequence()
			if _, ok := ours[e.GetFaultId()]; !ok {
				continue
			}
			switch e.GetType() {
			// fault.unconfirmed is what a lease expiry on the controller
			// records now (it recorded fault.reverted before).
			case "fault.reverting", "fault.reverted", "fault.failed", "fault.unconfirmed":
				found++
				c.t.Errorf("event %d: %s %s of %s: %s", e.GetSequence(), e.GetType(), e.GetFaultId(), e.GetAgentId(), e.GetMessage())
			}
		}
		if len(l.GetEvents()) < 1000 {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), callLimit)
	defer cancel()
	audit, err := api.ListAudit(ctx, &turbulencev1.ListAuditRequest{Limit: 1000})
	if err != nil {
		c.t.Fatalf("list audit on %s: %v", n.id, err)
	}
	for _, e := range audit.GetEntries() {
		if a := e.GetAction(); a == "fault.revert" || strings.HasPrefix(a, "fleet.") {
			found++
			c.t.Errorf("audit %d: %s by %s: %s", e.GetSequence(), a, e.GetActor(), e.GetSummary())
		}
	}
	seen := map[*procAgent]bool{}
	for _, af := range faults {
		if seen[af.agent] {
			continue
		}
		seen[af.agent] = true
		for _, line := range af.agent.reverts() {
			found++
			c.t.Errorf("%s reverted a fault: %s", af.agent.name, line)
		}
	}
	return found
}
