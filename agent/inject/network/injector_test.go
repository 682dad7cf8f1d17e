package network

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/agent/inject"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func unitExclusions(t *testing.T) ExclusionConfig {
	t.Helper()
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(rc, []byte("# comment\nnameserver 198.18.0.53\nnameserver fe80::1%eth0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return ExclusionConfig{Controllers: []string{"198.18.0.9:7443"}, Protected: []string{"198.18.1.0/24"}, ResolvConf: rc}
}

func netemFault(id, link string, target *turbulencev1.TrafficTarget) *turbulencev1.Fault {
	return &turbulencev1.Fault{Id: id, Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute),
		Kind: &turbulencev1.FaultSpec_Network{Network: &turbulencev1.NetworkSpec{Interface: link,
			Netem:     &turbulencev1.NetemSpec{Delay: durationpb.New(100 * time.Millisecond), LossPercent: 5},
			Bandwidth: &turbulencev1.BandwidthSpec{RateBytesPerSecond: 125000},
			Target:    target}}}}
}

func TestInjector_ApplyRevertRendersAndRestores(t *testing.T) {
	t.Parallel()
	fk := newFake("eth0")
	before := fk.lines()
	in := newWithOps(Config{Exclusions: unitExclusions(t)}, fk)
	h, err := in.Apply(t.Context(), netemFault("f-1", "eth0", &turbulencev1.TrafficTarget{Cidrs: []string{"10.1.2.0/24"}, Ports: []uint32{443}, Protocol: turbulencev1.Protocol_PROTOCOL_TCP}), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	got := fk.lines()
	for _, want := range []string{
		"qdisc htb 7400: dev eth0 root",
		"class htb 7400:1 dev eth0 parent 7400: rate 12500000000B/s",
		"qdisc netem 7401: dev eth0 parent 7400:1 delay 100ms jitter 0s corr 0% loss 5% corr 0% duplicate 0% corrupt 0% reorder 0% gap 0 rate 0B/s",
		"qdisc tbf 7402: dev eth0 parent 7401:1 rate 125000B/s burst 3028 limit 12500",
		// controller, then the target: 10.1.2.0/24, tcp, ihl 5, dport 443
		"filter u32 dev eth0 parent 7400: prio 1 ip match c6120009/ffffffff at 16 flowid 7400:",
		"filter u32 dev eth0 parent 7400: prio 10 ip match 0a010200/ffffff00 at 16 match 00060000/00ff0000 at 8 match 05000000/0f000000 at 0 match 000001bb/0000ffff at 20 flowid 7400:1",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("state lacks %q; state:\n%s", want, strings.Join(got, "\n"))
		}
	}
	var st turbulencev1.FaultStatus
	h.Observe(&st)
	wantEx := []string{"controller 198.18.0.9:7443", "protected 198.18.1.0/24", "ssh port 22", "dns 198.18.0.53", "dns fe80::1"}
	if diff := cmp.Diff(wantEx, st.GetExclusions()); diff != "" {
		t.Errorf("exclusions (-want +got):\n%s", diff)
	}
	if err := h.Revert(t.Context()); err != nil {
		t.Fatalf("Revert: %v", err)
	}
	if diff := cmp.Diff(before, fk.lines()); diff != "" {
		t.Errorf("state after revert (-before +after):\n%s", diff)
	}
	if err := h.Revert(t.Context()); err != nil {
		t.Errorf("second Revert = %v, want nil", err)
	}
}

func TestInjector_RefusesBeforeTouchingAnything(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		f    *turbulencev1.Fault
		want string
	}{
		{"unknown interface", netemFault("f-1", "eth9", nil), `spec.network.interface: no such interface "eth9"`},
		{"ingress too many filters", withDirection(netemFault("f-1", "eth0", &turbulencev1.TrafficTarget{Cidrs: manyCIDRs(200), Ports: []uint32{1, 2, 3}}),
			turbulencev1.Direction_DIRECTION_INGRESS), "over 1024 u32 filters"},
		{"too many filters", netemFault("f-1", "eth0", &turbulencev1.TrafficTarget{Cidrs: manyCIDRs(200), Ports: []uint32{1, 2, 3}}), "over 1024 u32 filters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fk := newFake("eth0")
			before := fk.lines()
			in := newWithOps(Config{Exclusions: unitExclusions(t)}, fk)
			_, err := in.Apply(t.Context(), tc.f, time.Now().Add(time.Minute))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Apply = %v, want an error containing %q", err, tc.want)
			}
			if fk.calls != 0 || !slices.Equal(before, fk.lines()) {
				t.Errorf("%d kernel changes after a refusal, want 0", fk.calls)
			}
		})
	}
}

func manyCIDRs(n int) []string {
	var out []string
	for i := range n {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16).String())
	}
	return out
}

func TestInjector_SecondFaultOnInterfaceIsRefused(t *testing.T) {
	t.Parallel()
	fk := newFake("eth0", "eth1")
	in := newWithOps(Config{Exclusions: unitExclusions(t)}, fk)
	h, err := in.Apply(t.Context(), netemFault("f-1", "eth0", nil), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Apply(t.Context(), netemFault("f-2", "eth0", nil), time.Now().Add(time.Minute)); err == nil || !strings.Contains(err.Error(), "already carries network fault f-1") {
		t.Errorf("second fault on eth0 = %v, want a refusal naming f-1", err)
	}
	if _, err := in.Apply(t.Context(), netemFault("f-3", "eth1", nil), time.Now().Add(time.Minute)); err != nil {
		t.Errorf("fault on another interface = %v, want nil", err)
	}
	if err := h.Revert(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Apply(t.Context(), netemFault("f-2", "eth0", nil), time.Now().Add(time.Minute)); err != nil {
		t.Errorf("fault on eth0 after revert = %v, want nil", err)
	}
}

// TestInjector_PartialApplyIsRolledBack fails every mutating call in turn
// and checks that nothing is left (invariant 6).
func TestInjector_PartialApplyIsRolledBack(t *testing.T) {
	t.Parallel()
	for n := 1; ; n++ {
		fk := newFake("eth0")
		before := fk.lines()
		fk.failAt = n
		in := newWithOps(Config{Exclusions: unitExclusions(t)}, fk)
		h, err := in.Apply(context.Background(), netemFault("f-1", "eth0", &turbulencev1.TrafficTarget{Cidrs: []string{"10.0.0.0/8"}}), time.Now().Add(time.Minute))
		if err == nil {
			_ = h.Revert(t.Context())
			if n == 1 {
				t.Fatal("no call failed")
			}
			return // past the last call
		}
		if !errors.Is(err, errInjected) {
			t.Fatalf("call %d: Apply = %v, want the injected failure", n, err)
		}
		if diff := cmp.Diff(before, fk.lines()); diff != "" {
			t.Errorf("call %d failed: state left (-before +after):\n%s", n, diff)
		}
	}
}

func TestInjector_UnresolvableControllerRefuses(t *testing.T) {
	t.Parallel()
	ex := unitExclusions(t)
	ex.Controllers = []string{"controller.invalid:7443"}
	in := newWithOps(Config{Exclusions: ex}, newFake("eth0"))
	_, err := in.Apply(t.Context(), netemFault("f-1", "eth0", nil), time.Now().Add(time.Minute))
	if err == nil || !strings.Contains(err.Error(), "cannot exclude controller controller.invalid:7443") {
		t.Errorf("Apply = %v, want a refusal naming the controller", err)
	}
}

func withDirection(f *turbulencev1.Fault, d turbulencev1.Direction) *turbulencev1.Fault {
	f.Spec.GetNetwork().Direction = d
	return f
}

func TestInjector_IngressThroughIFB(t *testing.T) {
	t.Parallel()
	fk := newFake("eth0")
	before := fk.lines()
	in := newWithOps(Config{Exclusions: unitExclusions(t)}, fk)
	f := withDirection(netemFault("f-1", "eth0", &turbulencev1.TrafficTarget{Cidrs: []string{"10.1.2.0/24"}, Ports: []uint32{443}, Protocol: turbulencev1.Protocol_PROTOCOL_TCP}),
		turbulencev1.Direction_DIRECTION_BOTH)
	h, err := in.Apply(t.Context(), f, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	ifb := IFBName(inject.Owner{}, "f-1")
	if !strings.HasPrefix(ifb, IFBPrefix) || len(ifb) > 15 {
		t.Errorf("IFBName = %q, want the prefix %q and at most 15 bytes", ifb, IFBPrefix)
	}
	got := fk.lines()
	for _, want := range []string{
		"link " + ifb,
		// egress, as before
		"qdisc htb 7400: dev eth0 root",
		"filter u32 dev eth0 parent 7400: prio 10 ip match 0a010200/ffffff00 at 16 match 00060000/00ff0000 at 8 match 05000000/0f000000 at 0 match 000001bb/0000ffff at 20 flowid 7400:1",
		// ingress: the same tree on the ifb, the target matched by source
		"qdisc htb 7400: dev " + ifb + " root",
		"qdisc tbf 7402: dev " + ifb + " parent 7401:1 rate 125000B/s burst 3028 limit 12500",
		"filter u32 dev " + ifb + " parent 7400: prio 10 ip match 0a010200/ffffff00 at 12 match 00060000/00ff0000 at 8 match 05000000/0f000000 at 0 match 000001bb/0000ffff at 20 flowid 7400:1",
		// the link's ingress: exclusions by source pass, the rest goes to the ifb
		"qdisc ingress ffff: dev eth0 ingress",
		"filter u32 dev eth0 parent ffff: prio 29697 ip match c6120009/ffffffff at 12 pass",
		"filter u32 dev eth0 parent ffff: prio 29697 ip match c6120035/ffffffff at 12 match 00110000/00ff0000 at 8 match 05000000/0f000000 at 0 match 00350000/ffff0000 at 20 pass",
		"filter u32 dev eth0 parent ffff: prio 29712 ip match 00000000/00000000 at 0 action mirred egress redirect dev " + ifb,
		"filter u32 dev eth0 parent ffff: prio 29713 ipv6 match 00000000/00000000 at 0 action mirred egress redirect dev " + ifb,
	} {
		if !slices.Contains(got, want) {
			t.Errorf("state lacks %q; state:\n%s", want, strings.Join(got, "\n"))
		}
	}
	var u undoRecord
	if err := json.Unmarshal(h.(*handle).Undo(), &u); err != nil || u.IFB != ifb || u.NoEgress || u.Interface != "eth0" {
		t.Errorf("Undo = %+v, want the ifb %s and egress on eth0", u, ifb)
	}
	if err := h.Revert(t.Context()); err != nil {
		t.Fatalf("Revert: %v", err)
	}
	if diff := cmp.Diff(before, fk.lines()); diff != "" {
		t.Errorf("state after revert (-before +after):\n%s", diff)
	}
}

func TestInjector_IngressOnlyLeavesTheRootAlone(t *testing.T) {
	t.Parallel()
	fk := newFake("eth0")
	fk.qdiscs[0] = Qdisc{Link: "eth0", Kind: "tbf", Handle: 0x8001 << 16, Parent: HandleRoot, Tbf: &Tbf{RateBytes: 1000, Burst: 3028, Limit: 6056}}
	before := fk.lines()
	in := newWithOps(Config{Exclusions: unitExclusions(t)}, fk) // no replace_root_qdisc: not needed
	h, err := in.Apply(t.Context(), withDirection(netemFault("f-1", "eth0", nil), turbulencev1.Direction_DIRECTION_INGRESS), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if !slices.Contains(fk.lines(), "qdisc tbf 8001: dev eth0 root rate 1000B/s burst 3028 limit 6056") {
		t.Errorf("the operator's root is gone: %q", fk.lines())
	}
	if u := h.(*handle).Undo(); !strings.Contains(string(u), `"net_no_egress":true`) {
		t.Errorf("Undo = %s, want net_no_egress", u)
	}
	if err := h.Revert(t.Context()); err != nil {
		t.Fatalf("Revert: %v", err)
	}
	if diff := cmp.Diff(before, fk.lines()); diff != "" {
		t.Errorf("state after revert (-before +after):\n%s", diff)
	}
}

func TestInjector_IngressRefusesAUsedHook(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		filter Filter
		want   string
	}{
		{"someone's", Filter{Link: "eth0", Parent: IngressHandle, Priority: 1, Protocol: ethPIPv4}, "already has an ingress qdisc"},
		{"a leftover of the agent", Filter{Link: "eth0", Parent: IngressHandle, Priority: prioIngressRedirectV4, Protocol: ethPIPv4}, "turbulence-agent cleanup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fk := newFake("eth0")
			fk.qdiscs = append(fk.qdiscs, Qdisc{Link: "eth0", Kind: "ingress", Handle: IngressHandle, Parent: HandleIngress})
			fk.filters = append(fk.filters, tc.filter)
			before := fk.lines()
			in := newWithOps(Config{Exclusions: unitExclusions(t)}, fk)
			_, err := in.Apply(t.Context(), withDirection(netemFault("f-1", "eth0", nil), turbulencev1.Direction_DIRECTION_INGRESS), time.Now().Add(time.Minute))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Apply = %v, want an error containing %q", err, tc.want)
			}
			if fk.calls != 0 || !slices.Equal(before, fk.lines()) {
				t.Errorf("%d kernel changes after a refusal, want 0", fk.calls)
			}
		})
	}
}

// TestInjector_PartialIngressApplyIsRolledBack: as
// TestInjector_PartialApplyIsRolledBack, for both directions at once.
func TestInjector_PartialIngressApplyIsRolledBack(t *testing.T) {
	t.Parallel()
	for n := 1; ; n++ {
		fk := newFake("eth0")
		before := fk.lines()
		fk.failAt = n
		in := newWithOps(Config{Exclusions: unitExclusions(t)}, fk)
		f := withDirection(netemFault("f-1", "eth0", &turbulencev1.TrafficTarget{Cidrs: []string{"10.0.0.0/8"}}), turbulencev1.Direction_DIRECTION_BOTH)
		h, err := in.Apply(context.Background(), f, time.Now().Add(time.Minute))
		if err == nil {
			_ = h.Revert(t.Context())
			if n == 1 {
				t.Fatal("no call failed")
			}
			return
		}
		if !errors.Is(err, errInjected) {
			t.Fatalf("call %d: Apply = %v, want the injected failure", n, err)
		}
		if diff := cmp.Diff(before, fk.lines()); diff != "" {
			t.Errorf("call %d failed: state left (-before +after):\n%s", n, diff)
		}
	}
}
