package vmlab_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/turbulence-sre/turbulence/agent/inject/partition"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
	"github.com/turbulence-sre/turbulence/test/vmlab"
)

// The clock-skew phase (docs/reliability.md, "Clock skew"): the guest's
// kernel clock is its own, so stepping it skews the agent in the VM and
// nothing else; the controller and the test outside keep the host's.
const (
	// skewStep is how far each case steps the guest's wall clock: more
	// than the controller's lease (15 s) plus its grace, and less than
	// the minute by which the test's certificates are back-dated, so a
	// step back leaves them valid for the agent's TLS.
	skewStep = 40 * time.Second
	// skewFault is each fault's duration: shorter than skewStep, so that
	// a forward step carries the wall clock past its deadline.
	skewFault = 20 * time.Second
	// skewLease is the controller's lease TTL (its default, which
	// startFleet keeps).
	skewLease = 15 * time.Second
	// skewSlack: a fault ended more than this before its deadline ended
	// early; one seen in effect more than a second past its end is late
	// (invariants 1 and 2). The early slack covers the uncertainty of the
	// guest's clock offset, measured over a round trip to the driver.
	skewSlack = 500 * time.Millisecond
	// skewPartitionCIDR is what the cases' partitions cut: an address in
	// the lab's range that nothing uses.
	skewPartitionCIDR = "198.18.99.1/32"
)

// skewCase is one step of the guest's clock with faults held.
type skewCase struct {
	name string
	step time.Duration
	// frozen: the agent's main process is stopped (SIGSTOP) before the
	// step, so that only its backstops — workers and guardians — can end
	// the faults, at the lease.
	frozen bool
	// cut: the agent is cut off from the controller (an nftables table
	// in the lab's namespace) before the step; its own lease timer ends
	// the faults, its backstops half a second later.
	cut bool
}

var skewCases = []skewCase{
	{name: "healthy agent, clock forward", step: skewStep},
	{name: "healthy agent, clock back", step: -skewStep},
	{name: "frozen agent, clock back", step: -skewStep, frozen: true},
	{name: "frozen agent, clock forward", step: skewStep, frozen: true},
	{name: "cut-off agent, clock back", step: -skewStep, cut: true},
}

// skewLook is one look at the guest: what of the case's faults it saw,
// and when it began and ended, on the host's monotonic clock.
type skewLook struct {
	start, end     time.Time
	worker, table  bool
	workers, names string
}

// look reads the guest's processes and nftables tables.
func (vm *sysVM) skewLook(cpuID, partID string) skewLook {
	vm.t.Helper()
	l := skewLook{start: time.Now()}
	for _, p := range workers(vm.agentProcs(), "worker") {
		if slices.Contains(p.Argv, cpuID) {
			l.worker = true
			l.workers = strings.Join(p.Argv, " ")
		}
	}
	resp := vm.do(vmlab.Request{Op: "tables"}, nil)
	if resp.Error != "" {
		vm.fatalf("guest: tables: %s", resp.Error)
	}
	for _, n := range resp.Tables {
		if strings.HasPrefix(n, partition.TablePrefix) && strings.Contains(n, partID) {
			l.table = true
		}
	}
	l.names = strings.Join(resp.Tables, ",")
	l.end = time.Now()
	return l
}

// guestOffset returns how far the guest's wall clock is ahead of the
// host's (negative: behind), from a zero step of it, to within half the
// round trip.
func (vm *sysVM) guestOffset() time.Duration {
	vm.t.Helper()
	return vm.stepClock(0)
}

// stepClock steps the guest's wall clock by d and returns the guest's
// offset from the host's wall clock after it.
func (vm *sysVM) stepClock(d time.Duration) time.Duration {
	vm.t.Helper()
	before := time.Now()
	resp := vm.do(vmlab.Request{Op: "clock", StepMS: d.Milliseconds()}, nil)
	after := time.Now()
	if resp.Error != "" {
		vm.fatalf("guest: step the clock by %s: %s", d, resp.Error)
	}
	mid := before.Add(after.Sub(before) / 2)
	return time.Unix(0, resp.RealtimeNS).Sub(mid.Round(0))
}

// applySkewFault applies a fault of kind on the guest agent with turbctl
// and returns it as the controller acknowledged it.
func (f *sysFleet) applySkewFault(vm *sysVM, kind string, args ...string) *turbulencev1.Fault {
	f.t.Helper()
	argv := append([]string{"fault", "apply", kind, "--agent", sysAgentID, "--duration", skewFault.String(), "-o", "json"}, args...)
	out, err := f.ctl(argv...)
	if err != nil {
		f.logTail()
		vm.fatalf("%v", err)
	}
	var flt turbulencev1.Fault
	if err := protojson.Unmarshal(out, &flt); err != nil {
		vm.fatalf("turbctl's fault %q: %v", out, err)
	}
	return &flt
}

// skewResult is what one case measured, for the log and the checks.
type skewResult struct {
	// offset is the guest's clock ahead of the host's before the step.
	offset time.Duration
	// earliest and latest bound when, on the host's clock, the agent's
	// own deadline for the faults falls. The agent takes the earlier of
	// the controller's deadline read on its own clock (the controller's,
	// moved by the guest's offset) and its arrival plus the duration
	// (arrival: after the controller made the fault, before the test saw
	// it in effect).
	earliest, latest time.Time
	// stepped and frozen are when the step was made and the agent was
	// stopped or cut off (zero when it was not).
	stepped, frozen time.Time
	// gone: the end of the first look that saw each fault gone (zero:
	// never seen gone).
	workerGone, tableGone time.Time
	// lastWorker, lastTable: the start of the last look that saw each.
	lastWorker, lastTable time.Time
	looks                 int
}

// checkClockSkew runs the clock-skew cases against the guest agent (it
// must be active and connected) and checks, on the host's clock, that no
// fault outlived its deadline + 1 s, nor the lease + 1 s after its agent
// froze, and that no forward step ended a healthy agent's fault early.
func checkClockSkew(t *testing.T, vm *sysVM, fleet *sysFleet) {
	t.Helper()
	for _, sc := range skewCases {
		fleet.waitConnected(vm)
		r := runSkewCase(t, vm, fleet, sc)
		judgeSkewCase(t, sc, r)
	}
}

func runSkewCase(t *testing.T, vm *sysVM, fleet *sysFleet, sc skewCase) skewResult {
	t.Helper()
	var r skewResult
	r.offset = vm.guestOffset()
	cpu := fleet.applySkewFault(vm, "cpu", "--cores", "1", "--load", "5")
	part := fleet.applySkewFault(vm, "partition", "--cidr", skewPartitionCIDR, "--direction", "out")
	deadline := cpu.GetDeadline().AsTime()
	if d := part.GetDeadline().AsTime(); d.Before(deadline) {
		deadline = d
	}
	if cpu.GetDeadline() == nil || part.GetDeadline() == nil {
		vm.fatalf("the controller acknowledged faults without a deadline: %v, %v", cpu, part)
	}
	var seen skewLook
	fleet.waitForVM(vm, time.Minute, "both faults in effect in the guest", func() (bool, string) {
		seen = vm.skewLook(cpu.GetId(), part.GetId())
		return seen.worker && seen.table, fmt.Sprintf("worker %v, table %v (tables %s)", seen.worker, seen.table, seen.names)
	})
	onGuest := deadline.Add(-r.offset)
	r.earliest = earlier(deadline, onGuest)
	r.latest = earlier(seen.end.Add(skewFault), onGuest)
	if time.Until(r.earliest) < 5*time.Second {
		vm.fatalf("%s: the faults took until %.1f s before their deadline to show in the guest; the case needs 5 s", sc.name, time.Until(r.earliest).Seconds())
	}

	var heal func()
	switch {
	case sc.frozen:
		vm.must("systemctl", "kill", "--kill-whom=main", "--signal=SIGSTOP", agentUnit)
		r.frozen = time.Now()
	case sc.cut:
		heal = cutGuestAgent(t, fleet)
		r.frozen = time.Now()
	}
	after := vm.stepClock(sc.step)
	r.stepped = time.Now()
	t.Logf("clock skew, %s: guest clock %+.3f s from the host's before, %+.3f s after the step of %s; faults cpu %s and partition %s, deadline in %.1f–%.1f s",
		sc.name, r.offset.Seconds(), after.Seconds(), sc.step, cpu.GetId(), part.GetId(), r.earliest.Sub(r.stepped).Seconds(), r.latest.Sub(r.stepped).Seconds())

	// Look until both are gone, or past every limit: the deadline (a
	// healthy agent), the lease after the freeze (a frozen one), before
	// systemd's watchdog (WatchdogSec=30s) would kill the frozen agent.
	until := r.latest.Add(5 * time.Second)
	if sc.frozen || sc.cut {
		until = r.frozen.Add(skewLease + 8*time.Second)
	}
	for {
		l := vm.skewLook(cpu.GetId(), part.GetId())
		r.looks++
		if l.worker {
			r.lastWorker = l.start
		} else if r.workerGone.IsZero() {
			r.workerGone = l.end
		}
		if l.table {
			r.lastTable = l.start
		} else if r.tableGone.IsZero() {
			r.tableGone = l.end
		}
		if (!l.worker && !l.table) || time.Now().After(until) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the pace of the looks, not synchronisation
	}
	if sc.frozen {
		vm.must("systemctl", "kill", "--kill-whom=main", "--signal=SIGCONT", agentUnit)
	}
	if heal != nil {
		heal()
	}
	// Put the clock back; with nothing held, the step is only a step.
	fleet.waitForVM(vm, time.Minute, "the case's faults gone in the guest", func() (bool, string) {
		l := vm.skewLook(cpu.GetId(), part.GetId())
		return !l.worker && !l.table, fmt.Sprintf("worker %v, table %v", l.worker, l.table)
	})
	vm.stepClock(-sc.step)
	for _, f := range []*turbulencev1.Fault{cpu, part} {
		id := f.GetId()
		fleet.waitForVM(vm, time.Minute, "the controller to record the case's fault ended", func() (bool, string) {
			flt, err := fleet.fault(id)
			if err != nil {
				return false, err.Error()
			}
			return flt.GetState() == turbulencev1.FaultState_FAULT_STATE_REVERTED, fmt.Sprintf("%s (%s)", flt.GetState(), flt.GetReason())
		})
		if flt, err := fleet.fault(id); err == nil {
			t.Logf("clock skew, %s: controller: fault %s is %s (%s)", sc.name, id, flt.GetState(), flt.GetReason())
		}
	}
	return r
}

// judgeSkewCase checks one case's looks and logs its figures.
func judgeSkewCase(t *testing.T, sc skewCase, r skewResult) {
	t.Helper()
	limit, why := r.latest.Add(time.Second), "deadline + 1 s"
	if sc.frozen || sc.cut {
		// The agent's lease was renewed at the latest when it was stopped
		// or cut off.
		if l := r.frozen.Add(skewLease + time.Second); l.Before(limit) {
			limit, why = l, "lease + 1 s after the freeze or cut"
		}
	}
	for _, k := range []struct {
		what       string
		last, gone time.Time
	}{
		{"cpu worker", r.lastWorker, r.workerGone},
		{"partition table", r.lastTable, r.tableGone},
	} {
		if k.gone.IsZero() {
			t.Errorf("clock skew, %s: the %s was never seen gone (%d looks, the last %.1f s after the step)", sc.name, k.what, r.looks, k.last.Sub(r.stepped).Seconds())
			continue
		}
		t.Logf("clock skew, %s: %s gone %.2f s after the step, %+.2f s from its deadline (%+.2f s from the earliest it could be)%s (limit: %s)",
			sc.name, k.what, k.gone.Sub(r.stepped).Seconds(), k.gone.Sub(r.latest).Seconds(), k.gone.Sub(r.earliest).Seconds(), frozenNote(r, k.gone), why)
		if k.last.After(limit) {
			t.Errorf("clock skew, %s: the %s was seen in effect in a look that began %.2f s after its end (limit: %s)",
				sc.name, k.what, k.last.Sub(limit.Add(-time.Second)).Seconds(), why)
		}
		if !sc.frozen && !sc.cut && k.gone.Before(r.earliest.Add(-skewSlack)) {
			t.Errorf("clock skew, %s: the %s of a healthy agent was gone %.2f s before its deadline (seen gone %.2f s after the step of %s)",
				sc.name, k.what, r.earliest.Sub(k.gone).Seconds(), k.gone.Sub(r.stepped).Seconds(), sc.step)
		}
	}
}

// earlier returns the earlier of a and b.
func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func frozenNote(r skewResult, gone time.Time) string {
	if r.frozen.IsZero() {
		return ""
	}
	return fmt.Sprintf(", %.2f s after the freeze or cut", gone.Sub(r.frozen).Seconds())
}

// cutTable is the nftables table the test installs in the lab's namespace
// to cut the guest agent off from the controller: not an agent's
// (partition.TablePrefix is not a prefix of it).
const cutTable = "vmlab-cut"

// cutGuestAgent drops, in the lab's namespace, the guest's TCP traffic to
// and from the controller's gRPC port (the driver's connection, on
// another port, stays), and returns what heals it.
func cutGuestAgent(t *testing.T, fleet *sysFleet) (heal func()) {
	t.Helper()
	conn, err := nftables.New(nftables.WithNetNSFd(int(fleet.ns)))
	if err != nil {
		t.Fatalf("nftables in the lab's namespace: %v", err)
	}
	ip, _, err := net.ParseCIDR(guestCIDR)
	if err != nil {
		t.Fatal(err)
	}
	guest := ip.To4()
	_, p, err := net.SplitHostPort(sysControllerGRPC)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	port := binary.BigEndian.AppendUint16(nil, uint16(n))
	table := conn.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: cutTable})
	accept := nftables.ChainPolicyAccept
	for _, h := range []struct {
		name           string
		hook           *nftables.ChainHook
		addrAt, portAt uint32 // the guest's address; the controller's port
	}{
		{"input", nftables.ChainHookInput, 12, 2},   // from the guest, to the port
		{"output", nftables.ChainHookOutput, 16, 0}, // to the guest, from the port
	} {
		chain := conn.AddChain(&nftables.Chain{Name: h.name, Table: table, Type: nftables.ChainTypeFilter,
			Hooknum: h.hook, Priority: nftables.ChainPriorityFilter, Policy: &accept})
		conn.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: h.addrAt, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: guest},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: h.portAt, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
	}
	if err := conn.Flush(); err != nil {
		t.Fatalf("cut the guest agent off: %v", err)
	}
	return func() {
		t.Helper()
		conn.DelTable(table)
		if err := conn.Flush(); err != nil {
			t.Fatalf("heal the guest agent's cut: %v", err)
		}
	}
}
