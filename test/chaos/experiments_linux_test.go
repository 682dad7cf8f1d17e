package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/controller/experiment"
	"github.com/turbulence-sre/turbulence/internal/linearize"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Experiments in the workload (docs/reliability.md, "The workload"): a
// client starts a short experiment — a step or two of cpu, memory or
// partition faults on a selector, an HTTP probe of a service the test
// serves in the hub — and follows it to its end. Some are aborted by
// hand, some by a probe the client makes fail, the others run to their
// end. Their member faults are ordinary faults, checked as the others
// once the run is over (checks 1 and 5–7); checks 8 and 9 are theirs.

// probePort is where the hub serves the experiments' probe.
const probePort = "8090"

// Bounds of an experiment of the workload.
const (
	// expStepMin and expStepMax bound a step's duration: shorter than the
	// lease, so that an experiment ends within seconds.
	expStepMin = 3 * time.Second
	expStepMax = 6 * time.Second
	// expRecovery is the experiments' recovery time.
	expRecovery = 5 * time.Second
	// expFollow bounds how long a client follows its experiment; one
	// still live after it is left to the check that every experiment
	// ends (check 8).
	expFollow = time.Minute
	// expSettle bounds how long the campaign waits, after the clients
	// stopped and the fleet is resumed, for every experiment to end.
	expSettle = time.Minute
)

// How an experiment of the workload is meant to end.
const (
	expToEnd      = "to its end"
	expAbortHand  = "aborted by hand"
	expAbortProbe = "aborted by a failing probe"
)

// expSelectors are the targets' selectors: each matches two agents or
// more (rack=rN is two agents).
var expSelectors = []string{"chaos=true", "rack=r0", "rack=r1", "rack in (r1,r2)", "rack!=r0"}

// probeService is the HTTP service the experiments probe, in the hub
// namespace: GET /x/TOKEN answers 200, or 503 once the experiment's
// client made TOKEN fail.
type probeService struct {
	srv     *http.Server
	done    chan struct{}
	stopped sync.Once

	mu      sync.Mutex
	failing map[string]bool
}

// startProbeService serves the probe on the hub's address.
func startProbeService(t *testing.T, c *procCluster) *probeService {
	t.Helper()
	p := &probeService{failing: map[string]bool{}, done: make(chan struct{})}
	var ln net.Listener
	var err error
	testutil.InNS(t, c.hub, func() { ln, err = net.Listen("tcp", hubIP+":"+probePort) })
	if err != nil {
		t.Fatalf("probe service: %v", err)
	}
	p.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, _ := strings.CutPrefix(r.URL.Path, "/x/")
		p.mu.Lock()
		bad := p.failing[token]
		p.mu.Unlock()
		if bad {
			http.Error(w, "failing on purpose", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(ln)
	}()
	return p
}

func (p *probeService) setFailing(token string, bad bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if bad {
		p.failing[token] = true
	} else {
		delete(p.failing, token)
	}
}

// stopOnce stops the service (a second call does nothing).
func (p *probeService) stopOnce() {
	p.stopped.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.srv.Shutdown(ctx)
		<-p.done
	})
}

// expRun is an experiment a client started and was told was recorded.
type expRun struct {
	id, req, mode string
	client        int
	call, ack     time.Time
	// abortAsked is when the client's AbortExperiment call was made
	// (zero: none), aborted whether it was acknowledged.
	abortAsked time.Time
	aborted    bool
	// probeFailed is when the client made its probe fail (zero: never).
	probeFailed time.Time
	// last is the experiment as the client last read it.
	last *turbulencev1.Experiment
}

// experimentSpec is a small experiment file: one or two steps, in
// sequence or in parallel, of cpu, memory or partition faults on one
// target, and the probe of token.
func (cl *wclient) experimentSpec(name, token string) string {
	sel := expSelectors[cl.rnd.IntN(len(expSelectors))]
	count := 1 + cl.rnd.IntN(2)
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nhypothesis: the lab's service answers while a step or two of faults run\nowner: chaos-client-%d\n", name, cl.id)
	fmt.Fprintf(&b, "seed: %d\n", 1+cl.rnd.Uint64N(1<<62))
	fmt.Fprintf(&b, "targets:\n  t: {selector: %q, count: %d}\n", sel, count)
	b.WriteString("steps:\n")
	steps := 1 + cl.rnd.IntN(2)
	for i := range steps {
		d := expStepMin + time.Duration(cl.rnd.Int64N(int64(expStepMax-expStepMin)))
		d = d.Round(100 * time.Millisecond)
		fmt.Fprintf(&b, "  - name: s%d\n    target: t\n    duration: %s\n    fault: %s\n", i, d, expFault(groupKinds[cl.rnd.IntN(len(groupKinds))]))
		if i > 0 && cl.rnd.IntN(2) == 0 {
			fmt.Fprintf(&b, "    after: s%d\n", i-1)
		}
	}
	fmt.Fprintf(&b, "probes:\n  - name: svc\n    interval: 250ms\n    http: {url: \"http://%s:%s/x/%s\", timeout: 2s}\n", hubIP, probePort, token)
	fmt.Fprintf(&b, "steady_state: [svc]\nabort_when: [svc]\nrecovery: %s\n", expRecovery)
	return b.String()
}

// expFault is a step's fault (the FaultSpec's JSON form without its
// duration), as small as the workload's faults.
func expFault(kind string) string {
	switch kind {
	case "cpu":
		return fmt.Sprintf("{cpu: {cores: 1, load_percent: %d}}", agentLoad)
	case "memory":
		return fmt.Sprintf("{memory: {bytes: %d}}", memoryBytes)
	default:
		return fmt.Sprintf("{partition: {target: {cidrs: [%q]}}}", victim)
	}
}

// experiment starts a short experiment and follows it to its end: by
// hand (AbortExperiment), by a failing probe, or to its end. The start
// and the abort are retried with their request IDs to a definite answer
// and recorded in the workload's log; the experiment is recorded for the
// checks (experiments in the history model: none; its member faults are
// left out of the history's lists, linearize.ExperimentFault).
func (cl *wclient) experiment(ctx context.Context) error {
	req := cl.nextReq("exp")
	token := req
	mode := []string{expToEnd, expToEnd, expAbortHand, expAbortProbe}[cl.rnd.IntN(4)]
	after := time.Second + time.Duration(cl.rnd.Int64N(int64(3*time.Second)))
	spec := cl.experimentSpec("chaos-"+req, token)
	call := time.Now()
	var x *turbulencev1.Experiment
	err := cl.retry(ctx, "start experiment "+req, func(api turbulencev1.ControlServiceClient, actx context.Context) error {
		var err error
		x, err = api.StartExperiment(actx, &turbulencev1.StartExperimentRequest{RequestId: req, Spec: []byte(spec)})
		return err
	})
	ret := time.Now()
	r := opRecord{client: cl.id, op: "experiment", req: req, call: call, ret: ret, acked: err == nil}
	if err != nil {
		var answer *answerError
		if !errors.As(err, &answer) {
			return err
		}
		r.err = answer.Error() // an answer: refused while halted, say
		cl.w.record(r)
		return nil
	}
	r.experiment = x.GetId()
	cl.w.record(r)
	run := &expRun{id: x.GetId(), req: req, mode: mode, client: cl.id, call: call, ack: ret, last: x}
	defer func() {
		cl.w.probe.setFailing(token, false)
		cl.w.mu.Lock()
		cl.w.experiments = append(cl.w.experiments, run)
		cl.w.mu.Unlock()
	}()

	follow := time.Now().Add(expFollow)
	acted := false
	for time.Now().Before(follow) {
		if g := cl.readExperiment(ctx, run.id); g != nil {
			run.last = g
			if experimentEnded(g.GetState()) {
				return nil
			}
		}
		if !acted && time.Since(ret) >= after && run.last.GetState() == turbulencev1.ExperimentState_EXPERIMENT_STATE_RUNNING {
			acted = true
			switch mode {
			case expAbortProbe:
				run.probeFailed = time.Now()
				cl.w.probe.setFailing(token, true)
				cl.w.record(opRecord{client: cl.id, op: "probe-fail", req: req, experiment: run.id, call: run.probeFailed, ret: run.probeFailed})
			case expAbortHand:
				if err := cl.abortExperiment(ctx, run); err != nil {
					return err
				}
			}
		}
		pauseFor(250 * time.Millisecond) // the pace of the reads, not synchronisation
	}
	return nil
}

// abortExperiment asks for run to be aborted, retried with one request ID
// to a definite answer. An answer that the experiment had ended already
// is an answer too.
func (cl *wclient) abortExperiment(ctx context.Context, run *expRun) error {
	req := cl.nextReq("abort")
	run.abortAsked = time.Now()
	var got *turbulencev1.Experiment
	err := cl.retry(ctx, "abort experiment "+run.id, func(api turbulencev1.ControlServiceClient, actx context.Context) error {
		var err error
		got, err = api.AbortExperiment(actx, &turbulencev1.AbortExperimentRequest{RequestId: req, Id: run.id, Reason: "chaos workload"})
		return err
	})
	r := opRecord{client: cl.id, op: "experiment-abort", req: req, experiment: run.id, call: run.abortAsked, ret: time.Now(), acked: err == nil}
	if err != nil {
		var answer *answerError
		if !errors.As(err, &answer) {
			return err
		}
		r.err = answer.Error()
	} else {
		run.aborted = true
		run.last = got
	}
	cl.w.record(r)
	return nil
}

// readExperiment reads an experiment at a random node, nil on an error
// (the next read tries again).
func (cl *wclient) readExperiment(ctx context.Context, id string) *turbulencev1.Experiment {
	node := cl.lin.Nodes[cl.rnd.IntN(len(cl.lin.Nodes))]
	actx, cancel := context.WithTimeout(ctx, historyAttempt)
	defer cancel()
	x, err := node.API.GetExperiment(consistentRead(actx), &turbulencev1.GetExperimentRequest{Id: id})
	if err != nil {
		return nil
	}
	return x
}

// answerError is a definite answer that is an error (not retryable).
type answerError struct{ err error }

func (e *answerError) Error() string { return e.err.Error() }

// retry runs call at random nodes until it has a definite answer: nil,
// or an *answerError; it returns ctx's error if none came in time.
func (cl *wclient) retry(ctx context.Context, what string, call func(turbulencev1.ControlServiceClient, context.Context) error) error {
	var last error
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: no answer (last attempt: %s): %w", what, errText(last), err)
		}
		if attempt > 0 {
			pauseFor(cl.lin.RetryPause)
		}
		node := cl.lin.Nodes[cl.rnd.IntN(len(cl.lin.Nodes))]
		actx, cancel := context.WithTimeout(ctx, historyAttempt)
		err := call(node.API, actx)
		cancel()
		switch {
		case err == nil:
			return nil
		case linearize.Retryable(err):
			last = err
			cl.w.noteRetry(err)
		default:
			return &answerError{err}
		}
	}
}

// experimentEnded: COMPLETED, ABORTED or REFUSED.
func experimentEnded(s turbulencev1.ExperimentState) bool {
	return s > turbulencev1.ExperimentState_EXPERIMENT_STATE_RUNNING
}

// settleExperiments waits until every experiment of the workload has
// ended, or expSettle has passed, reading each through any node, and
// returns the member faults of their steps as faults a client was told
// were made (the checks then cover them), with the experiment they
// belong to. It runs after the clients stopped.
func settleExperiments(t *testing.T, l *lab, w *workload) {
	t.Helper()
	w.mu.Lock()
	runs := slices.Clone(w.experiments)
	w.mu.Unlock()
	read := func(id string) *turbulencev1.Experiment {
		for _, n := range l.c.nodes {
			ctx, cancel := context.WithTimeout(context.Background(), callLimit)
			x, err := turbulencev1.NewControlServiceClient(l.c.conn(n)).GetExperiment(consistentRead(ctx), &turbulencev1.GetExperimentRequest{Id: id})
			cancel()
			if err == nil {
				return x
			}
		}
		return nil
	}
	poll(expSettle, func() bool {
		done := true
		for _, run := range runs {
			if experimentEnded(run.last.GetState()) {
				continue
			}
			if x := read(run.id); x != nil {
				run.last = x
			}
			done = done && experimentEnded(run.last.GetState())
		}
		return done
	})
	var members []appliedFault
	for _, run := range runs {
		for _, st := range run.last.GetSteps() {
			if st.GetGroupId() == "" {
				continue
			}
			g := readGroup(t, l, st.GetGroupId())
			started := st.GetStartedAt().AsTime()
			for _, m := range g.GetMembers() {
				if m.GetFaultId() == "" {
					continue
				}
				members = append(members, appliedFault{id: m.GetFaultId(), agent: m.GetAgentId(), kind: st.GetKind(), req: run.id + "/" + st.GetName(),
					group: g.GetId(), experiment: run.id, call: started, ack: started, ends: started.Add(st.GetDuration().AsDuration())})
			}
		}
	}
	w.mu.Lock()
	w.applied = append(w.applied, members...)
	w.mu.Unlock()
}

// readGroup reads a fault group through any node that answers.
func readGroup(t *testing.T, l *lab, id string) *turbulencev1.FaultGroup {
	t.Helper()
	var g *turbulencev1.FaultGroup
	var lastErr error
	if !poll(2*callLimit, func() bool {
		for _, n := range l.c.nodes {
			ctx, cancel := context.WithTimeout(context.Background(), callLimit)
			g, lastErr = turbulencev1.NewControlServiceClient(l.c.conn(n)).GetFaultGroup(consistentRead(ctx), &turbulencev1.GetFaultGroupRequest{Id: id})
			cancel()
			if lastErr == nil {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no node reads fault group %s: %v", id, lastErr)
	}
	return g
}

// abortedAt returns when run's experiment was aborted, as closely as the
// record says: the client's AbortExperiment call, the first failing
// sample of its probe while faults ran, or else (a halt, a leader
// change, every fault failed) when the controller recorded it ABORTED.
// ok is false for an experiment that was not aborted.
func (run *expRun) abortedAt() (time.Time, bool) {
	x := run.last
	if x.GetState() != turbulencev1.ExperimentState_EXPERIMENT_STATE_ABORTED {
		return time.Time{}, false
	}
	at := x.GetEndedAt().AsTime()
	if x.GetEndedAt() == nil {
		at = time.Now()
	}
	if !run.abortAsked.IsZero() && run.abortAsked.Before(at) {
		at = run.abortAsked
	}
	for _, e := range x.GetEvents() {
		if e.GetType() == "probe.failed" && e.GetTime().AsTime().Before(at) {
			at = e.GetTime().AsTime()
		}
	}
	return at, true
}

// experimentRuns returns the workload's experiments and, by fault, the
// experiment each member fault belongs to.
func (r *run) experimentRuns() ([]*expRun, map[string]*expRun) {
	r.w.mu.Lock()
	runs := slices.Clone(r.w.experiments)
	applied := slices.Clone(r.w.applied)
	r.w.mu.Unlock()
	byID := map[string]*expRun{}
	for _, run := range runs {
		byID[run.id] = run
	}
	of := map[string]*expRun{}
	for _, f := range applied {
		if run, ok := byID[f.experiment]; ok {
			of[f.id] = run
		}
	}
	return runs, of
}

// checkExperiments: check 8, every experiment ended (COMPLETED, ABORTED
// or REFUSED), none left PENDING or RUNNING once the run, the recovery
// and expSettle are over; check 9, an ABORTED experiment left no member
// fault in effect more than a second past its abort on the hosts (the
// sampler's looks), unless the member's agent or the leader was hurt
// then (counted apart: the agent's lease or deadline ends those, check 1).
func (r *run) checkExperiments() {
	r.t.Helper()
	runs, of := r.experimentRuns()
	for _, run := range runs {
		st := strings.TrimPrefix(run.last.GetState().String(), "EXPERIMENT_STATE_")
		r.fig.n["experiments "+st]++
		r.fig.n["experiments meant "+run.mode]++
		r.t.Logf("REPORT experiment %s (client %d, meant %s, started +%s): %s, verdict %s: %s", run.id, run.client, run.mode,
			run.call.Sub(r.began).Round(time.Millisecond), st, strings.TrimPrefix(run.last.GetVerdict().String(), "VERDICT_"), run.last.GetReason())
		if !experimentEnded(run.last.GetState()) {
			r.violation("8", "experiment %s (%s, started by client %d at +%s) is still %s after the run, its recovery and %s more",
				run.id, run.mode, run.client, run.call.Sub(r.began).Round(time.Millisecond), st, expSettle)
		}
	}
	for id, run := range of {
		r.fig.n["experiment member faults"]++
		at, aborted := run.abortedAt()
		if !aborted {
			continue
		}
		f, ok := r.faults[id]
		if !ok {
			continue
		}
		p := r.pres[id]
		if r.disturbed(f.GetAgentId(), at, at.Add(time.Second)) {
			r.fig.n["aborted members, agent or leader hurt"]++
			continue
		}
		r.fig.n["aborted members"]++
		if p.any.seenIn(at.Add(time.Second), time.Now()) {
			r.violation("9", "%s (%s on %s), of experiment %s aborted at %s (%s), was still in effect more than 1 s after the abort",
				id, kindOf(f), f.GetAgentId(), run.id, at.Format(time.StampMilli), run.last.GetReason())
		}
		if gone, ok := p.any.goneAfter(at); ok {
			r.worst("experiment abort", gone.Sub(at))
		}
	}
}

// TestExperimentSpec_Valid: every experiment file the workload draws is
// one the controller accepts (the parser and validator it runs), so that
// a refusal in a campaign is the controller's answer to the fleet's
// state, never to a malformed file.
func TestExperimentSpec_Valid(t *testing.T) {
	for seed := range uint64(200) {
		cl := &wclient{id: 1, rnd: rand.New(rand.NewPCG(seed, 1))}
		data := cl.experimentSpec(fmt.Sprintf("chaos-w1-exp-%d", seed), "w1-exp-1")
		spec, err := experiment.Parse([]byte(data))
		if err == nil {
			err = spec.Validate()
		}
		if err == nil {
			for i := range spec.Steps {
				if _, ferr := spec.Steps[i].FaultSpec(); ferr != nil {
					err = ferr
				}
			}
		}
		if err != nil {
			t.Fatalf("seed %d: the workload drew a file the controller refuses: %v\n%s", seed, err, data)
		}
	}
}
