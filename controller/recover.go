package controller

import (
	"log/slog"

	"github.com/turbulence-sre/turbulence/controller/fsm"
	"github.com/turbulence-sre/turbulence/controller/raftnode"
	"github.com/turbulence-sre/turbulence/controller/state"
)

// Recover rewrites the raft configuration of a stopped controller whose
// cluster lost its quorum, so that servers (this node among them) are
// the only voters when it starts again (raftnode.Recover, on raft's
// RecoverCluster). `turbulence-controller recover` runs it; the
// procedure is in docs/security.md.
func Recover(dataDir string, servers []raftnode.Peer, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return raftnode.Recover(raftnode.RecoverConfig{
		DataDir: dataDir,
		Servers: servers,
		// A scratch state: raft replays the log into it only to write
		// the snapshot that carries the new configuration.
		FSM:    fsm.New(state.New(), logger.With("component", "fsm")),
		Logger: logger,
	})
}
