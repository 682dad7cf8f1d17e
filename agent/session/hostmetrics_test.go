package session

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent/hostmetrics"
	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/internal/fakecontroller"
	"github.com/turbulence-sre/turbulence/agent/killswitch"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestSession_HeartbeatsCarryHostMetrics: heartbeats carry the sampler's
// latest sample, and the sampler follows the heartbeat interval the
// Welcome asks for (here 100 ms, so fresh samples keep coming).
func TestSession_HeartbeatsCarryHostMetrics(t *testing.T) {
	t.Parallel()
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "agent-under-test")
	if err != nil {
		t.Fatal(err)
	}
	c := fakecontroller.Start(t, pki, fakecontroller.Options{})
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	m := inject.NewManager(log)
	lease := killswitch.NewLease(log, m)
	sampler := hostmetrics.New(hostmetrics.Config{Interval: time.Hour, Paths: []string{t.TempDir()}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = sampler.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	s, err := New(Config{
		Controllers: []string{c.Addr}, TLS: pki.Agent, AgentID: "agent-under-test",
		Manager: m, Lease: lease, Logger: log, HostMetrics: sampler,
	})
	if err != nil {
		t.Fatal(err)
	}
	runSession(t, s, m, lease)

	var first *turbulencev1.HostMetrics
	c.WaitFor(10*time.Second, "a heartbeat with host metrics", func(am *turbulencev1.AgentMessage) bool {
		first = am.GetHeartbeat().GetHostMetrics()
		return first != nil
	})
	if first.MemoryUsedPercent == nil || len(first.GetFilesystems()) != 1 {
		t.Errorf("heartbeat host metrics = %v, want memory and the watched filesystem", first)
	}
	// An hour's sampling interval would never sample again; the Welcome's
	// 100 ms does, and the rates come with the second sample.
	c.WaitFor(10*time.Second, "a heartbeat with a later sample and CPU", func(am *turbulencev1.AgentMessage) bool {
		hm := am.GetHeartbeat().GetHostMetrics()
		return hm.GetSampledAt().AsTime().After(first.GetSampledAt().AsTime()) && hm.CpuPercent != nil
	})
	if got := sampler.Interval(); got != 100*time.Millisecond {
		t.Errorf("sampler interval = %v, want the Welcome's 100ms", got)
	}
}
