package vmlab_test

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/agent/guardian"
	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/inject/partition"
	"github.com/turbulence-sre/turbulence/test/vmlab"
)

// The checks and the report of the safety phases (guest/safety_linux.go):
// the controller link under 100 % loss, partitions, the agent killed and
// restarted, and a configured root qdisc put back.
//
// A cut path loses every echo: netem at 100 % and an nftables drop are
// deterministic, so "cut" means not one answer. An untouched path loses
// nothing in this lab (the netem phases above count on it too); the bound
// allows 5 % for a stalled vCPU, far from the 100 % a wrong rule gives.

const stateReverted = "FAULT_STATE_REVERTED"

// untouchedLoss is the most echoes an untouched path may lose of n.
func untouchedLoss(n int) int { return max(2, n/20) }

func lossPct(p vmlab.Probe) float64 {
	if p.Sent == 0 {
		return math.NaN()
	}
	return 100 * float64(p.Sent-p.Answered) / float64(p.Sent)
}

func lossRow(p vmlab.Probe) string {
	return fmt.Sprintf("%.1f %% lost (%d of %d answered)", lossPct(p), p.Answered, p.Sent)
}

// checkCut: every echo of p lost.
func checkCut(t *testing.T, what string, p vmlab.Probe) {
	t.Helper()
	if p.Sent < safetyPackets || p.Answered != 0 || p.Duplicates != 0 {
		t.Errorf("%s: %d of %d echoes answered (%d duplicates), want all %d lost", what, p.Answered, p.Sent, p.Duplicates, safetyPackets)
	}
}

// checkUntouched: p lost (almost) nothing.
func checkUntouched(t *testing.T, what string, p vmlab.Probe) {
	t.Helper()
	if lost := p.Sent - p.Answered; p.Sent < safetyPackets || lost > untouchedLoss(p.Sent) || p.Bad != 0 {
		t.Errorf("%s: %d of %d echoes lost, %d wrong answers: want at most %d lost, none wrong (the fault hurt what it must not)", what, lost, p.Sent, p.Bad, untouchedLoss(p.Sent))
	}
}

// checkTCP: at least 90 % (or, with want 0, none) of the connections
// opened and echoed.
func checkTCP(t *testing.T, what string, r vmlab.TCPResult, allOpen bool) {
	t.Helper()
	switch {
	case r.Tried == 0:
		t.Errorf("%s: no TCP connection tried", what)
	case allOpen && float64(r.OK) < 0.9*float64(r.Tried):
		t.Errorf("%s: %d of %d TCP echoes went through, want all", what, r.OK, r.Tried)
	case !allOpen && r.OK != 0:
		t.Errorf("%s: %d of %d TCP echoes went through, want none", what, r.OK, r.Tried)
	}
}

func tcpRow(r vmlab.TCPResult) string { return fmt.Sprintf("%d of %d TCP echoes", r.OK, r.Tried) }

// logSafety prints configured against measured for the safety phases.
func logSafety(t *testing.T, res vmlab.Result) {
	t.Helper()
	var b strings.Builder
	row := func(what, configured, measured string) {
		fmt.Fprintf(&b, "\n  %-44s | %-46s | %s", what, configured, measured)
	}
	row("phase", "configured", "measured")
	if r := res.ControllerLink; r != nil {
		row("100 % loss: controller .3:7443", "excluded: 0 % loss", lossRow(r.Controller))
		row("100 % loss: neighbour .2:7007", "100 % loss", fmt.Sprintf("%s; netem counted %d drops", lossRow(r.Target), r.Drops))
		row("100 % loss: ssh .2:22 (tcp)", "excluded: all through", fmt.Sprintf("%s (before: %s)", tcpRow(r.SSH), tcpRow(r.SSHBase)))
		row("100 % loss: .2:2222 (tcp)", "none through", fmt.Sprintf("%s (before: %s)", tcpRow(r.NotSSH), tcpRow(r.NotSSHBase)))
		row("100 % loss: exclusions", "controller, ssh", strings.Join(r.Exclusions, "; "))
	}
	for _, p := range res.Partitions {
		name := "partition " + p.Name
		for _, dst := range slices.Sorted(maps.Keys(p.Probes)) {
			want := "untouched"
			if cutBy(p.Name, dst) {
				want = "dropped"
			}
			m := lossRow(p.Probes[dst])
			if dst == "peer" && p.PeerReceived >= 0 {
				m += fmt.Sprintf("; the peer received %d", p.PeerReceived)
			}
			row(name+": "+dst, fmt.Sprintf("%s %s: %s", strings.TrimPrefix(p.Direction, "DIRECTION_"), p.Target, want), m)
		}
		if p.SSH != nil {
			row(name+": ssh .2:22 (tcp)", "excluded: all through", tcpRow(*p.SSH))
			row(name+": .2:2222 (tcp)", "none through", tcpRow(*p.NotSSH))
		}
		row(name+": table", "during / after revert", fmt.Sprintf("%q / %q; %d drops counted; %s", p.Tables, p.TablesAfter, p.Drops, p.State))
	}
	if res.PolicyRefusal != "" || res.Partitions != nil {
		row("partition of the controller /32", "refused by policy", fmt.Sprintf("%q; tables after %q", res.PolicyRefusal, res.TablesAfterRefusal))
	}
	restartRows := func(name string, r *vmlab.RestartResult, original []string) {
		row(name+": under the child's fault", fmt.Sprintf("+%d ms", delayMS), fmt.Sprintf("%+.2f ms; tree %q", r.DelayedMS-res.BaselineMS, r.Qdiscs))
		row(name+": after SIGKILL", "fault left, journal open", fmt.Sprintf("tree %q; open %q", r.QdiscsAfterKill, r.OpenAfterKill))
		row(name+": agent.Cleanup", "reverts it from the journal", fmt.Sprintf("%q in %.1f ms; swept %q; error %q", r.Reverted, r.CleanupMS, r.Swept, r.CleanupError))
		row(name+": after recovery", "original tree, journal empty", fmt.Sprintf("tree %q (original %q); RTT %.2f ms; open %q; second cleanup %d", r.QdiscsAfter, original, r.RevertedMS, r.OpenAfter, r.SecondReverted))
	}
	if r := res.Restart; r != nil {
		restartRows("restart", r, res.QdiscsBefore)
	}
	if r := res.Guarded; r != nil {
		row("never restarted: under the child's fault", fmt.Sprintf("+%d ms", delayMS), fmt.Sprintf("%+.2f ms; tree %q", r.DelayedMS-res.BaselineMS, r.Qdiscs))
		row("never restarted: SIGKILL", "before the deadline", fmt.Sprintf("%.0f ms before it", r.KillBeforeDeadlineMS))
		row("never restarted: guardian", "gone by deadline + 1 s", fmt.Sprintf("gone %+.1f ms from the deadline; tree %q; RTT %.2f ms", r.GoneAfterDeadlineMS, r.QdiscsAfter, r.RevertedMS))
		row("never restarted: later cleanup", "the guardian's outcome", fmt.Sprintf("%q; error %q", r.Reverted, r.CleanupError))
	}
	if r := res.ConfiguredRoot; r != nil {
		row("configured root: before", "tbf 1: 100 Mbit/s", r.Root)
		row("configured root: no replace", "refused, tree unchanged", fmt.Sprintf("%q; tree %q", r.Refusal, r.QdiscsAfterRefusal))
		row("configured root: replace", fmt.Sprintf("+%d ms", delayMS), fmt.Sprintf("%+.2f ms; tree %q", r.DelayedMS-res.BaselineMS, r.Qdiscs))
		row("configured root: after revert", "the same tbf back", fmt.Sprintf("%s; tree %q", r.RootAfter, r.QdiscsAfter))
		if r.Restart != nil {
			restartRows("configured root, restart", r.Restart, r.QdiscsAfterRefusal)
			row("configured root, restart: root", "the same tbf back", r.RootAfterRestart)
		}
	}
	if b.Len() > 0 {
		t.Log("safety phases, configured vs measured:" + b.String())
	}
}

// cutBy says whether partition phase cuts the echoes to dst.
func cutBy(phase, dst string) bool {
	switch phase {
	case "egress", "ingress":
		return dst == "peer"
	case "blackhole":
		return dst != "controller"
	case "ipv6":
		return dst == "ipv6 peer"
	}
	return false
}

// checkSafety asserts on the safety phases.
func checkSafety(t *testing.T, res vmlab.Result) {
	t.Helper()
	wantDuring := []string{"htb 7400:0 root", "netem 7401:0 7400:1"}
	controllerExcl := "controller " + controllerEcho

	// The controller link: 100 % loss on the whole interface leaves the
	// controller and SSH alone and cuts everything else.
	if r := res.ControllerLink; r == nil {
		t.Error("controller link: the phase did not run")
	} else {
		if !slices.Contains(r.Exclusions, controllerExcl) || !slices.Contains(r.Exclusions, "ssh port 22") {
			t.Errorf("controller link: exclusions %q, want %q and %q", r.Exclusions, controllerExcl, "ssh port 22")
		}
		if !slices.Equal(r.Qdiscs, wantDuring) {
			t.Errorf("controller link: qdiscs under the fault %q, want %q", r.Qdiscs, wantDuring)
		}
		checkUntouched(t, "controller link: the controller under 100 % loss", r.Controller)
		checkCut(t, "controller link: the neighbour under 100 % loss", r.Target)
		if r.Drops < uint64(r.Target.Sent) {
			t.Errorf("controller link: netem counted %d drops, want at least the %d echoes to the neighbour", r.Drops, r.Target.Sent)
		}
		checkTCP(t, "controller link: SSH before the fault", r.SSHBase, true)
		checkTCP(t, "controller link: port 2222 before the fault", r.NotSSHBase, true)
		checkTCP(t, "controller link: SSH under 100 % loss", r.SSH, true)
		checkTCP(t, "controller link: port 2222 under 100 % loss", r.NotSSH, false)
		if r.State != stateReverted || !slices.Equal(r.QdiscsAfter, res.QdiscsBefore) {
			t.Errorf("controller link: after revert state %s, qdiscs %q, want %s and the original %q", r.State, r.QdiscsAfter, stateReverted, res.QdiscsBefore)
		}
	}

	// Partitions: each drops exactly its target, never the controller, and
	// its table is gone after revert.
	ran := map[string]bool{}
	for _, p := range res.Partitions {
		ran[p.Name] = true
		what := "partition " + p.Name
		if !slices.Contains(p.Exclusions, controllerExcl) {
			t.Errorf("%s: exclusions %q, want %q", what, p.Exclusions, controllerExcl)
		}
		if table := partition.TableName(inject.Owner{}, "lab-partition-"+p.Name); !slices.Equal(p.Tables, []string{table}) {
			t.Errorf("%s: inet tables under the fault %q, want [%q]", what, p.Tables, table)
		}
		if len(p.TablesAfter) != 0 || p.State != stateReverted {
			t.Errorf("%s: after revert state %s, inet tables %q, want %s and none", what, p.State, p.TablesAfter, stateReverted)
		}
		cut := 0
		for dst, probe := range p.Probes {
			if cutBy(p.Name, dst) {
				cut += probe.Sent
				checkCut(t, what+": "+dst, probe)
			} else {
				checkUntouched(t, what+": "+dst, probe)
			}
		}
		if p.Drops < uint64(cut) {
			t.Errorf("%s: the table counted %d drops, want at least the %d echoes it cut", what, p.Drops, cut)
		}
		sentPeer := p.Probes["peer"].Sent
		switch p.Name {
		case "egress":
			// Dropped on the way out: the peer never saw them.
			if p.PeerReceived != 0 {
				t.Errorf("%s: the peer received %d of the %d echoes, want none (dropped on the way out)", what, p.PeerReceived, sentPeer)
			}
		case "ingress":
			// Out untouched, the answers dropped on the way in.
			if p.PeerReceived < sentPeer-untouchedLoss(sentPeer) {
				t.Errorf("%s: the peer received %d of the %d echoes, want all (only the answers are dropped)", what, p.PeerReceived, sentPeer)
			}
		case "blackhole":
			if p.SSH == nil || p.NotSSH == nil {
				t.Errorf("%s: no SSH measurement", what)
			} else {
				checkTCP(t, what+": SSH", *p.SSH, true)
				checkTCP(t, what+": port 2222", *p.NotSSH, false)
			}
		}
		want := map[string][]string{
			"egress": {"controller", "neighbour", "peer", "peer port B"}, "ingress": {"controller", "neighbour", "peer", "peer port B"},
			"blackhole": {"controller", "neighbour", "peer", "peer port B"}, "ipv6": {"ipv6 peer", "peer"},
		}[p.Name]
		if got := slices.Sorted(maps.Keys(p.Probes)); !slices.Equal(got, want) {
			t.Errorf("%s: measured %q, want %q", what, got, want)
		}
	}
	for _, name := range []string{"egress", "ingress", "blackhole", "ipv6"} {
		if !ran[name] {
			t.Errorf("partition %s: the phase did not run", name)
		}
	}
	if !strings.Contains(res.PolicyRefusal, "network.protected_cidrs") || len(res.TablesAfterRefusal) != 0 {
		t.Errorf("a partition of the controller's /32: %q, tables after %q; want a network.protected_cidrs refusal and no table", res.PolicyRefusal, res.TablesAfterRefusal)
	}

	// The agent killed and restarted: the fault outlives the process, the
	// journal names it, start-up recovery takes it back.
	if r := res.Restart; r == nil {
		t.Error("restart: the phase did not run")
	} else {
		checkRestart(t, "restart", res, r, res.QdiscsBefore)
	}

	// The agent killed and never restarted: the fault's guardian alone
	// takes it back, at its deadline, within a second.
	checkNeverRestarted(t, res)

	// A configured root: refused without replace_root_qdisc, replaced and
	// put back exactly with it.
	if r := res.ConfiguredRoot; r == nil {
		t.Error("configured root: the phase did not run")
	} else {
		if !strings.HasPrefix(r.Root, "tbf 1:0 root ") {
			t.Errorf("configured root: the root before the fault is %q, want the lab's tbf 1:", r.Root)
		}
		if !strings.Contains(r.Refusal, "network.replace_root_qdisc") || !slices.ContainsFunc(r.QdiscsAfterRefusal, func(s string) bool { return s == "tbf 1:0 root" }) {
			t.Errorf("configured root: without replace_root_qdisc %q, tree %q; want a network.replace_root_qdisc refusal and the tbf left", r.Refusal, r.QdiscsAfterRefusal)
		}
		if !slices.Equal(r.Qdiscs, wantDuring) || math.Abs(r.DelayedMS-res.BaselineMS-delayMS) > math.Max(0.1*delayMS, 2) {
			t.Errorf("configured root: under the fault qdiscs %q and RTT %.2f ms, want %q and +%d ms", r.Qdiscs, r.DelayedMS, wantDuring, delayMS)
		}
		if r.RootAfter != r.Root {
			t.Errorf("configured root: after revert the root is %q, want it as configured: %q", r.RootAfter, r.Root)
		}
		if !slices.Equal(r.QdiscsAfter, r.QdiscsAfterRefusal) {
			t.Errorf("configured root: after revert the tree is %q, want the configured one %q", r.QdiscsAfter, r.QdiscsAfterRefusal)
		}
		if r.Restart == nil {
			t.Error("configured root: the restart did not run")
		} else {
			checkRestart(t, "configured root: restart", res, r.Restart, r.QdiscsAfterRefusal)
			if r.RootAfterRestart != r.Root {
				t.Errorf("configured root: after the agent's restart the root is %q, want it as configured: %q", r.RootAfterRestart, r.Root)
			}
		}
		if !slices.Equal(r.QdiscsDefault, res.QdiscsBefore) {
			t.Errorf("configured root: after the lab removed its tbf the tree is %q, want the original %q", r.QdiscsDefault, res.QdiscsBefore)
		}
	}
	for _, phase := range []string{"controller-link", "restart"} {
		if got := res.QdiscsAfterPhase[phase]; !slices.Equal(got, res.QdiscsBefore) {
			t.Errorf("qdiscs after the %s phase = %q, want the original %q", phase, got, res.QdiscsBefore)
		}
	}
}

// checkRestart asserts on an agent killed under its fault and recovered:
// the fault outlived the process, the journal named it, start-up recovery
// took it back from the journal alone and left original.
// checkNeverRestarted checks the phase where the agent is SIGKILLed and
// never comes back (invariant 3: a guardian takes the fault back at its
// deadline).
func checkNeverRestarted(t *testing.T, res vmlab.Result) {
	t.Helper()
	r := res.Guarded
	if r == nil {
		t.Error("never restarted: the phase did not run")
		return
	}
	wantDuring := []string{"htb 7400:0 root", "netem 7401:0 7400:1"}
	if !slices.Equal(r.Qdiscs, wantDuring) || math.Abs(r.DelayedMS-res.BaselineMS-delayMS) > math.Max(0.1*delayMS, 2) {
		t.Errorf("never restarted: under the child's fault qdiscs %q and RTT %.2f ms (baseline %.2f), want %q and +%d ms", r.Qdiscs, r.DelayedMS, res.BaselineMS, wantDuring, delayMS)
	}
	if r.KillBeforeDeadlineMS <= 0 {
		t.Errorf("never restarted: the agent was killed %.0f ms after the deadline, want before it", -r.KillBeforeDeadlineMS)
	}
	// Sampled every 5 ms: a delay seen gone more than a sample before the
	// deadline was taken back early.
	if r.GoneAfterDeadlineMS < -10 || r.GoneAfterDeadlineMS > 1000 {
		t.Errorf("never restarted: the delay was gone %+.1f ms from its deadline, want within [0, +1000 ms]", r.GoneAfterDeadlineMS)
	}
	if !slices.Equal(r.QdiscsAfter, res.QdiscsBefore) || r.RevertedMS >= 10 {
		t.Errorf("never restarted: after the guardian qdiscs %q and RTT %.2f ms, want the original %q and < 10 ms", r.QdiscsAfter, r.RevertedMS, res.QdiscsBefore)
	}
	if want := r.FaultID + ": " + guardian.ReasonDeadline; !slices.Equal(r.Reverted, []string{want}) || r.CleanupError != "" {
		t.Errorf("never restarted: a later cleanup closed %q (error %q), want [%q]: the guardian's outcome", r.Reverted, r.CleanupError, want)
	}
}

func checkRestart(t *testing.T, what string, res vmlab.Result, r *vmlab.RestartResult, original []string) {
	t.Helper()
	wantDuring := []string{"htb 7400:0 root", "netem 7401:0 7400:1"}
	if !slices.Equal(r.Qdiscs, wantDuring) || math.Abs(r.DelayedMS-res.BaselineMS-delayMS) > math.Max(0.1*delayMS, 2) {
		t.Errorf("%s: under the child's fault qdiscs %q and RTT %.2f ms (baseline %.2f), want %q and +%d ms", what, r.Qdiscs, r.DelayedMS, res.BaselineMS, wantDuring, delayMS)
	}
	if !slices.Equal(r.QdiscsAfterKill, wantDuring) || !slices.Equal(r.OpenAfterKill, []string{r.FaultID}) {
		t.Errorf("%s: after SIGKILL qdiscs %q and open journal %q, want the fault still on (%q) and [%q] open", what, r.QdiscsAfterKill, r.OpenAfterKill, wantDuring, r.FaultID)
	}
	if want := r.FaultID + ": " + agent.ReasonCleanup; !slices.Equal(r.Reverted, []string{want}) || len(r.Swept) != 0 || r.CleanupError != "" {
		t.Errorf("%s: recovery reverted %q, swept %q, error %q; want [%q] from the journal alone, no error", what, r.Reverted, r.Swept, r.CleanupError, want)
	}
	if !slices.Equal(r.QdiscsAfter, original) || r.RevertedMS >= 10 {
		t.Errorf("%s: after recovery qdiscs %q and RTT %.2f ms, want the original %q and < 10 ms", what, r.QdiscsAfter, r.RevertedMS, original)
	}
	if len(r.OpenAfter) != 0 || r.SecondReverted != 0 {
		t.Errorf("%s: after recovery the journal lists %q open and a second cleanup took back %d, want nothing", what, r.OpenAfter, r.SecondReverted)
	}
}
