package controllertest

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/raftnode"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// HeartbeatTimeout is FastRaft's raft heartbeat and election timeout.
const HeartbeatTimeout = 300 * time.Millisecond

// FastRaft makes elections take a few hundred milliseconds instead of
// seconds, so cluster tests start and fail over quickly. The ratios keep
// raft's own constraints (lease timeout at most the heartbeat timeout).
// Much shorter timeouts make a loaded, small machine (-race, two CPUs, a
// reconnecting fleet) miss its own leader lease and flap.
func FastRaft(c *raft.Config) {
	c.HeartbeatTimeout = HeartbeatTimeout
	c.ElectionTimeout = HeartbeatTimeout
	c.LeaderLeaseTimeout = 250 * time.Millisecond
	c.CommitTimeout = 10 * time.Millisecond
}

// Cluster is an in-process controller cluster on loopback with real raft
// over mutual TLS, real boltdb stores and one shared dev PKI.
type Cluster struct {
	// Nodes are the controllers, Nodes[i] named "c<i+1>".
	Nodes []*Node
	// PKI is shared by every node (one controller certificate for all).
	PKI tlsutil.DevPKI

	t         testing.TB
	configure func(i int, cfg *controller.Config)
}

// Node is one controller of a Cluster. Its embedded Server gives the
// usual clients (AdminClient, ConnectAgent, …) aimed at this node.
type Node struct {
	*Server
	// Index is the node's position in Cluster.Nodes.
	Index int

	mu      sync.Mutex
	stop    func() error // cancels Run and waits; nil when not running
	running bool
}

// NewCluster starts n controllers that bootstrap one raft cluster
// explicitly (every node is given the same peer list, as with
// --bootstrap --peer), waits for a leader and stops every node in
// t.Cleanup. configure, if not nil, may change each node's configuration.
func NewCluster(t testing.TB, n int, configure func(i int, cfg *controller.Config)) *Cluster {
	t.Helper()
	c := PrepareCluster(t, n, configure)
	for _, nd := range c.Nodes {
		nd.start(t)
	}
	c.WaitLeader(t, startTimeout)
	return c
}

// PrepareCluster is NewCluster without starting anything: every node is
// configured (addresses reserved, data directories chosen) and stopped
// in t.Cleanup, and the test starts each with Node.Start when it wants,
// for example to prove that bootstrap waits for the last node.
func PrepareCluster(t testing.TB, n int, configure func(i int, cfg *controller.Config)) *Cluster {
	t.Helper()
	dir := t.TempDir()
	pki, err := tlsutil.EnsureDevPKI(filepath.Join(dir, "tls"), AgentName)
	if err != nil {
		t.Fatalf("dev PKI: %v", err)
	}
	c := &Cluster{PKI: pki, t: t, configure: configure}
	// Addresses must be known before bootstrap: reserve loopback ports.
	peers := make([]raftnode.Peer, n)
	for i := range n {
		peers[i] = raftnode.Peer{ID: fmt.Sprintf("c%d", i+1), Address: raftnode.Address{Raft: freeAddr(t), GRPC: freeAddr(t)}}
	}
	for i := range n {
		cfg := controller.DefaultConfig()
		cfg.NodeID = peers[i].ID
		cfg.DataDir = filepath.Join(dir, cfg.NodeID)
		cfg.GRPCAddr = peers[i].Address.GRPC
		cfg.RaftAddr = peers[i].Address.Raft
		cfg.TLS = NodeCert(t, pki, cfg.NodeID)
		cfg.Bootstrap = true
		cfg.Peers = peers
		cfg.RaftTune = FastRaft
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", cfg.NodeID)
		if configure != nil {
			configure(i, &cfg)
		}
		node := &Node{Server: &Server{Config: cfg, PKI: pki}, Index: i}
		c.Nodes = append(c.Nodes, node)
	}
	t.Cleanup(func() {
		for _, nd := range c.Nodes {
			if err := nd.Stop(); err != nil {
				t.Errorf("controller %s: Run: %v", nd.Config.NodeID, err)
			}
		}
	})
	return c
}

// BootstrapExpect returns a configure function for NewCluster and
// PrepareCluster that forms the cluster as operators do with
// `--bootstrap-expect n --join <every initial node's gRPC address>`
// instead of an explicit --bootstrap --peer list. Nodes added later by
// AddNode (no peers) keep their plain --join.
func BootstrapExpect(n int) func(i int, cfg *controller.Config) {
	return func(_ int, cfg *controller.Config) {
		if len(cfg.Peers) == 0 {
			return
		}
		cfg.Join = nil
		for _, p := range cfg.Peers {
			cfg.Join = append(cfg.Join, p.Address.GRPC)
		}
		cfg.Bootstrap, cfg.Peers, cfg.BootstrapExpect = false, nil, n
	}
}

// Ports for freeAddr are drawn below the kernel's ephemeral range
// (Linux: 32768–60999 by default), from fixedPortMin up.
const (
	fixedPortMin     = 20000
	defaultEphemeral = 32768
)

// freeAddr returns a loopback address with a port that was free a moment
// ago. Bootstrap needs every node's address before any node starts, so
// the port is released and bound again later. It is drawn at random
// below the ephemeral range: a port from ":0" would come from that range,
// where any outgoing connection on the machine (an agent's, another test
// package's) may take it as its source port in between, and the node's
// bind then fails with "address already in use".
func freeAddr(t testing.TB) string {
	t.Helper()
	top := ephemeralStart()
	for range 200 {
		port := fixedPortMin + rand.IntN(top-fixedPortMin)
		// Test packages run in parallel processes that all draw from this
		// range: a lock file held for the test's life keeps another
		// process from handing out the same port before our node binds it.
		if !reservePort(t, port) {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue // taken; draw again
		}
		if err := l.Close(); err != nil {
			t.Fatalf("release port: %v", err)
		}
		return addr
	}
	t.Fatalf("no free loopback port between %d and %d after 200 draws", fixedPortMin, top)
	return ""
}

// reservePort takes an exclusive lock on a per-port file shared by every
// test process on the machine, held until t ends. It reports false when
// another process holds it.
func reservePort(t testing.TB, port int) bool {
	dir := filepath.Join(os.TempDir(), "turbulence-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true // no shared directory: fall back to the bind check alone
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close() // held by another test process: draw again
		return false
	}
	t.Cleanup(func() { _ = f.Close() }) // closing releases the lock
	return true
}

// ephemeralStart is the first port of the kernel's ephemeral range.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultEphemeral
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return defaultEphemeral
	}
	if n, err := strconv.Atoi(f[0]); err == nil && n > fixedPortMin+1000 {
		return n
	}
	return defaultEphemeral
}

// NodeCert issues the controller certificate of node id, signed by the
// dev CA of pki and valid for localhost and the loopback addresses: each
// node holds its own, as in production, since a controller may join the
// cluster only under its certificate's name.
func NodeCert(t testing.TB, pki tlsutil.DevPKI, id string) tlsutil.Files {
	t.Helper()
	ca, err := tlsutil.LoadCA(pki.Controller.CA, filepath.Join(pki.Dir, "ca.key"))
	if err != nil {
		t.Fatalf("load dev CA: %v", err)
	}
	files, err := ca.IssueFiles(t.TempDir(), "controller-"+id, pki.Controller.CA, tlsutil.Leaf{
		Identity: tlsutil.Identity{Role: tlsutil.RoleController, Name: id},
		DNSNames: []string{"localhost"},
		IPs:      []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		Validity: issuedValidity,
	})
	if err != nil {
		t.Fatalf("issue controller certificate for %s: %v", id, err)
	}
	return files
}

// AddNode starts one more controller that joins the cluster through the
// given nodes' gRPC addresses (as with --join), and returns it.
func (c *Cluster) AddNode(t testing.TB, via ...*Node) *Node {
	t.Helper()
	i := len(c.Nodes)
	cfg := c.Nodes[0].Config
	cfg.NodeID = fmt.Sprintf("c%d", i+1)
	cfg.DataDir = filepath.Join(filepath.Dir(cfg.DataDir), cfg.NodeID)
	cfg.GRPCAddr, cfg.RaftAddr = freeAddr(t), freeAddr(t)
	cfg.Bootstrap, cfg.Peers, cfg.Join = false, nil, nil
	cfg.TLS = NodeCert(t, c.PKI, cfg.NodeID)
	for _, v := range via {
		cfg.Join = append(cfg.Join, v.Addr)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", cfg.NodeID)
	if c.configure != nil {
		c.configure(i, &cfg)
	}
	nd := &Node{Server: &Server{Config: cfg, PKI: c.PKI}, Index: i}
	c.Nodes = append(c.Nodes, nd)
	nd.start(t)
	return nd
}

// start builds and runs the node's controller on its configured
// addresses and data directory.
func (n *Node) start(t testing.TB) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.running {
		t.Fatalf("controller %s is running already", n.Config.NodeID)
	}
	ctl, err := controller.New(n.Config)
	if err != nil {
		t.Fatalf("controller.New %s: %v", n.Config.NodeID, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- ctl.Run(ctx) }()
	n.Controller, n.Addr = ctl, ctl.GRPCAddr()
	n.running = true
	n.stop = func() error {
		cancel()
		return <-runErr
	}
}

// Stop shuts the node's controller down (as SIGTERM would: a leader
// hands leadership to another node first) and waits for it. Stopping a
// stopped node does nothing.
func (n *Node) Stop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.running {
		return nil
	}
	n.running = false
	return n.stop()
}

// Crash stops the node the way the rest of the cluster sees a kill -9:
// a leader does not hand leadership over, so the others find out by
// their heartbeat timeout and elect a leader. (In-process, sockets still
// close cleanly and the stores are flushed, which a real kill does not
// do.) Use Stop for a graceful stop, as SIGTERM does.
func (n *Node) Crash() error {
	n.mu.Lock()
	if n.running {
		n.Controller.SkipLeadershipTransfer()
	}
	n.mu.Unlock()
	return n.Stop()
}

// Running reports whether the node's controller runs.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.running
}

// Restart starts a stopped node again on the same addresses and data
// directory; it must rejoin the cluster from its raft state.
func (n *Node) Restart(t testing.TB) {
	t.Helper()
	n.start(t)
}

// Start starts a node of a PrepareCluster for the first time (or again:
// it is Restart under the name that reads right for a first start).
func (n *Node) Start(t testing.TB) {
	t.Helper()
	n.start(t)
}

// Leader returns the running node that leads and has passed its barrier,
// or nil.
func (c *Cluster) Leader() *Node {
	for _, n := range c.Nodes {
		if n.Running() && n.Controller.IsLeader() {
			return n
		}
	}
	return nil
}

// WaitLeader waits until a running node leads and returns it.
func (c *Cluster) WaitLeader(t testing.TB, timeout time.Duration) *Node {
	t.Helper()
	var leader *Node
	WaitFor(t, timeout, "a controller leader", func() bool {
		leader = c.Leader()
		return leader != nil
	})
	return leader
}

// Followers returns the running nodes that do not lead.
func (c *Cluster) Followers() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.Running() && !n.Controller.IsLeader() {
			out = append(out, n)
		}
	}
	return out
}

// Addrs returns every node's gRPC address, as an agent's --controller
// list.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Config.GRPCAddr
	}
	return out
}

// ClusterClient is a ClusterService client aimed at this node.
func (s *Server) ClusterClient(t testing.TB, files tlsutil.Files) turbulencev1.ClusterServiceClient {
	t.Helper()
	return turbulencev1.NewClusterServiceClient(s.Dial(t, files))
}

// FreeAddr returns a loopback address with a port no other test process
// on the machine is handed until t ends, for a controller started as a
// process, whose address must be known before it binds (test/e2e).
func FreeAddr(t testing.TB) string {
	t.Helper()
	return freeAddr(t)
}
