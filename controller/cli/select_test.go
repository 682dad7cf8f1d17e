package cli

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/internal/selector"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// selectControl serves goldenAgents, filtered by the request's selector
// and IDs as the controller filters them (with the same parser), and
// records every request.
type selectControl struct {
	turbulencev1.UnimplementedControlServiceServer

	mu   sync.Mutex
	reqs []*turbulencev1.ListAgentsRequest
}

func (s *selectControl) ListAgents(_ context.Context, req *turbulencev1.ListAgentsRequest) (*turbulencev1.ListAgentsResponse, error) {
	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	s.mu.Unlock()
	sel, err := selector.Parse(req.GetSelector())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "selector: "+err.Error())
	}
	resp := &turbulencev1.ListAgentsResponse{}
	for _, a := range goldenAgents().GetAgents() {
		if len(req.GetIds()) > 0 && !slices.Contains(req.GetIds(), a.GetId()) {
			continue
		}
		if sel.Matches(a.GetLabels()) {
			resp.Agents = append(resp.Agents, a)
		}
	}
	return resp, nil
}

func (s *selectControl) requests() []*turbulencev1.ListAgentsRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

func startSelect(t *testing.T) (*selectControl, map[string]string) {
	t.Helper()
	s := &selectControl{}
	addr, pki := serveFake(t, func(srv *grpc.Server) { turbulencev1.RegisterControlServiceServer(srv, s) })
	return s, map[string]string{EnvController: addr, EnvCA: pki.Admin.CA, EnvCert: pki.Admin.Cert, EnvKey: pki.Admin.Key}
}

// TestAgentsLs_SelectGolden: `agents ls --select` sends the selector as
// typed and prints only what the controller matched, in the usual table
// and JSON (testdata/agents_ls_select.*; regenerate with -update).
func TestAgentsLs_SelectGolden(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"table", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			s, environ := startSelect(t)
			r := runCLI(t, environ, "agents", "ls", "--select", "role=web,env in (prod,staging)", "-o", format)
			r.check(t, ExitOK)
			ext := map[string]string{"table": ".txt", "json": ".json"}[format]
			checkGolden(t, filepath.Join("testdata", "agents_ls_select"+ext), []byte(r.stdout))
			if reqs := s.requests(); len(reqs) != 1 || reqs[0].GetSelector() != "role=web,env in (prod,staging)" {
				t.Errorf("the controller got %v, want one request with the selector as typed", reqs)
			}
		})
	}
}

// TestAgentsLs_IDs: IDs given as arguments reach the controller with the
// selector, and only the agents both pick are printed.
func TestAgentsLs_IDs(t *testing.T) {
	t.Parallel()
	s, environ := startSelect(t)
	r := runCLI(t, environ, "agents", "ls", "--select", "!role", "web-1", "db-2", "gone-9")
	r.check(t, ExitOK)
	if !strings.Contains(r.stdout, "\ndb-2 ") || strings.Contains(r.stdout, "web-1") || strings.Contains(r.stdout, "new-3") {
		t.Errorf("agents ls --select '!role' web-1 db-2 gone-9 printed:\n%s\nwant db-2 alone", r.stdout)
	}
	reqs := s.requests()
	if len(reqs) != 1 || !slices.Equal(reqs[0].GetIds(), []string{"web-1", "db-2", "gone-9"}) {
		t.Errorf("the controller got %v, want the three IDs", reqs)
	}
}

// TestAgentsLs_BadSelectorNotSent: turbctl parses the selector before it
// dials; a bad one exits 3 naming --select and the rule, and the
// controller never sees the call.
func TestAgentsLs_BadSelectorNotSent(t *testing.T) {
	t.Parallel()
	s, environ := startSelect(t)
	for sel, want := range map[string]string{
		"role in (web":                    "not a label selector",
		"role=web server":                 "not a label selector",
		"cpus>4":                          `operator ">" on key "cpus" is not supported`,
		strings.Repeat("r", 2049):         "above the limit of 2048 bytes",
		"role=" + strings.Repeat("v", 64): "not a label selector",
	} {
		r := runCLI(t, environ, "agents", "ls", "--select", sel)
		r.check(t, ExitInvalid, "--select: ", want)
	}
	if reqs := s.requests(); len(reqs) != 0 {
		t.Errorf("the controller got %d requests; a bad selector must not be sent", len(reqs))
	}
}
