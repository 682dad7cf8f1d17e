package chaos

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/controller/forward"
	"github.com/turbulence-sre/turbulence/internal/linearize"
	"github.com/turbulence-sre/turbulence/internal/stats"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// The test network: one namespace per controller, each with eth0 on a
// veth whose other end is a port of the bridge br0 in a hub namespace.
// The test's own clients dial from the hub (198.18.1.254). Nothing is
// added to the host's namespace. Addresses: 198.18.0.0/15 only.
const (
	subnet   = "198.18.1."
	hubIP    = subnet + "254"
	grpcPort = "7420"
	raftPort = "7421"
	// agentName is the agent the history's faults are written for: it is
	// registered (one session, then gone) but no process runs it, so its
	// faults stay in the registry and load no CPU. The real agents
	// (agents_linux_test.go) hold the faults whose survival is checked.
	agentName = "chaos-agent"
	// Bounds with the binary's own raft timings (500 ms heartbeat and election
	// timeouts: the binary has no test tuning): an election takes about 1 s.
	electionLimit = 15 * time.Second
	startLimit    = 60 * time.Second
	// callLimit bounds one client call; a write held by a leaderless
	// node is refused after the 5 s hold time, well within it.
	callLimit = 15 * time.Second
	// leaseTTL and heartbeatInterval are the controllers' --lease-ttl and
	// --heartbeat-interval. The lease is shorter than the 15 s default so
	// that the all-down test stays short, and long enough that a failover
	// (election 1-3 s, plus a held Hello of up to 3 s on a partitioned
	// node, plus the agent's reconnect backoff) fits in it with room.
	leaseTTL          = 10 * time.Second
	heartbeatInterval = time.Second
)

// procNode is one turbulence-controller process in its own namespace.
type procNode struct {
	id, ip  string
	ns      netns.NsHandle
	dataDir string
	tls     tlsutil.Files
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error // how the last run ended; set before exited is closed
}

func (n *procNode) grpcAddr() string { return n.ip + ":" + grpcPort }

func (n *procNode) running() bool {
	if n.exited == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// procCluster is three controller processes and the hub the test's
// clients live in.
type procCluster struct {
	t        *testing.T
	bin      string // turbulence-controller
	agentBin string // turbulence-agent
	dir      string
	pki      tlsutil.DevPKI
	ca       *tlsutil.CA
	hub      netns.NsHandle
	nodes    []*procNode
	conns    map[string]*grpc.ClientConn // by node ID, admin certificate
	agents   int                         // how many addAgent made
}

// TestPrivilegedControllerCluster_KillAndPartition runs three controller
// processes, formed with --bootstrap-expect, and two real agents that
// each hold a running CPU fault, and hurts the controllers while clients
// keep writing and reading through every node: SIGKILL the leader (a new
// leader within seconds, the agents follow it, writes continue, the
// killed node rejoins from its data), then cut the leader off from the
// other two with nftables inside its namespace (the minority stops
// accepting writes, the majority elects and carries on, the agents follow
// it, nothing the minority was asked lands). Throughout, no agent fault
// is reverted: not by the agents' lease, not by the controllers; each
// worker process runs on. The client-side history is linearizable
// (porcupine, internal/linearize), and every acknowledged write is there
// at the end, once, on every node.
func TestPrivilegedControllerCluster_KillAndPartition(t *testing.T) {
	testutil.RequirePrivileged(t)
	c := newProcCluster(t, 3)
	for _, n := range c.nodes {
		c.start(n)
	}
	leader := c.waitLeader(c.nodes, startLimit)
	t.Logf("cluster formed by bootstrap-expect; leader %s", leader.id)
	c.registerAgent(leader)
	agents := c.addAgents(2)
	t.Logf("%d agents attached to %s after %s", len(agents), leader.id, c.waitAttached(leader, agents, startLimit).Round(time.Millisecond))

	history := linearize.NewHistory()
	faults := c.applyAgentFaults(leader, agents, history)
	var known []string
	for _, af := range faults {
		known = append(known, af.id)
		t.Logf("%s holds %s: worker %d, %d %% of one core", af.agent.name, af.id, af.worker.pid, agentLoad)
	}
	clients := c.startHistory(history, known)

	// The test's own writes, through chosen nodes, are client 0 of the
	// history.
	write := func(via *procNode, req string) {
		t.Helper()
		call := time.Now()
		id, err := c.applyFault(via, req)
		if err != nil {
			t.Fatalf("write %s via %s: %v", req, via.id, err)
		}
		history.Record(0, linearize.Input{Op: linearize.OpApply, Req: req}, linearize.Output{FaultID: id}, call, time.Now(), "via "+via.id+" (driver)")
	}
	for i := range 5 {
		write(c.nodes[i%3], fmt.Sprintf("before-kill-%d", i))
	}
	clients.waitOps(t, clients.mark(), 30, 30*time.Second, "before the storm")

	// kill -9 the leader, which holds the agents' sessions.
	killed := leader
	start := time.Now()
	c.kill(killed)
	survivors := c.others(killed)
	leader = c.waitLeader(survivors, electionLimit)
	elected := time.Since(start)
	write(survivors[0], "after-kill-0") // through either survivor: forwarded if need be
	firstWrite := time.Since(start)
	attached := time.Since(start) + c.waitAttached(leader, agents, leaseTTL)
	history.Note("SIGKILL "+killed.id+"; "+leader.id+" leads", start, start.Add(elected))
	t.Logf("SIGKILL %s: %s leads after %s; first write acknowledged after %s; both agents re-attached after %s (lease TTL %s)",
		killed.id, leader.id, elected.Round(time.Millisecond), firstWrite.Round(time.Millisecond), attached.Round(time.Millisecond), leaseTTL)
	if attached >= leaseTTL {
		t.Errorf("the agents re-attached after %s, not within the lease TTL %s", attached, leaseTTL)
	}
	c.checkFaultsRun(leader, faults)
	for i := 1; i < 5; i++ {
		write(survivors[i%2], fmt.Sprintf("after-kill-%d", i))
	}
	clients.waitOps(t, clients.mark(), 45, 30*time.Second, "while "+killed.id+" is down")
	// The killed node comes back with its data: it rejoins, it does not
	// bootstrap, and it catches up.
	c.start(killed)
	c.waitHolds(killed, history.Acknowledged(), false)

	// Partition the leader, which holds the agents' sessions, from the
	// other two.
	leader = c.waitLeader(c.nodes, electionLimit)
	c.waitAttached(leader, agents, leaseTTL)
	minority, majority := leader, c.others(leader)
	heal := c.partition(minority, majority)
	start = time.Now()
	newLeader := c.waitLeader(majority, electionLimit)
	elected = time.Since(start)
	history.Note("partition "+minority.id+"; "+newLeader.id+" leads", start, start.Add(elected))
	attached = time.Since(start) + c.waitAttached(newLeader, agents, leaseTTL)
	t.Logf("partitioned %s: %s leads the majority after %s; both agents re-attached after %s",
		minority.id, newLeader.id, elected.Round(time.Millisecond), attached.Round(time.Millisecond))
	if attached >= leaseTTL {
		t.Errorf("the agents re-attached after %s, not within the lease TTL %s", attached, leaseTTL)
	}
	c.checkFaultsRun(newLeader, faults)
	for i := range 5 {
		write(majority[i%2], fmt.Sprintf("majority-%d", i))
	}
	// The minority refuses: held for the hold time, then Unavailable.
	// The clients go on meanwhile, a third of their attempts to it.
	partitioned := clients.mark()
	// This write has no definite outcome, so it is not in the history;
	// the exact count at the end shows that it never landed.
	refusedAt := time.Now()
	if id, err := c.applyFault(minority, "minority-0"); status.Code(err) != codes.Unavailable {
		t.Fatalf("write via the partitioned %s = %q, %v; want Unavailable", minority.id, id, err)
	} else {
		t.Logf("write via the partitioned %s refused after %s: %v", minority.id, time.Since(refusedAt).Round(time.Millisecond), err)
	}
	if ok, who := c.claimsLeadership(minority); ok {
		t.Errorf("partitioned %s still claims leadership (%s)", minority.id, who)
	}
	clients.waitOps(t, partitioned, 20, 30*time.Second, "while "+minority.id+" is partitioned")

	heal()
	history.Note("partition of "+minority.id+" healed", time.Now(), time.Time{})
	t.Logf("partition healed")
	leader = c.waitLeader(c.nodes, electionLimit)
	write(minority, "after-heal-0")
	clients.waitOps(t, clients.mark(), 30, 30*time.Second, "after the storm")

	// The storm is over: stop the clients and check their history.
	errs := clients.stop()
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow() // a client gave up: its history is incomplete
	}
	c.checkHistory(history)
	for _, n := range c.nodes {
		c.waitHolds(n, history.Acknowledged(), true)
	}

	// And still no revert, anywhere.
	c.waitAttached(leader, agents, leaseTTL)
	c.checkFaultsRun(leader, faults)
	reverts := c.checkNoReverts(leader, faults)
	t.Logf("reverts of the agents' faults over the whole storm: %d in the controller's events and audit and the agents' logs; each fault ACTIVE, held, its original worker alive", reverts)
}

// checkHistory checks the history with porcupine and logs its size.
func (c *procCluster) checkHistory(history *linearize.History) {
	c.t.Helper()
	counts := history.Counts()
	ops := history.Operations()
	var lat []time.Duration
	for _, op := range ops {
		lat = append(lat, time.Duration(op.Return-op.Call))
	}
	c.t.Logf("history: %d operations %v by %d clients; latency p50 %s, p90 %s, max %s (retries included; internal/stats)",
		len(ops), counts, historyClients+1, stats.Median(lat).Round(time.Millisecond),
		stats.Percentile(lat, 90).Round(time.Millisecond), stats.Percentile(lat, 100).Round(time.Millisecond))
	if counts[linearize.OpApply] < 20 || counts[linearize.OpList] < 10 || counts[linearize.OpGet] < 10 {
		c.t.Fatalf("history too thin to mean anything: %v", counts)
	}
	checkStart := time.Now()
	viz := filepath.Join(c.dir, "history.html")
	res, why, err := history.Check(time.Minute, viz)
	c.t.Logf("porcupine: %s in %s", res, time.Since(checkStart).Round(time.Millisecond))
	switch res {
	case porcupine.Illegal:
		if err != nil {
			c.t.Logf("porcupine's visualisation: %v", err)
		} else {
			c.t.Logf("porcupine's visualisation: history.html, kept with the logs")
		}
		c.t.Fatalf("the client-side history is not linearizable: %s", why)
	case porcupine.Unknown:
		c.t.Fatal("porcupine timed out: shrink the storm")
	}
}

func newProcCluster(t *testing.T, n int) *procCluster {
	t.Helper()
	c := &procCluster{t: t, dir: t.TempDir(), conns: map[string]*grpc.ClientConn{}}
	c.bin, c.agentBin = buildBinaries(t)
	var err error
	if c.pki, err = tlsutil.EnsureDevPKI(filepath.Join(c.dir, "tls"), agentName); err != nil {
		t.Fatalf("dev PKI: %v", err)
	}
	if c.ca, err = tlsutil.LoadCA(c.pki.Controller.CA, filepath.Join(c.pki.Dir, "ca.key")); err != nil {
		t.Fatalf("load CA: %v", err)
	}

	c.hub = testutil.NewNS(t)
	hh, err := netlink.NewHandleAt(c.hub)
	if err != nil {
		t.Fatalf("netlink in hub: %v", err)
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	err = hh.LinkAdd(br)
	hh.Close()
	if err != nil {
		t.Fatalf("add bridge: %v", err)
	}
	c.linkUpIn(c.hub, "br0", hubIP+"/24")

	for i := 1; i <= n; i++ {
		nd := &procNode{id: fmt.Sprintf("c%d", i), ip: fmt.Sprintf("%s%d", subnet, i), dataDir: filepath.Join(c.dir, fmt.Sprintf("c%d", i))}
		nd.logPath = nd.dataDir + ".log"
		nd.ns = c.plug(fmt.Sprintf("vc%d", i), nd.ip)
		// Each controller's certificate names its own address, which
		// raft peers and clients verify.
		nd.tls = c.issue(nd.id, tlsutil.Identity{Role: tlsutil.RoleController, Name: nd.id}, net.ParseIP(nd.ip))
		c.nodes = append(c.nodes, nd)
	}
	t.Cleanup(func() {
		for _, conn := range c.conns {
			_ = conn.Close()
		}
		for _, n := range c.nodes {
			c.stop(n)
		}
		if t.Failed() {
			for _, n := range c.nodes {
				logTail(t, n.id, n.logPath)
			}
			c.keepLogs()
		}
	})
	return c
}

// plug makes a namespace whose eth0, with address ip/24, is a port
// (named port on the hub's side) of the bridge br0.
func (c *procCluster) plug(port, ip string) netns.NsHandle {
	c.t.Helper()
	ns := testutil.NewNS(c.t)
	hh, err := netlink.NewHandleAt(c.hub)
	if err != nil {
		c.t.Fatalf("netlink in hub: %v", err)
	}
	defer hh.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: port}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ns))}
	if err := hh.LinkAdd(veth); err != nil {
		c.t.Fatalf("add veth %s: %v", port, err)
	}
	brLink, err := hh.LinkByName("br0")
	if err != nil {
		c.t.Fatalf("bridge: %v", err)
	}
	portLink, err := hh.LinkByName(port)
	if err == nil {
		err = hh.LinkSetMaster(portLink, brLink)
	}
	if err != nil {
		c.t.Fatalf("attach %s to br0: %v", port, err)
	}
	linkUp(c.t, hh, port, "")
	c.linkUpIn(ns, "eth0", ip+"/24")
	return ns
}

func (c *procCluster) linkUpIn(ns netns.NsHandle, name, cidr string) {
	c.t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		c.t.Fatalf("netlink: %v", err)
	}
	defer h.Close()
	linkUp(c.t, h, name, cidr)
}

// issue signs a certificate for id (valid for ips, if any) into its own
// directory, named base.
func (c *procCluster) issue(base string, id tlsutil.Identity, ips ...net.IP) tlsutil.Files {
	c.t.Helper()
	certDir := filepath.Join(c.dir, "tls", base)
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		c.t.Fatal(err)
	}
	files, err := c.ca.IssueFiles(certDir, base, c.pki.Controller.CA, tlsutil.Leaf{
		Identity: id,
		IPs:      ips,
		Validity: 30 * 24 * time.Hour, // past tlsutil.ExpiryWarning: no warnings
	})
	if err != nil {
		c.t.Fatalf("certificate for %s: %v", id, err)
	}
	return files
}

// keepLogs copies every daemon's whole log (and porcupine's page, if
// any) out of the test's directory, which is removed, for a failed test.
func (c *procCluster) keepLogs() {
	logs, _ := filepath.Glob(filepath.Join(c.dir, "*.log"))
	pages, _ := filepath.Glob(filepath.Join(c.dir, "*.html"))
	logs = append(logs, pages...)
	if len(logs) == 0 {
		return
	}
	dir, err := os.MkdirTemp("", "turbulence-chaos-logs-")
	if err != nil {
		return
	}
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil {
			_ = os.WriteFile(filepath.Join(dir, filepath.Base(l)), b, 0o600)
		}
	}
	c.t.Logf("whole logs kept in %s", dir)
}

// logTail logs the end of a daemon's log, for a failed test.
func logTail(t *testing.T, who, path string) {
	t.Helper()
	if b, err := os.ReadFile(path); err == nil {
		const tail = 16 << 10
		t.Logf("log of %s (last %d KiB):\n%s", who, tail>>10, b[max(0, len(b)-tail):])
	}
}

func linkUp(t *testing.T, h *netlink.Handle, name, cidr string) {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	if cidr != "" {
		addr, err := netlink.ParseAddr(cidr)
		if err != nil {
			t.Fatalf("address %s: %v", cidr, err)
		}
		if err := h.AddrAdd(l, addr); err != nil {
			t.Fatalf("add %s to %s: %v", cidr, name, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatalf("set %s up: %v", name, err)
	}
}

// start runs the node's controller inside its namespace: the process is
// forked from a thread that has entered the namespace, so it is born
// there. The same flags serve the first start and every restart: a node
// with raft state ignores --bootstrap-expect and --join.
func (c *procCluster) start(n *procNode) {
	c.t.Helper()
	var join []string
	for _, o := range c.nodes {
		join = append(join, o.grpcAddr())
	}
	args := []string{
		"--node-id", n.id, "--data-dir", n.dataDir,
		"--grpc-addr", n.grpcAddr(), "--raft-addr", n.ip + ":" + raftPort,
		"--ca", n.tls.CA, "--cert", n.tls.Cert, "--key", n.tls.Key,
		"--bootstrap-expect", strconv.Itoa(len(c.nodes)), "--join", strings.Join(join, ","),
		"--lease-ttl", leaseTTL.String(), "--heartbeat-interval", heartbeatInterval.String()}
	n.cmd, n.exited = c.startDaemon(n.id, n.ns, n.logPath, &n.exitErr, c.bin, args...)
}

// startDaemon starts bin with args inside ns, forked from a thread that
// has entered the namespace so that the process is born there, with its
// output appended to logPath. If the test binary dies, the daemon dies
// with it (PDEATHSIG). The returned channel is closed once it has exited,
// after its exit error is stored in *exitErr (when not nil).
func (c *procCluster) startDaemon(name string, ns netns.NsHandle, logPath string, exitErr *error, bin string, args ...string) (*exec.Cmd, chan struct{}) {
	c.t.Helper()
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	testutil.InNS(c.t, ns, func() { err = cmd.Start() })
	if err != nil {
		_ = log.Close()
		c.t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() {
		werr := cmd.Wait()
		if exitErr != nil {
			*exitErr = werr
		}
		_ = log.Close()
		close(exited)
	}()
	return cmd, exited
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *procCluster) kill(n *procNode) {
	c.t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill %s: %v", n.id, err)
	}
	<-n.exited
}

// stop ends a running node with SIGTERM. One that lingers is sent
// SIGQUIT, so that the Go runtime writes every goroutine's stack to its
// log (why it hangs), then SIGKILL.
func (c *procCluster) stop(n *procNode) {
	if !n.running() {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		return
	case <-time.After(15 * time.Second):
	}
	c.t.Errorf("%s ignored SIGTERM for 15 s; SIGQUIT for its goroutines, then SIGKILL", n.id)
	_ = n.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-n.exited:
	case <-time.After(5 * time.Second):
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.exited
	}
}

func (c *procCluster) others(n *procNode) []*procNode {
	var out []*procNode
	for _, o := range c.nodes {
		if o != n {
			out = append(out, o)
		}
	}
	return out
}

// conn is a client connection from the hub to n with the admin
// certificate.
func (c *procCluster) conn(n *procNode) *grpc.ClientConn {
	c.t.Helper()
	if conn, ok := c.conns[n.id]; ok {
		return conn
	}
	conn := c.dial(n, c.pki.Admin)
	c.conns[n.id] = conn
	return conn
}

func (c *procCluster) dial(n *procNode, files tlsutil.Files) *grpc.ClientConn {
	c.t.Helper()
	tc, err := tlsutil.ClientConfig(files, "")
	if err != nil {
		c.t.Fatalf("client TLS: %v", err)
	}
	conn, err := grpc.NewClient(n.grpcAddr(), grpc.WithTransportCredentials(credentials.NewTLS(tc)), grpc.WithContextDialer(dialIn(c.hub)))
	if err != nil {
		c.t.Fatalf("dial %s: %v", n.id, err)
	}
	return conn
}

// dialIn returns a gRPC dialer whose sockets are made inside ns: the
// connect runs on a thread that has entered ns, and a socket stays in
// the namespace it was made in.
func dialIn(ns netns.NsHandle) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		type result struct {
			conn net.Conn
			err  error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			orig, err := netns.Get()
			if err != nil {
				runtime.UnlockOSThread()
				ch <- result{err: err}
				return
			}
			defer func() { _ = orig.Close() }()
			if err := netns.Set(ns); err != nil {
				runtime.UnlockOSThread()
				ch <- result{err: err}
				return
			}
			conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread()
			} // else the thread, stuck in ns, ends with this goroutine
			ch <- result{conn, err}
		}()
		r := <-ch
		return r.conn, r.err
	}
}

// claimsLeadership reports whether n says it is the leader.
func (c *procCluster) claimsLeadership(n *procNode) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := turbulencev1.NewClusterServiceClient(c.conn(n)).ListServers(ctx, &turbulencev1.ListServersRequest{})
	if err != nil {
		return false, err.Error()
	}
	for _, s := range resp.GetServers() {
		if s.GetLeader() {
			return s.GetId() == n.id, "leader per " + n.id + ": " + s.GetId()
		}
	}
	return false, "no leader known to " + n.id
}

// waitLeader waits until one of among says it leads and the others that
// run agree, and returns it.
func (c *procCluster) waitLeader(among []*procNode, limit time.Duration) *procNode {
	c.t.Helper()
	var leader *procNode
	waitFor(c.t, limit, "a leader among "+ids(among), func() bool {
		leader = nil
		for _, n := range among {
			if ok, _ := c.claimsLeadership(n); ok && n.running() {
				leader = n
			}
		}
		if leader == nil {
			return false
		}
		// A consistent read through the leader proves it holds a quorum.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, forward.MDConsistent, "true")
		_, err := turbulencev1.NewControlServiceClient(c.conn(leader)).GetHaltStatus(ctx, &turbulencev1.GetHaltStatusRequest{})
		return err == nil
	})
	return leader
}

func ids(nodes []*procNode) string {
	var s []string
	for _, n := range nodes {
		s = append(s, n.id)
	}
	return strings.Join(s, ",")
}

// registerAgent opens and ends one agent session, which records the agent
// (and its cpu capability) in raft; faults can then be written for it.
func (c *procCluster) registerAgent(leader *procNode) {
	c.t.Helper()
	conn := c.dial(leader, c.pki.Agent)
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), callLimit)
	defer cancel()
	stream, err := turbulencev1.NewAgentServiceClient(conn).Connect(ctx)
	if err != nil {
		c.t.Fatalf("agent stream: %v", err)
	}
	hello := &turbulencev1.Hello{AgentId: agentName, Capabilities: &turbulencev1.Capabilities{FaultKinds: []string{"cpu"}}}
	if err := stream.Send(&turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Hello{Hello: hello}}); err != nil {
		c.t.Fatalf("agent hello: %v", err)
	}
	if m, err := stream.Recv(); err != nil || m.GetWelcome() == nil {
		c.t.Fatalf("agent welcome = %v, %v", m, err)
	}
}

// applyFault writes one fault for the ghost agent through n with request
// ID req and returns its ID. The caller decides what an error means.
func (c *procCluster) applyFault(n *procNode, req string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callLimit)
	defer cancel()
	// WaitForReady: the node is up, but its client connection may still
	// be backing off from a dial made before it listened; the write waits
	// for the connection instead of failing with that stale error.
	f, err := turbulencev1.NewControlServiceClient(c.conn(n)).ApplyFault(ctx, ghostFault(req), grpc.WaitForReady(true))
	return f.GetId(), err
}

// waitHolds waits until n's own (local) state holds every fault in want:
// nothing acknowledged lost. With exact, it must hold nothing else
// either: no refused or retried write landed.
func (c *procCluster) waitHolds(n *procNode, want []string, exact bool) {
	c.t.Helper()
	var got []string
	var lastErr error
	ok := poll(30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got = got[:0]
		// Every page (docs/limits.md).
		for token := ""; ; {
			l, err := turbulencev1.NewControlServiceClient(c.conn(n)).ListFaults(ctx, &turbulencev1.ListFaultsRequest{PageToken: token})
			if lastErr = err; err != nil {
				return false
			}
			for _, f := range l.GetFaults() {
				got = append(got, f.GetId())
			}
			if token = l.GetNextPageToken(); token == "" {
				break
			}
		}
		return len(got) >= len(want)
	})
	if !ok {
		c.t.Fatalf("%s holds %d faults, want %d (last error %v)", n.id, len(got), len(want), lastErr)
	}
	have := map[string]bool{}
	for _, id := range got {
		have[id] = true
	}
	for _, id := range want {
		if !have[id] {
			c.t.Errorf("%s lost acknowledged fault %s", n.id, id)
		}
	}
	if exact && len(got) != len(want) {
		c.t.Errorf("%s holds %d faults, want exactly the %d acknowledged: a refused or retried write landed", n.id, len(got), len(want))
	}
}

// partition drops, inside minority's namespace, every packet to or from
// the majority's addresses, with one nftables table; the returned func
// deletes it. The hub stays reachable, so the test can still ask the
// minority.
func (c *procCluster) partition(minority *procNode, majority []*procNode) (heal func()) {
	c.t.Helper()
	var peers []string
	for _, p := range majority {
		peers = append(peers, p.ip)
	}
	undo, err := dropIn(minority.ns, peers)
	if err != nil {
		c.t.Fatalf("install the partition in %s: %v", minority.id, err)
	}
	return func() {
		c.t.Helper()
		if err := undo(); err != nil {
			c.t.Fatalf("heal the partition in %s: %v", minority.id, err)
		}
	}
}

// labTable is the nftables table the test itself installs to cut a
// namespace off (not an agent's: partition.TablePrefix is not a prefix of
// it, so the host sampler never takes it for a fault).
const labTable = "chaoslab-drop"

// dropIn drops, inside ns, every IPv4 packet to or from each address in
// peers, with one nftables table made in one batch; heal deletes it.
// Both return errors rather than failing a test, so that the nemesis can
// call them from wherever it runs.
func dropIn(ns netns.NsHandle, peers []string) (heal func() error, err error) {
	conn, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	table := conn.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: labTable})
	accept := nftables.ChainPolicyAccept
	for _, hook := range []struct {
		name   string
		hook   *nftables.ChainHook
		offset uint32 // saddr on the way in, daddr on the way out
	}{{"input", nftables.ChainHookInput, 12}, {"output", nftables.ChainHookOutput, 16}} {
		chain := conn.AddChain(&nftables.Chain{Name: hook.name, Table: table, Type: nftables.ChainTypeFilter,
			Hooknum: hook.hook, Priority: nftables.ChainPriorityFilter, Policy: &accept})
		for _, peer := range peers {
			conn.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: []expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: hook.offset, Len: 4},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: net.ParseIP(peer).To4()},
				&expr.Verdict{Kind: expr.VerdictDrop},
			}})
		}
	}
	if err := conn.Flush(); err != nil {
		return nil, fmt.Errorf("install the drop table: %w", err)
	}
	return func() error {
		conn.DelTable(table)
		if err := conn.Flush(); err != nil {
			return fmt.Errorf("delete the drop table: %w", err)
		}
		return nil
	}, nil
}

// poll calls cond every 100 ms until it holds or limit passes.
func poll(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		t := time.NewTimer(100 * time.Millisecond)
		<-t.C
	}
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(limit, cond) {
		t.Fatalf("timed out after %s waiting for %s", limit, what)
	}
}
