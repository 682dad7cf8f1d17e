package controller_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/controller/forward"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// The fault registry as clients see it, as a sequential specification
// for porcupine. Reads in the history are consistent reads
// (forward.MDConsistent): plain reads are served from the local state of
// whichever node answers and may lag — on a follower, and on a new leader
// before its barrier — by design (DESIGN.md: "Any node answers reads"),
// so they are not linearizable and are not modelled.
type (
	linOp    string
	linInput struct {
		op  linOp
		req string
	}
	linOutput struct {
		faultID string   // apply: the fault made (or found) for req
		refused bool     // apply: refused because the fleet is halted
		halted  bool     // halt, resume, readHalt: the flag answered
		ids     []string // list: every fault ID, sorted
	}
	// linState is immutable: Step copies what it changes.
	linState struct {
		halted bool
		faults map[string]string // request ID → fault ID
		seen   map[string]bool   // halt and resume request IDs applied
	}
)

const (
	opApply    linOp = "apply"
	opHalt     linOp = "halt"
	opResume   linOp = "resume"
	opReadHalt linOp = "read-halt"
	opList     linOp = "list"
)

var registryModel = porcupine.Model{
	Init: func() any { return linState{faults: map[string]string{}, seen: map[string]bool{}} },
	Step: func(st, in, out any) (bool, any) {
		s, i, o := st.(linState), in.(linInput), out.(linOutput)
		switch i.op {
		case opApply:
			// A request ID applied before returns its fault: a retry never
			// makes a second one.
			if id, ok := s.faults[i.req]; ok {
				return !o.refused && o.faultID == id, s
			}
			// Invariant 5: no new fault while halted.
			if s.halted {
				return o.refused, s
			}
			if o.refused || o.faultID == "" || slices.Contains(slices.Collect(maps.Values(s.faults)), o.faultID) {
				return false, s
			}
			next := s
			next.faults = maps.Clone(s.faults)
			next.faults[i.req] = o.faultID
			return true, next
		case opHalt, opResume:
			// A halt or resume retried after it was applied answers the
			// flag as it is now (state.ApplySetHalt).
			if s.seen[i.req] {
				return o.halted == s.halted, s
			}
			want := i.op == opHalt
			if o.halted != want {
				return false, s
			}
			next := s
			next.halted = want
			next.seen = maps.Clone(s.seen)
			next.seen[i.req] = true
			return true, next
		case opReadHalt:
			return o.halted == s.halted, s
		case opList:
			want := slices.Sorted(maps.Values(s.faults))
			return slices.Equal(o.ids, want), s
		}
		return false, s
	},
	Equal: func(a, b any) bool {
		x, y := a.(linState), b.(linState)
		return x.halted == y.halted && maps.Equal(x.faults, y.faults) && maps.Equal(x.seen, y.seen)
	},
	Hash: func(st any) uint64 {
		s := st.(linState)
		h := uint64(len(s.faults))<<32 | uint64(len(s.seen))<<1
		if s.halted {
			h |= 1
		}
		return h
	},
	DescribeOperation: func(in, out any) string {
		i, o := in.(linInput), out.(linOutput)
		switch i.op {
		case opApply:
			if o.refused {
				return fmt.Sprintf("apply(%s) -> refused: halted", i.req)
			}
			return fmt.Sprintf("apply(%s) -> %s", i.req, o.faultID)
		case opList:
			return fmt.Sprintf("list() -> %d faults", len(o.ids))
		}
		return fmt.Sprintf("%s(%s) -> halted=%v", i.op, i.req, o.halted)
	},
}

// linClient is one client of the history: its own admin identity (the
// write rate limit is per identity) and a connection to every node.
type linClient struct {
	id    int
	nodes []turbulencev1.ControlServiceClient
	rng   *rand.Rand
}

// retryable reports whether an error leaves the outcome open and the
// client should try again with the same request ID: the node is down, is
// not the leader and could not forward within its hold time, or the call
// timed out. Any other error is an answer.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return true
	}
	return false
}

// do runs one logical operation to a definite answer, retrying at
// random nodes with the same request ID, and returns its output. The
// operation's interval in the history is from before the first attempt
// to after the last, which is exactly what idempotent retries promise.
func (c *linClient) do(ctx context.Context, in linInput) (linOutput, error) {
	for {
		if err := ctx.Err(); err != nil {
			return linOutput{}, fmt.Errorf("%s(%s): no answer before the test's deadline: %w", in.op, in.req, err)
		}
		api := c.nodes[c.rng.IntN(len(c.nodes))]
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		var out linOutput
		var err error
		switch in.op {
		case opApply:
			var f *turbulencev1.Fault
			f, err = api.ApplyFault(actx, cpuFault(in.req))
			out.faultID = f.GetId()
			if status.Code(err) == codes.FailedPrecondition && strings.Contains(err.Error(), "halted") {
				out, err = linOutput{refused: true}, nil
			}
		case opHalt:
			var h *turbulencev1.HaltStatus
			h, err = api.Halt(actx, &turbulencev1.HaltRequest{RequestId: in.req, Reason: "linearizability"})
			out.halted = h.GetHalted()
		case opResume:
			var h *turbulencev1.HaltStatus
			h, err = api.Resume(actx, &turbulencev1.ResumeRequest{RequestId: in.req})
			out.halted = h.GetHalted()
		case opReadHalt:
			var h *turbulencev1.HaltStatus
			h, err = api.GetHaltStatus(consistentRead(actx), &turbulencev1.GetHaltStatusRequest{})
			out.halted = h.GetHalted()
		case opList:
			var l *turbulencev1.ListFaultsResponse
			l, err = api.ListFaults(consistentRead(actx), &turbulencev1.ListFaultsRequest{})
			for _, f := range l.GetFaults() {
				out.ids = append(out.ids, f.GetId())
			}
			slices.Sort(out.ids)
		}
		cancel()
		switch {
		case err == nil:
			return out, nil
		case !retryable(err):
			return linOutput{}, fmt.Errorf("%s(%s): %w", in.op, in.req, err)
		}
	}
}

// consistentRead asks the controller for a read served by the leader
// after a barrier.
func consistentRead(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, forward.MDConsistent, "true")
}

// Several clients write and read the fault registry through random nodes
// while the leader is stopped twice and restarted; porcupine then checks
// that the history is linearizable against registryModel: every
// acknowledged fault is there, a retried request ID never makes a second
// fault, a refusal for halt happens only while halted, and no consistent
// read goes back in time. The leader is stopped gracefully (in-process,
// as SIGTERM would); kill -9 of a controller process is the netns test's.
func TestCluster_HistoryUnderLeaderKillsIsLinearizable(t *testing.T) {
	if testing.Short() {
		t.Skip("a 10-second storm; skipped with -short")
	}
	const (
		clients   = 4
		kills     = 2
		opPace    = 25 * time.Millisecond // per client: ~40 ops/s, under the write rate limit
		storm     = 3 * time.Second       // between kills
		opTimeout = 30 * time.Second
	)
	c := controllertest.NewCluster(t, 3, nil)
	c.Leader().ConnectAgent(t, nil)

	start := time.Now()
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		errs    []error
	)
	record := func(client int, in linInput, call time.Time, out linOutput) {
		mu.Lock()
		defer mu.Unlock()
		history = append(history, porcupine.Operation{
			ClientId: client, Input: in, Output: out,
			Call: call.Sub(start).Nanoseconds(), Return: time.Since(start).Nanoseconds(),
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	stopOps := make(chan struct{})
	var wg sync.WaitGroup
	for id := range clients {
		files := c.Nodes[0].IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleAdmin, Name: fmt.Sprintf("lin-%d", id)})
		cl := &linClient{id: id, rng: rand.New(rand.NewPCG(uint64(id), 42))}
		for _, nd := range c.Nodes {
			cl.nodes = append(cl.nodes, nd.ControlClient(t, files))
		}
		wg.Go(func() {
			pace := time.NewTicker(opPace)
			defer pace.Stop()
			for n := 0; ; n++ {
				select {
				case <-stopOps:
					return
				case <-pace.C:
				}
				in := linInput{req: fmt.Sprintf("c%d-%d", id, n)}
				switch r := cl.rng.IntN(100); {
				case r < 45:
					in.op = opApply
				case r < 53:
					in.op = opHalt
				case r < 63:
					in.op = opResume
				case r < 80:
					in.op = opReadHalt
				default:
					in.op = opList
				}
				call := time.Now()
				out, err := cl.do(ctx, in)
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("client %d: %w", id, err))
					mu.Unlock()
					return
				}
				record(id, in, call, out)
			}
		})
	}

	// The storm: stop the leader, let the others elect, bring it back.
	waitStorm := func() {
		until := time.Now().Add(storm)
		controllertest.WaitFor(t, 2*storm, "the clients to run through a storm period", func() bool { return time.Now().After(until) })
	}
	for range kills {
		waitStorm()
		old := c.WaitLeader(t, failoverLimit)
		if err := old.Stop(); err != nil {
			t.Errorf("stop leader %s: %v", old.Config.NodeID, err)
		}
		nl := c.WaitLeader(t, failoverLimit)
		t.Logf("leader %s stopped; %s leads", old.Config.NodeID, nl.Config.NodeID)
		old.Restart(t)
	}
	waitStorm()
	close(stopOps)
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	counts := map[linOp]int{}
	for _, op := range history {
		counts[op.Input.(linInput).op]++
	}
	t.Logf("history: %d operations %v", len(history), counts)
	if counts[opApply] < 20 || counts[opList] < 5 {
		t.Fatalf("history too thin to mean anything: %v", counts)
	}
	checkStart := time.Now()
	res, info := porcupine.CheckOperationsVerbose(registryModel, history, 20*time.Second)
	t.Logf("porcupine: %s in %s", res, time.Since(checkStart).Round(time.Millisecond))
	switch res {
	case porcupine.Illegal:
		path := t.TempDir() + "/history.html"
		if err := porcupine.VisualizePath(registryModel, info, path); err == nil {
			t.Logf("visualisation: %s", path)
		}
		t.Fatal("the history of the fault registry is not linearizable")
	case porcupine.Unknown:
		t.Fatal("porcupine timed out: shrink the storm")
	}

	// Afterwards, on every node: exactly the acknowledged faults (one per
	// request ID that got one), none lost, none doubled.
	acked := map[string]bool{}
	for _, op := range history {
		if op.Input.(linInput).op == opApply && !op.Output.(linOutput).refused {
			acked[op.Output.(linOutput).faultID] = true
		}
	}
	want := slices.Sorted(maps.Keys(acked))
	for _, nd := range c.Nodes {
		api := nd.AdminClient(t)
		var got []string
		controllertest.WaitFor(t, 10*time.Second, nd.Config.NodeID+" to hold every acknowledged fault", func() bool {
			l, err := api.ListFaults(t.Context(), &turbulencev1.ListFaultsRequest{})
			got = got[:0]
			for _, f := range l.GetFaults() {
				got = append(got, f.GetId())
			}
			slices.Sort(got)
			return err == nil && len(got) >= len(want)
		})
		if !slices.Equal(got, want) {
			t.Errorf("%s holds %d faults, want the %d acknowledged ones", nd.Config.NodeID, len(got), len(want))
		}
	}
}

// The model must reject what the cluster must never do; otherwise a
// passing check above would prove nothing.
func TestRegistryModel_RejectsBadHistories(t *testing.T) {
	t.Parallel()
	op := func(client int, call, ret int64, in linInput, out linOutput) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret}
	}
	apply := func(req string) linInput { return linInput{op: opApply, req: req} }
	list := linInput{op: opList}
	tests := []struct {
		name    string
		history []porcupine.Operation
		want    bool
	}{
		{"acknowledged write then read", []porcupine.Operation{
			op(0, 0, 10, apply("r1"), linOutput{faultID: "f1"}),
			op(1, 20, 30, list, linOutput{ids: []string{"f1"}}),
		}, true},
		{"acknowledged write lost", []porcupine.Operation{
			op(0, 0, 10, apply("r1"), linOutput{faultID: "f1"}),
			op(1, 20, 30, list, linOutput{}),
		}, false},
		{"retry made a second fault", []porcupine.Operation{
			op(0, 0, 10, apply("r1"), linOutput{faultID: "f1"}),
			op(0, 20, 30, apply("r1"), linOutput{faultID: "f2"}),
		}, false},
		{"a stranger fault appears", []porcupine.Operation{
			op(0, 0, 10, apply("r1"), linOutput{faultID: "f1"}),
			op(1, 20, 30, list, linOutput{ids: []string{"f1", "f9"}}),
		}, false},
		{"read goes back in time", []porcupine.Operation{
			op(0, 0, 10, linInput{op: opHalt, req: "h1"}, linOutput{halted: true}),
			op(1, 20, 30, linInput{op: opReadHalt}, linOutput{halted: true}),
			op(1, 40, 50, linInput{op: opReadHalt}, linOutput{halted: false}),
		}, false},
		{"refused while not halted", []porcupine.Operation{
			op(0, 0, 10, apply("r1"), linOutput{refused: true}),
		}, false},
		{"halt concurrent with apply may go either way", []porcupine.Operation{
			op(0, 0, 30, linInput{op: opHalt, req: "h1"}, linOutput{halted: true}),
			op(1, 10, 20, apply("r1"), linOutput{refused: true}),
			op(1, 40, 50, apply("r2"), linOutput{refused: true}),
		}, true},
		{"fault created after an acknowledged halt", []porcupine.Operation{
			op(0, 0, 10, linInput{op: opHalt, req: "h1"}, linOutput{halted: true}),
			op(1, 20, 30, apply("r1"), linOutput{faultID: "f1"}),
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := porcupine.CheckOperations(registryModel, tt.history); got != tt.want {
				t.Errorf("CheckOperations = %v, want %v", got, tt.want)
			}
		})
	}
}

// A consistent read through a follower sees a write the leader has just
// acknowledged, with no waiting; a plain read there may not (yet).
func TestCluster_ConsistentReadOnFollowerSeesAcknowledgedWrite(t *testing.T) {
	c := controllertest.NewCluster(t, 3, nil)
	leader := c.Leader()
	leader.ConnectAgent(t, nil)
	followers := c.Followers()
	for i := range 20 {
		f, err := leader.AdminClient(t).ApplyFault(t.Context(), cpuFault(fmt.Sprintf("cr-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		follower := followers[i%len(followers)]
		got, err := follower.AdminClient(t).GetFault(consistentRead(t.Context()), &turbulencev1.GetFaultRequest{Id: f.GetId()})
		if err != nil || got.GetId() != f.GetId() {
			t.Fatalf("consistent GetFault %s on %s right after the write = %v, %v", f.GetId(), follower.Config.NodeID, got, err)
		}
	}
}
