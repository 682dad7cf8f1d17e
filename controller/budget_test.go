package controller

import (
	"log/slog"
	"testing"

	"github.com/turbulence-sre/turbulence/controller/raftnode"
	"github.com/turbulence-sre/turbulence/internal/connlimit"
)

// TestBudgetGuards: the two ports' total caps always fit the descriptor
// limit together, raft keeping its own, so that filling one port leaves
// the other its descriptors.
func TestBudgetGuards(t *testing.T) {
	t.Parallel()
	logger := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		nofile   uint64
		wantGRPC int
		wantErr  bool
	}{
		{nofile: 0, wantGRPC: DefaultGRPCMaxConns},      // unknown: kept
		{nofile: 524288, wantGRPC: DefaultGRPCMaxConns}, // systemd's usual hard limit
		{nofile: 4096, wantGRPC: 4096 - connlimit.Reserve - raftnode.DefaultRaftMaxConns},
		{nofile: 1024, wantGRPC: 1024 - connlimit.Reserve - raftnode.DefaultRaftMaxConns},
		{nofile: 700, wantErr: true},
	} {
		raft, grpc, err := budgetGuards(Config{}, tc.nofile, logger)
		if (err != nil) != tc.wantErr {
			t.Errorf("nofile %d: err = %v, want error %v", tc.nofile, err, tc.wantErr)
			continue
		}
		if tc.wantErr {
			continue
		}
		if raft.Limits.Total != raftnode.DefaultRaftMaxConns || grpc.Limits.Total != tc.wantGRPC {
			t.Errorf("nofile %d: caps raft %d, gRPC %d; want %d and %d", tc.nofile, raft.Limits.Total, grpc.Limits.Total, raftnode.DefaultRaftMaxConns, tc.wantGRPC)
		}
		if tc.nofile > 0 && uint64(raft.Limits.Total+grpc.Limits.Total+connlimit.Reserve) > tc.nofile {
			t.Errorf("nofile %d: caps %d + %d + reserve %d exceed it", tc.nofile, raft.Limits.Total, grpc.Limits.Total, connlimit.Reserve)
		}
	}
}
