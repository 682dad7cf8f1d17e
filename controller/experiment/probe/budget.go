package probe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/turbulence-sre/turbulence/controller/experiment"
)

// ErrBudgetExhausted is what Budget returns, wrapped with the figures,
// when less error budget remains than the experiment's floor.
var ErrBudgetExhausted = errors.New("error budget below its floor")

// BurnRateName is the name of the Prober NewBurnRate builds, as it shows
// in reports and abort reasons.
const BurnRateName = "error_budget.burn_rate"

// checkBudget checks the error-budget guard's spec: url, query and a floor
// in 0..1; with burnRate, the burn-rate query and its limit too.
func checkBudget(b *experiment.ErrorBudget, burnRate bool) error {
	if b == nil {
		return errors.New("error_budget: not set")
	}
	var errs []error
	if _, err := checkURL("error_budget.url", b.URL); err != nil {
		errs = append(errs, err)
	}
	if strings.TrimSpace(b.Query) == "" {
		errs = append(errs, errors.New("error_budget.query: empty"))
	}
	if math.IsNaN(b.MinRemaining) || b.MinRemaining < 0 || b.MinRemaining > 1 {
		errs = append(errs, fmt.Errorf("error_budget.min_remaining: %v is outside 0..1 (the fraction of the budget left)", b.MinRemaining))
	}
	if burnRate {
		if strings.TrimSpace(b.BurnRateQuery) == "" {
			errs = append(errs, errors.New("error_budget.burn_rate_query: empty; the burn-rate guard needs a query"))
		}
		if math.IsNaN(b.MaxBurnRate) || b.MaxBurnRate <= 0 || math.IsInf(b.MaxBurnRate, 0) {
			errs = append(errs, fmt.Errorf("error_budget.max_burn_rate: %v must be a finite number above 0", b.MaxBurnRate))
		}
	}
	return errors.Join(errs...)
}

// Budget asks Prometheus for the fraction of the service's error budget
// that remains (b.Query, 0..1). It returns that fraction and nil when it
// is at least b.MinRemaining; the fraction and an error wrapping
// ErrBudgetExhausted when it is below; NaN and an error saying why when
// there is no single number to judge (server down, no data, several
// series). Each case refuses the start: an experiment spends budget it
// can prove it has.
func Budget(ctx context.Context, b *experiment.ErrorBudget) (remaining float64, err error) {
	if err := checkBudget(b, false); err != nil {
		return math.NaN(), err
	}
	v, err := queryOne(ctx, b.URL, b.Query)
	if err != nil {
		return math.NaN(), fmt.Errorf("error_budget.query: %w", err)
	}
	if math.IsNaN(v) {
		return v, fmt.Errorf("error_budget.query: %q returned NaN, which says nothing about the budget", b.Query)
	}
	if v < b.MinRemaining {
		return v, fmt.Errorf("%w: %s remains, min_remaining is %s", ErrBudgetExhausted, fmtFloat(v), fmtFloat(b.MinRemaining))
	}
	return v, nil
}

// BurnRate asks Prometheus for the service's error-budget burn rate
// (b.BurnRateQuery): how many times faster than sustainable the budget
// is being spent.
func BurnRate(ctx context.Context, b *experiment.ErrorBudget) (float64, error) {
	if err := checkBudget(b, true); err != nil {
		return math.NaN(), err
	}
	v, err := queryOne(ctx, b.URL, b.BurnRateQuery)
	if err != nil {
		return math.NaN(), fmt.Errorf("error_budget.burn_rate_query: %w", err)
	}
	return v, nil
}

// queryOne runs one instant query and returns its single number.
func queryOne(ctx context.Context, url, query string) (float64, error) {
	a, err := newAPI(url)
	if err != nil {
		return math.NaN(), err
	}
	v, s := instant(ctx, a, query)
	if !s.Pass {
		return math.NaN(), errors.New(s.Err)
	}
	return v, nil
}

// NewBurnRate builds the Prober that watches the burn rate while an
// experiment runs: it passes while the rate is at most b.MaxBurnRate.
// Its name is BurnRateName and it samples every DefaultInterval.
func NewBurnRate(b *experiment.ErrorBudget) (Prober, error) {
	if err := checkBudget(b, true); err != nil {
		return nil, err
	}
	a, err := newAPI(b.URL)
	if err != nil {
		return nil, fmt.Errorf("error_budget.url: %w", err)
	}
	limit := b.MaxBurnRate
	return &promProber{
		name: BurnRateName, interval: DefaultInterval, query: b.BurnRateQuery,
		bounds: bounds{max: &limit}, api: a,
	}, nil
}
