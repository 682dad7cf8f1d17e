package probe

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/controller/experiment"
	"github.com/turbulence-sre/turbulence/internal/config"
	"github.com/turbulence-sre/turbulence/internal/testutil"
)

// scrapeWait bounds how long a test waits for a value to travel from the
// service through a scrape into a query: generous, for a shared machine.
const scrapeWait = 60 * time.Second

func newPromProbe(t *testing.T, url, query string, min, max *float64) Prober {
	t.Helper()
	p, err := New(experiment.Probe{
		Name: "slo", Interval: config.Duration(100 * time.Millisecond),
		Prometheus: &experiment.PrometheusProbe{URL: url, Query: query, Min: min, Max: max},
	}, nil)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return p
}

// waitSample samples p until want accepts a sample, and returns it.
func waitSample(t *testing.T, p Prober, want func(Sample) bool, what string) Sample {
	t.Helper()
	var s Sample
	testutil.WaitFor(t, scrapeWait, func() (bool, string) {
		s = p.Sample(t.Context())
		return want(s), fmt.Sprintf("want %s, last sample %+v", what, s)
	})
	return s
}

// TestPrometheus_RealServer runs the Prometheus probe, CheckQuery and the
// error-budget guard against a real Prometheus scraping a real service
// whose counter the test controls.
func TestPrometheus_RealServer(t *testing.T) {
	t.Parallel()
	svc := newService(t)
	errorsTotal := svc.counter(t, "svc_errors_total")
	budget := svc.gauge(t, "svc_error_budget_remaining")
	burn := svc.gauge(t, "svc_error_budget_burn_rate")
	budget.Set(0.8)
	burn.Set(1)
	prom := startPrometheus(t, svc.addr, time.Second)

	healthy := newPromProbe(t, prom.URL, `svc_errors_total{job="svc"}`, nil, ptr(10))
	// The first scrape has to happen before there is anything to query.
	s := waitSample(t, healthy, func(s Sample) bool { return s.Pass }, "a pass")
	if s.Value != 0 || !strings.Contains(s.Detail, `job="svc"`) {
		t.Errorf("healthy Sample() = %+v, want value 0 and the series' labels in Detail", s)
	}

	t.Run("shapes of answers", func(t *testing.T) {
		tests := []struct {
			query      string
			pass       bool
			wantDetail string
			wantErr    string
		}{
			{`scalar(svc_errors_total)`, true, "scalar", ""},
			{`svc_no_such_metric`, false, FailNoData, "no data: query \"svc_no_such_metric\" returned an empty vector"},
			{`svc_errors_total or vector(1)`, false, FailSeveral, "returned 2 series, want exactly one"},
			{`svc_errors_total[1m]`, false, FailWrongType, "returned a range vector"},
			{`sum(`, false, FailError, "bad_data"},
			{`svc_errors_total / 0 * 0`, false, FailBounds, "value is NaN"},
		}
		for _, tt := range tests {
			s := newPromProbe(t, prom.URL, tt.query, nil, ptr(10)).Sample(t.Context())
			if s.Pass != tt.pass || !strings.HasPrefix(s.Detail, tt.wantDetail) || !strings.Contains(s.Err, tt.wantErr) {
				t.Errorf("Sample(%q) = %+v, want pass %v, detail %q, error containing %q", tt.query, s, tt.pass, tt.wantDetail, tt.wantErr)
			}
		}
	})

	t.Run("CheckQuery", func(t *testing.T) {
		if err := CheckQuery(t.Context(), prom.URL, `sum(rate(svc_errors_total[1m]))`); err != nil {
			t.Errorf("CheckQuery(good query) = %v, want nil", err)
		}
		err := CheckQuery(t.Context(), prom.URL, `sum(rate(svc_errors_total[1m])`)
		if want := `the query does not parse: "sum(rate(svc_errors_total[1m])": invalid parameter "query": 1:31: parse error: unclosed left parenthesis`; !errors.Is(err, ErrBadQuery) || err.Error() != want {
			t.Errorf("CheckQuery(unclosed parenthesis) = %v, want ErrBadQuery with the server's message %q", err, want)
		}
		err = CheckQuery(t.Context(), prom.URL, `svc_errors_total[5m]`)
		if !errors.Is(err, ErrUnusableQuery) || !strings.Contains(err.Error(), "range vector") {
			t.Errorf("CheckQuery(range vector) = %v, want ErrUnusableQuery naming the range vector", err)
		}
		if err := CheckQuery(t.Context(), "ftp://"+strings.TrimPrefix(prom.URL, "http://"), "up"); err == nil || !strings.Contains(err.Error(), "scheme") {
			t.Errorf("CheckQuery(ftp URL) = %v, want an error about the scheme", err)
		}
	})

	t.Run("error budget", func(t *testing.T) {
		b := &experiment.ErrorBudget{URL: prom.URL, Query: "svc_error_budget_remaining", MinRemaining: 0.25,
			BurnRateQuery: "svc_error_budget_burn_rate", MaxBurnRate: 2}
		testutil.WaitFor(t, scrapeWait, func() (bool, string) {
			rem, err := Budget(t.Context(), b)
			return err == nil && rem == 0.8, fmt.Sprintf("Budget() = %v, %v; want 0.8, nil", rem, err)
		})
		rate, err := BurnRate(t.Context(), b)
		if err != nil || rate != 1 {
			t.Errorf("BurnRate() = %v, %v; want 1, nil", rate, err)
		}
		bp, err := NewBurnRate(b)
		if err != nil {
			t.Fatalf("NewBurnRate() = %v", err)
		}
		if s := bp.Sample(t.Context()); !s.Pass || bp.Name() != BurnRateName {
			t.Errorf("burn-rate Sample() = %+v (probe %q), want a pass", s, bp.Name())
		}

		budget.Set(0.1)
		burn.Set(14.4)
		testutil.WaitFor(t, scrapeWait, func() (bool, string) {
			rem, err := Budget(t.Context(), b)
			return errors.Is(err, ErrBudgetExhausted) && rem == 0.1,
				fmt.Sprintf("Budget() = %v, %v; want 0.1 and ErrBudgetExhausted", rem, err)
		})
		_, err = Budget(t.Context(), b)
		if want := "error budget below its floor: 0.1 remains, min_remaining is 0.25"; err == nil || err.Error() != want {
			t.Errorf("Budget() error = %v, want %q", err, want)
		}
		s := waitSample(t, bp, func(s Sample) bool { return !s.Pass }, "a failing burn-rate sample")
		if s.Detail != FailBounds || s.Err != "value 14.4 above max 2" {
			t.Errorf("burn-rate Sample() = %+v, want a bounds failure at 14.4", s)
		}

		if _, err := Budget(t.Context(), &experiment.ErrorBudget{URL: prom.URL, Query: "svc_no_such_metric", MinRemaining: 0.25}); err == nil || !strings.Contains(err.Error(), "no data") {
			t.Errorf("Budget(no data) error = %v, want a no-data error: no proof of budget refuses the start", err)
		}
	})

	// Last, as it changes the counter for good: a breach of the threshold.
	t.Run("threshold breach", func(t *testing.T) {
		errorsTotal.Add(100)
		s := waitSample(t, healthy, func(s Sample) bool { return !s.Pass }, "a failing sample")
		if s.Detail != FailBounds || s.Value != 100 || s.Err != "value 100 above max 10" {
			t.Errorf("Sample() after the breach = %+v, want a bounds failure at 100", s)
		}
	})

	// A service that stops answering: Prometheus marks its series stale
	// at the next failed scrape, and the probe sees no data.
	t.Run("service down", func(t *testing.T) {
		svc.srv.Close()
		s := waitSample(t, healthy, func(s Sample) bool { return s.Detail == FailNoData }, "a no-data failure")
		if s.Pass || !math.IsNaN(s.Value) || !strings.HasPrefix(s.Err, "no data") {
			t.Errorf("Sample() with the service down = %+v, want a no-data failure", s)
		}
	})

	t.Run("server down", func(t *testing.T) {
		prom.Stop(t)
		s := healthy.Sample(t.Context())
		if s.Pass || s.Detail != FailError || !strings.Contains(s.Err, "connection refused") || !math.IsNaN(s.Value) {
			t.Errorf("Sample() with Prometheus down = %+v, want an error failure saying connection refused, value NaN", s)
		}
		err := CheckQuery(t.Context(), prom.URL, "up")
		if err == nil || errors.Is(err, ErrBadQuery) || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("CheckQuery() with Prometheus down = %v, want an error that is not ErrBadQuery", err)
		}
	})
}
