package controller

import (
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/turbulence-sre/turbulence/controller/agentapi"
	"github.com/turbulence-sre/turbulence/controller/controlapi"
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
	// HeartbeatInterval is how often agents report.
	HeartbeatInterval time.Duration
	// DefaultFaultDuration is given to a fault spec without a duration.
	DefaultFaultDuration time.Duration
	// Logger receives every log line, raft's included.
	Logger *slog.Logger
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
		DefaultFaultDuration: controlapi.DefaultFaultDuration,
		Logger:               slog.Default(),
	}
}

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
	if c.LeaseTTL > 0 && c.HeartbeatInterval > 0 && c.HeartbeatInterval >= c.LeaseTTL {
		errs = append(errs, errors.New("heartbeat interval must be shorter than the lease TTL"))
	}
	return errors.Join(errs...)
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
	if c.DefaultFaultDuration <= 0 {
		c.DefaultFaultDuration = d.DefaultFaultDuration
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return c
}
