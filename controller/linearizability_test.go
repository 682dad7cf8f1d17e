package controller_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/grpc/metadata"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/controller/forward"
	"github.com/turbulence-sre/turbulence/internal/linearize"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// consistentRead asks the controller for a read served by the leader
// after a barrier.
func consistentRead(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, forward.MDConsistent, "true")
}

// Several clients write and read the fault registry through random nodes
// while the leader is stopped twice and restarted; porcupine then checks
// that the history is linearizable against linearize.Model: every
// acknowledged fault is there, a retried request ID never makes a second
// fault, a refusal for halt happens only while halted, and no consistent
// read goes back in time. The leader is stopped gracefully (in-process,
// as SIGTERM would); kill -9 of a controller process, with real agents,
// is test/chaos's, with the same model.
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

	history := linearize.NewHistory()
	var (
		mu   sync.Mutex
		errs []error
	)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	stopOps := make(chan struct{})
	var wg sync.WaitGroup
	for id := range clients {
		files := c.Nodes[0].IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleAdmin, Name: fmt.Sprintf("lin-%d", id)})
		cl := &linearize.Client{
			ID:           id,
			Rand:         rand.New(rand.NewPCG(uint64(id), 42)),
			Attempt:      3 * time.Second,
			Consistent:   consistentRead,
			ApplyRequest: cpuFault,
			History:      history,
		}
		for _, nd := range c.Nodes {
			cl.Nodes = append(cl.Nodes, linearize.Node{Name: nd.Config.NodeID, API: nd.ControlClient(t, files)})
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
				in := linearize.Input{Req: fmt.Sprintf("c%d-%d", id, n)}
				switch r := cl.Rand.IntN(100); {
				case r < 45:
					in.Op = linearize.OpApply
				case r < 53:
					in.Op = linearize.OpHalt
				case r < 63:
					in.Op = linearize.OpResume
				case r < 80:
					in.Op = linearize.OpReadHalt
				default:
					in.Op = linearize.OpList
				}
				if _, err := cl.Do(ctx, in); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("client %d: %w", id, err))
					mu.Unlock()
					return
				}
			}
		})
	}

	// The storm: stop the leader, let the others elect, bring it back.
	waitStorm := func() {
		until := time.Now().Add(storm)
		controllertest.WaitFor(t, 2*storm, "the clients to run through a storm period", func() bool { return time.Now().After(until) })
	}
	for k := range kills {
		waitStorm()
		old := c.WaitLeader(t, failoverLimit)
		stopped := time.Now()
		// Alternate a crash (no hand-over: an election) with a graceful
		// stop (leadership transferred first): both must lose nothing.
		how, stop := "crashed", old.Crash
		if k%2 == 1 {
			how, stop = "stopped gracefully", old.Stop
		}
		if err := stop(); err != nil {
			t.Errorf("%s leader %s: %v", how, old.Config.NodeID, err)
		}
		nl := c.WaitLeader(t, failoverLimit)
		history.Note("leader "+old.Config.NodeID+" "+how+"; "+nl.Config.NodeID+" leads", stopped, time.Now())
		t.Logf("leader %s %s; %s leads", old.Config.NodeID, how, nl.Config.NodeID)
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

	counts := history.Counts()
	t.Logf("history: %d operations %v", len(history.Operations()), counts)
	if counts[linearize.OpApply] < 20 || counts[linearize.OpList] < 5 {
		t.Fatalf("history too thin to mean anything: %v", counts)
	}
	checkStart := time.Now()
	viz := t.TempDir() + "/history.html"
	res, why, err := history.Check(20*time.Second, viz)
	t.Logf("porcupine: %s in %s", res, time.Since(checkStart).Round(time.Millisecond))
	switch res {
	case porcupine.Illegal:
		if err == nil {
			t.Logf("visualisation: %s", viz)
		}
		t.Fatalf("the history of the fault registry is not linearizable: %s", why)
	case porcupine.Unknown:
		t.Fatal("porcupine timed out: shrink the storm")
	}

	// Afterwards, on every node: exactly the acknowledged faults (one per
	// request ID that got one), none lost, none doubled.
	want := history.Acknowledged()
	for _, nd := range c.Nodes {
		api := nd.AdminClient(t)
		var got []string
		controllertest.WaitFor(t, 10*time.Second, nd.Config.NodeID+" to hold every acknowledged fault", func() bool {
			got = got[:0]
			for token := ""; ; {
				l, err := api.ListFaults(t.Context(), &turbulencev1.ListFaultsRequest{PageToken: token})
				if err != nil {
					return false
				}
				for _, f := range l.GetFaults() {
					got = append(got, f.GetId())
				}
				if token = l.GetNextPageToken(); token == "" {
					break
				}
			}
			slices.Sort(got)
			return len(got) >= len(want)
		})
		if !slices.Equal(got, want) {
			t.Errorf("%s holds %d faults, want the %d acknowledged ones", nd.Config.NodeID, len(got), len(want))
		}
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
