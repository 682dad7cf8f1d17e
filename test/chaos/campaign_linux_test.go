package chaos

import (
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/internal/limits"
	"github.com/turbulence-sre/turbulence/internal/linearize"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// defaultCampaign is how long the nemesis runs when CHAOS_DURATION is not
// set: the short campaign of `make test`, about two minutes in all with
// the set-up and the checks.
const defaultCampaign = 60 * time.Second

// campaignConfig reads CHAOS_SEED (a random seed when unset) and
// CHAOS_DURATION (defaultCampaign when unset).
func campaignConfig(t *testing.T) (seed uint64, d time.Duration) {
	t.Helper()
	seed = rand.Uint64()
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("CHAOS_SEED=%q: want an unsigned 64-bit integer: %v", s, err)
		}
	}
	d = defaultCampaign
	if s := os.Getenv("CHAOS_DURATION"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d < 10*time.Second {
			t.Fatalf("CHAOS_DURATION=%q: want a Go duration of at least 10s (%v)", s, err)
		}
	}
	return seed, d
}

// TestPrivilegedChaosCampaign is a seeded chaos campaign on Turbulence
// itself (issue 18, docs/reliability.md): three controllers and six real
// agents, each in a namespace of its own, while clients apply, revert,
// halt and resume faults of every kind this kernel supports through the
// API, and a nemesis drawn from the seed kills, partitions, freezes and
// starves controllers, agents and the machine. A sampler looks at the
// hosts themselves throughout. The checks (checker_linux_test.go) run on
// what was sampled, what the clients were told and what the controllers
// recorded; the figures are logged for docs/reliability.md.
//
// A failure names its seed; `make chaos CHAOS_SEED=… CHAOS_DURATION=…`
// draws the same events and operations again, in the same order. Their
// timing, and so the interleaving with the daemons, does not replay
// exactly.
func TestPrivilegedChaosCampaign(t *testing.T) {
	testutil.RequirePrivileged(t)
	seed, d := campaignConfig(t)
	t.Logf("chaos campaign: seed %d, nemesis for %s (CHAOS_SEED, CHAOS_DURATION)", seed, d)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chaos campaign FAILED with seed %d; replay: make chaos CHAOS_SEED=%d CHAOS_DURATION=%s (same draws; the timing of the processes does not replay exactly)", seed, seed, d)
		}
	})
	began := time.Now()
	l := newLab(t)
	samp := startSampler(l.agents)
	t.Cleanup(func() { samp.stop() })
	history := linearize.NewHistory()
	w := startWorkload(l, seed, history)
	t.Cleanup(w.stop)
	nem := newNemesis(t, l, w, samp, seed)

	start := time.Now()
	nem.run(start.Add(d))
	for _, e := range nem.events {
		history.Note(e.String(), e.start, e.end)
	}
	w.stop()
	w.mu.Lock()
	errs := slices.Clone(w.errs)
	w.mu.Unlock()
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow() // a client gave up: the history is incomplete
	}
	// A client stopped between its halt and its resume leaves the fleet
	// halted: the test resumes it, as client 0 of the history.
	resumeFleet(t, l, history, w)
	// Every experiment ends, and its steps' member faults join the
	// faults the checks cover.
	settleExperiments(t, l, w)

	// Quiet: every fault's deadline, and every lease of an agent hurt
	// last, has passed by a second; the hosts are still sampled.
	quiet := nem.lastHeal().Add(leaseTTL + time.Second)
	ctl := collectFaults(t, l, w)
	for _, f := range ctl {
		if dl := f.GetDeadline().AsTime().Add(time.Second); dl.After(quiet) {
			quiet = dl
		}
	}
	t.Logf("campaign over after %s; waiting until %s for every deadline and lease", time.Since(start).Round(time.Millisecond), time.Until(quiet).Round(time.Millisecond))
	pauseFor(time.Until(quiet)) // the property's own bound, not synchronisation

	// The controllers hear the agents' reports once these are attached
	// again: then what they record is final.
	leader := l.c.waitLeader(l.c.nodes, electionLimit)
	var live []*procAgent
	for _, a := range l.agents {
		if !nem.dead[a.index] {
			live = append(live, a.procAgent)
		}
	}
	l.c.waitAttached(leader, live, startLimit)
	ctl = settledFaults(t, l, leader, w, nem)
	samples := samp.stop()

	r := &run{t: t, lab: l, nem: nem, w: w, faults: ctl, samples: samples, seed: seed, began: start, nemesisFor: d}
	r.events = listEvents(t, l, leader)
	r.audit = listAudit(t, l, leader)
	r.check()

	// Linearizable, and no acknowledged write lost on any node.
	l.c.checkHistory(history)
	for _, n := range l.c.nodes {
		l.c.waitHolds(n, history.Acknowledged(), false)
	}

	// Nothing left on any host: now, with the agents running, and after
	// each stopped (SIGTERM), which reverts what it holds.
	r.checkClean("after every deadline and lease")
	for _, a := range l.agents {
		l.c.stopAgent(a.procAgent)
	}
	r.checkClean("after the agents stopped")
	r.total = time.Since(began)
	r.report()
}

// resumeFleet resumes the fleet if a client left it halted, as client 0.
func resumeFleet(t *testing.T, l *lab, history *linearize.History, w *workload) {
	t.Helper()
	cl, conns := l.c.linClient(0, rand.New(rand.NewPCG(0, 0)), nil, history)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	call := time.Now()
	out, err := cl.Do(ctx, linearize.Input{Op: linearize.OpResume, Req: "campaign-final-resume"})
	if err != nil {
		t.Fatalf("resume the fleet at the end: %v", err)
	}
	w.record(opRecord{client: 0, op: string(linearize.OpResume), req: "campaign-final-resume", call: call, ret: time.Now(), acked: !out.Halted})
}

// collectFaults reads every fault the clients were told was made, with
// consistent reads of every page of ListFaults, through any node that
// answers.
func collectFaults(t *testing.T, l *lab, w *workload) map[string]*turbulencev1.Fault {
	t.Helper()
	w.mu.Lock()
	applied := slices.Clone(w.applied)
	w.mu.Unlock()
	var all map[string]*turbulencev1.Fault
	var lastErr error
	ok := poll(2*callLimit, func() bool {
		for _, n := range l.c.nodes {
			if all, lastErr = listFaults(l, n); lastErr == nil {
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("no node lists the faults: %v", lastErr)
	}
	out := map[string]*turbulencev1.Fault{}
	for _, f := range applied {
		if got, ok := all[f.id]; ok {
			out[f.id] = got
		} else {
			t.Errorf("acknowledged fault %s (request %s) is not in the controller's registry: a lost write", f.id, f.req)
		}
	}
	return out
}

func listFaults(l *lab, n *procNode) (map[string]*turbulencev1.Fault, error) {
	api := turbulencev1.NewControlServiceClient(l.c.conn(n))
	out := map[string]*turbulencev1.Fault{}
	for token := ""; ; {
		ctx, cancel := context.WithTimeout(context.Background(), callLimit)
		resp, err := api.ListFaults(consistentRead(ctx), &turbulencev1.ListFaultsRequest{PageSize: limits.MaxPageFaults, PageToken: token})
		cancel()
		if err != nil {
			return nil, err
		}
		for _, f := range resp.GetFaults() {
			out[f.GetId()] = f
		}
		if token = resp.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// settledFaults waits until the controller records no fault of a live
// agent as pending, active or reverting (every deadline has passed and
// the agents are attached: each has reported how its faults ended), and
// returns every fault. A fault still recorded live is a claim the
// controller cannot know to be true: an error.
func settledFaults(t *testing.T, l *lab, leader *procNode, w *workload, nem *nemesis) map[string]*turbulencev1.Fault {
	t.Helper()
	deadOwner := map[string]bool{}
	for i := range nem.dead {
		deadOwner[l.agents[i].name] = true
	}
	var faults map[string]*turbulencev1.Fault
	var stale []string
	poll(30*time.Second, func() bool {
		faults = collectFaults(t, l, w)
		stale = stale[:0]
		for id, f := range faults {
			switch f.GetState() {
			case turbulencev1.FaultState_FAULT_STATE_PENDING, turbulencev1.FaultState_FAULT_STATE_ACTIVE, turbulencev1.FaultState_FAULT_STATE_REVERTING:
				if !deadOwner[f.GetAgentId()] {
					stale = append(stale, id+" ("+f.GetAgentId()+", "+f.GetState().String()+")")
				}
			}
		}
		return len(stale) == 0
	})
	if len(stale) > 0 {
		slices.Sort(stale)
		t.Errorf("after every deadline, with its agent attached, the controller %s still records %d faults as live: %v", leader.id, len(stale), stale)
	}
	return faults
}

// listEvents reads the whole event log.
func listEvents(t *testing.T, l *lab, n *procNode) []*turbulencev1.Event {
	t.Helper()
	api := turbulencev1.NewControlServiceClient(l.c.conn(n))
	var out []*turbulencev1.Event
	for token := ""; ; {
		ctx, cancel := context.WithTimeout(context.Background(), callLimit)
		resp, err := api.ListEvents(consistentRead(ctx), &turbulencev1.ListEventsRequest{PageSize: 1000, PageToken: token})
		cancel()
		if err != nil {
			t.Fatalf("list events on %s: %v", n.id, err)
		}
		out = append(out, resp.GetEvents()...)
		if token = resp.GetNextPageToken(); token == "" {
			return out
		}
	}
}

// listAudit reads the whole audit log.
func listAudit(t *testing.T, l *lab, n *procNode) []*turbulencev1.AuditEntry {
	t.Helper()
	api := turbulencev1.NewControlServiceClient(l.c.conn(n))
	var out []*turbulencev1.AuditEntry
	for token := ""; ; {
		ctx, cancel := context.WithTimeout(context.Background(), callLimit)
		resp, err := api.ListAudit(consistentRead(ctx), &turbulencev1.ListAuditRequest{PageSize: 1000, PageToken: token})
		cancel()
		if err != nil {
			t.Fatalf("list audit on %s: %v", n.id, err)
		}
		out = append(out, resp.GetEntries()...)
		if token = resp.GetNextPageToken(); token == "" {
			return out
		}
	}
}
