package raftnode

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// recoverLockTimeout is how long Recover waits for raft.db's file lock.
// A running controller holds it for as long as it runs: Recover must
// never touch the log of a live node, so it gives up instead.
const recoverLockTimeout = 2 * time.Second

// ErrControllerRunning: Recover found raft.db locked by a running
// controller.
var ErrControllerRunning = errors.New("raft.db is locked: stop this controller first (recovery rewrites its raft configuration)")

// RecoverConfig names the stopped node to recover and the configuration
// it is to have afterwards.
type RecoverConfig struct {
	// DataDir is the node's data directory (raft.db and snapshots).
	DataDir string
	// Servers is the new configuration: every server named becomes a
	// voter. This node must be among them, at the address it will
	// advertise when started again (its raft and gRPC addresses).
	Servers []Peer
	// FSM replays the node's snapshot and log, as raft needs to write the
	// snapshot that carries the new configuration.
	FSM    raft.FSM
	Logger *slog.Logger
}

// Recover replaces the raft configuration of a stopped node, for a
// cluster that lost its quorum and can no longer change its membership
// by itself: raft's RecoverCluster replays the node's snapshot and log
// into FSM, writes a new snapshot whose configuration is Servers, and
// compacts the log so that no older configuration survives. When the
// node starts again it has only those voters; with itself alone, it
// elects itself at once.
//
// This is an operator's last resort (docs/security.md, "Recovering a
// cluster that lost its quorum"): every server in Servers must be
// recovered with the same list, and every server left out must never be
// started again with its old data, or two clusters would claim the same
// fleet.
func Recover(cfg RecoverConfig) error {
	if cfg.DataDir == "" || cfg.FSM == nil || len(cfg.Servers) == 0 {
		return errors.New("recover: DataDir, FSM and at least one server are required")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	conf := raft.Configuration{}
	for _, p := range cfg.Servers {
		if p.ID == "" || p.Address.Raft == "" {
			return fmt.Errorf("recover: server %q: ID and raft address are required", p.ID)
		}
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Address.String())})
	}
	path := filepath.Join(cfg.DataDir, "raft.db")
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("recover: %w (is --data-dir the controller's data directory?)", err)
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{Timeout: recoverLockTimeout}})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return fmt.Errorf("recover: %w", ErrControllerRunning)
		}
		return fmt.Errorf("recover: open raft log store: %w", err)
	}
	defer func() { _ = bolt.Close() }()
	hlog := newHCLog(logger, "raft", hclog.Info)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, snapshotsRetained, hlog.Named("snapshots"))
	if err != nil {
		return fmt.Errorf("recover: open raft snapshot store: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = conf.Servers[0].ID
	rc.Logger = hlog
	// The transport only encodes peers for old snapshot formats; nothing
	// is sent.
	_, trans := raft.NewInmemTransport(conf.Servers[0].Address)
	defer func() { _ = trans.Close() }()
	if err := raft.RecoverCluster(rc, cfg.FSM, bolt, bolt, snaps, trans, conf); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	logger.Info("raft configuration recovered", "servers", len(conf.Servers), "data_dir", cfg.DataDir)
	return nil
}
