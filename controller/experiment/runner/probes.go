package runner

import (
	"context"
	"time"

	"github.com/turbulence-sre/turbulence/controller/experiment"
	"github.com/turbulence-sre/turbulence/controller/experiment/probe"
)

// ProbePackage is Probes over controller/experiment/probe, the probes
// the controller runs. Hosts is the controller's per-agent host metrics;
// nil makes every host probe refuse the start with a clear error.
type ProbePackage struct {
	Hosts probe.HostSource
}

var _ Probes = ProbePackage{}

// New builds p's prober; a host probe watches agentIDs.
func (pp ProbePackage) New(p experiment.Probe, agentIDs []string) (Prober, error) {
	var pr probe.Prober
	var err error
	if p.Host != nil {
		if pp.Hosts == nil {
			// The probe package refuses a nil source too; an interface
			// holding a nil pointer would not be seen as nil there.
			return nil, errNoHostMetrics
		}
		pr, err = probe.NewHost(p, agentIDs, pp.Hosts)
	} else {
		pr, err = probe.New(p, pp.Hosts)
	}
	if err != nil {
		return nil, err
	}
	return prober{pr}, nil
}

// Budget asks Prometheus for the remaining error budget.
func (ProbePackage) Budget(ctx context.Context, b *experiment.ErrorBudget) (float64, error) {
	return probe.Budget(ctx, b)
}

// BurnRate builds the burn-rate guard's prober.
func (ProbePackage) BurnRate(b *experiment.ErrorBudget) (Prober, error) {
	pr, err := probe.NewBurnRate(b)
	if err != nil {
		return nil, err
	}
	return prober{pr}, nil
}

// prober adapts a probe.Prober.
type prober struct{ p probe.Prober }

func (p prober) Name() string            { return p.p.Name() }
func (p prober) Interval() time.Duration { return p.p.Interval() }
func (p prober) Sample(ctx context.Context) Sample {
	s := p.p.Sample(ctx)
	detail := s.Detail
	if s.Err != "" {
		detail = s.Err
	}
	return Sample{At: s.At, Value: s.Value, Pass: s.Pass, Detail: detail}
}
