package chaos

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/controller/agentapi"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// falseRevertSlack is how much before its deadline a fault of a healthy
// agent may be seen gone without counting as falsely reverted: the agent
// arms its timer at the controller's deadline (docs/design.md, "The life
// of a fault on the agent"), so this only covers the grain of the
// timestamps.
const falseRevertSlack = 250 * time.Millisecond

// run is one campaign's record: what the clients were told (the
// workload's log), what the nemesis did, what the hosts showed (the
// samples), what the controllers recorded (faults, events, audit).
type run struct {
	t          *testing.T
	lab        *lab
	nem        *nemesis
	w          *workload
	faults     map[string]*turbulencev1.Fault // acknowledged faults, as finally recorded
	samples    []sample
	events     []*turbulencev1.Event
	audit      []*turbulencev1.AuditEntry
	seed       uint64
	began      time.Time // the nemesis's start
	nemesisFor time.Duration
	total      time.Duration

	pres map[string]*faultPresence
	fig  figures
}

// figures are what docs/reliability.md reports of a run.
type figures struct {
	// worst[what] is the worst time a fault was seen in effect after
	// what (a deadline, a cut-off, a kill…), and n[what] over how many.
	worst map[string]time.Duration
	n     map[string]int
	// violations of each check, by check.
	violations map[string]int
	leftovers  int
	// neverSeen counts faults never seen on their host: refused by the
	// agent (FAILED), reverted or halted before they arrived, or sent to a
	// dead agent.
	neverSeen int
}

// presence is when one fault's marks of one class were seen on the host:
// runs of consecutive samples that saw them.
type presence struct {
	runs []presenceRun
	open bool
}

// presenceRun is a run of samples that saw a mark: the first and last of
// those samples' starts (the mark was there at some moment of each
// sample, so at or after its start), and goneBy, the end of the first
// sample after the run that saw it gone (zero if none did).
type presenceRun struct {
	first, last, goneBy time.Time
}

func (p *presence) see(s sample, present bool) {
	switch {
	case present && p.open:
		p.runs[len(p.runs)-1].last = s.start
	case present:
		p.runs = append(p.runs, presenceRun{first: s.start, last: s.start})
		p.open = true
	case p.open:
		p.runs[len(p.runs)-1].goneBy = s.end
		p.open = false
	}
}

// seenIn reports whether the mark was seen in effect at a moment in
// (from, to]: whether a run of samples that saw it overlaps that span.
// The samples in a run are one samplePeriod apart, so a span shorter
// than that may be missed; the spans checked are seconds long.
func (p *presence) seenIn(from, to time.Time) bool {
	for _, r := range p.runs {
		if r.last.After(from) && !r.first.After(to) {
			return true
		}
	}
	return false
}

// goneAfter returns when the mark, seen at from, was seen gone: the
// goneBy of the run that holds from. ok is false if it was not seen at
// from or never seen gone.
func (p *presence) goneAfter(from time.Time) (gone time.Time, ok bool) {
	for _, r := range p.runs {
		if !r.first.After(from) && (r.goneBy.IsZero() || r.goneBy.After(from)) {
			return r.goneBy, !r.goneBy.IsZero()
		}
	}
	return time.Time{}, false
}

func (p *presence) seen() bool { return len(p.runs) > 0 }

// heldAt reports whether the mark was seen at or before t, in a run not
// seen gone by t: in effect at t, as far as the samples tell.
func (p *presence) heldAt(t time.Time) bool {
	for _, r := range p.runs {
		if !r.first.After(t) && (r.goneBy.IsZero() || r.goneBy.After(t)) {
			return true
		}
	}
	return false
}

// faultPresence is one fault's presence on its host: any of its marks in
// effect, its guarded marks (tables, directories: what a guardian takes
// back) and its workers.
type faultPresence struct {
	any, guarded, worker presence
}

// build ties every sampled mark to its fault and records, fault by fault,
// when it was seen.
func (r *run) build() {
	idx := map[string]int{}
	for _, a := range r.lab.agents {
		idx[a.name] = a.index
	}
	byAgent := map[int][]string{}
	r.pres = map[string]*faultPresence{}
	for _, id := range slices.Sorted(maps.Keys(r.faults)) {
		byAgent[idx[r.faults[id].GetAgentId()]] = append(byAgent[idx[r.faults[id].GetAgentId()]], id)
		r.pres[id] = &faultPresence{}
	}
	for _, s := range r.samples {
		anyOf, guardedOf, workerOf := map[string]bool{}, map[string]bool{}, map[string]bool{}
		for m := range s.present {
			if !m.effect() {
				continue
			}
			id := faultOf(m, byAgent[m.agent])
			if id == "" {
				continue
			}
			anyOf[id] = true
			if strings.HasPrefix(m.what, "worker ") {
				workerOf[id] = true
			} else {
				guardedOf[id] = true
			}
		}
		for id, p := range r.pres {
			p.any.see(s, anyOf[id])
			p.guarded.see(s, guardedOf[id])
			p.worker.see(s, workerOf[id])
		}
	}
}

func (r *run) violation(check, format string, args ...any) {
	r.t.Helper()
	r.fig.violations[check]++
	r.t.Errorf("check %s: "+format, append([]any{check}, args...)...)
}

func (r *run) worst(what string, d time.Duration) {
	if r.fig.n[what] == 0 || d > r.fig.worst[what] {
		r.fig.worst[what] = d
	}
	r.fig.n[what]++
}

// check runs checks 1, 4, 5, 6 and 7 on the run (2 and 3 run on the live
// lab: checkClean, checkHistory, waitHolds).
func (r *run) check() {
	r.t.Helper()
	r.fig = figures{worst: map[string]time.Duration{}, n: map[string]int{}, violations: map[string]int{}}
	r.build()
	for _, check := range []string{"1", "2", "4", "5", "6", "7", "8", "9"} {
		r.fig.violations[check] += 0
	}
	r.checkDeadlines()
	r.checkLeases()
	r.checkAudit()
	r.checkRevertedRecords()
	r.checkFalseReverts()
	r.checkLeaseEnds()
	r.checkExperiments()
}

// checkDeadlines: check 1, no fault seen in effect more than a second past
// its deadline.
func (r *run) checkDeadlines() {
	r.t.Helper()
	for id, f := range r.faults {
		p := r.pres[id]
		if !p.any.seen() {
			r.fig.neverSeen++
			continue
		}
		dl := f.GetDeadline().AsTime()
		if p.any.seenIn(dl.Add(time.Second), time.Now()) {
			r.violation("1", "%s (%s on %s) was in effect more than 1 s past its deadline %s", id, kindOf(f), f.GetAgentId(), dl.Format(time.StampMilli))
		}
		// The figure: faults that ran up to their deadline.
		if gone, ok := p.any.goneAfter(dl.Add(-samplePeriod)); ok {
			r.worst("deadline", gone.Sub(dl))
		}
	}
}

// checkLeases: check 1, no fault in effect more than a second past its
// lease after its agent was cut off from every controller, killed or
// frozen (SIGSTOP) past its lease: a frozen agent's guardians take back
// the guarded kinds, and its workers end themselves when the lease file
// says the lease ran out (agent/leasefile).
func (r *run) checkLeases() {
	r.t.Helper()
	for _, e := range r.nem.events {
		if e.agent < 0 {
			continue
		}
		name := r.lab.agents[e.agent].name
		limit := e.start.Add(leaseTTL + time.Second)
		end := e.end
		if end.IsZero() {
			end = time.Now()
		}
		var what string
		switch e.kind {
		case nemCutAgent:
			what = "cut off"
		case nemKillAgent:
			what = "kill, restarted"
		case nemKillAgentNever:
			what = "kill, never restarted"
		case nemStopAgent:
			what = "SIGSTOP"
		}
		held, long := 0, 0
		for id, f := range r.faults {
			if f.GetAgentId() != name {
				continue
			}
			p := r.pres[id]
			if _, ok := p.any.goneAfter(e.start); ok {
				held++
				if f.GetDeadline().AsTime().After(limit) {
					long++
				}
			}
			if end.After(limit) && p.any.seenIn(limit, end) {
				r.violation("1", "%s (%s on %s) was in effect more than lease TTL + 1 s after its agent's %s at %s", id, kindOf(f), name, what, e.start.Format(time.StampMilli))
			}
			// The figure: faults held at the event whose deadline is
			// past the lease, so that only the lease (or a restart) ends
			// them; cut-offs and freezes that outlasted the lease.
			if !f.GetDeadline().AsTime().After(limit) || (e.kind == nemCutAgent || e.kind == nemStopAgent) && !end.After(limit) {
				continue
			}
			if gone, ok := p.any.goneAfter(e.start); ok {
				r.worst(what, gone.Sub(e.start))
			}
			if e.kind == nemStopAgent {
				if gone, ok := p.guarded.goneAfter(e.start); ok {
					r.worst("SIGSTOP, guarded kinds", gone.Sub(e.start))
				}
				if gone, ok := p.worker.goneAfter(e.start); ok {
					r.worst("SIGSTOP, workers", gone.Sub(e.start))
				}
			}
		}
		r.t.Logf("REPORT %s at +%s: %d faults in effect on %s then, %d of them with a deadline past the lease", e, e.start.Sub(r.began).Round(time.Millisecond), held, name, long)
	}
}

// auditActions are the audit actions of the workload's writes.
var auditActions = map[string]string{"apply": "fault.apply", "revert": "fault.revert", "halt": "fleet.halt", "resume": "fleet.resume",
	"group-apply": "fault.group.apply", "group-revert": "fault.group.revert", "experiment": "experiment.start"}

// checkAudit: check 4, every acknowledged write has its audit entry: its
// request ID, its action, no error.
func (r *run) checkAudit() {
	r.t.Helper()
	byReq := map[string][]*turbulencev1.AuditEntry{}
	for _, e := range r.audit {
		byReq[e.GetRequestId()] = append(byReq[e.GetRequestId()], e)
	}
	r.w.mu.Lock()
	ops := slices.Clone(r.w.ops)
	r.w.mu.Unlock()
	// A halt of a halted fleet writes nothing, by design
	// (controlapi.Server.Halt): a halt called while another client's halt
	// may be in force needs no entry.
	type clientSpan struct {
		client   int
		from, to time.Time
	}
	var halts []clientSpan
	open := map[int]time.Time{}
	for _, op := range ops {
		switch op.op {
		case "halt":
			open[op.client] = op.call
		case "resume":
			if from, ok := open[op.client]; ok {
				halts = append(halts, clientSpan{op.client, from, op.ret})
				delete(open, op.client)
			}
		}
	}
	for _, op := range ops {
		action, write := auditActions[op.op]
		if !write || !op.acked {
			continue
		}
		if op.noop || op.op == "halt" && slices.ContainsFunc(halts, func(h clientSpan) bool {
			return h.client != op.client && h.from.Before(op.ret) && h.to.After(op.call)
		}) {
			r.fig.n["writes that changed nothing"]++
			continue
		}
		r.fig.n["acknowledged writes"]++
		if !slices.ContainsFunc(byReq[op.req], func(e *turbulencev1.AuditEntry) bool {
			return e.GetAction() == action && e.GetError() == ""
		}) {
			r.violation("4", "acknowledged %s %s (request %s) has no audit entry %q without error; entries for it: %v", op.op, op.faultID, op.req, action, byReq[op.req])
		}
	}
}

// checkRevertedRecords: check 5, the controller never recorded a fault
// REVERTED while it was still in effect on its host: no sample that
// began after the fault.reverted event saw it.
func (r *run) checkRevertedRecords() {
	r.t.Helper()
	for _, e := range r.events {
		if e.GetType() != "fault.reverted" {
			continue
		}
		p, ok := r.pres[e.GetFaultId()]
		if !ok {
			continue
		}
		r.fig.n["reverted records"]++
		at := e.GetTime().AsTime()
		if p.any.seenIn(at, time.Now()) {
			r.violation("5", "the controller recorded %s (on %s) REVERTED at %s, but it was still in effect on its host after that", e.GetFaultId(), e.GetAgentId(), at.Format(time.StampMilli))
		}
	}
}

// span is an interval of the campaign.
type span struct{ from, to time.Time }

func (s span) overlaps(from, to time.Time) bool { return s.from.Before(to) && s.to.After(from) }

// asked returns when a revert was first asked of each fault (alone or by
// its group), and the spans in which the fleet may have been halted: from
// a halt's call to the next resume's answer.
func (r *run) asked() (reverted map[string]time.Time, halted []span) {
	r.w.mu.Lock()
	ops := slices.Clone(r.w.ops)
	r.w.mu.Unlock()
	open := map[int]time.Time{}
	reverted = map[string]time.Time{}
	ask := func(id string, at time.Time) {
		if t, ok := reverted[id]; !ok || at.Before(t) {
			reverted[id] = at
		}
	}
	for _, op := range ops {
		switch op.op {
		case "halt":
			open[op.client] = op.call
		case "resume":
			if from, ok := open[op.client]; ok {
				halted = append(halted, span{from, op.ret})
				delete(open, op.client)
			}
		case "revert":
			ask(op.faultID, op.call)
		case "group-revert":
			for _, id := range op.members {
				ask(id, op.call)
			}
		}
	}
	for _, from := range open {
		halted = append(halted, span{from, time.Now()})
	}
	// An experiment's abort reverts every member fault of its steps.
	_, of := r.experimentRuns()
	for id, run := range of {
		if at, ok := run.abortedAt(); ok {
			ask(id, at)
		}
	}
	return reverted, halted
}

// checkFalseReverts: check 6, no fault of an agent that stayed healthy,
// with its controllers healthy, with no revert asked and no halt, was
// seen gone before its deadline.
func (r *run) checkFalseReverts() {
	r.t.Helper()
	r.w.mu.Lock()
	applied := slices.Clone(r.w.applied)
	r.w.mu.Unlock()
	call := map[string]time.Time{}
	for _, a := range applied {
		call[a.id] = a.call
	}
	reverted, halted := r.asked()
	for id, f := range r.faults {
		from, to := call[id], f.GetDeadline().AsTime()
		if t, ok := reverted[id]; ok && t.Before(to) {
			continue
		}
		if slices.ContainsFunc(halted, func(h span) bool { return h.overlaps(from, to) }) {
			continue
		}
		if r.disturbed(f.GetAgentId(), from, to) {
			continue
		}
		r.fig.n["undisturbed faults"]++
		p := r.pres[id]
		if !p.any.seen() {
			if f.GetState() != turbulencev1.FaultState_FAULT_STATE_FAILED {
				r.violation("6", "%s (%s on %s) was never seen in effect on its host, with agent and controllers healthy, and is recorded %s (%s)", id, kindOf(f), f.GetAgentId(), f.GetState(), f.GetReason())
			}
			continue
		}
		for _, run := range p.any.runs {
			if !run.goneBy.IsZero() && run.goneBy.Before(to.Add(-falseRevertSlack)) {
				r.violation("6", "%s (%s on %s) was gone by %s, %s before its deadline, with agent and controllers healthy and no revert or halt asked; recorded %s (%s)",
					id, kindOf(f), f.GetAgentId(), run.goneBy.Format(time.StampMilli), to.Sub(run.goneBy).Round(time.Millisecond), f.GetState(), f.GetReason())
				break
			}
		}
	}
}

// checkLeaseEnds: check 7, the agent's own lease ends what it holds. An
// agent cut off from every controller for longer than its lease (+ 1 s)
// hears nothing and must take back, at the lease's end, every fault whose
// deadline is later (invariant 2); once it is attached again it reports
// how each ended, and the controller records that: REVERTED, "lease
// expired". A revert or halt asked while it is cut off changes nothing of
// that: it reaches the agent after its lease ended the fault. Its
// guardians and workers, which also read the lease, end the faults half a
// second later anyway, so check 1 alone cannot tell a lease that works
// from one that does nothing; the reason can. (An agent later
// than that half second under load fails this check too: its backstops
// then raced it, which they are meant never to do.) Faults a client
// asked to revert, or a halt may have touched, before the cut are left
// out, and so are faults whose end the controller never heard
// (UNCONFIRMED: say, the agent was killed before it reported; or closed
// by a later revert with the reason that the agent had no record,
// agentapi.ReasonGoneWithoutRecord).
func (r *run) checkLeaseEnds() {
	r.t.Helper()
	reverted, halted := r.asked()
	for _, e := range r.nem.events {
		if e.kind != nemCutAgent || e.end.IsZero() || e.end.Sub(e.start) <= leaseTTL+time.Second {
			continue
		}
		name := r.lab.agents[e.agent].name
		limit := e.start.Add(leaseTTL + time.Second)
		for _, id := range slices.Sorted(maps.Keys(r.faults)) {
			f := r.faults[id]
			if f.GetAgentId() != name || !f.GetDeadline().AsTime().After(limit) || !r.pres[id].any.heldAt(e.start) {
				continue
			}
			// What was asked after the cut reaches the agent only once it
			// is attached again, after its lease, which ended the fault
			// first: only what was asked before the cut (a second before,
			// for a halt that was still on its way) can have ended it.
			if t, ok := reverted[id]; ok && t.Before(e.start) {
				continue
			}
			if slices.ContainsFunc(halted, func(h span) bool { return h.overlaps(e.start.Add(-time.Second), e.start) }) {
				continue
			}
			// The controller says it does not know: the agent was killed
			// before it reported, and a revert later closed the fault
			// with the agent holding nothing and knowing nothing of it.
			if f.GetState() == turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED || strings.HasSuffix(f.GetReason(), agentapi.ReasonGoneWithoutRecord) {
				r.fig.n["lease ends not reported"]++
				continue
			}
			r.fig.n["lease ends"]++
			r.t.Logf("REPORT %s (%s on %s), held at the %s, ended %s: %s", id, kindOf(f), name, e, f.GetState(), f.GetReason())
			// Exactly the agent's reason: a worker that ended itself on the
			// lease file says so in a reason of its own (agent/worker), and
			// that is the backstop acting because the agent did not.
			if f.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTED || f.GetReason() != leaseReason {
				r.violation("7", "%s (%s on %s) was held when its agent was cut off at %s for %s, past its lease, but is recorded %s (%q), not ended by the lease",
					id, kindOf(f), name, e.start.Format(time.StampMilli), e.end.Sub(e.start).Round(time.Millisecond), f.GetState(), f.GetReason())
			}
		}
	}
}

// disturbed reports whether a nemesis event touched the agent, or the
// leader (which holds every agent's session), between from and to (the
// leader for settle after it was healed). CPU starvation and events on
// followers leave the agent and its controller healthy: a fault they
// take back is a false revert.
func (r *run) disturbed(agent string, from, to time.Time) bool {
	for _, e := range r.nem.events {
		switch {
		case e.kind == nemStarve:
			continue
		case e.agent >= 0 && r.lab.agents[e.agent].name != agent:
			continue
		case e.node >= 0 && !e.leader:
			continue
		}
		end := e.end
		if end.IsZero() {
			end = time.Now()
		}
		if e.start.Before(to) && end.Add(settle).After(from) {
			return true
		}
	}
	return false
}

// checkClean: check 2, nothing left on any host: no worker, no guardian,
// no table, no marked directory. Guardians exit just after the fault they
// watch is closed, so the look is repeated for a few seconds before
// anything is called left.
func (r *run) checkClean(when string) {
	r.t.Helper()
	var last sample
	poll(10*time.Second, func() bool {
		last = lookAt(r.lab.agents, func(err error) { r.t.Logf("sampling: %v", err) })
		return len(last.present) == 0
	})
	for _, m := range slices.SortedFunc(maps.Keys(last.present), func(a, b mark) int { return strings.Compare(a.what, b.what) }) {
		r.fig.leftovers++
		r.violation("2", "%s: %s's %s is left on its host", when, r.lab.agents[m.agent].name, m.what)
	}
}

func kindOf(f *turbulencev1.Fault) string {
	switch f.GetSpec().GetKind().(type) {
	case *turbulencev1.FaultSpec_Cpu:
		return "cpu"
	case *turbulencev1.FaultSpec_Memory:
		return "memory"
	case *turbulencev1.FaultSpec_DiskFill:
		return "disk_fill"
	case *turbulencev1.FaultSpec_DiskIo:
		return "disk_io"
	case *turbulencev1.FaultSpec_Partition:
		return "partition"
	}
	return fmt.Sprintf("%T", f.GetSpec().GetKind())
}

// report logs the run's figures, in the order of docs/reliability.md.
func (r *run) report() {
	t := r.t
	t.Logf("REPORT seed %d: nemesis for %s, whole run %s", r.seed, r.nemesisFor, r.total.Round(time.Second))
	counts := r.nem.counts()
	var ev []string
	for _, k := range nemesisTypes {
		ev = append(ev, fmt.Sprintf("%s: %d", k, counts[k]))
	}
	t.Logf("REPORT nemesis events (%d): %s", len(r.nem.events), strings.Join(ev, ", "))
	kinds, states := map[string]int{}, map[string]int{}
	for _, f := range r.faults {
		kinds[kindOf(f)]++
		states[strings.TrimPrefix(f.GetState().String(), "FAULT_STATE_")]++
	}
	t.Logf("REPORT faults acknowledged (%d) by kind: %v; final states: %v; never seen on their host: %d", len(r.faults), kinds, states, r.fig.neverSeen)
	for _, id := range slices.Sorted(maps.Keys(r.faults)) {
		switch f := r.faults[id]; f.GetState() {
		case turbulencev1.FaultState_FAULT_STATE_FAILED, turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED:
			t.Logf("REPORT %s %s (%s on %s, created +%s, deadline +%s, seen on its host: %v): %s", f.GetState(), id, kindOf(f), f.GetAgentId(),
				f.GetCreatedAt().AsTime().Sub(r.began).Round(time.Millisecond), f.GetDeadline().AsTime().Sub(r.began).Round(time.Millisecond), r.pres[id].any.seen(), f.GetReason())
		}
	}
	r.w.mu.Lock()
	wops := slices.Clone(r.w.ops)
	retried := maps.Clone(r.w.retried)
	r.w.mu.Unlock()
	ops := map[string]int{}
	for _, op := range wops {
		ops[op.op]++
	}
	t.Logf("REPORT client operations: %v", ops)
	groups, members, small := 0, 0, 0
	for _, op := range wops {
		switch {
		case op.op != "group-apply":
		case op.acked:
			groups++
			members += len(op.members)
		case strings.Contains(op.err, "too few"):
			small++
		}
	}
	t.Logf("REPORT attempts answered with an open outcome and retried elsewhere, by class: %v", retried)
	for _, e := range r.nem.events {
		if e.kind == nemFillLeader || e.kind == nemFillFollower {
			t.Logf("REPORT %s at +%s (leader: %v): %s", e, e.start.Sub(r.began).Round(time.Millisecond), e.leader, e.outcome)
		}
	}
	t.Logf("REPORT fault groups: %d made, %d member faults (checked as every other fault); %d refused for too few eligible agents", groups, members, small)
	var gaps []time.Duration
	for i := 1; i < len(r.samples); i++ {
		gaps = append(gaps, r.samples[i].start.Sub(r.samples[i-1].start))
	}
	if len(gaps) > 0 {
		t.Logf("REPORT host samples: %d, gap between samples max %s (period %s)", len(r.samples), slices.Max(gaps).Round(time.Millisecond), samplePeriod)
	}
	for _, what := range slices.Sorted(maps.Keys(r.fig.worst)) {
		t.Logf("REPORT worst time in effect after %s: %s (over %d faults)", what, r.fig.worst[what].Round(time.Millisecond), r.fig.n[what])
	}
	t.Logf("REPORT leftovers: %d; undisturbed faults: %d; reverted records: %d; acknowledged writes: %d (%d of them changed nothing: no audit entry due)",
		r.fig.leftovers, r.fig.n["undisturbed faults"], r.fig.n["reverted records"], r.fig.n["acknowledged writes"], r.fig.n["writes that changed nothing"])
	if len(r.events) > 0 && r.events[0].GetSequence() > 1 {
		t.Logf("REPORT the controllers' event log dropped its %d oldest events (its cap): check 5 saw the reverted records of the rest only", r.events[0].GetSequence()-1)
	}
	t.Logf("REPORT faults of agents cut off past the lease, ended by the lease as recorded: %d (and %d whose end was never reported)", r.fig.n["lease ends"], r.fig.n["lease ends not reported"])
	var xs []string
	for _, k := range slices.Sorted(maps.Keys(r.fig.n)) {
		if strings.HasPrefix(k, "experiment") || strings.HasPrefix(k, "aborted members") {
			xs = append(xs, fmt.Sprintf("%s: %d", k, r.fig.n[k]))
		}
	}
	t.Logf("REPORT experiments: %s", strings.Join(xs, ", "))
	t.Logf("REPORT violations by check (1 deadline/lease, 2 leftovers, 4 audit, 5 false REVERTED records, 6 false reverts, 7 lease ends, 8 experiments end, 9 aborted experiments' faults): %v", r.fig.violations)
}
