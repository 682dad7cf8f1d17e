package e2e

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/turbulence-sre/turbulence/controller/cli"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// metrics reads the agent's series through turbctl, as a script would.
func (f *fleet) metrics(t *testing.T, args ...string) *turbulencev1.GetAgentMetricsResponse {
	t.Helper()
	code, out, stderr := f.turbctl(t, append([]string{"agents", "metrics", f.agent.ID(), "-o", "json"}, args...)...)
	if code != cli.ExitOK {
		t.Fatalf("turbctl agents metrics: exit %d: %s", code, stderr)
	}
	var resp turbulencev1.GetAgentMetricsResponse
	if err := protojson.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("turbctl agents metrics output %q: %v", out, err)
	}
	return &resp
}

// TestHostMetrics_FromAgentToTurbctl: a real agent's heartbeats bring its
// host's figures to the controller, turbctl shows them, and they move
// when a CPU fault loads every core of the host.
func TestHostMetrics_FromAgentToTurbctl(t *testing.T) {
	f := startFleet(t)
	controllertest.WaitFor(t, waitLong, "a sample with CPU and memory figures", func() bool {
		s := f.metrics(t).GetSamples()
		return len(s) > 0 && s[len(s)-1].CpuPercent != nil && s[len(s)-1].MemoryUsedPercent != nil
	})
	for _, s := range f.metrics(t).GetSamples() {
		if s.CpuPercent != nil && (s.GetCpuPercent() < 0 || s.GetCpuPercent() > 100) {
			t.Errorf("cpu_percent %v out of 0..100", s.GetCpuPercent())
		}
		if s.GetMemoryUsedPercent() <= 0 || s.GetMemoryUsedPercent() > 100 || s.GetDiskUsedPercent() <= 0 {
			t.Errorf("sample %v: memory or disk use out of range", s)
		}
	}

	// Every core loaded by the agent's own worker: the host is busy,
	// whatever else runs on it, and a sample must show it.
	code, id, stderr := f.turbctl(t, "fault", "apply", "cpu", "--agent", f.agent.ID(), "--cores", "0", "--load", "100", "--duration", "1m")
	if code != cli.ExitOK {
		t.Fatalf("turbctl fault apply cpu: exit %d: %s", code, stderr)
	}
	applied := time.Now()
	controllertest.WaitFor(t, waitLong, "a sample of a busy host", func() bool {
		for _, s := range f.metrics(t, "--since", "1m").GetSamples() {
			if s.GetSampledAt().AsTime().After(applied) && s.GetCpuPercent() >= 80 {
				return true
			}
		}
		return false
	})
	if code, _, stderr := f.turbctl(t, "fault", "revert", id); code != cli.ExitOK {
		t.Fatalf("turbctl fault revert: exit %d: %s", code, stderr)
	}
	f.waitReverted(t, id)

	code, out, stderr := f.turbctl(t, "agents", "show", f.agent.ID())
	if code != cli.ExitOK || !strings.Contains(out, "CPU busy:") || !strings.Contains(out, "Memory used:") {
		t.Errorf("turbctl agents show: exit %d, stdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	code, _, stderr = f.turbctl(t, "agents", "metrics", f.agent.ID(), "--since", "-5m")
	if code != cli.ExitInvalid || !strings.Contains(stderr, "--since must be a duration of 0") {
		t.Errorf("turbctl agents metrics --since -5m: exit %d, stderr %q; want an invalid-input error naming --since", code, stderr)
	}
	code, _, stderr = f.turbctl(t, "agents", "metrics", "nobody")
	if code != cli.ExitNotFound || !strings.Contains(stderr, `agent "nobody" is not registered`) {
		t.Errorf("turbctl agents metrics nobody: exit %d, stderr %q; want not found", code, stderr)
	}
}
