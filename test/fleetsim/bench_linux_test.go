package fleetsim_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/limits"
	"github.com/turbulence-sre/turbulence/internal/stats"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
	"github.com/turbulence-sre/turbulence/test/fleetsim"
	"github.com/turbulence-sre/turbulence/test/internal/testbuild"
)

// Bench knobs. FLEETSIM_AGENTS, a comma-separated list, replaces the
// default fleet size for manual runs at scale (5000, 10000).
const (
	defaultBenchAgents = "1000"
	// idleWindow is how long controller CPU is measured with the fleet
	// attached and idle but for its heartbeats; settle is waited first so
	// that the registrations' raft writes are over.
	idleWindow = 10 * time.Second
	settle     = 2 * time.Second
	// appliesPerOperator stays under the write rate limit's burst (40
	// per identity), so that applying one fault per agent is not paced
	// by it: the calls are spread over ceil(n/appliesPerOperator)
	// operator identities. The group apply of issue 14 will make this one
	// call.
	appliesPerOperator = 30
	// applySample is how many agents get one ApplyFault each.
	applySample = 200
	// applyConcurrency bounds the ApplyFault calls in flight, as a few
	// busy operators would; applyTries and applyCallLimit bound the
	// retries of one call.
	applyConcurrency = 32
	applyTries       = 5
	applyCallLimit   = 30 * time.Second
	// benchLimit bounds one fleet's whole run: a fixed part and a part
	// per agent, generous for the shared 2-core machine.
	benchLimit    = 2 * time.Minute
	benchPerAgent = 60 * time.Millisecond
)

// BenchmarkFleet runs a real controller binary (turbulence-controller
// --dev, its own process, so that its CPU and memory are its own) and a
// simulated fleet against it, and reports from the simulator's clock:
//
//   - mint-s: minting every agent's certificate (a P-256 key each);
//   - attach-p50/p99/max-ms: from the agents' start until a leader's
//     Welcome reached each one (max: the whole fleet attached);
//     attach-ctrl-cpu-s and attach-sim-cpu-s: the CPU seconds the
//     controller and the simulator (minting included) used until then;
//   - ctrl-idle-cpu-%: the controller's CPU (% of one core) over 10 s of
//     idle heartbeats (1 s interval), from /proc/<pid>/stat; sim-idle-cpu-%
//     the simulator's own over the same window;
//   - ctrl-rss-MB and ctrl-rss-KB-per-agent: its resident memory after the
//     window, and what the fleet added to it, per agent;
//   - group-call-ms: one ApplyFaultGroup choosing every agent (up to
//     limits.MaxGroupAgents), from the call until its answer;
//     group-apply-p50/p99/max-ms: from the call's start until each
//     member's agent's injector had it (max: every chosen agent);
//   - halt-call-ms: the Halt call, until its answer (the halt is in raft
//     and queued for every agent);
//   - halt-reach-p50/p99/max-ms: from the Halt call until each agent's
//     injector reverted its fault (max: every agent reached);
//   - group-not-ended-by-halt: the group's faults whose agents report
//     another end than the halt (a lease expiry before it);
//   - halt-recorded-ms: from the Halt call until the controller lists no
//     active fault (every fault recorded reverted), polled every 50 ms;
//   - apply-p50/p99-ms: then, one ApplyFault for each of 200 agents (32
//     calls at a time over several operator identities), each from its
//     call's start until its agent's injector had it; apply-ctrl-cpu-%
//     the controller's CPU meanwhile;
//   - failover-reattach-p50/p99/max-ms (3 nodes): the leader killed with
//     SIGKILL, from the kill until each agent had a session welcomed by
//     the new leader; failover-lease-expiries: lease expiries meanwhile
//     (each a fault reverted by the failover: must be 0);
//   - reconnects: sessions welcomed after an agent's first (lost ones),
//     before the failover;
//   - lease-expiries: lease expiries in the fleet, each a false revert;
//   - loadavg-1m: the machine's load when the run started (it is shared).
//
// Percentiles are internal/stats': nearest rank over the agents.
func BenchmarkFleet(b *testing.B) {
	bin := testbuild.BuildBinaries(b, b.TempDir(), "./controller/cmd/turbulence-controller")[0]
	sizes := os.Getenv("FLEETSIM_AGENTS")
	if sizes == "" {
		sizes = defaultBenchAgents
	}
	for s := range strings.SplitSeq(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > fleetsim.MaxAgents {
			b.Fatalf("FLEETSIM_AGENTS: %q is not a fleet size from 1 to %d", s, fleetsim.MaxAgents)
		}
		b.Run(fmt.Sprintf("nodes=%d/agents=%d", benchNodes(b), n), func(b *testing.B) {
			for b.Loop() {
				benchFleet(b, bin, n)
			}
			b.ReportMetric(0, "ns/op") // one op is a whole fleet's life
		})
	}
}

func benchFleet(b *testing.B, bin string, n int) {
	ctx, cancel := context.WithTimeout(b.Context(), benchLimit+time.Duration(n)*benchPerAgent)
	defer cancel()
	// The machine is shared: its load when the run starts says how far
	// the figures are from an idle machine's.
	report(b, loadAverage(b), "loadavg-1m")
	ctrl := startControllerProcess(b, bin)
	base, simBase := ctrl.sample(b), selfSample(b)

	t0 := time.Now()
	attachProfile := ctrl.profile(b, "profile", "attach-cpu", 30*time.Second)
	stopSimProfile := selfProfile(b, "sim-attach-cpu")
	f, err := fleetsim.Start(ctx, fleetsim.Config{
		Controllers: ctrl.addrs, CA: ctrl.ca, CAFile: ctrl.admin.CA, N: n,
		Logger: fleetLogger(b),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	// Said even when a later step fails: a run that stalls is the one
	// whose false reverts matter most.
	defer func() { b.Logf("%d agents: %d reconnects, %d lease expiries", n, f.Reconnects(), f.LeaseExpiries()) }()
	if err := f.WaitAttached(ctx); err != nil {
		b.Fatal(err)
	}
	report(b, f.Started().Sub(t0).Seconds(), "mint-s")
	attached, simAttached := ctrl.sample(b), selfSample(b)
	reportPercentiles(b, "attach", f.AttachTimes(f.Started()), true)
	// Where the attach's CPU went: the controller's and the simulator's
	// own (minting included), in CPU seconds, on a machine of two cores.
	report(b, float64(attached.ticks-base.ticks)/100, "attach-ctrl-cpu-s")
	report(b, float64(simAttached.ticks-simBase.ticks)/100, "attach-sim-cpu-s")

	// Idle: the fleet attached, nothing but heartbeats and lease renewals.
	// The figures are the leader's: it may have changed during the attach.
	if len(ctrl.cmds) > 1 {
		ctrl.findLeader(b)
	}
	stopSimProfile()
	attachProfile()
	measureFor(settle)
	idleProfile := ctrl.profile(b, "profile", "idle-cpu", idleWindow)
	before, simBefore := ctrl.sample(b), selfSample(b)
	measureFor(idleWindow)
	after, simAfter := ctrl.sample(b), selfSample(b)
	idleProfile()
	ctrl.profile(b, "heap", "idle-heap", 0)()
	ctrl.profile(b, "goroutine", "idle-goroutine", 0)()
	ctrl.profile(b, "metrics", "idle-metrics", 0)()
	report(b, after.cpuPercent(before), "ctrl-idle-cpu-%")
	report(b, simAfter.cpuPercent(simBefore), "sim-idle-cpu-%")
	report(b, float64(after.rssKB)/1024, "ctrl-rss-MB")
	report(b, float64(after.rssKB-base.rssKB)/float64(n), "ctrl-rss-KB-per-agent")
	// Also as a line, which survives a failure later in the run.
	at := stats.Millis(f.AttachTimes(f.Started()))
	b.Logf("%d agents: all attached in %.0f ms (p50 %.0f); idle controller %.1f %% of a core, RSS %d MB; load %.1f",
		n, stats.Percentile(at, 100), stats.Median(at), after.cpuPercent(before), after.rssKB/1024, loadAverage(b))

	// One group apply to the whole fleet (the controller's cap allows at
	// most limits.MaxGroupAgents in one call), from the call's start until
	// each chosen agent's injector had its member fault.
	admin := ctrl.client(b, ctrl.admin, "")
	start := time.Now()
	group, err := admin.ApplyFaultGroup(ctx, &turbulencev1.ApplyFaultGroupRequest{
		RequestId: fmt.Sprintf("bench-group-%d", start.UnixNano()),
		Spec:      cpuSpec(10 * time.Minute),
		Selector:  "fleet=sim",
		Count:     uint32(min(n, limits.MaxGroupAgents)),
	})
	if err != nil {
		b.Fatal(err)
	}
	called := time.Since(start)
	var ids []string
	for _, m := range group.GetMembers() {
		if m.GetRefusal() == "" && m.GetFaultId() != "" {
			ids = append(ids, m.GetFaultId())
		}
	}
	// An agent the controller has not heard for two heartbeat intervals
	// is offline and not chosen: on a saturated machine a few simulated
	// agents miss their beat. Counted, not fatal: the run still measures
	// the rest, and its lease expiries.
	want := min(n, limits.MaxGroupAgents)
	if len(ids) < want {
		b.Logf("group chose %d agents (%d eligible) of %d", len(ids), group.GetEligible(), want)
	}
	report(b, float64(want-len(ids)), "group-not-chosen")
	if err := f.WaitApplied(ctx, ids...); err != nil {
		b.Fatal(err)
	}
	reach, err := f.TimeToApply(start, ids...)
	if err != nil {
		b.Fatal(err)
	}
	report(b, float64(called.Milliseconds()), "group-call-ms")
	reportPercentiles(b, "group-apply", reach.Durations(), true)

	haltProfile := ctrl.profile(b, "profile", "halt-cpu", 20*time.Second)
	defer haltProfile()
	start = time.Now()
	if _, err := admin.Halt(ctx, &turbulencev1.HaltRequest{RequestId: fmt.Sprintf("bench-halt-%d", start.UnixNano()), Reason: "fleetsim bench"}); err != nil {
		b.Fatal(err)
	}
	report(b, float64(time.Since(start).Milliseconds()), "halt-call-ms")
	if err := f.WaitReverted(ctx, ids...); err != nil {
		b.Fatal(err)
	}
	if reach, err = f.TimeToRevert(start, ids...); err != nil {
		b.Fatal(err)
	}
	reportPercentiles(b, "halt-reach", reach.Durations(), true)
	report(b, float64(endedOtherwise(f, ids, "halt")), "group-not-ended-by-halt")
	recorded := waitNoActiveFault(ctx, b, admin)
	report(b, float64(recorded.Sub(start).Milliseconds()), "halt-recorded-ms")
	if _, err := admin.Resume(ctx, &turbulencev1.ResumeRequest{RequestId: fmt.Sprintf("bench-resume-%d", start.UnixNano())}); err != nil {
		b.Fatal(err)
	}

	// One ApplyFault per agent for a sample of the fleet, concurrently,
	// each from its own call's start: the single-fault path under load.
	sample := f.Agents()[:min(n, applySample)]
	controllertest.WaitFor(b, time.Minute, "the sample resumed", func() bool {
		return !slices.ContainsFunc(sample, (*fleetsim.Agent).Halted)
	})
	applyFrom := ctrl.sample(b)
	ids, starts := applyEach(ctx, b, ctrl, sample)
	report(b, ctrl.sample(b).cpuPercent(applyFrom), "apply-ctrl-cpu-%")
	if err := f.WaitApplied(ctx, ids...); err != nil {
		b.Fatal(err)
	}
	var apply []time.Duration
	for i, id := range ids {
		rc, _ := f.Receipt(id)
		apply = append(apply, rc.AppliedAt.Sub(starts[i]))
	}
	reportPercentiles(b, "apply", apply, false)

	report(b, float64(f.Reconnects()), "reconnects")
	report(b, float64(f.LeaseExpiries()), "lease-expiries")
	report(b, float64(n), "agents")
	report(b, float64(len(ctrl.cmds)), "nodes")
	report(b, float64(ctrl.leaderChanges), "leader-changes")

	// Last: it kills the leader. The figures above are a healthy
	// cluster's; lease-expiries among them must be 0.
	if len(ctrl.cmds) > 1 {
		failover(ctx, b, ctrl, f)
	}
}

// fleetLogger logs the simulated agents' errors to the bench's output,
// and with FLEETSIM_LOGS their warnings too (failed sessions: why an
// attach took long) to <bench>-agents.log there.
func fleetLogger(b *testing.B) *slog.Logger {
	dir := os.Getenv("FLEETSIM_LOGS")
	if dir == "" {
		return errorLogger(b)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, strings.NewReplacer("/", "_", "=", "-").Replace(b.Name())+"-agents.log"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close() })
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// failover kills the leader with SIGKILL while the whole fleet is
// attached and the sample's faults are live, and measures from the kill
// until each agent had a session welcomed by the new leader. Every lease
// expiry in that time is a fault reverted by a failover, which must not
// happen (invariant 2: a failover shorter than the lease reverts
// nothing).
func failover(ctx context.Context, b *testing.B, ctrl *controllerProcess, f *fleetsim.Fleet) {
	expired := f.LeaseExpiries()
	killed := time.Now()
	if err := ctrl.cmds[ctrl.leader].Process.Kill(); err != nil {
		b.Fatal(err)
	}
	if err := f.WaitReattached(ctx, killed); err != nil {
		b.Fatal(err)
	}
	reportPercentiles(b, "failover-reattach", f.ReattachTimes(killed), true)
	report(b, float64(f.LeaseExpiries()-expired), "failover-lease-expiries")
}

// report reports a figure, and logs it too: a run that fails later (at
// scale, on a loaded machine) prints no result line, but its log keeps
// the figures measured until then.
func report(b *testing.B, v float64, unit string) {
	b.ReportMetric(v, unit)
	b.Logf("%s %.4g", unit, v)
}

// endedOtherwise counts the faults of ids whose agent reports them ended
// for another reason than reason (a lease expiry before the halt).
func endedOtherwise(f *fleetsim.Fleet, ids []string, reason string) int {
	byID := map[string]*fleetsim.Agent{}
	for _, a := range f.Agents() {
		byID[a.ID()] = a
	}
	n := 0
	for _, id := range ids {
		rc, _ := f.Receipt(id)
		for _, st := range byID[rc.AgentID].Faults() {
			if st.GetFaultId() == id && st.GetReason() != reason {
				n++
			}
		}
	}
	return n
}

// measureFor waits out a measurement window. It synchronises nothing:
// what is measured runs on its own during it.
func measureFor(d time.Duration) {
	t := time.NewTimer(d)
	<-t.C
}

func reportPercentiles(b *testing.B, name string, ds []time.Duration, withMax bool) {
	ms := stats.Millis(ds)
	report(b, stats.Median(ms), name+"-p50-ms")
	report(b, stats.Percentile(ms, 99), name+"-p99-ms")
	if withMax {
		report(b, stats.Percentile(ms, 100), name+"-max-ms")
	}
}

// applyEach applies one CPU fault to each agent over operator identities,
// at most applyConcurrency calls at once, and returns the fault IDs with
// each call's start. A call the controller drops (Unavailable, or its own
// deadline on a saturated machine) is retried with the same request ID,
// which the controller makes idempotent; its latency counts from the
// first try.
func applyEach(ctx context.Context, b *testing.B, ctrl *controllerProcess, agents []*fleetsim.Agent) (ids []string, starts []time.Time) {
	ids, starts = make([]string, len(agents)), make([]time.Time, len(agents))
	errs := make([]error, len(agents))
	sem := make(chan struct{}, applyConcurrency)
	from := ctrl.sample(b)
	var wg sync.WaitGroup
	for k := 0; k*appliesPerOperator < len(agents); k++ {
		name := fmt.Sprintf("bench-operator-%d", k)
		files, err := ctrl.ca.IssueFiles(b.TempDir(), name, ctrl.admin.CA, tlsutil.Leaf{Identity: tlsutil.Identity{Role: tlsutil.RoleOperator, Name: name}, Validity: 30 * 24 * time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		// Operators dial from 127.2.x.y: past 256 of them, one address
		// would meet the controller's per-source cap.
		c := ctrl.client(b, files, fmt.Sprintf("127.2.%d.%d", k/250, 1+k%250))
		lo, hi := k*appliesPerOperator, min((k+1)*appliesPerOperator, len(agents))
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			for i := lo; i < hi; i++ {
				starts[i] = time.Now()
				req := &turbulencev1.ApplyFaultRequest{
					RequestId: fmt.Sprintf("bench-%d-%s", starts[i].UnixNano(), agents[i].ID()),
					AgentId:   agents[i].ID(),
					Spec:      cpuSpec(10 * time.Minute),
				}
				ids[i], errs[i] = applyRetrying(ctx, c, req)
				if errs[i] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		failed := 0
		for _, e := range errs {
			if e != nil {
				failed++
			}
		}
		b.Fatalf("%d of %d operators' applies failed; the controller used %.0f %% of a core meanwhile (load %.1f); the first failures: %s",
			failed, len(errs), ctrl.sample(b).cpuPercent(from), loadAverage(b), tail([]byte(err.Error()), 1000))
	}
	return ids, starts
}

// applyRetrying calls ApplyFault until it succeeds, fails for good, or
// applyTries calls failed for want of a controller.
func applyRetrying(ctx context.Context, c turbulencev1.ControlServiceClient, req *turbulencev1.ApplyFaultRequest) (string, error) {
	var err error
	for range applyTries {
		cctx, cancel := context.WithTimeout(ctx, applyCallLimit)
		var fault *turbulencev1.Fault
		fault, err = c.ApplyFault(cctx, req)
		cancel()
		if err == nil {
			return fault.GetId(), nil
		}
		if code := status.Code(err); ctx.Err() != nil || (code != codes.Unavailable && code != codes.DeadlineExceeded) {
			break
		}
	}
	return "", fmt.Errorf("apply to %s: %w", req.GetAgentId(), err)
}

// waitNoActiveFault polls until the controller lists no active fault and
// returns when it saw that.
func waitNoActiveFault(ctx context.Context, b *testing.B, c turbulencev1.ControlServiceClient) time.Time {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := c.ListFaults(ctx, &turbulencev1.ListFaultsRequest{ActiveOnly: true, PageSize: 1})
		if err != nil {
			b.Fatal(err)
		}
		if len(resp.GetFaults()) == 0 {
			return time.Now()
		}
		select {
		case <-ctx.Done():
			b.Fatalf("faults still active, the first %s: %v", resp.GetFaults()[0].GetId(), ctx.Err())
		case <-tick.C:
		}
	}
}

// controllerProcess is the controller cluster under test: one
// turbulence-controller --dev, or (FLEETSIM_NODES=3) three real
// controller processes that bootstrap a cluster with certificates from
// a CA of the bench's own. Figures of "the controller" are its leader's.
type controllerProcess struct {
	cmds   []*exec.Cmd
	addrs  []string
	leader int
	// addr is the leader's gRPC address: the admin dials it directly.
	addr string
	// found and leaderChanges: whether findLeader found one yet, and
	// how often it found another than the last.
	found         bool
	leaderChanges int
	// clusters are ClusterService clients of each node (isLeader).
	clusters []turbulencev1.ClusterServiceClient
	ca       *tlsutil.CA
	admin    tlsutil.Files
	// metrics are each node's --metrics-addr, set with FLEETSIM_PROFILES
	// (profilingArgs).
	metrics []string
}

// profilingArgs are the flags that serve a node's runtime profiles when
// FLEETSIM_PROFILES names a directory to keep them in, and records the
// metrics address in p; none otherwise.
func (p *controllerProcess) profilingArgs(b *testing.B) []string {
	if os.Getenv("FLEETSIM_PROFILES") == "" {
		return nil
	}
	addr := controllertest.FreeAddr(b)
	p.metrics = append(p.metrics, addr)
	return []string{"--metrics-addr", addr, "--pprof"}
}

// profile fetches the leader's CPU profile over the next d (kind
// "profile") or its heap profile now (kind "heap") into
// FLEETSIM_PROFILES/<bench>-<name>.pprof (kind "goroutine": the
// goroutines now; kind "metrics": its /metrics page, with the runtime's
// stack and heap figures), in the background: the
// returned function waits for it. Nothing happens without
// FLEETSIM_PROFILES. A failed fetch is logged; the figures do not
// depend on it.
func (p *controllerProcess) profile(b *testing.B, kind, name string, d time.Duration) (wait func()) {
	dir := os.Getenv("FLEETSIM_PROFILES")
	if dir == "" || len(p.metrics) <= p.leader {
		return func() {}
	}
	url := fmt.Sprintf("http://%s/debug/pprof/%s", p.metrics[p.leader], kind)
	if kind == "metrics" {
		url = fmt.Sprintf("http://%s/metrics", p.metrics[p.leader])
	}
	if kind == "profile" {
		url += fmt.Sprintf("?seconds=%d", int(d.Seconds()))
	}
	file := filepath.Join(dir, strings.NewReplacer("/", "_", "=", "-").Replace(b.Name())+"-"+name+".pprof")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fetchTo(b.Context(), url, file); err != nil {
			b.Logf("profile %s: %v", name, err)
		}
	}()
	return func() { <-done }
}

// selfProfile profiles the simulator's own CPU into
// FLEETSIM_PROFILES/<bench>-<name>.pprof until the returned function is
// called; nothing happens without FLEETSIM_PROFILES.
func selfProfile(b *testing.B, name string) (stop func()) {
	dir := os.Getenv("FLEETSIM_PROFILES")
	if dir == "" {
		return func() {}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	out, err := os.Create(filepath.Join(dir, strings.NewReplacer("/", "_", "=", "-").Replace(b.Name())+"-"+name+".pprof"))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		_ = out.Close()
		b.Logf("profile %s: %v", name, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		_ = out.Close()
	}
}

// fetchTo writes the body of GET url to file.
func fetchTo(ctx context.Context, url, file string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	out, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// benchElectionTimeout is FLEETSIM_RAFT_ELECTION_TIMEOUT, the cluster's
// --raft-election-timeout: "" keeps the controller's default (500ms).
// On a machine loaded far beyond its two cores, a leader busy attaching
// thousands of agents misses its raft heartbeats for longer than that,
// and the cluster changes leaders over and over (docs/benchmarks.md).
func benchElectionTimeout(b *testing.B) []string {
	v := os.Getenv("FLEETSIM_RAFT_ELECTION_TIMEOUT")
	if v == "" {
		return nil
	}
	if _, err := time.ParseDuration(v); err != nil {
		b.Fatalf("FLEETSIM_RAFT_ELECTION_TIMEOUT: %v", err)
	}
	return []string{"--raft-election-timeout", v}
}

// benchLeaseTTL is FLEETSIM_LEASE_TTL, the cluster's --lease-ttl: ""
// keeps the controller's default (15s). A fleet that takes longer than
// its lease to re-attach after a leader is killed loses every fault
// (failover-lease-expiries); docs/benchmarks.md says what a fleet of a
// given size needs here.
func benchLeaseTTL(b *testing.B) []string {
	v := os.Getenv("FLEETSIM_LEASE_TTL")
	if v == "" {
		return nil
	}
	if _, err := time.ParseDuration(v); err != nil {
		b.Fatalf("FLEETSIM_LEASE_TTL: %v", err)
	}
	return []string{"--lease-ttl", v}
}

// benchNodes is the cluster size of FLEETSIM_NODES: 1 (the default) or 3.
func benchNodes(b *testing.B) int {
	switch v := os.Getenv("FLEETSIM_NODES"); v {
	case "", "1":
		return 1
	case "3":
		return 3
	default:
		b.Fatalf("FLEETSIM_NODES: %q is not 1 or 3", v)
		return 0
	}
}

// startCmd starts one process (a controller, the soak's real agent)
// logging to dir/name.log and
// stops it (SIGTERM, then SIGKILL after 30 s) at the end of the bench.
//
// FLEETSIM_LOGS, when set, is a directory where the logs are kept after
// the bench (named after the benchmark and the process), for a run that
// went wrong at scale.
func startCmd(b *testing.B, bin, dir, name string, args ...string) *exec.Cmd {
	b.Helper()
	cmd, _ := startProc(b, bin, dir, name, args...)
	return cmd
}

// startProc is startCmd, and also returns a channel closed when the
// process has exited.
func startProc(b *testing.B, bin, dir, name string, args ...string) (*exec.Cmd, <-chan struct{}) {
	b.Helper()
	if keep := os.Getenv("FLEETSIM_LOGS"); keep != "" {
		dir = keep
		name = strings.NewReplacer("/", "_", "=", "-").Replace(b.Name()) + "-" + name
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	// exited is closed once the process was waited for; its exit status
	// does not matter (SIGTERM, or a kill after the grace).
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		_ = cmd.Wait()
	}()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(30 * time.Second)
		defer t.Stop()
		select {
		case <-exited:
		case <-t.C:
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = logf.Close()
		if b.Failed() {
			if out, err := os.ReadFile(logf.Name()); err == nil {
				b.Logf("%s log (tail):\n%s", name, tail(out, 4000))
			}
		}
	})
	return cmd, exited
}

func startControllerProcess(b *testing.B, bin string) *controllerProcess {
	b.Helper()
	if n := benchNodes(b); n > 1 {
		return startCluster(b, bin, n)
	}
	return startDevController(b, bin)
}

// startDevController starts one turbulence-controller --dev.
func startDevController(b *testing.B, bin string) *controllerProcess {
	b.Helper()
	dir := b.TempDir()
	addr, raft := controllertest.FreeAddr(b), controllertest.FreeAddr(b)
	// The group caps let one call choose the whole fleet, up to the
	// hard bound of limits.MaxGroupAgents.
	p := &controllerProcess{}
	args := []string{"--dev", "--data-dir", dir, "--node-id", "bench", "--grpc-addr", addr, "--raft-addr", raft,
		"--max-group-percent", "100", "--max-group-agents", strconv.Itoa(limits.MaxGroupAgents)}
	args = append(args, benchLeaseTTL(b)...)
	cmd := startCmd(b, bin, dir, "controller", append(args, p.profilingArgs(b)...)...)
	tlsDir := filepath.Join(dir, "tls")
	p.cmds, p.addrs, p.addr = []*exec.Cmd{cmd}, []string{addr}, addr
	p.admin = tlsutil.Files{
		CA: filepath.Join(tlsDir, tlsutil.CACertFile), Cert: filepath.Join(tlsDir, "admin.crt"), Key: filepath.Join(tlsDir, "admin.key"),
	}
	// EnsureDevPKI writes each key before its certificate, the admin's last.
	controllertest.WaitFor(b, 60*time.Second, "the dev PKI", func() bool {
		_, err := os.Stat(p.admin.Cert)
		return err == nil
	})
	var err error
	if p.ca, err = tlsutil.LoadCADir(tlsDir); err != nil {
		b.Fatal(err)
	}
	admin := p.client(b, p.admin, "")
	controllertest.WaitFor(b, 60*time.Second, "the controller to answer", func() bool {
		ctx, cancel := context.WithTimeout(b.Context(), time.Second)
		defer cancel()
		_, err := admin.GetHaltStatus(ctx, &turbulencev1.GetHaltStatusRequest{})
		return err == nil
	})
	return p
}

// startCluster starts n controller processes on loopback that bootstrap
// one cluster (--bootstrap-expect with every --peer), each with its own
// certificate, and waits for a leader.
func startCluster(b *testing.B, bin string, n int) *controllerProcess {
	b.Helper()
	dir := b.TempDir()
	tlsDir := filepath.Join(dir, "tls")
	ca, err := tlsutil.CreateCADir(tlsDir, "fleetsim bench CA", 365*24*time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	caPath := filepath.Join(tlsDir, tlsutil.CACertFile)
	p := &controllerProcess{ca: ca}
	if p.admin, err = ca.IssueFiles(tlsDir, "admin", caPath, tlsutil.Leaf{Identity: tlsutil.Identity{Role: tlsutil.RoleAdmin, Name: "bench-admin"}, Validity: 30 * 24 * time.Hour}); err != nil {
		b.Fatal(err)
	}
	var peers []string
	raftAddrs := make([]string, n)
	for i := range n {
		p.addrs = append(p.addrs, controllertest.FreeAddr(b))
		raftAddrs[i] = controllertest.FreeAddr(b)
		peers = append(peers, fmt.Sprintf("c%d=%s/%s", i+1, raftAddrs[i], p.addrs[i]))
	}
	for i := range n {
		id := fmt.Sprintf("c%d", i+1)
		files, err := ca.IssueFiles(tlsDir, "controller-"+id, caPath, tlsutil.Leaf{
			Identity: tlsutil.Identity{Role: tlsutil.RoleController, Name: id},
			DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Validity: 30 * 24 * time.Hour,
		})
		if err != nil {
			b.Fatal(err)
		}
		args := []string{"--node-id", id, "--data-dir", filepath.Join(dir, id),
			"--grpc-addr", p.addrs[i], "--raft-addr", raftAddrs[i], "--ca", files.CA, "--cert", files.Cert, "--key", files.Key,
			"--bootstrap-expect", strconv.Itoa(n), "--peer", strings.Join(peers, ","),
			"--max-group-percent", "100", "--max-group-agents", strconv.Itoa(limits.MaxGroupAgents)}
		args = append(args, p.profilingArgs(b)...)
		args = append(args, benchLeaseTTL(b)...)
		p.cmds = append(p.cmds, startCmd(b, bin, dir, id, append(args, benchElectionTimeout(b)...)...))
	}
	p.findLeader(b)
	return p
}

// findLeader waits for a node that says it leads and makes it the one
// the admin dials and the figures are read from. It counts a leader
// other than the last one found as a leader change.
func (p *controllerProcess) findLeader(b *testing.B) {
	b.Helper()
	last := p.leader
	controllertest.WaitFor(b, 2*time.Minute, "a leader among the controllers", func() bool {
		for i := range p.addrs {
			if p.isLeader(b, i) {
				p.leader, p.addr = i, p.addrs[i]
				return true
			}
		}
		return false
	})
	if p.found && p.leader != last {
		p.leaderChanges++
	}
	p.found = true
}

// isLeader asks node i whether it leads. A loaded leader may take
// seconds to finish a TLS handshake, so the question has 10 s; the
// connection is kept for the next one.
func (p *controllerProcess) isLeader(b *testing.B, i int) bool {
	if p.clusters == nil {
		p.clusters = make([]turbulencev1.ClusterServiceClient, len(p.addrs))
	}
	if p.clusters[i] == nil {
		tc, err := tlsutil.ClientConfig(p.admin, "")
		if err != nil {
			b.Fatal(err)
		}
		conn, err := grpc.NewClient(p.addrs[i], grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = conn.Close() })
		p.clusters[i] = turbulencev1.NewClusterServiceClient(conn)
	}
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Second)
	defer cancel()
	resp, err := p.clusters[i].ListServers(ctx, &turbulencev1.ListServersRequest{})
	if err != nil {
		return false
	}
	for _, s := range resp.GetServers() {
		if s.GetLeader() {
			return s.GetId() == resp.GetAnsweredBy()
		}
	}
	return false
}

// client is a ControlService client with files, dialling from source
// when it is not "".
func (p *controllerProcess) client(b *testing.B, files tlsutil.Files, source string) turbulencev1.ControlServiceClient {
	b.Helper()
	tc, err := tlsutil.ClientConfig(files, "")
	if err != nil {
		b.Fatal(err)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tc))}
	if source != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}))
	}
	conn, err := grpc.NewClient(p.addr, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	return turbulencev1.NewControlServiceClient(conn)
}

// procSample is a process's CPU time and resident memory at one moment.
type procSample struct {
	at    time.Time
	ticks uint64 // utime+stime, USER_HZ (100 a second on every Linux ABI)
	rssKB uint64
}

// cpuPercent is the CPU used between prev and s, in % of one core.
func (s procSample) cpuPercent(prev procSample) float64 {
	return float64(s.ticks-prev.ticks) / 100 / s.at.Sub(prev.at).Seconds() * 100
}

// sample reads the leader's process.
func (p *controllerProcess) sample(b *testing.B) procSample {
	return readProc(b, strconv.Itoa(p.cmds[p.leader].Process.Pid))
}

func selfSample(b *testing.B) procSample { return readProc(b, "self") }

// readProc reads utime+stime from /proc/<pid>/stat (fields 14 and 15,
// counted after the command name, which may hold spaces) and VmRSS from
// /proc/<pid>/status.
func readProc(b *testing.B, pid string) procSample {
	b.Helper()
	s := procSample{at: time.Now()}
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	for _, i := range []int{14, 15} {
		v, err := strconv.ParseUint(f[i-3], 10, 64)
		if err != nil {
			b.Fatalf("/proc/%s/stat field %d: %v", pid, i, err)
		}
		s.ticks += v
	}
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			s.rssKB, err = strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("/proc/%s/status VmRSS: %v", pid, err)
			}
		}
	}
	return s
}

// loadAverage is the first field of /proc/loadavg.
func loadAverage(b *testing.B) float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		b.Fatal(err)
	}
	v, err := strconv.ParseFloat(strings.Fields(string(data))[0], 64)
	if err != nil {
		b.Fatalf("/proc/loadavg: %v", err)
	}
	return v
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
