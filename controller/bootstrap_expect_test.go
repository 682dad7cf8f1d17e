package controller_test

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// logCounter counts log records by message, so a test can prove that
// something happened (or did not) from what the node itself reports.
type logCounter struct {
	slog.Handler
	mu     *sync.Mutex
	counts map[string]int
}

func newLogCounter(next slog.Handler) *logCounter {
	return &logCounter{Handler: next, mu: new(sync.Mutex), counts: make(map[string]int)}
}

func (h *logCounter) Enabled(context.Context, slog.Level) bool { return true }

// Handle counts the message, and also "message known=N" for a record
// with a "known" attribute (bootstrap-expect's progress).
func (h *logCounter) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	h.counts[r.Message]++
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "known" {
			h.counts[r.Message+" known="+a.Value.String()]++
		}
		return true
	})
	h.mu.Unlock()
	if h.Handler.Enabled(ctx, r.Level) {
		return h.Handler.Handle(ctx, r)
	}
	return nil
}

func (h *logCounter) WithAttrs(as []slog.Attr) slog.Handler {
	return &logCounter{Handler: h.Handler.WithAttrs(as), mu: h.mu, counts: h.counts}
}

func (h *logCounter) WithGroup(name string) slog.Handler {
	return &logCounter{Handler: h.Handler.WithGroup(name), mu: h.mu, counts: h.counts}
}

func (h *logCounter) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[msg]
}

// bootstrapped is what raftnode logs when it writes an initial
// configuration.
const bootstrapped = "bootstrapped raft cluster"

// expectCluster prepares n nodes with --bootstrap-expect n and every
// node's gRPC address as --join, each logging through its own counter.
func expectCluster(t *testing.T, n int) (*controllertest.Cluster, []*logCounter) {
	t.Helper()
	counters := make([]*logCounter, n)
	expect := controllertest.BootstrapExpect(n)
	c := controllertest.PrepareCluster(t, n, func(i int, cfg *controller.Config) {
		expect(i, cfg)
		counters[i] = newLogCounter(cfg.Logger.Handler())
		cfg.Logger = slog.New(counters[i])
	})
	return c, counters
}

func TestCluster_BootstrapExpectWaitsForAllThenFormsOnce(t *testing.T) {
	c, logs := expectCluster(t, 3)
	// Two of three: each knows two servers and bootstraps nothing.
	c.Nodes[0].Start(t)
	c.Nodes[1].Start(t)
	const twoKnown = "waiting for bootstrap-expect peers known=2"
	controllertest.WaitFor(t, 10*time.Second, "c1 and c2 to find each other", func() bool {
		return logs[0].count(twoKnown) > 0 && logs[1].count(twoKnown) > 0
	})
	// While waiting, each serves ListServers and says who it is.
	for _, nd := range c.Nodes[:2] {
		resp, err := nd.ClusterClient(t, nd.PKI.Admin).ListServers(t.Context(), &turbulencev1.ListServersRequest{})
		if err != nil {
			t.Fatalf("ListServers on %s while waiting: %v", nd.Config.NodeID, err)
		}
		if self := resp.GetSelf(); self.GetId() != nd.Config.NodeID || self.GetRaftAddress() != nd.Config.RaftAddr || self.GetGrpcAddress() != nd.Config.GRPCAddr {
			t.Errorf("%s self = %v, want its own ID and addresses", nd.Config.NodeID, self)
		}
	}
	for i := range 2 {
		if n := logs[i].count(bootstrapped); n != 0 {
			t.Fatalf("c%d bootstrapped %d times with 2 of 3 nodes up", i+1, n)
		}
		if servers, err := c.Nodes[i].Controller.Servers(); err != nil || len(servers) != 0 {
			t.Fatalf("c%d configuration with 2 of 3 nodes up = %v, %v; want none", i+1, servers, err)
		}
	}
	// The third arrives: one cluster of three, bootstrapped once per node
	// (or not at all on a node that got the configuration from a peer).
	c.Nodes[2].Start(t)
	leader := c.WaitLeader(t, 20*time.Second)
	for _, nd := range c.Nodes {
		controllertest.WaitFor(t, 10*time.Second, nd.Config.NodeID+" to hold the 3-server configuration", func() bool {
			servers, err := nd.Controller.Servers()
			return err == nil && len(servers) == 3
		})
	}
	total := 0
	for i, l := range logs {
		if n := l.count(bootstrapped); n > 1 {
			t.Errorf("c%d bootstrapped %d times, want at most once", i+1, n)
		}
		total += l.count(bootstrapped)
	}
	if total == 0 {
		t.Error("no node logged a bootstrap")
	}
	resp, err := leader.ClusterClient(t, c.PKI.Admin).ListServers(t.Context(), &turbulencev1.ListServersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := serverIDs(resp), []string{"c1", "c2", "c3"}; !slices.Equal(got, want) {
		t.Errorf("servers = %v, want %v", got, want)
	}
	if _, err := leader.AdminClient(t).Halt(t.Context(), &turbulencev1.HaltRequest{RequestId: "h-1", Reason: "before restart"}); err != nil {
		t.Fatal(err)
	}

	// Every node restarts with its data and the same flags: nobody
	// bootstraps again; the cluster comes back from the logs.
	before := make([]int, len(logs))
	for i, nd := range c.Nodes {
		before[i] = logs[i].count(bootstrapped)
		if err := nd.Stop(); err != nil {
			t.Fatalf("stop %s: %v", nd.Config.NodeID, err)
		}
	}
	for _, nd := range c.Nodes {
		nd.Restart(t)
	}
	leader = c.WaitLeader(t, 20*time.Second)
	for i := range logs {
		if got := logs[i].count(bootstrapped); got != before[i] {
			t.Errorf("c%d bootstrapped again after a restart (%d bootstraps, %d before)", i+1, got, before[i])
		}
	}
	h, err := leader.AdminClient(t).GetHaltStatus(t.Context(), &turbulencev1.GetHaltStatusRequest{})
	if err != nil || !h.GetHalted() {
		t.Errorf("halt after restart = %v, %v; want the halt written before it", h, err)
	}
}

func TestCluster_BootstrapExpectLateNodeJoinsInsteadOfBootstrapping(t *testing.T) {
	c := controllertest.NewCluster(t, 3, controllertest.BootstrapExpect(3))
	// A fourth node, brand new, given the same count and the three running
	// nodes: they are a cluster already, so it joins rather than
	// bootstrapping a cluster of its own (which would fork the fleet).
	cfg := c.Nodes[0].Config
	cfg.NodeID, cfg.DataDir = "c4", t.TempDir()
	cfg.TLS = controllertest.NodeCert(t, c.PKI, "c4")
	cfg.GRPCAddr, cfg.RaftAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.BootstrapExpect, cfg.Join = 3, c.Addrs()
	counter := newLogCounter(cfg.Logger.Handler())
	cfg.Logger = slog.New(counter)
	late, err := controller.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- late.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("c4 Run: %v", err)
		}
	})
	leader := c.WaitLeader(t, 10*time.Second)
	controllertest.WaitFor(t, 20*time.Second, "c4 in the configuration", func() bool {
		resp, err := leader.ClusterClient(t, c.PKI.Admin).ListServers(t.Context(), &turbulencev1.ListServersRequest{})
		return err == nil && slices.Contains(serverIDs(resp), "c4")
	})
	if n := counter.count(bootstrapped); n != 0 {
		t.Errorf("late node bootstrapped %d times, want 0", n)
	}
}

// Two controllers that claim the same node ID would make one server of
// two machines: discovery refuses to bootstrap and says why, once.
func TestCluster_BootstrapExpectRefusesADuplicateNodeID(t *testing.T) {
	counters := make([]*logCounter, 2)
	expect := controllertest.BootstrapExpect(2)
	c := controllertest.PrepareCluster(t, 2, func(i int, cfg *controller.Config) {
		expect(i, cfg)
		cfg.NodeID = "same"
		counters[i] = newLogCounter(cfg.Logger.Handler())
		cfg.Logger = slog.New(counters[i])
	})
	for _, nd := range c.Nodes {
		nd.Start(t)
	}
	controllertest.WaitFor(t, 10*time.Second, "both nodes to refuse", func() bool {
		return counters[0].count("not bootstrapping") > 0 && counters[1].count("not bootstrapping") > 0
	})
	for i, l := range counters {
		if n := l.count(bootstrapped); n != 0 {
			t.Errorf("node %d bootstrapped %d times with a duplicate ID", i, n)
		}
		if n := l.count("not bootstrapping"); n != 1 {
			t.Errorf("node %d logged the refusal %d times, want once", i, n)
		}
	}
}
