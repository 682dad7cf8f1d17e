package agent

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/inject/network"
	"github.com/turbulence-sre/turbulence/agent/inject/partition"
	"github.com/turbulence-sre/turbulence/agent/journal"
	"github.com/turbulence-sre/turbulence/agent/policy"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// applyNetworkFaults puts a bandwidth fault (both directions: a root on
// A's veth, an ifb with its ingress redirect) and a partition in A, as a
// crashed agent would have left them, and returns their handles.
func applyNetworkFaults(t *testing.T, p *testutil.NSPair, owner inject.Owner) []inject.Handle {
	t.Helper()
	ex := network.ExclusionConfig{Controllers: []string{"198.18.0.9:7443"}, ResolvConf: filepath.Join(t.TempDir(), "none")}
	nf := &turbulencev1.Fault{Id: "f-net", Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute),
		Kind: &turbulencev1.FaultSpec_Network{Network: &turbulencev1.NetworkSpec{Interface: p.LinkA, Direction: turbulencev1.Direction_DIRECTION_BOTH,
			Bandwidth: &turbulencev1.BandwidthSpec{RateBytesPerSecond: 1000}}}}}
	pf := &turbulencev1.Fault{Id: "f-part", Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute),
		Kind: &turbulencev1.FaultSpec_Partition{Partition: &turbulencev1.PartitionSpec{Target: &turbulencev1.TrafficTarget{Cidrs: []string{"198.18.0.2/32"}}}}}}
	nh, err := network.NewWithHandle(network.Config{Exclusions: ex, Owner: owner}, p.HA).Apply(t.Context(), nf, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatalf("apply network fault: %v", err)
	}
	ph, err := partition.NewInNetNS(partition.Config{Exclusions: ex, Owner: owner}, int(p.A)).Apply(t.Context(), pf, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatalf("apply partition: %v", err)
	}
	return []inject.Handle{nh, ph}
}

// agentMarks lists what of the agent is left in A: its qdiscs (on the
// veth and the ifb), its ifb, its ingress redirect, its tables.
func agentMarks(t *testing.T, p *testutil.NSPair) []string {
	t.Helper()
	var out []string
	ls, err := p.HA.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if strings.HasPrefix(l.Attrs().Name, network.IFBPrefix) {
			out = append(out, "link "+l.Attrs().Name)
		}
		qs, err := p.HA.QdiscList(l)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			if network.IsAgentHandle(q.Attrs().Handle) {
				out = append(out, "qdisc "+netlink.HandleStr(q.Attrs().Handle)+" dev "+l.Attrs().Name)
			}
			if q.Attrs().Parent != netlink.HANDLE_INGRESS {
				continue
			}
			fs, err := p.HA.FilterList(l, q.Attrs().Handle)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range fs {
				if network.IsAgentPrio(f.Attrs().Priority) {
					out = append(out, "ingress redirect dev "+l.Attrs().Name)
					break
				}
			}
		}
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(p.A)))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range ts {
		out = append(out, "table "+tb.Name)
	}
	slices.Sort(out)
	return out
}

func TestPrivilegedRecover_JournalTakesBackNetworkFaults(t *testing.T) {
	testutil.RequirePrivileged(t)
	p := testutil.NewNSPair(t, 0)
	stateDir := t.TempDir()
	owner := inject.NewOwner("a", stateDir)
	j, _, err := journal.OpenFile(filepath.Join(stateDir, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	// The crash: both faults journaled as applied, never reverted.
	for i, h := range applyNetworkFaults(t, p, owner) {
		id := []string{"f-net", "f-part"}[i]
		kind := []string{"network", "partition"}[i]
		for _, r := range []journal.Record{
			{Op: journal.OpIntent, FaultID: id, Kind: kind, At: time.Now(), Deadline: time.Now().Add(time.Minute)},
			{Op: journal.OpApplied, FaultID: id, Kind: kind, At: time.Now(), Undo: h.Undo()},
		} {
			if err := j.Append(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if got := agentMarks(t, p); len(got) != 7 {
		t.Fatalf("before recovery: marks = %q, want the root and the tbf on the veth and the ifb, the ifb, its redirect and a table", got)
	}
	exe, _ := os.Executable()
	var rec Recovery
	testutil.InNS(t, p.A, func() {
		var j2 *journal.Journal
		cfg := Config{StateDir: stateDir, ProcRoot: "/proc", WorkerBinary: exe}
		j2, rec, err = recoverHost(slog.New(slog.DiscardHandler), cfg, owner, kinds(cfg, owner, policy.Default()), ReasonRecovered, nil)
		if j2 != nil {
			_ = j2.Close()
		}
	})
	if err != nil {
		t.Fatalf("recoverHost: %v", err)
	}
	if len(rec.Reverted) != 2 {
		t.Errorf("recovered %d faults, want 2", len(rec.Reverted))
	}
	if len(rec.Swept) != 0 || len(rec.Foreign) != 0 {
		t.Errorf("swept %q, foreign %q; want nothing left for the sweep after the journal", rec.Swept, rec.Foreign)
	}
	if got := agentMarks(t, p); len(got) != 0 {
		t.Errorf("after recovery: marks = %q, want none", got)
	}
}

// TestPrivilegedSweep_TakesOnlyItsOwnNetworkMarks: two agents' network
// faults (a bandwidth fault in both directions and a partition each) in
// one namespace; the sweep of one, with no journal, removes its own ifb
// with the redirect that feeds it and its own table, reports the other's
// marks and the root qdisc it cannot attribute, and touches none of them.
func TestPrivilegedSweep_TakesOnlyItsOwnNetworkMarks(t *testing.T) {
	testutil.RequirePrivileged(t)
	p := testutil.NewNSPair(t, 0)
	mine, theirs := inject.NewOwner("a", t.TempDir()), inject.NewOwner("b", t.TempDir())
	applyNetworkFaults(t, p, mine)
	before := agentMarks(t, p)
	// The other agent's partition, with the same fault ID: a table of its
	// own name.
	ex := network.ExclusionConfig{Controllers: []string{"198.18.0.9:7443"}, ResolvConf: filepath.Join(t.TempDir(), "none")}
	pf := &turbulencev1.Fault{Id: "f-part", Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute),
		Kind: &turbulencev1.FaultSpec_Partition{Partition: &turbulencev1.PartitionSpec{Target: &turbulencev1.TrafficTarget{Cidrs: []string{"198.18.0.2/32"}}}}}}
	if _, err := partition.NewInNetNS(partition.Config{Exclusions: ex, Owner: theirs}, int(p.A)).Apply(t.Context(), pf, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	sweepAs := func(o inject.Owner) (removed, foreign []string) {
		testutil.InNS(t, p.A, func() {
			for _, k := range []inject.Kind{network.New(network.Config{Owner: o}), partition.New(partition.Config{Owner: o})} {
				s, err := k.Sweep(t.Context(), nil)
				if err != nil {
					t.Errorf("sweep %s: %v", k.Kind(), err)
				}
				removed, foreign = append(removed, s.Removed...), append(foreign, s.Foreign...)
			}
		})
		return removed, foreign
	}
	removed, foreign := sweepAs(mine)
	want := []string{"qdisc ingress ffff: dev " + p.LinkA, "link ifb " + network.IFBName(mine, "f-net"), "table inet " + partition.TableName(mine, "f-part")}
	if !slices.Equal(removed, want) {
		t.Errorf("swept %q, want %q", removed, want)
	}
	wantForeign := []string{"qdisc 7400: dev " + p.LinkA + " (no fault of this agent's journal names it)", "table inet " + partition.TableName(theirs, "f-part")}
	if !slices.Equal(foreign, wantForeign) {
		t.Errorf("foreign %q, want %q", foreign, wantForeign)
	}
	if again, _ := sweepAs(mine); len(again) != 0 {
		t.Errorf("second sweep removed %q, want nothing (idempotent)", again)
	}
	got := agentMarks(t, p)
	for _, m := range []string{"qdisc 7400:0 dev " + p.LinkA, "table " + partition.TableName(theirs, "f-part")} {
		if !slices.Contains(got, m) {
			t.Errorf("after the sweep %q is gone, want it left (marks %q, before %q)", m, got, before)
		}
	}
}
