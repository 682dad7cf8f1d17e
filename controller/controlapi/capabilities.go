package controlapi

import (
	"fmt"
	"slices"
	"strings"

	"github.com/turbulence-sre/turbulence/internal/faultspec"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Kernel feature names as agents report them (agent/hostinfo; not
// imported: the controller and the agent share only proto/ and internal/).
const (
	featureNetem    = "sch_netem"
	featurePrio     = "sch_prio"
	featureTbf      = "sch_tbf"
	featureHtb      = "sch_htb"
	featureU32      = "cls_u32"
	featureIFB      = "ifb"
	featureIngress  = "sch_ingress"
	featureMirred   = "act_mirred"
	featureNftables = "nftables"
)

// agentRefusal is why an agent cannot take a spec. The single apply
// returns it as its error; a group shows Short against the member.
type agentRefusal struct {
	// Short is the one-line reason a group member shows.
	Short string
	err   error
}

func (r *agentRefusal) Error() string { return r.err.Error() }
func (r *agentRefusal) Unwrap() error { return r.err }

// checkAgent is every check of an agent against a spec that the
// controller can make from the agent's registration: the kind is one it
// implements and its policy allows, and the kernel features the spec
// needs are loaded. The single apply and the group selection both call
// it, so they can never disagree about what an agent is able to take.
// It returns nil when the agent is able; it reads nothing but its
// arguments.
func checkAgent(agent *turbulencev1.Agent, spec *turbulencev1.FaultSpec) *agentRefusal {
	kind := faultspec.Kind(spec)
	if kinds := agent.GetCapabilities().GetFaultKinds(); !slices.Contains(kinds, kind) {
		return &agentRefusal{Short: "unsupported kind", err: errorf(ErrUnsupportedKind,
			"agent %q cannot run %s faults: it supports %s", agent.GetId(), kind, orNone(kinds))}
	}
	if err := requireFeatures(agent, spec); err != nil {
		return &agentRefusal{Short: "missing kernel feature: " + missingFeature(agent, spec), err: err}
	}
	return nil
}

// requireFeatures refuses a network fault or partition that needs a kernel
// feature the agent did not report, naming the feature, so the person
// learns what to load instead of seeing the agent fail (invariant 6: the
// refusal changes nothing).
func requireFeatures(agent *turbulencev1.Agent, spec *turbulencev1.FaultSpec) error {
	if missing := missingFeature(agent, spec); missing != "" {
		return errorf(ErrUnsupportedKind, "%s is not available on host %s: load the module (the agent reports kernel features: %s)",
			missing, hostName(agent), orNone(agent.GetCapabilities().GetKernelFeatures()))
	}
	return nil
}

// missingFeature names the first kernel feature (or set of alternatives,
// "a or b") that spec needs and agent did not report; "" when none.
func missingFeature(agent *turbulencev1.Agent, spec *turbulencev1.FaultSpec) string {
	have := agent.GetCapabilities().GetKernelFeatures()
	var need [][]string // each entry: any one of these will do
	switch k := spec.GetKind().(type) {
	case *turbulencev1.FaultSpec_Network:
		// Targeting needs a classful root and u32: the exclusions of the
		// controllers, SSH and DNS always use them.
		need = append(need, []string{featurePrio, featureHtb}, []string{featureU32})
		if k.Network.GetNetem() != nil {
			need = append(need, []string{featureNetem})
		}
		if k.Network.GetBandwidth() != nil {
			need = append(need, []string{featureTbf})
		}
		switch k.Network.GetDirection() {
		case turbulencev1.Direction_DIRECTION_INGRESS, turbulencev1.Direction_DIRECTION_BOTH:
			// Incoming packets are redirected (act_mirred) from the
			// interface's ingress qdisc to an ifb, where the fault sits.
			need = append(need, []string{featureIngress}, []string{featureMirred}, []string{featureIFB})
		}
	case *turbulencev1.FaultSpec_Partition:
		need = append(need, []string{featureNftables})
	}
	for _, anyOf := range need {
		if !slices.ContainsFunc(anyOf, func(f string) bool { return slices.Contains(have, f) }) {
			return strings.Join(anyOf, " or ")
		}
	}
	return ""
}

func hostName(a *turbulencev1.Agent) string {
	if h := a.GetFacts().GetHostname(); h != "" {
		return fmt.Sprintf("%s (agent %s)", h, a.GetId())
	}
	return a.GetId()
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
