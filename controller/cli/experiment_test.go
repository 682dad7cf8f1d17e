package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/internal/selector"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// planControl is a test-only ControlService for experiment plan: a fixed
// fleet, ListAgents filtered by selector, and dry runs that choose the
// first eligible agents in ID order. Its first ApplyFaultGroup is refused
// by the rate limit, as a controller's is after a burst.
type planControl struct {
	turbulencev1.UnimplementedControlServiceServer

	mu      sync.Mutex
	groups  []*turbulencev1.ApplyFaultGroupRequest
	limited bool
}

var planFleet = []*turbulencev1.Agent{
	{Id: "db-1", Labels: map[string]string{"role": "db"}, Capabilities: &turbulencev1.Capabilities{FaultKinds: []string{"memory"}}},
	{Id: "web-1", Labels: map[string]string{"role": "web"}, Capabilities: &turbulencev1.Capabilities{FaultKinds: []string{"cpu", "memory"}}},
	{Id: "web-2", Labels: map[string]string{"role": "web"}, Capabilities: &turbulencev1.Capabilities{FaultKinds: []string{"cpu", "memory"}}},
	{Id: "web-3", Labels: map[string]string{"role": "web"}, Capabilities: &turbulencev1.Capabilities{FaultKinds: []string{"cpu", "memory"}}, LocallyHalted: true},
}

func (p *planControl) ListAgents(_ context.Context, req *turbulencev1.ListAgentsRequest) (*turbulencev1.ListAgentsResponse, error) {
	sel, err := selector.Parse(req.GetSelector())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	resp := &turbulencev1.ListAgentsResponse{}
	for _, a := range planFleet {
		if sel.Matches(a.GetLabels()) && (len(req.GetIds()) == 0 || contains(req.GetIds(), a.GetId())) {
			resp.Agents = append(resp.Agents, a)
		}
	}
	return resp, nil
}

func (p *planControl) ApplyFaultGroup(_ context.Context, req *turbulencev1.ApplyFaultGroupRequest) (*turbulencev1.FaultGroup, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.groups = append(p.groups, req)
	if !p.limited {
		p.limited = true
		st, _ := status.New(codes.ResourceExhausted, "rate limited").WithDetails(
			&errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{Subject: "admin/dev-admin", Description: "20 writes a second"}}},
			&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Millisecond)})
		return nil, st.Err()
	}
	sel, _ := selector.Parse(req.GetSelector())
	g := &turbulencev1.FaultGroup{DryRun: req.GetDryRun(), Seed: req.GetSeed(), Registered: uint32(len(planFleet))}
	var chosen, refused []*turbulencev1.GroupMember
	for _, a := range planFleet {
		if !sel.Matches(a.GetLabels()) || (len(req.GetAgentIds()) > 0 && !contains(req.GetAgentIds(), a.GetId())) {
			continue
		}
		g.Matched++
		if a.GetLocallyHalted() {
			refused = append(refused, &turbulencev1.GroupMember{AgentId: a.GetId(), Refusal: "locally halted"})
			continue
		}
		g.Eligible++
		if c := req.GetCount(); c == 0 || uint32(len(chosen)) < c {
			chosen = append(chosen, &turbulencev1.GroupMember{AgentId: a.GetId()})
		}
	}
	g.Chosen = uint32(len(chosen))
	g.Members = append(chosen, refused...)
	return g, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

const cliPlanFile = `
name: cli-plan
hypothesis: the web tier holds
owner: sre
seed: 7
targets:
  web: {selector: role=web, count: 1}
  db: {agents: [db-1]}
steps:
  - {name: burn, target: web, start: 5s, duration: 1m, fault: {cpu: {cores: 1, load_percent: 50}}}
  - {name: hog, target: db, after: burn, duration: 30s, fault: {memory: {bytes: 1048576}}}
probes:
  - name: home
    http: {url: "http://127.0.0.1:8080/healthz", max_latency: 300ms}
  - name: errors
    interval: 5s
    prometheus: {url: "http://127.0.0.1:9090", query: "sum(rate(errors_total[1m]))", max: 1}
  - name: web-cpu
    host: {target: web, metric: cpu_percent, max: 95}
steady_state: [home]
abort_when: [home, errors]
error_budget: {url: "http://127.0.0.1:9090", query: "budget_remaining", min_remaining: 0.25}
`

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExperimentPlan_Golden: the plan's table and JSON, against a fake
// fleet; the rate-limited first dry run is waited out and asked again,
// and every request is a dry run.
func TestExperimentPlan_Golden(t *testing.T) {
	t.Parallel()
	path := writeFile(t, cliPlanFile)
	for _, format := range []string{"table", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			p := &planControl{}
			addr, pki := serveFake(t, func(srv *grpc.Server) { turbulencev1.RegisterControlServiceServer(srv, p) })
			environ := map[string]string{EnvController: addr, EnvCA: pki.Admin.CA, EnvCert: pki.Admin.Cert, EnvKey: pki.Admin.Key}
			r := runCLI(t, environ, "experiment", "plan", path, "-o", format)
			r.check(t, ExitOK)
			ext := map[string]string{"table": ".txt", "json": ".json"}[format]
			checkGolden(t, filepath.Join("testdata", "experiment_plan"+ext), []byte(r.stdout))
			p.mu.Lock()
			defer p.mu.Unlock()
			// Two targets and two steps, and the rate-limited one again.
			if len(p.groups) != 5 {
				t.Errorf("the controller got %d dry runs, want 5 (4 and one retry)", len(p.groups))
			}
			for _, g := range p.groups {
				if !g.GetDryRun() {
					t.Errorf("a plan sent a group call without dry_run: %v", g)
				}
			}
		})
	}
}

// TestExperimentValidate_LocalProblems: a file with problems lists them
// all (table and JSON) and exits 3; a valid one prints its summary.
func TestExperimentValidate_LocalProblems(t *testing.T) {
	t.Parallel()
	// Problems of form (Parse), all at once; then, once the form is right,
	// every broken rule (Validate) at once.
	form := strings.NewReplacer("count: 1", "count: 0", "duration: 1m", "durration: 1m").Replace(cliPlanFile)
	rules := strings.NewReplacer("count: 1", "count: 1, min: 2", `"http://127.0.0.1:8080/healthz"`, `"ftp://127.0.0.1/x"`, "after: burn", "after: hog").Replace(cliPlanFile)
	for _, tc := range []struct {
		name, text, format string
		code               int
	}{
		{"experiment_validate_ok", cliPlanFile, "table", ExitOK},
		{"experiment_validate_form", form, "table", ExitInvalid},
		{"experiment_validate_rules", rules, "table", ExitInvalid},
		{"experiment_validate_rules", rules, "json", ExitInvalid},
	} {
		t.Run(tc.name+"/"+tc.format, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, tc.text)
			r := runCLI(t, nil, "experiment", "validate", path, "-o", tc.format)
			r.check(t, tc.code)
			ext := map[string]string{"table": ".txt", "json": ".json"}[tc.format]
			got := strings.ReplaceAll(r.stdout, path, "FILE")
			checkGolden(t, filepath.Join("testdata", tc.name+ext), []byte(got))
		})
	}
}
