package probe

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/controller/experiment"
	"github.com/turbulence-sre/turbulence/internal/config"
)

// benchInterval is the probes' interval in the breach benchmarks.
const benchInterval = 100 * time.Millisecond

// breachToFailure measures, b.N times, the time from a threshold breach to
// the first failing sample of p, from outside: a sampler samples p every
// Interval, as the experiment runner does; the benchmark waits for a
// passing sample, breaks the service (setBad(true)) at a random moment
// within an interval, notes the time, and takes the At of the first
// failing sample after it. It reports the p50, p99 and max in ms.
func breachToFailure(b *testing.B, p Prober, setBad func(bool)) {
	b.Helper()
	ctx, cancel := context.WithCancel(b.Context())
	samples := make(chan Sample)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(p.Interval())
		defer tick.Stop()
		for {
			s := p.Sample(ctx)
			select {
			case samples <- s:
			case <-ctx.Done():
				return
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() { cancel(); <-done }()

	next := func(deadline <-chan time.Time) Sample {
		select {
		case s := <-samples:
			return s
		case <-deadline:
			b.Fatal("no sample within 60s")
		}
		return Sample{}
	}
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		setBad(false)
		deadline := time.After(60 * time.Second)
		for !next(deadline).Pass {
		}
		// Break the service at a random phase of the sampler's interval,
		// reading samples meanwhile so the sampler keeps its pace.
		flip := time.NewTimer(rand.N(p.Interval()))
	wait:
		for {
			select {
			case <-flip.C:
				break wait
			case <-samples:
			}
		}
		t0 := time.Now()
		setBad(true)
		for {
			s := next(deadline)
			if !s.Pass && s.At.After(t0) {
				lat = append(lat, s.At.Sub(t0))
				break
			}
		}
	}
	b.StopTimer()
	setBad(false)
	slices.Sort(lat)
	pct := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(lat)))) - 1
		return float64(lat[max(i, 0)]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
	b.ReportMetric(0, "ns/op") // the loop's time is the waits', not the probe's
}

// BenchmarkHTTPBreachToFailingSample: a loopback service starts answering
// 503; how long until the HTTP probe (interval 100ms) has a failing
// sample.
func BenchmarkHTTPBreachToFailingSample(b *testing.B) {
	var bad atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if bad.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	b.Cleanup(srv.Close)
	p, err := New(experiment.Probe{Name: "web", Interval: config.Duration(benchInterval),
		HTTP: &experiment.HTTPProbe{URL: srv.URL}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	breachToFailure(b, p, bad.Store)
}
