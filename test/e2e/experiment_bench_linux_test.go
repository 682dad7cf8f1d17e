package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/agent/policy"
	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// BenchmarkExperimentAbortLatency_RealAgent is
// controller.BenchmarkExperiment_AbortLatency with a real agent: its
// cpu fault is a real worker process, which the agent stops and reports
// REVERTED. One op is one experiment: the benchmark flips a real HTTP
// service on loopback to failing at a recorded time and reads, through
// the API, when the fault ended (the agent's own ended_at). It reports
// the latency's p50, p99 and max in ms; the probe samples every 100 ms,
// which is part of the figure.
func BenchmarkExperimentAbortLatency_RealAgent(b *testing.B) {
	srv := controllertest.NewServer(b, func(c *controller.Config) { c.MaxGroupPercent = 100 })
	// One fault per op: the policy's default of 60 new faults a minute
	// would refuse the 61st op of a minute.
	a := runAgent(b, []string{srv.Addr}, srv.PKI.Agent, func(c *agent.Config) {
		p := policy.Default()
		p.MaxNewFaultsPerMinute = 100000
		c.Policy = &p
	})
	api := srv.AdminClient(b)
	controllertest.WaitFor(b, waitLong, "the agent to connect", func() bool {
		ag, err := api.GetAgent(b.Context(), &turbulencev1.GetAgentRequest{Id: a.ID()})
		return err == nil && ag.GetConnected()
	})
	var failing atomic.Bool
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	b.Cleanup(svc.Close)
	file := fmt.Appendf(nil, `name: bench-abort
hypothesis: the service answers while the agent burns a little CPU
owner: sre
targets:
  web: {agents: [%s]}
steps:
  - {name: burn, target: web, duration: 5m, fault: {cpu: {cores: 1, load_percent: 5}}}
probes:
  - {name: home, interval: 100ms, http: {url: %q, timeout: 1s}}
steady_state: [home]
abort_when: [home]
`, a.ID(), svc.URL+"/healthz")
	var lat []time.Duration
	for b.Loop() {
		failing.Store(false)
		x, err := api.StartExperiment(b.Context(), &turbulencev1.StartExperimentRequest{Spec: file})
		if err != nil {
			b.Fatal(err)
		}
		var faultID string
		controllertest.WaitFor(b, waitLong, "the fault to be ACTIVE", func() bool {
			got, err := api.GetExperiment(b.Context(), &turbulencev1.GetExperimentRequest{Id: x.GetId()})
			if err != nil || len(got.GetSteps()) == 0 || got.GetSteps()[0].GetGroupId() == "" {
				return false
			}
			g, err := api.GetFaultGroup(b.Context(), &turbulencev1.GetFaultGroupRequest{Id: got.GetSteps()[0].GetGroupId()})
			if err != nil || len(g.GetMembers()) == 0 {
				return false
			}
			faultID = g.GetMembers()[0].GetFaultId()
			return g.GetMembers()[0].GetState() == turbulencev1.FaultState_FAULT_STATE_ACTIVE
		})
		failedAt := time.Now()
		failing.Store(true)
		var f *turbulencev1.Fault
		controllertest.WaitFor(b, waitLong, "the fault to be REVERTED", func() bool {
			f, err = api.GetFault(b.Context(), &turbulencev1.GetFaultRequest{Id: faultID})
			return err == nil && f.GetState() == turbulencev1.FaultState_FAULT_STATE_REVERTED
		})
		lat = append(lat, f.GetEndedAt().AsTime().Sub(failedAt))
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[min(len(lat)-1, len(lat)*99/100)]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(0, "ns/op")
}
