package fleetsim_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
	"github.com/turbulence-sre/turbulence/test/fleetsim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testAgents is the fleet of the behaviour test: more than the
// controller's per-source connection cap (256) would not fit a test's
// time budget on the 2-core machine, but 200 is enough to see every
// label combination several times.
const testAgents = 200

// waitLimit bounds each wait of the tests: generous for a loaded machine,
// never a timing assertion.
const waitLimit = 60 * time.Second

func warnLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// errorLogger is for the fleet: a halt makes every agent warn.
func errorLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
}

// startServerFleet starts an in-process controller and n simulated agents
// attached to it.
func startServerFleet(t *testing.T, n int, configure func(*fleetsim.Config)) (*controllertest.Server, *fleetsim.Fleet) {
	t.Helper()
	srv := controllertest.NewServer(t, func(c *controller.Config) { c.Logger = warnLogger(t) })
	return srv, startFleet(t, srv, n, waitLimit, configure)
}

// startFleet starts n simulated agents against srv and waits up to limit
// for every one to attach.
func startFleet(t *testing.T, srv *controllertest.Server, n int, limit time.Duration, configure ...func(*fleetsim.Config)) *fleetsim.Fleet {
	t.Helper()
	ca, err := tlsutil.LoadCA(srv.PKI.Controller.CA, filepath.Join(srv.PKI.Dir, tlsutil.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg := fleetsim.Config{
		Controllers: []string{srv.Addr},
		CA:          ca,
		CAFile:      srv.PKI.Controller.CA,
		N:           n,
		Logger:      errorLogger(t),
	}
	for _, c := range configure {
		if c != nil {
			c(&cfg)
		}
	}
	f, err := fleetsim.Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(f.Close)
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	if err := f.WaitAttached(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

func cpuSpec(d time.Duration) *turbulencev1.FaultSpec {
	return &turbulencev1.FaultSpec{
		Duration: durationpb.New(d),
		Kind:     &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: 10}},
	}
}

// listAgents pages through ListAgents with selector and returns the IDs.
func listAgents(t *testing.T, c turbulencev1.ControlServiceClient, selector string) []string {
	t.Helper()
	var ids []string
	req := &turbulencev1.ListAgentsRequest{Selector: selector}
	for {
		resp, err := c.ListAgents(t.Context(), req)
		if err != nil {
			t.Fatalf("ListAgents(%q): %v", selector, err)
		}
		for _, a := range resp.GetAgents() {
			ids = append(ids, a.GetId())
		}
		if resp.GetNextPageToken() == "" {
			slices.Sort(ids)
			return ids
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

// TestFleet_AttachSelectApplyHalt runs testAgents simulated agents against
// a real controller: they all attach with their own identities and
// labels, a selector query returns exactly the web tier, a fault applied
// to one agent reaches that agent's injector and no other, and a halt
// reverts every fault and reaches every agent.
func TestFleet_AttachSelectApplyHalt(t *testing.T) {
	srv, f := startServerFleet(t, testAgents, nil)
	admin := srv.AdminClient(t)
	agents := f.Agents()

	t.Run("every agent registered with its labels, facts and capabilities", func(t *testing.T) {
		all := listAgents(t, admin, "")
		if len(all) != testAgents {
			t.Fatalf("ListAgents = %d agents, want %d", len(all), testAgents)
		}
		a := agents[testAgents-1]
		got, err := admin.GetAgent(t.Context(), &turbulencev1.GetAgentRequest{Id: a.ID()})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(a.Labels(), got.GetLabels()); diff != "" {
			t.Errorf("agent %s labels (-sim +controller):\n%s", a.ID(), diff)
		}
		if diff := cmp.Diff(slices.Sorted(slices.Values(faultspec.AllKinds)), got.GetCapabilities().GetFaultKinds()); diff != "" {
			t.Errorf("agent %s fault kinds (-every kind +controller):\n%s", a.ID(), diff)
		}
		if got.GetFacts().GetHostname() != a.ID() || got.GetFacts().GetAgentVersion() != "fleetsim" {
			t.Errorf("agent %s facts = %v, want hostname %s and version fleetsim", a.ID(), got.GetFacts(), a.ID())
		}
	})

	t.Run("a selector returns exactly the simulated web agents", func(t *testing.T) {
		var want []string
		for _, a := range agents {
			if a.Labels()["role"] == "web" {
				want = append(want, a.ID())
			}
		}
		got := listAgents(t, admin, "role=web")
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ListAgents(role=web) (-simulated web agents +listed):\n%s", diff)
		}
		if len(want) == 0 || len(want) == testAgents {
			t.Fatalf("%d web agents of %d: the labels do not split the fleet", len(want), testAgents)
		}
	})

	t.Run("a fault reaches its agent's injector with apply and revert times", func(t *testing.T) {
		target := agents[7]
		start := time.Now()
		fault, err := admin.ApplyFault(t.Context(), &turbulencev1.ApplyFaultRequest{RequestId: "fleetsim-one", AgentId: target.ID(), Spec: cpuSpec(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
		defer cancel()
		if err := f.WaitApplied(ctx, fault.GetId()); err != nil {
			t.Fatal(err)
		}
		lat, err := f.TimeToApply(start, fault.GetId())
		if err != nil {
			t.Fatal(err)
		}
		if lat[0].AgentID != target.ID() || lat[0].D <= 0 {
			t.Errorf("TimeToApply = %+v, want agent %s and a positive latency", lat, target.ID())
		}
		if _, err := admin.RevertFault(t.Context(), &turbulencev1.RevertFaultRequest{Id: fault.GetId()}); err != nil {
			t.Fatal(err)
		}
		if err := f.WaitReverted(ctx, fault.GetId()); err != nil {
			t.Fatal(err)
		}
		applyAt, revertAt := target.Received(fault.GetId())
		if applyAt.IsZero() || !revertAt.After(applyAt) {
			t.Errorf("Received(%s) = %v, %v, want an apply then a later revert", fault.GetId(), applyAt, revertAt)
		}
		for _, a := range agents {
			if a == target {
				continue
			}
			if at, _ := a.Received(fault.GetId()); !at.IsZero() {
				t.Errorf("agent %s, not the target, applied fault %s", a.ID(), fault.GetId())
			}
		}
	})

	t.Run("halt reverts every fault and reaches every agent", func(t *testing.T) {
		// One fault on each of a few agents (the write rate limit allows
		// bursts of 40 per identity), spread over the fleet.
		var ids []string
		for i := 0; i < testAgents; i += testAgents / 10 {
			fault, err := admin.ApplyFault(t.Context(), &turbulencev1.ApplyFaultRequest{RequestId: "fleetsim-halt-" + agents[i].ID(), AgentId: agents[i].ID(), Spec: cpuSpec(time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, fault.GetId())
		}
		ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
		defer cancel()
		if err := f.WaitApplied(ctx, ids...); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := admin.Halt(t.Context(), &turbulencev1.HaltRequest{RequestId: "fleetsim-halt", Reason: "fleetsim test"}); err != nil {
			t.Fatal(err)
		}
		if err := f.WaitReverted(ctx, ids...); err != nil {
			t.Fatal(err)
		}
		if _, err := f.TimeToRevert(start, ids...); err != nil {
			t.Fatal(err)
		}
		controllertest.WaitFor(t, waitLimit, "every agent halted", func() bool {
			return !slices.ContainsFunc(agents, func(a *fleetsim.Agent) bool { return !a.Halted() })
		})
		for _, id := range ids {
			rc, _ := f.Receipt(id)
			for _, st := range agentOf(agents, rc.AgentID).Faults() {
				if st.GetFaultId() == id && st.GetReason() != "halt" {
					t.Errorf("fault %s on %s ended with reason %q, want halt", id, rc.AgentID, st.GetReason())
				}
			}
		}
		if _, err := admin.Resume(t.Context(), &turbulencev1.ResumeRequest{RequestId: "fleetsim-resume"}); err != nil {
			t.Fatal(err)
		}
		controllertest.WaitFor(t, waitLimit, "every agent resumed", func() bool {
			return !slices.ContainsFunc(agents, (*fleetsim.Agent).Halted)
		})
	})

	if n := f.LeaseExpiries(); n != 0 {
		t.Errorf("%d lease expiries with a healthy controller, want 0", n)
	}
}

func agentOf(agents []*fleetsim.Agent, id string) *fleetsim.Agent {
	for _, a := range agents {
		if a.ID() == id {
			return a
		}
	}
	return nil
}

// TestStart_BadConfig: each bad field is refused with its name and limit,
// and nothing is started.
func TestStart_BadConfig(t *testing.T) {
	ca, _, _, err := tlsutil.NewCA("fleetsim test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	good := fleetsim.Config{Controllers: []string{"127.0.0.1:1"}, CA: ca, CAFile: "ca.crt", Dir: t.TempDir(), N: 1}
	tests := []struct {
		name   string
		change func(*fleetsim.Config)
		want   string
	}{
		{"no controllers", func(c *fleetsim.Config) { c.Controllers = nil }, "Controllers: at least one"},
		{"no CA", func(c *fleetsim.Config) { c.CA = nil }, "CA and CAFile"},
		{"no CA file", func(c *fleetsim.Config) { c.CAFile = "" }, "CA and CAFile"},
		{"zero agents", func(c *fleetsim.Config) { c.N = 0 }, "N: 0 agents, want 1 to 50000"},
		{"too many agents", func(c *fleetsim.Config) { c.N = fleetsim.MaxAgents + 1 }, "N: 50001 agents, want 1 to 50000"},
		{"bad name prefix", func(c *fleetsim.Config) { c.NamePrefix = "a/b" }, "NamePrefix: name \"a/b-0\": character '/'"},
		{"long name prefix", func(c *fleetsim.Config) { c.NamePrefix = strings.Repeat("x", 64) }, "NamePrefix: name \"" + strings.Repeat("x", 64) + "-0\" is 66 characters long, the maximum is 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			cfg.Dir = t.TempDir()
			tt.change(&cfg)
			f, err := fleetsim.Start(t.Context(), cfg)
			if err == nil {
				f.Close()
				t.Fatal("Start succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Start error = %q, want it to contain %q", err, tt.want)
			}
			if entries, _ := filepath.Glob(filepath.Join(cfg.Dir, "*")); len(entries) != 0 {
				t.Errorf("refused Start wrote %v, want nothing", entries)
			}
		})
	}
}

// TestStart_BadKinds: an unknown kind from Config.Kinds is refused naming
// the agent and the kind, before any certificate is written or any agent
// started (goleak checks).
func TestStart_BadKinds(t *testing.T) {
	ca, certPEM, _, err := tlsutil.NewCA("fleetsim test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fleetsim.Config{Controllers: []string{"127.0.0.1:1"}, CA: ca, CAFile: caFile, Dir: t.TempDir(), N: 3,
		Kinds: func(i int) []string {
			if i == 2 {
				return []string{"cpu", "gpu"}
			}
			return nil
		}}
	f, err := fleetsim.Start(t.Context(), cfg)
	if err == nil {
		f.Close()
		t.Fatal("Start succeeded, want an error")
	}
	if want := `agent sim-2: field Kinds: unknown fault kind "gpu"`; !strings.Contains(err.Error(), want) {
		t.Errorf("Start error = %q, want it to contain %q", err, want)
	}
	if entries, _ := filepath.Glob(filepath.Join(cfg.Dir, "*")); len(entries) != 0 {
		t.Errorf("refused Start wrote %v, want nothing", entries)
	}
}

// clusterAgents is the fleet of the cluster test: enough to see every
// agent follow the leader, few enough for a 3-node cluster in one test
// process on two cores.
const clusterAgents = 30

// TestFleet_FollowsTheLeader: agents given only the followers' addresses
// reach the leader through their Redirects, and when the leader crashes
// they all re-attach to the new one without a lease expiry (invariant 2:
// a failover shorter than the lease reverts nothing).
func TestFleet_FollowsTheLeader(t *testing.T) {
	c := controllertest.NewCluster(t, 3, func(_ int, cfg *controller.Config) { cfg.Logger = errorLogger(t) })
	leader := c.WaitLeader(t, waitLimit)
	var addrs []string
	for _, n := range c.Followers() {
		addrs = append(addrs, n.Addr)
	}
	ca, err := tlsutil.LoadCA(c.PKI.Controller.CA, filepath.Join(c.PKI.Dir, tlsutil.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	f, err := fleetsim.Start(t.Context(), fleetsim.Config{Controllers: addrs, CA: ca, CAFile: c.PKI.Controller.CA, N: clusterAgents, Logger: errorLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	allOn := func(addr string) func() bool {
		return func() bool {
			return !slices.ContainsFunc(f.Agents(), func(a *fleetsim.Agent) bool { return a.Attached() != addr })
		}
	}
	controllertest.WaitFor(t, waitLimit, "every agent attached to the leader", allOn(leader.Addr))

	if err := leader.Crash(); err != nil {
		t.Fatal(err)
	}
	// On a loaded machine a second election may follow the first: the
	// fleet must end on whoever leads.
	controllertest.WaitFor(t, waitLimit, "every agent re-attached to the new leader", func() bool {
		l := c.Leader()
		return l != nil && l != leader && allOn(l.Addr)()
	})
	if n := f.LeaseExpiries(); n != 0 {
		t.Errorf("%d lease expiries across a leader crash, want 0", n)
	}
}
