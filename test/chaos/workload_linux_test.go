package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/controller/raftnode"
	"github.com/turbulence-sre/turbulence/internal/linearize"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

const (
	// workloadClients run the campaign's operations, each with an admin
	// identity of its own; client 0 of the history is the test itself.
	workloadClients = 3
	// workloadPace is each client's pace between operations.
	workloadPace = 400 * time.Millisecond
	// opLimit bounds one operation, retries included.
	opLimit = 2 * time.Minute
	// Fault durations are drawn in [minFault, maxFault): short enough that
	// most end at their deadline during a campaign, long enough that many
	// live through a nemesis event.
	minFault = 3 * time.Second
	maxFault = 15 * time.Second
	// longFault bounds the long faults, which outlive the lease TTL.
	longFault = 40 * time.Second
	// The faults are small: the machine is shared.
	fillBytes   = 8 << 20
	memoryBytes = 16 << 20
	ioRate      = 512 << 10
)

// faultKinds are the kinds the workload applies: those that work on this
// kernel. network (netem) needs the VM lab and is not in this campaign.
var faultKinds = []string{"cpu", "memory", "disk_fill", "disk_io", "partition"}

// groupKinds are the kinds of fault groups: one spec for every member, so
// not the disk kinds, whose path is each agent's own tmpfs.
var groupKinds = []string{"cpu", "memory", "partition"}

// groupSelectors are the selectors groups draw from, over the agents'
// labels chaos=true and rack=r0|r1|r2 (two agents a rack).
var groupSelectors = []string{"chaos=true", "rack=r0", "rack=r1", "rack=r2", "rack in (r0,r1)", "rack!=r2", ""}

// groupMaxCount keeps every group within the controller's default cap
// (50 % of the six registered agents): a group above it is refused as
// bad input, which the workload never sends.
const groupMaxCount = 3

// opKind is one type of operation of the workload, drawn with its weight.
// A new type (ApplyFaultGroup, experiments) is one more entry in
// workloadOps and one method: run records into the workload's log and,
// for what the linearizability model knows, the history.
type opKind struct {
	name   string
	weight int
	run    func(cl *wclient, ctx context.Context) error
}

// workloadOps are the operations the clients draw from.
var workloadOps = []opKind{
	{"apply", 36, (*wclient).apply},
	{"revert", 13, (*wclient).revert},
	{"group-apply", 8, (*wclient).applyGroup},
	{"group-revert", 4, (*wclient).revertGroup},
	{"halt", 1, (*wclient).haltResume},
	{"list", 14, (*wclient).list},
	{"get", 24, (*wclient).get},
	{"experiment", 1, (*wclient).experiment},
}

// opRecord is one operation as its client saw it: invoked at call, with
// its definite answer at ret (acked: the write was acknowledged), or
// with the error that was its answer.
type opRecord struct {
	client  int
	op      string
	req     string
	faultID string
	agent   string
	kind    string
	// group is, for group-apply and group-revert, the group's ID and its
	// member faults.
	group   string
	members []string
	// experiment is, for experiment, experiment-abort and probe-fail,
	// the experiment's ID.
	experiment string
	call, ret  time.Time
	acked      bool
	// noop: the answer says nothing was written (a revert of a fault
	// that had already ended answers the fault as it is, and appends
	// nothing to the log or the audit, by design).
	noop bool
	err  string
}

// appliedFault is a fault a client was told was made, alone or as a
// member of group.
type appliedFault struct {
	id, agent, kind, req string
	group                string
	// experiment: a member of a step of this experiment (made by its
	// runner; experiments_linux_test.go).
	experiment string
	call, ack  time.Time
	// ends is about when its deadline comes (the answer's time plus its
	// duration; the controller's deadline is a little earlier), for the
	// nemesis to find agents that hold a long fault.
	ends time.Time
}

// appliedGroup is a fault group a client was told was made.
type appliedGroup struct {
	id, kind, req string
	members       []string // fault IDs
}

// workload is the clients, running in the background until stopped.
type workload struct {
	lab     *lab
	history *linearize.History
	stopc   chan struct{}
	wg      sync.WaitGroup

	mu      sync.Mutex
	ops     []opRecord
	applied []appliedFault
	errs    []error
	conns   []*grpc.ClientConn
	// retried counts the attempts whose error left the outcome open, by
	// class: "disk full" (a controller that cannot write its raft log
	// says so, as Unavailable), else the gRPC code.
	retried map[string]int
	// revertAsked: faults a client asked to revert (alone or by group).
	revertAsked map[string]bool
	// probe is the service the experiments probe; experiments are those
	// the clients started and were told were recorded.
	probe       *probeService
	experiments []*expRun
}

// wclient is one client of the workload; used by one goroutine.
type wclient struct {
	w      *workload
	id     int
	rnd    *rand.Rand
	lin    *linearize.Client
	reqs   map[string]*turbulencev1.ApplyFaultRequest      // by request ID
	greqs  map[string]*turbulencev1.ApplyFaultGroupRequest // by request ID
	n      int                                             // operations so far, for request IDs
	mine   []appliedFault                                  // its own recent faults, to revert
	groups []appliedGroup                                  // its own recent groups, to revert
}

// startWorkload starts the clients; client i draws from a PCG seeded with
// the campaign's seed and i.
func startWorkload(l *lab, seed uint64, history *linearize.History) *workload {
	w := &workload{lab: l, history: history, stopc: make(chan struct{}), retried: map[string]int{}, revertAsked: map[string]bool{}}
	w.probe = startProbeService(l.c.t, l.c)
	for id := 1; id <= workloadClients; id++ {
		cl := &wclient{w: w, id: id, rnd: rand.New(rand.NewPCG(seed, uint64(id))),
			reqs: map[string]*turbulencev1.ApplyFaultRequest{}, greqs: map[string]*turbulencev1.ApplyFaultGroupRequest{}}
		lin, conns := l.c.linClient(id, cl.rnd, func(req string) *turbulencev1.ApplyFaultRequest { return cl.reqs[req] }, history)
		lin.ApplyGroupRequest = func(req string) *turbulencev1.ApplyFaultGroupRequest { return cl.greqs[req] }
		lin.Retried = func(_ string, err error) { w.noteRetry(err) }
		lin.Hidden = linearize.ExperimentFault
		cl.lin = lin
		w.conns = append(w.conns, conns...)
		w.wg.Go(cl.loop)
	}
	return w
}

// stop ends the clients after their current operation (each runs to a
// definite answer) and closes their connections.
func (w *workload) stop() {
	select {
	case <-w.stopc:
	default:
		close(w.stopc)
	}
	w.wg.Wait()
	w.probe.stopOnce()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, conn := range w.conns {
		_ = conn.Close()
	}
	w.conns = nil
}

func (cl *wclient) loop() {
	total := 0
	for _, k := range workloadOps {
		total += k.weight
	}
	pace := time.NewTicker(workloadPace)
	defer pace.Stop()
	for {
		select {
		case <-cl.w.stopc:
			return
		case <-pace.C:
		}
		p := cl.rnd.IntN(total)
		for _, k := range workloadOps {
			if p -= k.weight; p < 0 {
				// Each operation has all the time it needs to reach a
				// definite answer: the nemesis never takes the quorum
				// away for long.
				ctx, cancel := context.WithTimeout(context.Background(), opLimit)
				err := k.run(cl, ctx)
				cancel()
				if err != nil {
					cl.w.fail(fmt.Errorf("client %d %s: %w", cl.id, k.name, err))
					return
				}
				break
			}
		}
	}
}

func (w *workload) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errs = append(w.errs, err)
}

// longFaults returns, by agent, the faults given at least a second ago
// whose deadline comes after t and that no client asked to revert: the
// faults only the lease can end if their agent is cut off now.
func (w *workload) longFaults(t time.Time) map[string][]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	out := map[string][]string{}
	for _, f := range w.applied {
		if f.ends.After(t) && now.Sub(f.ack) > time.Second && !w.revertAsked[f.id] {
			out[f.agent] = append(out[f.agent], f.id)
		}
	}
	return out
}

// askRevert notes that a client is about to ask for these faults to be
// reverted.
func (w *workload) askRevert(ids ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		w.revertAsked[id] = true
	}
}

func (w *workload) noteRetry(err error) {
	class := status.Code(err).String()
	if strings.Contains(err.Error(), raftnode.ErrDiskFull.Error()) {
		class = "disk full"
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.retried[class]++
}

func (w *workload) record(r opRecord) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ops = append(w.ops, r)
}

func (cl *wclient) nextReq(op string) string {
	cl.n++
	return fmt.Sprintf("w%d-%s-%d", cl.id, op, cl.n)
}

// apply applies one fault of a random kind and duration to a random agent
// (dead, cut off or frozen ones too: the controller must still answer
// honestly).
func (cl *wclient) apply(ctx context.Context) error {
	a := cl.w.lab.agents[cl.rnd.IntN(len(cl.w.lab.agents))]
	kind := faultKinds[cl.rnd.IntN(len(faultKinds))]
	d := cl.faultDuration()
	req := cl.nextReq("apply")
	cl.reqs[req] = &turbulencev1.ApplyFaultRequest{RequestId: req, AgentId: a.name, Spec: faultSpec(kind, a, d)}
	call := time.Now()
	out, err := cl.lin.Do(ctx, linearize.Input{Op: linearize.OpApply, Req: req})
	ret := time.Now()
	delete(cl.reqs, req)
	if err != nil {
		return err
	}
	cl.w.record(opRecord{client: cl.id, op: "apply", req: req, faultID: out.FaultID, agent: a.name, kind: kind, call: call, ret: ret, acked: !out.Refused,
		err: map[bool]string{true: "refused: halted"}[out.Refused]})
	if out.Refused {
		return nil
	}
	f := appliedFault{id: out.FaultID, agent: a.name, kind: kind, req: req, call: call, ack: ret, ends: ret.Add(d)}
	cl.w.mu.Lock()
	cl.w.applied = append(cl.w.applied, f)
	cl.w.mu.Unlock()
	cl.mine = append(cl.mine, f)
	if len(cl.mine) > 20 {
		cl.mine = cl.mine[1:]
	}
	return nil
}

// faultDuration draws a fault's duration: most are short; one in four
// outlives the lease, so that only the lease (or a restart) can end it
// when its agent is hurt.
func (cl *wclient) faultDuration() time.Duration {
	lo, hi := minFault, maxFault
	if cl.rnd.IntN(4) == 0 {
		lo, hi = maxFault, longFault
	}
	return lo + time.Duration(cl.rnd.Int64N(int64(hi-lo)))
}

// applyGroup applies one fault to a seeded, capped slice of the agents a
// selector matches (ApplyFaultGroup): a count of 1 to groupMaxCount, or
// 50 %, with a seed of the client's drawing. The members are ordinary
// faults and are checked as such; the call itself is in the history
// (internal/linearize: all members or none, a retry returns the same).
// Agents that are dead, cut off or frozen are refused as offline when
// the leader knows it, so a group may be smaller than asked, or refused
// for too few (min), which changes nothing.
func (cl *wclient) applyGroup(ctx context.Context) error {
	kind := groupKinds[cl.rnd.IntN(len(groupKinds))]
	sel := groupSelectors[cl.rnd.IntN(len(groupSelectors))]
	d := cl.faultDuration()
	req := cl.nextReq("group")
	gr := &turbulencev1.ApplyFaultGroupRequest{RequestId: req, Selector: sel, Spec: faultSpec(kind, nil, d)}
	if cl.rnd.IntN(4) == 0 {
		gr.Percent = 50
	} else {
		gr.Count = uint32(1 + cl.rnd.IntN(groupMaxCount))
	}
	seed := cl.rnd.Uint64()
	gr.Seed = &seed
	cl.greqs[req] = gr
	call := time.Now()
	out, err := cl.lin.Do(ctx, linearize.Input{Op: linearize.OpApplyGroup, Req: req})
	ret := time.Now()
	delete(cl.greqs, req)
	if err != nil {
		return err
	}
	r := opRecord{client: cl.id, op: "group-apply", req: req, kind: kind, members: out.FaultIDs, call: call, ret: ret, acked: len(out.FaultIDs) > 0}
	switch {
	case out.Refused:
		r.err = "refused: halted"
	case out.TooSmall:
		r.err = "refused: too few eligible agents"
	}
	if !r.acked {
		cl.w.record(r)
		return nil
	}
	g := out.Group
	r.group = g.GetId()
	cl.w.record(r)
	ag := appliedGroup{id: g.GetId(), kind: kind, req: req, members: out.FaultIDs}
	cl.w.mu.Lock()
	for _, m := range g.GetMembers() {
		if m.GetFaultId() == "" {
			continue
		}
		f := appliedFault{id: m.GetFaultId(), agent: m.GetAgentId(), kind: kind, req: req, group: g.GetId(), call: call, ack: ret, ends: ret.Add(d)}
		cl.w.applied = append(cl.w.applied, f)
	}
	cl.w.mu.Unlock()
	cl.groups = append(cl.groups, ag)
	if len(cl.groups) > 10 {
		cl.groups = cl.groups[1:]
	}
	return nil
}

// revertGroup asks for one of the client's recent groups to be reverted
// (RevertFaultGroup), retried with the same request ID to a definite
// answer. Like revert, it is in the workload's log only; every member
// counts as asked to revert.
func (cl *wclient) revertGroup(ctx context.Context) error {
	if len(cl.groups) == 0 {
		return nil
	}
	g := cl.groups[cl.rnd.IntN(len(cl.groups))]
	cl.w.askRevert(g.members...)
	req := cl.nextReq("grevert")
	call := time.Now()
	var last error
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("revert group %s: no answer (last attempt: %s): %w", g.id, errText(last), err)
		}
		if attempt > 0 {
			pauseFor(cl.lin.RetryPause)
		}
		node := cl.lin.Nodes[cl.rnd.IntN(len(cl.lin.Nodes))]
		actx, cancel := context.WithTimeout(ctx, historyAttempt)
		got, err := node.API.RevertFaultGroup(actx, &turbulencev1.RevertFaultGroupRequest{RequestId: req, Id: g.id})
		cancel()
		if err != nil && linearize.Retryable(err) {
			last = err
			cl.w.noteRetry(err)
			continue
		}
		// A group with no live member is answered as it is, and nothing
		// is written: no member REVERTING in the answer.
		noop := err == nil && !slices.ContainsFunc(got.GetMembers(), func(m *turbulencev1.GroupMember) bool {
			return m.GetState() == turbulencev1.FaultState_FAULT_STATE_REVERTING
		})
		r := opRecord{client: cl.id, op: "group-revert", req: req, group: g.id, members: g.members, kind: g.kind, call: call, ret: time.Now(), acked: err == nil, noop: noop}
		if err != nil {
			r.err = err.Error()
		}
		cl.w.record(r)
		return nil
	}
}

// faultSpec is a small fault of kind lasting d for a; disk faults go to
// its tmpfs (a is nil for a group, which takes no disk kind).
func faultSpec(kind string, a *labAgent, d time.Duration) *turbulencev1.FaultSpec {
	s := &turbulencev1.FaultSpec{Duration: durationpb.New(d)}
	switch kind {
	case "cpu":
		s.Kind = &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: agentLoad}}
	case "memory":
		s.Kind = &turbulencev1.FaultSpec_Memory{Memory: &turbulencev1.MemorySpec{Size: &turbulencev1.MemorySpec_Bytes{Bytes: memoryBytes}}}
	case "disk_fill":
		s.Kind = &turbulencev1.FaultSpec_DiskFill{DiskFill: &turbulencev1.DiskFillSpec{Path: a.fillDisk, Size: &turbulencev1.DiskFillSpec_Bytes{Bytes: fillBytes}}}
	case "disk_io":
		s.Kind = &turbulencev1.FaultSpec_DiskIo{DiskIo: &turbulencev1.DiskIOSpec{Path: a.ioDisk, Mode: turbulencev1.DiskIOMode_DISK_IO_MODE_WRITE, BytesPerSecond: ioRate}}
	case "partition":
		s.Kind = &turbulencev1.FaultSpec_Partition{Partition: &turbulencev1.PartitionSpec{Target: &turbulencev1.TrafficTarget{Cidrs: []string{victim}}}}
	}
	return s
}

// revert asks for one of the client's recent faults to be reverted,
// retried with the same request ID at random nodes until it has a
// definite answer. The model has no revert (a revert changes no fault's
// existence), so it is in the workload's log only; its audit entry and
// its effect on the host are checked.
func (cl *wclient) revert(ctx context.Context) error {
	if len(cl.mine) == 0 {
		return nil
	}
	f := cl.mine[cl.rnd.IntN(len(cl.mine))]
	cl.w.askRevert(f.id)
	req := cl.nextReq("revert")
	call := time.Now()
	var last error
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("revert %s: no answer (last attempt: %s): %w", f.id, errText(last), err)
		}
		if attempt > 0 {
			pauseFor(cl.lin.RetryPause)
		}
		node := cl.lin.Nodes[cl.rnd.IntN(len(cl.lin.Nodes))]
		actx, cancel := context.WithTimeout(ctx, historyAttempt)
		got, err := node.API.RevertFault(actx, &turbulencev1.RevertFaultRequest{RequestId: req, Id: f.id})
		cancel()
		if err != nil && linearize.Retryable(err) {
			last = err
			cl.w.noteRetry(err)
			continue
		}
		r := opRecord{client: cl.id, op: "revert", req: req, faultID: f.id, agent: f.agent, kind: f.kind, call: call, ret: time.Now(), acked: err == nil,
			noop: err == nil && got.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTING}
		if err != nil {
			r.err = err.Error() // an answer: the fault had ended, say
		}
		cl.w.record(r)
		return nil
	}
}

// haltResume halts the fleet, lets it stay halted for a moment, and
// resumes it: both through the history (the model knows them).
func (cl *wclient) haltResume(ctx context.Context) error {
	for _, op := range []linearize.Op{linearize.OpHalt, linearize.OpResume} {
		req := cl.nextReq(string(op))
		call := time.Now()
		out, err := cl.lin.Do(ctx, linearize.Input{Op: op, Req: req})
		if err != nil {
			return err
		}
		cl.w.record(opRecord{client: cl.id, op: string(op), req: req, call: call, ret: time.Now(), acked: out.Halted == (op == linearize.OpHalt)})
		if op == linearize.OpHalt {
			pauseFor(time.Second + time.Duration(cl.rnd.Int64N(int64(2*time.Second))))
		}
	}
	return nil
}

func (cl *wclient) list(ctx context.Context) error {
	call := time.Now()
	if _, err := cl.lin.Do(ctx, linearize.Input{Op: linearize.OpList}); err != nil {
		return err
	}
	cl.w.record(opRecord{client: cl.id, op: "list", call: call, ret: time.Now()})
	return nil
}

func (cl *wclient) get(ctx context.Context) error {
	cl.w.mu.Lock()
	n := len(cl.w.applied)
	var id string
	if n > 0 {
		id = cl.w.applied[cl.rnd.IntN(n)].id
	}
	cl.w.mu.Unlock()
	if id == "" {
		return cl.list(ctx)
	}
	call := time.Now()
	if _, err := cl.lin.Do(ctx, linearize.Input{Op: linearize.OpGet, FaultID: id}); err != nil {
		return err
	}
	cl.w.record(opRecord{client: cl.id, op: "get", faultID: id, call: call, ret: time.Now()})
	return nil
}

func errText(err error) string {
	if err == nil {
		return "none"
	}
	return err.Error()
}

// pauseFor waits d: pacing between operations, not synchronisation.
func pauseFor(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	<-t.C
}
