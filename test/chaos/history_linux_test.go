package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/internal/linearize"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

const (
	// historyClients run operations beside the test's own (client 0).
	historyClients = 3
	// historyPace is each client's pace: about 10 operations a second,
	// about 4 of them writes, far under the per-identity write limit.
	historyPace = 100 * time.Millisecond
	// historyAttempt bounds one attempt. It is shorter than the 5 s hold
	// time of a node without a leader on purpose: a client gives up on
	// a partitioned node (DeadlineExceeded, outcome open) and retries the
	// same request ID elsewhere while the first attempt may still be held
	// there, which is what request IDs must make harmless.
	historyAttempt = 2 * time.Second
	// historyLimit bounds the whole run of the clients.
	historyLimit = 3 * time.Minute
)

// ghostFault is the fault the history writes: for agentName, which no
// process runs (the fault stays PENDING, then is recorded REVERTED when
// its lease runs out), so that hundreds of writes cost no CPU.
func ghostFault(req string) *turbulencev1.ApplyFaultRequest {
	return &turbulencev1.ApplyFaultRequest{
		RequestId: req,
		AgentId:   agentName,
		Spec: &turbulencev1.FaultSpec{
			Duration: durationpb.New(time.Hour),
			Kind:     &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: 10}},
		},
	}
}

// historyRun is the clients of a history running in the background:
// each writes (applies with fresh request IDs) and reads (consistent
// lists of every fault, consistent reads of one acknowledged fault)
// through random nodes, each operation retried to a definite answer.
type historyRun struct {
	history *linearize.History
	cancel  context.CancelFunc
	stopped chan struct{}
	wg      sync.WaitGroup

	done atomic.Int64 // operations answered

	mu    sync.Mutex
	known []string // acknowledged fault IDs, for reads of one fault
	errs  []error
	conns []*grpc.ClientConn
}

// startHistory starts the clients. Each has its own admin identity (the
// write rate limit is per identity) and its own connections to every
// node, from the hub. known seeds the fault IDs the clients may read.
func (c *procCluster) startHistory(history *linearize.History, known []string) *historyRun {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), historyLimit)
	r := &historyRun{history: history, cancel: cancel, stopped: make(chan struct{}), known: slices.Clone(known)}
	c.t.Cleanup(func() { // if the test ends early: abandon what is in flight
		cancel()
		r.stop()
	})
	for id := 1; id <= historyClients; id++ {
		cl, conns := c.linClient(id, rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano()))), ghostFault, history)
		r.conns = append(r.conns, conns...)
		r.wg.Go(func() { r.client(ctx, cl) })
	}
	return r
}

// linClient makes client id of a history: an admin identity of its own
// (the write rate limit is per identity), a connection from the hub to
// every node, and apply as the ApplyFault request of a request ID. The
// caller closes the connections.
func (c *procCluster) linClient(id int, rnd *rand.Rand, apply func(req string) *turbulencev1.ApplyFaultRequest, history *linearize.History) (*linearize.Client, []*grpc.ClientConn) {
	c.t.Helper()
	name := fmt.Sprintf("lin-%d", id)
	files := c.issue(name, tlsutil.Identity{Role: tlsutil.RoleAdmin, Name: name})
	cl := &linearize.Client{
		ID:           id,
		Rand:         rnd,
		Attempt:      historyAttempt,
		RetryPause:   50 * time.Millisecond,
		Consistent:   consistentRead,
		ApplyRequest: apply,
		History:      history,
	}
	var conns []*grpc.ClientConn
	for _, n := range c.nodes {
		conn := c.dial(n, files)
		conns = append(conns, conn)
		cl.Nodes = append(cl.Nodes, linearize.Node{Name: n.id, API: turbulencev1.NewControlServiceClient(conn)})
	}
	return cl, conns
}

func (r *historyRun) client(ctx context.Context, cl *linearize.Client) {
	pace := time.NewTicker(historyPace)
	defer pace.Stop()
	for n := 0; ; n++ {
		select {
		case <-r.stopped:
			return
		case <-ctx.Done():
			return
		case <-pace.C:
		}
		in := linearize.Input{Req: fmt.Sprintf("lin%d-%d", cl.ID, n)}
		switch p := cl.Rand.IntN(100); {
		case p < 40:
			in.Op = linearize.OpApply
		case p < 70:
			in.Op = linearize.OpList
		default:
			in.Op = linearize.OpGet
			r.mu.Lock()
			if len(r.known) > 0 {
				in.FaultID = r.known[cl.Rand.IntN(len(r.known))]
			}
			r.mu.Unlock()
			if in.FaultID == "" {
				in.Op = linearize.OpList
			}
		}
		out, err := cl.Do(ctx, in)
		if err == nil {
			r.done.Add(1)
		}
		r.mu.Lock()
		switch {
		case err != nil:
			r.errs = append(r.errs, fmt.Errorf("client %d: %w", cl.ID, err))
		case in.Op == linearize.OpApply:
			r.known = append(r.known, out.FaultID)
		}
		r.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// mark returns how many operations the clients have answered so far.
func (r *historyRun) mark() int64 { return r.done.Load() }

// waitOps waits until the clients have answered n operations since mark
// (in whatever state the cluster is now), or fails the test after limit.
func (r *historyRun) waitOps(t *testing.T, mark int64, n int, limit time.Duration, while string) {
	t.Helper()
	waitFor(t, limit, fmt.Sprintf("%d operations of the clients %s", n, while), func() bool {
		return r.done.Load()-mark >= int64(n)
	})
}

// stop ends the clients after their current operation and returns what
// went wrong. It may be called more than once.
func (r *historyRun) stop() []error {
	select {
	case <-r.stopped:
	default:
		close(r.stopped)
	}
	r.wg.Wait()
	r.cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, conn := range r.conns {
		_ = conn.Close()
	}
	r.conns = nil
	return r.errs
}
