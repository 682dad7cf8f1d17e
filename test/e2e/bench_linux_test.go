package e2e

import (
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/internal/stats"
	"github.com/turbulence-sre/turbulence/test/internal/testbuild"
)

// BenchmarkLateness measures, through the controller and a real agent,
// how late after its deadline each kind of fault stops hurting the host:
// from the deadline the agent reports to the kernel's notice that the
// effect is gone (effects_linux_test.go). The worker kind (cpu) ends by
// its worker's exit, which the worker's own real-time deadline thread
// also guarantees; network, partition and disk fill end only when the
// agent's kill switch reverts them. Each sub-benchmark runs b.N fault
// lifetimes of 1 s, one after the other (make bench: -benchtime 50x).
//
// "saturated" runs them with one plain busy loop per CPU (this test
// binary in spin mode, not the project's workers) at the agent's own
// scheduling priority, so the deadline path is not favoured by
// construction; the benchmark measures the load it achieved and fails
// if the host was not saturated. Percentiles are internal/stats':
// nearest rank, so below 100 samples p99 is the worst.
func BenchmarkLateness(b *testing.B) {
	// The workers are the agent binary as `make build` makes it, not this
	// test binary: a worker's exit includes the kernel's teardown of what
	// it has mapped.
	agentBin := testbuild.BuildBinaries(b, b.TempDir(), "./agent/cmd/turbulence-agent")[0]
	e := startEffectFleet(b, func(c *agent.Config) { c.WorkerBinary = agentBin })
	for _, load := range []string{"idle", "saturated"} {
		for _, k := range effectKinds {
			b.Run(load+"/"+k.name, func(b *testing.B) {
				var meter *loadMeter
				if load == "saturated" {
					meter = saturate(b)
				}
				var late []time.Duration
				var rt, threads int
				reasons := map[string]int{}
				for b.Loop() {
					l, reason := e.lifetime(b, k, time.Second)
					late = append(late, l)
					reasons[reason]++
				}
				b.StopTimer()
				if k.name == "cpu-worker" {
					// The worker's deadline thread runs at real-time
					// priority by design; check it did on this host.
					rt, threads = e.workerRT(b)
				}
				ms := stats.Millis(late)
				b.ReportMetric(stats.Median(ms), "late-p50-ms")
				b.ReportMetric(stats.Percentile(ms, 99), "late-p99-ms")
				b.ReportMetric(stats.Percentile(ms, 100), "late-max-ms")
				b.ReportMetric(float64(len(ms)), "samples")
				b.ReportMetric(0, "ns/op") // one op is a whole fault lifetime
				if reasons["deadline"] != len(late) {
					b.Errorf("%s: reasons %v, want every fault ended by its deadline", k.name, reasons)
				}
				if k.name == "cpu-worker" {
					b.Logf("worker threads at real-time priority: %d of %d", rt, threads)
				}
				if meter != nil {
					host, loops := meter.done(b)
					b.ReportMetric(host, "host-busy-%")
					b.ReportMetric(loops, "busy-loops-%")
					b.Logf("achieved load: host %.1f %% busy (/proc/stat), the busy loops %.1f %% of all CPU time (their cgroup)", host, loops)
					if host < 90 {
						b.Fatalf("the host was only %.1f %% busy: not saturated, the figures say nothing about a busy host", host)
					}
				}
			})
		}
	}
}
