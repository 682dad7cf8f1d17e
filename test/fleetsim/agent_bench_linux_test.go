package fleetsim_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
	"github.com/turbulence-sre/turbulence/test/internal/testbuild"
)

// BenchmarkAgentIdle runs the real agent binary (built as make build
// builds it: static, -trimpath) against a dev controller process and
// reports what one agent costs its host when it holds no fault:
//
//   - agent-binary-MB: the size of turbulence-agent;
//   - agent-idle-cpu-%: its CPU (% of one core) over 10 s of idle
//     heartbeats (1 s interval), after 2 s to settle;
//   - agent-rss-MB: its resident memory after that window.
func BenchmarkAgentIdle(b *testing.B) {
	bins := testbuild.BuildBinaries(b, b.TempDir(), "./controller/cmd/turbulence-controller", "./agent/cmd/turbulence-agent")
	for b.Loop() {
		benchAgentIdle(b, bins[0], bins[1])
	}
	b.ReportMetric(0, "ns/op") // one op is a whole idle window
}

func benchAgentIdle(b *testing.B, ctrlBin, agentBin string) {
	ctrl := startDevController(b, ctrlBin)
	tlsDir := filepath.Dir(ctrl.admin.CA)
	dir := b.TempDir()
	// The agent's local socket needs a directory only its owner enters.
	if err := os.Mkdir(filepath.Join(dir, "run"), 0o700); err != nil {
		b.Fatal(err)
	}
	agent := startCmd(b, agentBin, dir, "agent", "run", "--controller", ctrl.addr,
		"--ca", ctrl.admin.CA, "--cert", filepath.Join(tlsDir, "agent.crt"), "--key", filepath.Join(tlsDir, "agent.key"),
		"--state-dir", filepath.Join(dir, "state"), "--socket", filepath.Join(dir, "run", "agent.sock"))
	admin := ctrl.client(b, ctrl.admin, "")
	controllertest.WaitFor(b, time.Minute, "the agent to connect", func() bool {
		ctx, cancel := context.WithTimeout(b.Context(), time.Second)
		defer cancel()
		resp, err := admin.ListAgents(ctx, &turbulencev1.ListAgentsRequest{})
		return err == nil && len(resp.GetAgents()) == 1 && resp.GetAgents()[0].GetConnected()
	})
	pid := strconv.Itoa(agent.Process.Pid)
	measureFor(settle)
	before := readProc(b, pid)
	measureFor(idleWindow)
	after := readProc(b, pid)
	st, err := os.Stat(agentBin)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(st.Size())/(1<<20), "agent-binary-MB")
	b.ReportMetric(after.cpuPercent(before), "agent-idle-cpu-%")
	b.ReportMetric(float64(after.rssKB)/1024, "agent-rss-MB")
	b.ReportMetric(loadAverage(b), "loadavg-1m")
}
