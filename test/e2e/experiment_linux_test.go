package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/agent/policy"
	"github.com/turbulence-sre/turbulence/controller/cli"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// experimentFleet starts a controller and three real agents: web-1 and
// web-2 (role=web, every kind their policy allows) and db-1 (role=db,
// whose policy allows memory faults only).
func experimentFleet(t *testing.T) *fleet {
	t.Helper()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("agents need Linux /proc")
	}
	srv := controllertest.NewServer(t, nil)
	f := &fleet{srv: srv, api: srv.AdminClient(t)}
	for _, id := range []string{"web-1", "web-2", "db-1"} {
		role := strings.TrimRight(id, "-12")
		files := srv.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleAgent, Name: id})
		runAgent(t, []string{srv.Addr}, files, func(c *agent.Config) {
			c.Labels = map[string]string{"role": role}
			if role == "db" {
				p := policy.Default()
				p.AllowedKinds = []string{"memory"}
				c.Policy = &p
			}
		})
	}
	controllertest.WaitFor(t, waitLong, "the three agents to connect", func() bool {
		resp, err := f.api.ListAgents(t.Context(), &turbulencev1.ListAgentsRequest{})
		n := 0
		for _, a := range resp.GetAgents() {
			if a.GetConnected() {
				n++
			}
		}
		return err == nil && n == 3
	})
	return f
}

// record is what turbctl experiment validate and plan must leave as they
// were: the raft log, the faults, the groups and the audit log.
type record struct {
	raftIndex              uint64
	faults, groups, audits int
}

func (f *fleet) record(t *testing.T) record {
	t.Helper()
	ctx := t.Context()
	fl, err1 := f.api.ListFaults(ctx, &turbulencev1.ListFaultsRequest{})
	gl, err2 := f.api.ListFaultGroups(ctx, &turbulencev1.ListFaultGroupsRequest{})
	al, err3 := f.api.ListAudit(ctx, &turbulencev1.ListAuditRequest{})
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return record{f.srv.Controller.LastRaftIndex(), len(fl.GetFaults()), len(gl.GetGroups()), len(al.GetEntries())}
}

// experimentText is a valid experiment over the fleet of experimentFleet;
// %s is the Prometheus URL.
const experimentText = `
name: e2e-plan
hypothesis: the web tier holds
owner: sre
targets:
  web: {selector: role=web, count: 1}
  db: {selector: role=db}
steps:
  - {name: burn, target: web, start: 5s, duration: 1m, fault: {cpu: {cores: 1, load_percent: 50}}}
  - {name: hog, target: db, after: burn, duration: 30s, fault: {memory: {bytes: 1048576}}}
probes:
  - name: errors
    prometheus: {url: "%s", query: "sum(rate(http_requests_total[1m]))", max: 1}
  - name: web-cpu
    host: {target: web, metric: cpu_percent, max: 95}
steady_state: [errors, web-cpu]
abort_when: [errors]
`

func writeExperiment(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "experiment.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExperimentPlan_RealFleetTouchesNothing: against a real controller,
// real agents and a real Prometheus, `experiment validate --server` and
// `experiment plan` answer what a run would do, and write nothing: no
// fault, no group, no raft entry, no audit record.
func TestExperimentPlan_RealFleetTouchesNothing(t *testing.T) {
	f := experimentFleet(t)
	prom := startPrometheus(t)
	path := writeExperiment(t, fmt.Sprintf(experimentText, prom))
	before := f.record(t)

	if code, out, stderr := f.turbctl(t, "experiment", "validate", "--server", path); code != cli.ExitOK {
		t.Fatalf("experiment validate --server: exit %d\n%s\n%s", code, out, stderr)
	} else if !strings.Contains(out, "yes, checked: file, controller, prometheus") {
		t.Errorf("experiment validate --server output:\n%s", out)
	}
	code, out, stderr := f.turbctl(t, "experiment", "plan", path, "--seed", "7", "-o", "json")
	if code != cli.ExitOK {
		t.Fatalf("experiment plan: exit %d\n%s\n%s", code, out, stderr)
	}
	var plan struct {
		Seed    uint64 `json:"seed"`
		Targets []struct {
			Name  string `json:"name"`
			Group struct {
				Chosen []string `json:"chosen"`
			} `json:"group"`
		} `json:"targets"`
		Steps []struct {
			Name  string `json:"name"`
			Start string `json:"start"`
			End   string `json:"end"`
			Group struct {
				Chosen []string `json:"chosen"`
			} `json:"group"`
		} `json:"steps"`
		Problems []any `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("plan JSON: %v\n%s", err, out)
	}
	if plan.Seed != 7 || len(plan.Problems) != 0 || len(plan.Targets) != 2 || len(plan.Steps) != 2 {
		t.Fatalf("plan = %+v", plan)
	}
	db, web := plan.Targets[0].Group.Chosen, plan.Targets[1].Group.Chosen
	if len(web) != 1 || !strings.HasPrefix(web[0], "web-") || len(db) != 1 || db[0] != "db-1" {
		t.Errorf("chosen: web %v, db %v; want one web agent and db-1", web, db)
	}
	if got := plan.Steps[1]; got.Start != "1m5s" || got.End != "1m35s" || strings.Join(got.Group.Chosen, ",") != "db-1" {
		t.Errorf("step hog = %+v, want 1m5s..1m35s on db-1", got)
	}
	// The table form, for people.
	if code, out, _ := f.turbctl(t, "experiment", "plan", path, "--seed", "7"); code != cli.ExitOK || !strings.Contains(out, "burn  web") {
		t.Errorf("experiment plan (table): exit %d\n%s", code, out)
	} else {
		t.Logf("experiment plan:\n%s", out)
	}
	if after := f.record(t); after != before {
		t.Errorf("after validate and plan: %+v, before: %+v; they must write nothing", after, before)
	}
}

// TestExperimentValidate_ServerRefusals: each bad input the issue names
// gets a clear error at validate, with its field, and nothing is written.
func TestExperimentValidate_ServerRefusals(t *testing.T) {
	f := experimentFleet(t)
	prom := startPrometheus(t)
	good := fmt.Sprintf(experimentText, prom)
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"selector that matches nothing", "selector: role=web,", "selector: role=cache,",
			"targets.web  matches no registered agent (selector role=cache)"},
		{"fault kind no chosen agent supports", "{memory: {bytes: 1048576}}", "{cpu: {cores: 1, load_percent: 10}}",
			// hog now asks db-1, whose policy allows memory only, for cpu.
			`steps[1].fault  no agent of target "db" supports cpu faults (the 1 it matches report: memory)`},
		{"cap above the controller's", "count: 1", "count: 3",
			"targets.web.count  the controller refuses it: the call would choose 2 agents, above the controller's cap of 1"},
		{"query that does not parse", "sum(rate(http_requests_total[1m]))", "sum(rate(http_requests_total[1m])",
			"probes[0].prometheus.query"},
		{"probe URL that is not http(s)", `url: "` + prom, `url: "ftp://` + strings.TrimPrefix(prom, "http://"),
			`probes[0].prometheus.url  must be an http:// or https:// URL, got scheme "ftp"`},
		{"cap of 0", "count: 1", "count: 0", "targets.web.count  must be at least 1: a cap of 0 chooses no agent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Replace(good, tc.from, tc.to, 1)
			if text == good {
				t.Fatalf("%q is not in the file", tc.from)
			}
			want := tc.want
			before := f.record(t)
			code, out, stderr := f.turbctl(t, "experiment", "validate", "--server", writeExperiment(t, text))
			if code != cli.ExitInvalid || !strings.Contains(out, want) {
				t.Errorf("experiment validate --server: exit %d, want %d with %q\n%s\n%s", code, cli.ExitInvalid, want, out, stderr)
			}
			t.Logf("experiment validate --server:\n%s", out)
			if after := f.record(t); after != before {
				t.Errorf("after a refused validate: %+v, before: %+v", after, before)
			}
		})
	}
}
