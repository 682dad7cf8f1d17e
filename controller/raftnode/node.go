package raftnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/internal/connlimit"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
)

// Errors of Apply that say "not here, not now" rather than "no".
var (
	// ErrNotLeader: this node cannot apply writes because it is not the
	// leader, or lost leadership before the entry committed. The entry
	// may or may not have been applied; a retry with the same request ID
	// is safe.
	ErrNotLeader = errors.New("this controller is not the raft leader")
	// ErrUnavailable: raft is shut down or too busy to take the entry.
	ErrUnavailable = errors.New("raft unavailable")
)

const (
	// logCacheSize is how many recent entries are kept in memory in front
	// of boltdb, so followers catching up do not hit the disk.
	logCacheSize = 512
	// snapshotsRetained is how many snapshots stay on disk.
	snapshotsRetained = 2
	// transportMaxPool and transportTimeout size the TCP transport.
	transportMaxPool = 3
	transportTimeout = 10 * time.Second
	// defaultApplyTimeout bounds a write when the context has no deadline.
	defaultApplyTimeout = 10 * time.Second
)

// Config configures a Node.
type Config struct {
	// NodeID is the raft server ID; stable across restarts.
	NodeID string
	// DataDir holds raft.db and the snapshots directory.
	DataDir string
	// Listener is the bound raft listener (plain TCP); the node wraps it
	// in TLS and owns it from then on. Binding first lets ":0" work.
	Listener net.Listener
	// TLS is the node's controller certificate, used both to accept and
	// to dial raft connections.
	TLS tlsutil.Files
	// FSM receives committed entries.
	FSM raft.FSM
	// Logger receives raft's own logs.
	Logger *slog.Logger
	// GRPCAddr is this node's gRPC API address as other nodes, turbctl
	// and agents reach it. It is advertised inside the raft address (see
	// Address) so that followers can forward writes and redirect agents.
	GRPCAddr string
	// Peers, when set, is the whole initial cluster (this node included)
	// of an explicit bootstrap. Every node may be given the same list:
	// bootstrapping several servers with an identical configuration is
	// safe in raft. Ignored when the node has raft state.
	Peers []Peer
	// Join, when true, means a node without raft state waits to be added
	// by the leader instead of bootstrapping anything.
	Join bool
	// ElectionTimeout is how long a follower hears nothing from a leader
	// before it stands for election (raft's HeartbeatTimeout and
	// ElectionTimeout both); zero means DefaultElectionTimeout.
	ElectionTimeout time.Duration
	// Tune, when set, adjusts the raft configuration before use (after
	// ElectionTimeout).
	Tune func(*raft.Config)
	// Guard bounds the raft port (stream.go); zero fields take the
	// defaults.
	Guard Guard
}

// Bounds and default of Config.ElectionTimeout.
//
// The default is half of raft's own 1 s: a dead leader is replaced in
// 0.5–1 s plus the vote instead of 1–2 s, which keeps a failover within
// 2 s (issue target) with room for agents to re-attach; controllers sit
// in one site, where a 500 ms silence is a failure, not a slow link.
// Shorter timeouts make a loaded, small machine miss its own leader
// lease and hold needless elections.
const (
	DefaultElectionTimeout = 500 * time.Millisecond
	MinElectionTimeout     = 100 * time.Millisecond
	MaxElectionTimeout     = 10 * time.Second
)

// CheckElectionTimeout refuses an election timeout outside its bounds,
// naming them.
func CheckElectionTimeout(t time.Duration) error {
	if t < MinElectionTimeout || t > MaxElectionTimeout {
		return fmt.Errorf("raft election timeout %s: must be between %s and %s", t, MinElectionTimeout, MaxElectionTimeout)
	}
	return nil
}

// Peer is one server of an explicit bootstrap.
type Peer struct {
	ID      string
	Address Address
}

// Node is one raft member.
type Node struct {
	raft   *raft.Raft
	trans  *raft.NetworkTransport
	stream *tlsStreamLayer
	bolt   *raftboltdb.BoltStore
	id     string
	logger *slog.Logger
	// existing is whether the data directory held raft state at start.
	existing bool
	// contactBound is how recently a follower must have heard from the
	// leader to name it (LiveLeaderGRPCAddr): raft's LeaderLeaseTimeout.
	contactBound time.Duration
	// transfers counts goroutines waiting on a leadership transfer that
	// outlived its caller's timeout; Shutdown waits for them.
	transfers sync.WaitGroup
	// stop ends the health watcher, which healthDone waits for.
	stop       chan struct{}
	healthDone sync.WaitGroup
	// health is what raft's heartbeats say of the other servers, for
	// RemoveServer's quorum check.
	health peerHealth
}

// New opens the stores, starts raft and, if the data directory holds no
// raft state, bootstraps: with Peers when given, as a single-node cluster
// when neither Peers nor Join is set, and not at all with Join. A node
// with raft state never bootstraps: it rejoins its cluster from its log.
func New(cfg Config) (n *Node, err error) {
	if cfg.NodeID == "" || cfg.DataDir == "" || cfg.Listener == nil || cfg.FSM == nil {
		return nil, errors.New("raftnode: NodeID, DataDir, Listener and FSM are required")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// On any failure below, release what was opened so far; the listener
	// was handed to us, so it is ours to close too.
	var closers []func() error
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				_ = closers[i]()
			}
		}
	}()
	closers = append(closers, cfg.Listener.Close)

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create raft data directory: %w", err)
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.DataDir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("open raft log store: %w", err)
	}
	closers = append(closers, bolt.Close)
	logs, err := raft.NewLogCache(logCacheSize, newTruncationGuard(bolt))
	if err != nil {
		return nil, fmt.Errorf("raft log cache: %w", err)
	}
	hlog := newHCLog(logger, "raft", hclog.Info)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, snapshotsRetained, hlog.Named("snapshots"))
	if err != nil {
		return nil, fmt.Errorf("open raft snapshot store: %w", err)
	}
	stream, err := newTLSStreamLayer(cfg.Listener, cfg.TLS, cfg.GRPCAddr, cfg.Guard)
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() error { stream.closeAll(); return nil })
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: transportMaxPool,
		Timeout: transportTimeout,
		// No pipelined replication. With it (raft v1.7.3, at most 2 RPCs
		// in flight) a follower's refusal after a partition heals can
		// leave the leader's send loop parked on the pipeline forever:
		// that follower gets no more log entries, and Shutdown waits for
		// the loop (seen in test/chaos: a healed minority leader never
		// stopped). Raft documents 1 as turning pipelining off, at
		// little cost to latency or throughput.
		MaxRPCsInFlight: 1,
		Logger:          hlog.Named("transport"),
	})
	closers = append(closers, trans.Close)

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hlog
	timeout := cfg.ElectionTimeout
	if timeout == 0 {
		timeout = DefaultElectionTimeout
	}
	if err := CheckElectionTimeout(timeout); err != nil {
		return nil, err
	}
	rc.HeartbeatTimeout, rc.ElectionTimeout = timeout, timeout
	// A leader steps down when it has not reached a quorum for this long;
	// raft requires it to be at most the heartbeat timeout.
	rc.LeaderLeaseTimeout = timeout / 2
	// Group commit: the leader writes (and fsyncs) up to this many
	// queued entries at once, and sends as many to a follower in one
	// AppendEntries. A fleet's reports come in bursts of thousands (a
	// halt ends a fault on every agent at once): 64, the library's
	// default, makes that a hundred and more rounds of fsyncs on every
	// node (docs/benchmarks.md). BatchApplyCh queues that many entries
	// without a hand-off each.
	rc.MaxAppendEntries = maxAppendEntries
	rc.BatchApplyCh = true
	if cfg.Tune != nil {
		cfg.Tune(rc)
	}
	existing, err := raft.HasExistingState(logs, bolt, snaps)
	if err != nil {
		return nil, fmt.Errorf("inspect raft state: %w", err)
	}
	r, err := raft.NewRaft(rc, cfg.FSM, logs, bolt, snaps, trans)
	if err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	closers = append(closers, func() error { return r.Shutdown().Error() })
	if !existing {
		// Bootstrap only a brand-new node: bootstrapping one that has
		// state would fork it from its cluster.
		if err := bootstrap(r, rc.LocalID, trans.LocalAddr(), cfg, logger); err != nil {
			return nil, err
		}
	} else {
		logger.Info("recovered raft state; rejoining the cluster from the log", "raft_addr", trans.LocalAddr())
	}
	n = &Node{
		raft: r, trans: trans, stream: stream, bolt: bolt, id: cfg.NodeID, logger: logger, existing: existing,
		contactBound: rc.LeaderLeaseTimeout,
		stop:         make(chan struct{}),
		health:       peerHealth{failing: make(map[string]bool)},
	}
	n.watchHealth()
	return n, nil
}

// bootstrap writes the initial configuration of a brand-new node.
func bootstrap(r *raft.Raft, self raft.ServerID, selfAddr raft.ServerAddress, cfg Config, logger *slog.Logger) error {
	switch {
	case cfg.Join:
		logger.Info("no raft state: waiting to be added to a cluster", "raft_addr", selfAddr)
		return nil
	case len(cfg.Peers) == 0:
		boot := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: self, Address: selfAddr}}}
		if err := r.BootstrapCluster(boot).Error(); err != nil {
			return fmt.Errorf("bootstrap raft cluster: %w", err)
		}
		logger.Info("bootstrapped single-node raft cluster", "raft_addr", selfAddr)
		return nil
	}
	boot := raft.Configuration{}
	found := false
	for _, p := range cfg.Peers {
		addr := raft.ServerAddress(p.Address.String())
		if raft.ServerID(p.ID) == self {
			found = true
			// Our own entry must match what the transport advertises, or
			// the others would dial an address nobody listens on.
			addr = selfAddr
		}
		boot.Servers = append(boot.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: addr})
	}
	if !found {
		return fmt.Errorf("bootstrap peers: this node's ID %q is not among the %d peers", self, len(cfg.Peers))
	}
	if err := r.BootstrapCluster(boot).Error(); err != nil {
		return fmt.Errorf("bootstrap raft cluster of %d servers: %w", len(boot.Servers), err)
	}
	logger.Info("bootstrapped raft cluster", "servers", len(boot.Servers), "raft_addr", selfAddr)
	return nil
}

// Apply proposes an entry and waits until it is committed and applied on
// this node. It stamps proposed_at when the caller did not: the leader's
// clock is the only one the FSM reads. The result is the FSM's response;
// a business rejection by the FSM is returned as the error.
func (n *Node) Apply(ctx context.Context, e *raftv1.LogEntry) (any, error) {
	if e.GetProposedAt() == nil {
		e = proto.CloneOf(e)
		e.ProposedAt = timestamppb.Now()
	}
	data, err := proto.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode log entry: %w", err)
	}
	timeout := defaultApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f := n.raft.Apply(data, timeout)
	if err := f.Error(); err != nil {
		return nil, classify(err)
	}
	if err, ok := f.Response().(error); ok {
		return nil, err
	}
	return f.Response(), nil
}

// maxAppendEntries is raft's MaxAppendEntries (see NewNode). The
// entries of a burst are an agent's report each, a few hundred bytes;
// every entry is bounded (docs/limits.md), and raft's own limit is 1024.
const maxAppendEntries = 512

func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case isDiskFull(err):
		return fmt.Errorf("%w: %w: %w", ErrUnavailable, ErrDiskFull, err)
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// IsLeader reports whether this node is the raft leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// LeaderCh delivers true when this node becomes leader and false when it
// stops being leader. Only the latest change is kept if the receiver is
// slow, so there must be exactly one receiver.
func (n *Node) LeaderCh() <-chan bool { return n.raft.LeaderCh() }

// Barrier waits until every entry committed before it is applied to the
// FSM. A new leader calls it before acting on its state.
func (n *Node) Barrier(timeout time.Duration) error {
	return classify(n.raft.Barrier(timeout).Error())
}

// LeaderAddr is the raft address of the current leader, "" if unknown.
func (n *Node) LeaderAddr() string {
	addr, _ := n.raft.LeaderWithID()
	return addressOf(addr).Raft
}

// LeaderGRPCAddr is the gRPC address of the current leader, "" if no
// leader is known or it advertised none.
func (n *Node) LeaderGRPCAddr() string {
	addr, _ := n.raft.LeaderWithID()
	return addressOf(addr).GRPC
}

// LiveLeaderGRPCAddr is LeaderGRPCAddr, but only for a leader this node
// has reason to believe alive: itself, or a leader it heard from within
// raft's LeaderLeaseTimeout. Otherwise it is "".
//
// Raft on a follower keeps naming the last leader until its own heartbeat
// timer fires — one to two HeartbeatTimeouts after the last contact —
// so a leader that died is still named for that long. A live leader
// contacts every follower ten times per HeartbeatTimeout, and steps down
// by itself when it cannot reach a quorum for LeaderLeaseTimeout; past
// that bound without a word, a follower has no evidence left that the
// leader still leads. Sending an agent or a forwarded write there would
// only cost it a failed dial and a backoff; callers hold instead and ask
// again (controller/agentapi await.go, controller/forward).
func (n *Node) LiveLeaderGRPCAddr() string {
	if n.IsLeader() {
		return n.LeaderGRPCAddr()
	}
	addr := n.LeaderGRPCAddr()
	if addr == "" || time.Since(n.raft.LastContact()) > n.contactBound {
		return ""
	}
	return addr
}

// ErrNoOtherVoter is the cause of a TransferLeadership that had nobody to
// hand leadership to (a one-node cluster, or no voter caught up).
var ErrNoOtherVoter = errors.New("no other voter to take leadership")

// TransferLeadership hands leadership to the most up-to-date other voter
// (raft's LeadershipTransfer: the target is caught up, then told to start
// an election at once, which it wins without waiting for an election
// timeout) and returns the ID of the new leader once this node has heard
// from it. It gives up after timeout; raft bounds its own part by one or
// two ElectionTimeouts. On a node that does not lead it does nothing and
// returns "", nil.
//
// A failed transfer leaves this node leading: the caller may go on (a
// stopping node shuts down and the others elect a leader by timeout).
func (n *Node) TransferLeadership(timeout time.Duration) (string, error) {
	if !n.IsLeader() {
		return "", nil
	}
	deadline := time.Now().Add(timeout)
	f := n.raft.LeadershipTransfer()
	done := make(chan error, 1)
	// Raft answers every transfer: at the latest when its leader loop
	// ends, which Shutdown forces. Shutdown waits for this goroutine.
	n.transfers.Go(func() { done <- f.Error() })
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			if n.onlyVoter() {
				return "", fmt.Errorf("leadership transfer: %w", ErrNoOtherVoter)
			}
			return "", fmt.Errorf("leadership transfer: %w", err)
		}
	case <-t.C:
		return "", fmt.Errorf("leadership transfer: no answer from raft within the %s transfer timeout", timeout)
	}
	// Raft answers once this node has stepped down, which the target's
	// vote request causes; the target may still be counting votes. Wait
	// until it has won and told us, so that a caller that stops next
	// leaves a cluster with a leader (and names it to agents). Raft
	// answers the same when this node lost leadership for want of a
	// quorum (the last node of a cluster being stopped): no leader comes
	// then, so the wait is bounded by two election timeouts as well, far
	// more than the one round trip a won election takes.
	wait := min(time.Until(deadline), 2*n.raft.ReloadableConfig().ElectionTimeout)
	until := time.Now().Add(wait)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if id := n.LeaderID(); id != "" && id != n.id {
			return id, nil
		}
		if time.Now().After(until) {
			return "", fmt.Errorf("leadership transfer: stepped down, but heard from no new leader within %s (two election timeouts, at most the %s transfer timeout)", wait.Round(time.Millisecond), timeout)
		}
		<-tick.C
	}
}

// transferDrainTimeout bounds how long Shutdown waits, after raft has
// stopped, for the goroutines of leadership transfers that outlived
// their caller's timeout.
const transferDrainTimeout = time.Second

// waitTransfers waits for TransferLeadership's waiting goroutines. Raft
// answers a transfer its leader loop took by the time that loop ends, so
// they are done by now; a transfer raft never took (still queued when
// raft stopped; possible only if its main loop was stuck past the
// transfer timeout) is never answered, and its goroutine is abandoned
// rather than hanging the shutdown.
func (n *Node) waitTransfers() {
	done := make(chan struct{})
	go func() {
		n.transfers.Wait()
		close(done)
	}()
	t := time.NewTimer(transferDrainTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		n.logger.Warn("a leadership transfer raft never answered is abandoned at shutdown", "waited", transferDrainTimeout)
	}
}

// onlyVoter reports whether this node is the only voter it knows of.
func (n *Node) onlyVoter() bool {
	servers, err := n.Servers()
	if err != nil {
		return false
	}
	for _, s := range servers {
		if s.ID != n.id && s.Suffrage == "voter" {
			return false
		}
	}
	return true
}

// ReloadTimeouts changes raft's heartbeat and election timeouts on the
// running node (raft.ReloadConfig); the other reloadable settings keep
// their values. Tests use it to make a follower slow, or quick again, to
// notice a dead leader.
func (n *Node) ReloadTimeouts(heartbeat, election time.Duration) error {
	rc := n.raft.ReloadableConfig()
	rc.HeartbeatTimeout, rc.ElectionTimeout = heartbeat, election
	if err := n.raft.ReloadConfig(rc); err != nil {
		return fmt.Errorf("reload raft timeouts (heartbeat %s, election %s): %w", heartbeat, election, err)
	}
	return nil
}

// LeaderID is the server ID of the current leader, "" if unknown.
func (n *Node) LeaderID() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// ID is this node's raft server ID.
func (n *Node) ID() string { return n.id }

// HadState reports whether the data directory held raft state when the
// node started; such a node never bootstraps nor needs to join.
func (n *Node) HadState() bool { return n.existing }

// Addr is the node's own raft address.
func (n *Node) Addr() string { return addressOf(n.trans.LocalAddr()).Raft }

// RaftConnStats counts the raft port's inbound connections and those
// refused for a cap.
func (n *Node) RaftConnStats() connlimit.Stats { return n.stream.Stats() }

// LastIndex is the index of the last entry in the node's log.
func (n *Node) LastIndex() uint64 { return n.raft.LastIndex() }

// Shutdown stops raft (which closes the transport and its listener) and
// then closes the log store. Call it once.
func (n *Node) Shutdown() error {
	close(n.stop)
	n.healthDone.Wait()
	err := n.raft.Shutdown().Error()
	n.waitTransfers()
	n.stream.closeAll()
	if cerr := n.bolt.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close raft log store: %w", cerr)
	}
	return err
}
