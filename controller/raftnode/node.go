package raftnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

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
	// Tune, when set, adjusts the raft configuration before use.
	Tune func(*raft.Config)
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
	logs, err := raft.NewLogCache(logCacheSize, bolt)
	if err != nil {
		return nil, fmt.Errorf("raft log cache: %w", err)
	}
	hlog := newHCLog(logger, "raft", hclog.Info)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, snapshotsRetained, hlog.Named("snapshots"))
	if err != nil {
		return nil, fmt.Errorf("open raft snapshot store: %w", err)
	}
	stream, err := newTLSStreamLayer(cfg.Listener, cfg.TLS, cfg.GRPCAddr)
	if err != nil {
		return nil, err
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: transportMaxPool,
		Timeout: transportTimeout,
		Logger:  hlog.Named("transport"),
	})
	closers = append(closers, trans.Close, func() error { stream.closeAll(); return nil })

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hlog
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
	return &Node{raft: r, trans: trans, stream: stream, bolt: bolt, id: cfg.NodeID, logger: logger, existing: existing}, nil
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

func classify(err error) error {
	switch {
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

// LastIndex is the index of the last entry in the node's log.
func (n *Node) LastIndex() uint64 { return n.raft.LastIndex() }

// Shutdown stops raft (which closes the transport and its listener) and
// then closes the log store. Call it once.
func (n *Node) Shutdown() error {
	err := n.raft.Shutdown().Error()
	n.stream.closeAll()
	if cerr := n.bolt.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close raft log store: %w", cerr)
	}
	return err
}
