package controller_test

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/controller/forward"
	"github.com/turbulence-sre/turbulence/internal/stats"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// benchAgents is the simulated fleet of BenchmarkFailover.
const benchAgents = 100

// BenchmarkFailover measures leader kill → new leader → every agent
// re-attached to it, over b.N kills of a 3-node cluster with 100 fake
// agents following the leader (controllertest.FollowingAgent). Run with
// -benchtime=20x for 20 kills. Raft runs with the production timing (a
// 500 ms election timeout), not controllertest.FastRaft. Reported:
// p50/p99 of the old leader's stop (raft runs on it until its shutdown,
// so no election starts before), of election (to a leader past its
// barrier) and of full re-attachment, how many times leadership moved
// again before the fleet had settled, and the longest time any agent went
// without a lease renewal. The kill is controllertest's Node.Crash: no
// leadership hand-over. The agents retry with the real agent's backoff
// (internal/backoff, 100 ms to 5 s). Percentiles are internal/stats': p50
// is the median, p99 the nearest rank, so with 20 kills it is the worst.
func BenchmarkFailover(b *testing.B) { benchFailover(b, (*controllertest.Node).Crash) }

// BenchmarkFailoverGraceful is BenchmarkFailover with a graceful stop
// (SIGTERM, Node.Stop) instead of a kill: the leader hands leadership
// over before it shuts down, so "stop" includes the hand-over and the new
// leader exists when it ends, with no election timeout waited out.
func BenchmarkFailoverGraceful(b *testing.B) { benchFailover(b, (*controllertest.Node).Stop) }

func benchFailover(b *testing.B, stopLeader func(*controllertest.Node) error) {
	const leaseTTL = 10 * time.Second
	c := controllertest.NewCluster(b, 3, func(_ int, cfg *controller.Config) {
		// The production raft timing (raftnode.DefaultElectionTimeout),
		// not the tests' faster one: the figures are what a fleet sees.
		cfg.RaftTune = nil
		cfg.LeaseTTL = leaseTTL
		cfg.HeartbeatInterval = time.Second
		if os.Getenv("BENCH_DEBUG") != "" {
			cfg.Logger = slog.New(slog.NewTextHandler(b.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", cfg.NodeID)
		}
	})
	agents := make([]*controllertest.FollowingAgent, benchAgents)
	for i := range agents {
		id := fmt.Sprintf("bench-agent-%d", i)
		files := c.Nodes[0].IssueCert(b, tlsutil.Identity{Role: tlsutil.RoleAgent, Name: id})
		a, err := controllertest.StartFollowingAgent(id, c.Addrs(), files)
		if err != nil {
			b.Fatal(err)
		}
		agents[i] = a
	}
	b.Cleanup(func() {
		for _, a := range agents {
			a.Stop()
		}
	})
	allOn := func(n *controllertest.Node) bool {
		if n.Controller.ConnectedAgents() != benchAgents {
			return false
		}
		for _, a := range agents {
			if a.Attached() != n.Addr {
				return false
			}
		}
		return true
	}
	leader := c.WaitLeader(b, 10*time.Second)
	controllertest.WaitFor(b, 30*time.Second, "every agent attached", func() bool { return allOn(leader) })

	var stop, elect, attach []time.Duration
	flips := 0 // leader changes after the first election of a kill
	for _, a := range agents {
		a.ResetLeaseGap()
	}
	b.ResetTimer()
	for range b.N {
		old := c.WaitLeader(b, 10*time.Second)
		start := time.Now()
		if err := stopLeader(old); err != nil {
			b.Fatal(err)
		}
		// Raft on the old leader runs until the end of its shutdown, so
		// after a kill no election starts before: this part is the stop
		// itself (and, when graceful, the hand-over).
		stop = append(stop, time.Since(start))
		nl := c.WaitLeader(b, 10*time.Second)
		elect = append(elect, time.Since(start))
		reattached := time.Now().Add(30 * time.Second)
		// Re-attached means to whoever leads at the end: on a loaded
		// machine a second election may follow the first, and the fleet
		// must follow that one too; the clock keeps running.
		for {
			if l := c.Leader(); l != nil {
				if l != nl {
					flips++
					nl = l
				}
				if allOn(nl) {
					break
				}
			}
			if time.Now().After(reattached) {
				where := map[string]int{}
				for _, a := range agents {
					where[a.Attached()]++
				}
				for _, n := range c.Nodes {
					if n.Running() {
						b.Logf("node %s %s leading=%v raft-leader=%v knows leader %q", n.Config.NodeID, n.Addr, n.Controller.IsLeader(), n.Controller.RaftLeader(), n.Controller.LeaderID())
					}
				}
				b.Fatalf("agents not re-attached to %s within 30s: hub has %d, agents attached at %v", nl.Addr, nl.Controller.ConnectedAgents(), where)
			}
			time.Sleep(5 * time.Millisecond)
		}
		attach = append(attach, time.Since(start))

		// Bring the old leader back as a follower for the next kill.
		b.StopTimer()
		old.Restart(b)
		controllertest.WaitFor(b, 10*time.Second, "the old leader to rejoin", func() bool {
			return old.Controller.LeaderID() == nl.Config.NodeID && old.Controller.LastRaftIndex() >= nl.Controller.LastRaftIndex()
		})
		b.StartTimer()
	}
	b.StopTimer()
	// Invariant 2: an agent reverts when it hears from no leader for the
	// lease TTL. The longest gap any agent saw, over every kill, says
	// whether a real fleet would have reverted anything.
	var maxGap time.Duration
	expired := 0
	for _, a := range agents {
		g := a.MaxLeaseGap()
		maxGap = max(maxGap, g)
		if g >= leaseTTL {
			expired++
		}
	}
	b.ReportMetric(float64(maxGap.Milliseconds()), "max-lease-gap-ms")
	b.ReportMetric(float64(expired), "agents-past-lease")
	for name, ds := range map[string][]time.Duration{"stop": stop, "elect": elect, "reattach": attach} {
		ms := stats.Millis(ds)
		b.ReportMetric(stats.Median(ms), name+"-p50-ms")
		b.ReportMetric(stats.Percentile(ms, 99), name+"-p99-ms")
	}
	b.ReportMetric(float64(len(attach)), "kills")
	b.ReportMetric(benchAgents, "agents")
	b.ReportMetric(float64(flips), "extra-elections")
}

// BenchmarkRaftWrite measures committed writes per second through the
// ControlService of a 3-node cluster (mTLS gRPC → raft on the leader →
// fsync'd boltdb on a quorum), with 1 and 64 concurrent clients. Each
// write is a Resume: one raft entry, no agent involved. The clients call
// the leader as a follower forwarding for an admin would (controller
// certificate, forwarded identity): that is the path every write from a
// follower takes, and it is not subject to the per-person rate limit,
// which would otherwise measure the limiter instead of raft.
func BenchmarkRaftWrite(b *testing.B) {
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			c := controllertest.NewCluster(b, 3, nil)
			leader := c.Leader()
			api := leader.ControlClient(b, leader.PKI.Controller)
			ctx := metadata.AppendToOutgoingContext(b.Context(), forward.MDForwardedFor, "admin/bench", forward.MDHops, "1")
			var next atomic.Int64
			var failed atomic.Int64
			var firstErr atomic.Pointer[error]
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range clients {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if _, err := api.Resume(ctx, &turbulencev1.ResumeRequest{}); err != nil {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, &err)
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d writes failed, the first with: %v", n, *firstErr.Load())
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
		})
	}
}
