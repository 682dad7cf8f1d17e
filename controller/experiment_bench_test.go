package controller_test

import (
	"slices"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// BenchmarkExperiment_AbortLatency measures the abort path from outside,
// as issue 16 states it: an experiment runs a 5-minute cpu step on two
// agents while its abort_when probe samples a real HTTP service on
// loopback every 100 ms; the benchmark flips the service to failing at a
// recorded time and reads, through the API, when every fault of the
// experiment ended REVERTED (the agents' own ended_at). One op is one
// whole experiment. Reported: the abort latency's p50, p99 and max over
// the ops, in ms; it includes up to one probe interval (100 ms) before
// the first failing sample.
func BenchmarkExperiment_AbortLatency(b *testing.B) {
	srv := controllertest.NewServer(b, nil)
	ids := fleet(b, srv, []string{srv.Addr}, 4)
	svc := startService(b)
	admin := srv.AdminClient(b)
	var lat []time.Duration
	for b.Loop() {
		svc.failing.Store(false)
		x, err := admin.StartExperiment(b.Context(), &turbulencev1.StartExperimentRequest{Spec: experimentFile(svc.URL, ids[:2], "5m", "5s")})
		if err != nil {
			b.Fatal(err)
		}
		x = waitExperiment(b, admin, x.GetId(), 20*time.Second, "the step to start", stepStarted)
		controllertest.WaitFor(b, 20*time.Second, "the faults to be ACTIVE", func() bool {
			fs := groupFaults(b, admin, x)
			for _, f := range fs {
				if f.GetState() != turbulencev1.FaultState_FAULT_STATE_ACTIVE {
					return false
				}
			}
			return len(fs) == 2
		})
		failedAt := svc.fail()
		var fs []*turbulencev1.Fault
		controllertest.WaitFor(b, 20*time.Second, "every fault to be REVERTED", func() bool {
			fs = groupFaults(b, admin, x)
			return allReverted(fs)
		})
		var last time.Time
		for _, f := range fs {
			if e := f.GetEndedAt().AsTime(); e.After(last) {
				last = e
			}
		}
		lat = append(lat, last.Sub(failedAt))
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(0, "ns/op")
}
