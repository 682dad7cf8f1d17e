package controller

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/hashicorp/raft"

	"github.com/turbulence-sre/turbulence/controller/agentapi"
	"github.com/turbulence-sre/turbulence/controller/controlapi"
	"github.com/turbulence-sre/turbulence/controller/forward"
	"github.com/turbulence-sre/turbulence/controller/hostseries"
	"github.com/turbulence-sre/turbulence/controller/raftnode"
	"github.com/turbulence-sre/turbulence/internal/limits"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// Config configures a controller node.
type Config struct {
	// NodeID is the raft server ID of this node; stable across restarts.
	NodeID string
	// DataDir holds raft.db and the raft snapshots.
	DataDir string
	// GRPCAddr is where ControlService and AgentService listen; ":0"
	// picks a free port (see Controller.GRPCAddr).
	GRPCAddr string
	// RaftAddr is where raft listens. Other controllers dial it, so it
	// must be an address they can reach, not a wildcard.
	RaftAddr string
	// TLS is the node's controller certificate and the fleet CA.
	TLS tlsutil.Files
	// LeaseTTL is how long an agent keeps its faults without hearing from
	// the controller (invariant 2).
	LeaseTTL time.Duration
	// HeartbeatInterval is how often agents report while the fleet is
	// small enough for MaxHeartbeatRate.
	HeartbeatInterval time.Duration
	// MaxHeartbeatRate is how many heartbeats a second the leader plans
	// for across the fleet; a larger fleet is told to beat slower
	// (docs/design.md, "Heartbeat pacing"). Zero means the default.
	MaxHeartbeatRate int
	// HostMetricsWindow is how far back the leader keeps each agent's
	// host metrics (controller/hostseries): one sample per heartbeat, at
	// most limits.MaxMetricSamples of them.
	HostMetricsWindow time.Duration
	// DefaultFaultDuration is given to a fault spec without a duration.
	DefaultFaultDuration time.Duration
	// MaxGroupPercent and MaxGroupAgents cap one fault group call: it
	// may choose at most this percentage of the registered fleet and at
	// most this many agents (docs/groups.md). No request can raise them.
	MaxGroupPercent float64
	MaxGroupAgents  int
	// Logger receives every log line, raft's included.
	Logger *slog.Logger

	// Cluster formation (see the package doc). With none of these set, a
	// node without raft state bootstraps a one-node cluster (dev mode).

	// Bootstrap, with Peers, makes a node without raft state bootstrap the
	// cluster of Peers (which must name this node). Give every initial
	// node the same list; a node with raft state never bootstraps.
	Bootstrap bool
	// Peers is the initial cluster of an explicit bootstrap, or of a
	// BootstrapExpect bootstrap whose members are all known up front.
	Peers []raftnode.Peer
	// BootstrapExpect, when not zero, is the number of servers of the
	// initial cluster (Consul's and Nomad's bootstrap_expect). Every
	// initial node is given the same N and either Peers (all N, itself
	// included: it bootstraps at once) or Join (the gRPC addresses of the
	// other N-1 nodes, its own optional: it asks each for its ID and raft
	// address and bootstraps when all N are known and none is in a
	// cluster yet). A node with raft state never bootstraps; a node that
	// finds its peers already in a cluster joins it instead.
	BootstrapExpect int
	// Join lists gRPC addresses of existing controllers. A node without
	// raft state asks them, in turn, until the leader adds it; a node with
	// raft state ignores Join and rejoins from its log.
	Join []string
	// AdvertiseGRPCAddr is the gRPC address other controllers, turbctl and
	// agents use to reach this node; default: the bound GRPCAddr.
	AdvertiseGRPCAddr string
	// HoldTimeout bounds how long a write waits for a leader during an
	// election before it is refused (controller/forward).
	HoldTimeout time.Duration
	// RaftElectionTimeout is how long a follower waits without hearing
	// from the leader before it stands for election; zero means
	// raftnode.DefaultElectionTimeout (500 ms).
	RaftElectionTimeout time.Duration
	// RaftTune, when set, adjusts raft's timing further; tests use it to
	// make elections fast. Production leaves it nil.
	RaftTune func(*raft.Config)
	// RaftGuard and GRPCGuard bound the two ports: connection caps per
	// source and in total, handshake deadline, idle timeout
	// (docs/security.md). Zero fields take the defaults; the total caps
	// are lowered to fit the process's descriptor limit, raft's first.
	RaftGuard raftnode.Guard
	GRPCGuard GRPCGuard
	// MetricsAddr, host:port, is where turbulence-controller serves
	// Prometheus metrics (RegisterMetrics); "" serves none. New and Run
	// do not listen on it: the main does, before New (controller/metrics.go).
	MetricsAddr string
	// Pprof also serves Go's runtime profiles on MetricsAddr
	// (turbulence-controller --pprof; docs/metrics.md).
	Pprof bool
	// Retention bounds the history the replicated state keeps (ended
	// faults and groups, departed agents); zero fields take the defaults.
	Retention Retention
}

// DefaultConfig returns a complete configuration for a single local node.
// Only TLS has no usable default.
func DefaultConfig() Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "controller"
	}
	return Config{
		NodeID:               host,
		DataDir:              "/var/lib/turbulence-controller",
		GRPCAddr:             "127.0.0.1:7420",
		RaftAddr:             "127.0.0.1:7421",
		LeaseTTL:             agentapi.DefaultLeaseTTL,
		HeartbeatInterval:    agentapi.DefaultHeartbeatInterval,
		HostMetricsWindow:    hostseries.DefaultWindow,
		DefaultFaultDuration: controlapi.DefaultFaultDuration,
		MaxGroupPercent:      controlapi.DefaultMaxGroupPercent,
		MaxGroupAgents:       controlapi.DefaultMaxGroupAgents,
		Logger:               slog.Default(),
	}
}

// Validate reports every problem of the configuration at once, after the
// defaults New would fill in. turbulence-controller calls it to turn a bad
// command line into a usage error; New calls it again.
func (c Config) Validate() error { return c.withDefaults().validate() }

// validate reports every problem of the configuration at once.
func (c Config) validate() error {
	var errs []error
	for _, f := range []struct{ name, val string }{
		{"node ID", c.NodeID}, {"data directory", c.DataDir}, {"gRPC address", c.GRPCAddr}, {"raft address", c.RaftAddr},
		{"TLS CA file", c.TLS.CA}, {"TLS certificate file", c.TLS.Cert}, {"TLS key file", c.TLS.Key},
	} {
		if f.val == "" {
			errs = append(errs, errors.New(f.name+" is required"))
		}
	}
	if p := c.MaxGroupPercent; p < 0 || p > 100 || p != p {
		errs = append(errs, fmt.Errorf("max group percent: %v is not in [0, 100] (0 means the default, %d)", p, controlapi.DefaultMaxGroupPercent))
	}
	if n := c.MaxGroupAgents; n < 0 || n > limits.MaxGroupAgents {
		errs = append(errs, fmt.Errorf("max group agents: %d is not in [0, %d] (0 means the default, %d)", n, limits.MaxGroupAgents, controlapi.DefaultMaxGroupAgents))
	}
	if c.LeaseTTL > 0 && c.HeartbeatInterval > 0 && c.HeartbeatInterval >= c.LeaseTTL {
		errs = append(errs, errors.New("heartbeat interval must be shorter than the lease TTL"))
	}
	if r := c.MaxHeartbeatRate; r < 0 || r > MaxHeartbeatRate {
		errs = append(errs, fmt.Errorf("max heartbeat rate: %d is not in [0, %d] heartbeats a second (0 means the default, %d)", r, MaxHeartbeatRate, agentapi.DefaultMaxHeartbeatRate))
	}
	if w, i := c.HostMetricsWindow, c.HeartbeatInterval; w < 0 || i > 0 && w/i > limits.MaxMetricSamples {
		errs = append(errs, fmt.Errorf("host metrics window: %v is not in [0, %v] (%d samples at the %v heartbeat interval; 0 means the default, %v)",
			w, limits.MaxMetricSamples*i, limits.MaxMetricSamples, i, hostseries.DefaultWindow))
	}
	errs = append(errs, c.Retention.validate()...)
	if err := c.RaftGuard.Limits.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("raft port: %w", err))
	}
	if err := c.GRPCGuard.Limits.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("gRPC port: %w", err))
	}
	if t := c.RaftElectionTimeout; t != 0 {
		if err := raftnode.CheckElectionTimeout(t); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case c.Bootstrap && c.BootstrapExpect != 0:
		errs = append(errs, errors.New("bootstrap and bootstrap-expect exclude each other: give every initial node the same peers with the one, or the same count with the other"))
	case c.Bootstrap && len(c.Join) > 0:
		errs = append(errs, errors.New("bootstrap and join exclude each other: bootstrap the first nodes, join the later ones"))
	case c.Bootstrap && len(c.Peers) == 0:
		errs = append(errs, errors.New("bootstrap needs peers (id=raft-addr/grpc-addr, this node included)"))
	case !c.Bootstrap && c.BootstrapExpect == 0 && len(c.Peers) > 0:
		errs = append(errs, errors.New("peers are only used with bootstrap or bootstrap-expect"))
	case c.BootstrapExpect != 0:
		errs = append(errs, c.validateExpect()...)
	}
	seen := make(map[string]bool)
	self := false
	for i, p := range c.Peers {
		switch {
		case p.ID == "" || p.Address.Raft == "" || p.Address.GRPC == "":
			errs = append(errs, fmt.Errorf("peer %d: id, raft address and gRPC address are required", i+1))
		case seen[p.ID]:
			errs = append(errs, fmt.Errorf("peer %d: id %q given twice", i+1, p.ID))
		}
		seen[p.ID] = true
		self = self || p.ID == c.NodeID
	}
	if (c.Bootstrap || c.BootstrapExpect > 0) && len(c.Peers) > 0 && !self {
		errs = append(errs, fmt.Errorf("peers: this node's ID %q is not among the %d peers", c.NodeID, len(c.Peers)))
	}
	return errors.Join(errs...)
}

// MaxHeartbeatRate is the largest MaxHeartbeatRate accepted: far above
// what one leader carries (docs/benchmarks.md), so that a value above it
// is a typo, not a plan.
const MaxHeartbeatRate = 1_000_000

// MaxBootstrapExpect is the largest BootstrapExpect accepted. docs/design.md
// runs 3 or 5 voters; past 7 every write waits on more acknowledgements
// for no gain in the failures the fleet can survive.
const MaxBootstrapExpect = 7

// validateExpect checks BootstrapExpect against the addresses it needs.
// The Join list must name the whole initial cluster (the node's own
// address optional): a node bootstraps only the set its list names, so
// nodes given the same list can never bootstrap two different clusters.
func (c Config) validateExpect() []error {
	n := c.BootstrapExpect
	switch {
	case n < 0 || n > MaxBootstrapExpect:
		return []error{fmt.Errorf("bootstrap-expect %d: must be between 1 and %d (0 turns it off)", n, MaxBootstrapExpect)}
	case len(c.Peers) > 0 && len(c.Join) > 0:
		return []error{errors.New("bootstrap-expect takes peers or join, not both: peers when every address is known, join to discover them")}
	case len(c.Peers) > 0 && len(c.Peers) != n:
		return []error{fmt.Errorf("bootstrap-expect %d: peers name %d servers; give all %d, this node included", n, len(c.Peers), n)}
	case len(c.Peers) == 0 && n > 1 && (len(c.Join) < n-1 || len(c.Join) > n):
		return []error{fmt.Errorf("bootstrap-expect %d: join names %d addresses; give the gRPC addresses of the other %d initial controllers (this node's own may be included, so at most %d)", n, len(c.Join), n-1, n)}
	}
	return nil
}

// withDefaults fills zero durations and a nil logger.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = d.LeaseTTL
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = d.HeartbeatInterval
	}
	if c.HostMetricsWindow == 0 {
		c.HostMetricsWindow = d.HostMetricsWindow
	}
	if c.DefaultFaultDuration <= 0 {
		c.DefaultFaultDuration = d.DefaultFaultDuration
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	if c.HoldTimeout <= 0 {
		c.HoldTimeout = forward.DefaultHoldTimeout
	}
	c.GRPCGuard = c.GRPCGuard.withDefaults()
	c.Retention = c.Retention.withDefaults()
	return c
}
