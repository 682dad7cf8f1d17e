package experiment

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSpec_CheckQueries(t *testing.T) {
	t.Parallel()
	s := validSpec(t)
	lo := 0.999
	s.Probes = append(s.Probes,
		Probe{Name: "slo", Prometheus: &PrometheusProbe{URL: "http://prom:9090", Query: "sum(rate(x[1m])", Min: &lo}},
		Probe{Name: "slo-again", Prometheus: &PrometheusProbe{URL: "http://prom:9090", Query: "sum(rate(x[1m])", Min: &lo}},
		Probe{Name: "fine", Prometheus: &PrometheusProbe{URL: "http://prom:9090", Query: "up", Min: &lo}},
	)
	s.ErrorBudget = &ErrorBudget{URL: "http://prom:9090", Query: "budget", MinRemaining: 0.5, BurnRateQuery: "burn{", MaxBurnRate: 2}
	var asked []string
	check := func(_ context.Context, url, q string) error {
		asked = append(asked, url+" "+q)
		if strings.Count(q, "(") != strings.Count(q, ")") || strings.HasSuffix(q, "{") {
			return errors.New("bad query: unclosed\nparenthesis")
		}
		return nil
	}
	want := []string{
		"probes[2].prometheus.query: bad query: unclosed parenthesis",
		"probes[3].prometheus.query: bad query: unclosed parenthesis",
		"error_budget.burn_rate_query: bad query: unclosed parenthesis",
	}
	if diff := cmp.Diff(want, problems(t, s.CheckQueries(t.Context(), check))); diff != "" {
		t.Errorf("CheckQueries (-want +got):\n%s", diff)
	}
	wantAsked := []string{"http://prom:9090 sum(rate(x[1m])", "http://prom:9090 up", "http://prom:9090 budget", "http://prom:9090 burn{"}
	if diff := cmp.Diff(wantAsked, asked); diff != "" {
		t.Errorf("queries asked (-want +got):\n%s", diff)
	}
}
