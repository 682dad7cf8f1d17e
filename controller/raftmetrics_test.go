package controller_test

import (
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/metrics"
	"github.com/turbulence-sre/turbulence/internal/testutil"
)

// TestRaftMetrics_BridgeReceivesRaft scrapes raft's own series from a
// real controller's registry: raft_commitTime is observed by the leader
// for each entry it commits (its barrier on taking office is one), and
// raft_state_leader counts its elections. Neither exists unless the
// go-metrics global that raft writes to is the sink the registry
// collects (controller/raftmetrics.go).
func TestRaftMetrics_BridgeReceivesRaft(t *testing.T) {
	t.Parallel()
	s := controllertest.NewServer(t, nil)
	reg := metrics.NewRegistry()
	s.Controller.RegisterMetrics(reg)
	controllertest.WaitFor(t, 10*time.Second, "raft_commitTime and raft_state_leader in the scrape", func() bool {
		commits, ok1 := testutil.MetricValue(t, reg, "raft_commitTime", nil)
		elections, ok2 := testutil.MetricValue(t, reg, "raft_state_leader", nil)
		return ok1 && ok2 && commits > 0 && elections > 0
	})
	// The raft log store's metrics come through the same bridge.
	names := testutil.MetricNames(t, reg)
	found := false
	for n := range names {
		if len(n) > len("raft_boltdb_") && n[:len("raft_boltdb_")] == "raft_boltdb_" {
			found = true
		}
	}
	if !found {
		t.Errorf("no raft_boltdb_* series in the scrape: %v", names)
	}
}
