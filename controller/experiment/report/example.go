package report

import (
	"math"
	"time"
)

// ExampleStart is the start time of the report Example returns.
var ExampleStart = time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)

// Example returns a realistic report to test renderers and consumers
// with: an experiment aborted 41.8 s in because an HTTP probe's
// latency passed its maximum while a CPU and a network step hurt two web
// agents, with a Prometheus error-ratio probe that held throughout, host
// metrics for both agents, and a full event timeline. Every call returns
// a new, identical value (no randomness, no clock), so golden files made
// from it are stable.
func Example() *Report {
	t0 := ExampleStart
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	maxLatency, maxRatio := 300.0, 0.001

	// The fault phase starts at +5 s; the CPU step at once, the network
	// step 20 s later; the abort at +41.8 s cuts both short.
	const (
		cpuStart, netStart = 5_200, 25_100
		abortAt            = 41_800
		cpuEnd, netEnd     = 42_600, 42_450
		end                = 56_000
	)
	inCPU := func(ms int) bool { return ms >= cpuStart && ms < cpuEnd }
	inNet := func(ms int) bool { return ms >= netStart && ms < netEnd }

	// checkout-http: a latency in milliseconds, sampled every second (the
	// sample at +41.8 s is the failing one, off the one-second grid
	// because the runner samples abort probes as soon as the last one
	// answered).
	var http []Sample
	for ms := 0; ms <= end; ms += 1000 {
		if ms == 42_000 {
			ms = abortAt
		}
		v := 0.048 + 0.006*math.Sin(float64(ms)/3700)
		if inCPU(ms) {
			v += 0.035
		}
		if inNet(ms) {
			// The delay itself, then the queue building up behind it.
			f := float64(ms-netStart) / float64(abortAt-netStart)
			v += 0.12 + 0.06*f*f
		}
		if ms > abortAt && ms < 46_000 {
			// The backlog drains after the revert.
			v += 0.3 * float64(46_000-ms) / 3000
		}
		if ms == abortAt {
			v = 0.412
		}
		ms1 := round1(v * 1000)
		s := Sample{At: at(ms), Value: Float(ms1), Pass: ms1 <= maxLatency, Detail: "200 in " + num(ms1) + "ms"}
		if !s.Pass {
			s.Err = "latency " + num(ms1) + "ms above max_latency 300ms"
			s.Detail = "latency"
		}
		if ms == 44_000 {
			s = Sample{At: at(ms), Value: Float(math.NaN()), Detail: "timeout",
				Err: `GET http://198.18.0.10:8080/checkout: context deadline exceeded (Client.Timeout exceeded while awaiting headers)`}
		}
		http = append(http, s)
		if ms == abortAt {
			ms = 42_000
		}
	}

	// error-ratio: the 5xx ratio over a minute, every 2 s.
	var ratio []Sample
	for ms := 0; ms <= end; ms += 2000 {
		v := 0.00018 + 0.00006*math.Sin(float64(ms)/5100)
		if inNet(ms) {
			v += 0.0005 * float64(ms-netStart) / float64(abortAt-netStart)
		}
		v = math.Round(v*1e6) / 1e6
		ratio = append(ratio, Sample{At: at(ms), Value: Float(v), Pass: v <= maxRatio, Detail: "value " + num(v)})
	}

	host := func(agent string, phase float64) HostSeries {
		m := map[string][]Point{}
		for ms := 0; ms <= end; ms += 1000 {
			cpu := 11 + 3*math.Sin(float64(ms)/4300+phase)
			load := 0.6 + 0.2*math.Sin(float64(ms)/9000+phase)
			if inCPU(ms) {
				cpu += 20 * 0.8 * 2 // two cores of eight at 80 %
				load += 1.7 * (1 - math.Exp(-float64(ms-cpuStart)/8000))
			}
			if ms >= cpuEnd {
				load += 1.7 * math.Exp(-float64(ms-cpuEnd)/6000)
			}
			mem := 38.5 + 0.4*math.Sin(float64(ms)/11000+phase)
			m["cpu_percent"] = append(m["cpu_percent"], Point{At: at(ms), Value: Float(round1(cpu))})
			m["load1"] = append(m["load1"], Point{At: at(ms), Value: Float(round3(load))})
			m["memory_used_percent"] = append(m["memory_used_percent"], Point{At: at(ms), Value: Float(round1(mem))})
		}
		return HostSeries{Agent: agent, Target: "web", Metrics: m}
	}

	members := func(start, stop int, ids ...string) []StepAgent {
		return []StepAgent{
			{Agent: "web-1", FaultID: ids[0], State: "REVERTED", Start: at(start + 40), End: at(stop - 60)},
			{Agent: "web-2", FaultID: ids[1], State: "REVERTED", Start: at(start + 55), End: at(stop)},
		}
	}

	return &Report{
		Version:    FormatVersion,
		ID:         "exp-7f3a91",
		Name:       "checkout-latency",
		StartedBy:  "admin/alice",
		Hypothesis: "Checkout p99 latency stays under 300 ms and the 5xx ratio under 0.1 % while two web hosts lose two cores each and then get 120 ms of network delay.",
		Owner:      "team-payments",
		Seed:       42,
		State:      StateAborted,
		Before:     Verdict{Outcome: Pass, Reason: "steady state held: checkout-http 50ms (max 300), error-ratio 0.00018 (max 0.001)"},
		During:     Verdict{Outcome: Fail, Reason: "checkout-http 412ms above max 300 at +41.8s: aborted"},
		After:      Verdict{Outcome: Pass, Reason: "steady state held again 2.4s after the last fault ended (recovery 30s)"},
		StartedAt:  t0,
		EndedAt:    at(end),
		Abort: &Abort{
			Reason:     "probe checkout-http above its max 300",
			Probe:      "checkout-http",
			Value:      412,
			SampleAt:   at(abortAt),
			RevertedAt: at(cpuEnd),
		},
		Targets: []Target{{Name: "web", Selector: "role=web,env=staging", Agents: []string{"web-1", "web-2"}}},
		Steps: []Step{
			{
				Name: "cpu-burn", Target: "web", Kind: "cpu", Fault: "2 cores at 80 %",
				PlannedStart: 0, PlannedDuration: 60 * time.Second,
				GroupID: "g-51c0", Start: at(cpuStart), End: at(cpuEnd),
				Agents: members(cpuStart, cpuEnd, "f-51c0-1", "f-51c0-2"),
			},
			{
				Name: "net-delay", Target: "web", Kind: "network", Fault: "egress eth0 delay 120ms jitter 20ms to 198.18.0.0/24",
				PlannedStart: 20 * time.Second, PlannedDuration: 30 * time.Second,
				GroupID: "g-51c1", Start: at(netStart), End: at(netEnd),
				Agents: members(netStart, netEnd, "f-51c1-1", "f-51c1-2"),
			},
		},
		Probes: []ProbeSeries{
			{
				Name: "checkout-http", Kind: KindHTTP, Subject: "GET http://198.18.0.10:8080/checkout",
				Unit: "ms", Max: &maxLatency, SteadyState: true, Abort: true, Samples: http,
			},
			{
				Name: "error-ratio", Kind: KindPrometheus,
				Subject: `sum(rate(http_requests_total{job="checkout",code=~"5.."}[1m])) / sum(rate(http_requests_total{job="checkout"}[1m]))`,
				Max:     &maxRatio, SteadyState: true, Abort: true, Samples: ratio,
			},
		},
		Hosts: []HostSeries{host("web-1", 0), host("web-2", 1.3)},
		Events: []Event{
			{At: at(0), Text: "experiment started by alice (seed 42); target web chose web-1, web-2 of 4 matching"},
			{At: at(4_100), Text: "steady state holds: checkout-http 50ms, error-ratio 0.00018"},
			{At: at(cpuStart), Text: "step cpu-burn: group g-51c0 applied on web-1, web-2"},
			{At: at(netStart), Text: "step net-delay: group g-51c1 applied on web-1, web-2"},
			{At: at(abortAt), Type: "abort", Text: "abort: checkout-http 412ms above max 300"},
			{At: at(netEnd), Text: "step net-delay: every fault reverted"},
			{At: at(cpuEnd), Text: "step cpu-burn: every fault reverted"},
			{At: at(43_000), Text: "recovery: checkout-http 343ms above max 300"},
			{At: at(44_000), Text: "recovery: checkout-http no value (context deadline exceeded)"},
			{At: at(45_000), Text: "steady state holds again, 2.4s after the last fault ended"},
			{At: at(end), Text: "experiment ended ABORTED"},
		},
	}
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
