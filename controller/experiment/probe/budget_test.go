package probe

import (
	"math"
	"strings"
	"testing"

	"github.com/turbulence-sre/turbulence/controller/experiment"
)

// TestBudget_RefusesBadSpecs checks the error-budget guard's rules: a bad
// guard is refused before any query, naming the field and its limit.
func TestBudget_RefusesBadSpecs(t *testing.T) {
	t.Parallel()
	ok := experiment.ErrorBudget{URL: "http://127.0.0.1:9090", Query: "slo:budget", MinRemaining: 0.2,
		BurnRateQuery: "slo:burn", MaxBurnRate: 6}
	with := func(f func(*experiment.ErrorBudget)) *experiment.ErrorBudget { b := ok; f(&b); return &b }
	tests := []struct {
		name     string
		b        *experiment.ErrorBudget
		burnRate bool
		want     string
	}{
		{"nil", nil, false, "error_budget: not set"},
		{"url", with(func(b *experiment.ErrorBudget) { b.URL = "unix:///run/prom.sock" }), false, "error_budget.url"},
		{"query", with(func(b *experiment.ErrorBudget) { b.Query = "" }), false, "error_budget.query: empty"},
		{"floor zero", with(func(b *experiment.ErrorBudget) { b.MinRemaining = 0 }), false,
			"error_budget.min_remaining: 0 must be above 0 and at most 1"},
		{"floor over one", with(func(b *experiment.ErrorBudget) { b.MinRemaining = 1.5 }), false, "error_budget.min_remaining: 1.5"},
		{"floor NaN", with(func(b *experiment.ErrorBudget) { b.MinRemaining = math.NaN() }), false, "error_budget.min_remaining: NaN"},
		{"no burn query", with(func(b *experiment.ErrorBudget) { b.BurnRateQuery = " " }), true, "error_budget.burn_rate_query: empty"},
		{"burn limit zero", with(func(b *experiment.ErrorBudget) { b.MaxBurnRate = 0 }), true,
			"error_budget.max_burn_rate: 0 must be a finite number above 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var err error
			if tt.burnRate {
				_, err = BurnRate(t.Context(), tt.b)
				if _, perr := NewBurnRate(tt.b); perr == nil || perr.Error() != err.Error() {
					t.Errorf("NewBurnRate() error = %v, want the same as BurnRate's: %v", perr, err)
				}
			} else {
				var rem float64
				rem, err = Budget(t.Context(), tt.b)
				if !math.IsNaN(rem) {
					t.Errorf("Budget() = %v, want NaN for a refused guard", rem)
				}
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
