package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/internal/limits"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// pagedControl serves n agents in pages as the controller does (by ID,
// the token naming the last ID's index), and counts the calls.
type pagedControl struct {
	turbulencev1.UnimplementedControlServiceServer
	n int

	mu     sync.Mutex
	calls  int
	sizes  []uint32
	halted int
	events []*turbulencev1.ListEventsRequest
}

func (p *pagedControl) ListEvents(_ context.Context, req *turbulencev1.ListEventsRequest) (*turbulencev1.ListEventsResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, req)
	if req.GetPageToken() == "" {
		return &turbulencev1.ListEventsResponse{Events: []*turbulencev1.Event{{Sequence: 1, Type: "fault.created"}}, NextPageToken: "1"}, nil
	}
	return &turbulencev1.ListEventsResponse{Events: []*turbulencev1.Event{{Sequence: 2, Type: "fault.active"}}}, nil
}

func (p *pagedControl) ListAgents(_ context.Context, req *turbulencev1.ListAgentsRequest) (*turbulencev1.ListAgentsResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	p.sizes = append(p.sizes, req.GetPageSize())
	size := int(req.GetPageSize())
	if size == 0 {
		size = limits.DefaultPageAgents
	}
	if size > limits.MaxPageAgents {
		return nil, status.Errorf(codes.InvalidArgument, "page_size: %d is above the maximum of %d", size, limits.MaxPageAgents)
	}
	start := 0
	if t := req.GetPageToken(); t != "" {
		i, err := strconv.Atoi(t)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, "page_token: bad")
		}
		start = i + 1
	}
	resp := &turbulencev1.ListAgentsResponse{}
	for i := start; i < p.n && len(resp.Agents) < size; i++ {
		resp.Agents = append(resp.Agents, &turbulencev1.Agent{Id: fmt.Sprintf("a-%04d", i)})
	}
	if last := start + len(resp.Agents) - 1; last < p.n-1 {
		resp.NextPageToken = strconv.Itoa(last)
	}
	return resp, nil
}

func (p *pagedControl) Halt(context.Context, *turbulencev1.HaltRequest) (*turbulencev1.HaltStatus, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.halted++
	return &turbulencev1.HaltStatus{Halted: true}, nil
}

func startPaged(t *testing.T, n int) (*pagedControl, map[string]string) {
	t.Helper()
	p := &pagedControl{n: n}
	addr, pki := serveFake(t, func(srv *grpc.Server) { turbulencev1.RegisterControlServiceServer(srv, p) })
	return p, map[string]string{EnvController: addr, EnvCA: pki.Admin.CA, EnvCert: pki.Admin.Cert, EnvKey: pki.Admin.Key}
}

// TestAgentsLs_FollowsPages: turbctl prints every agent of a list longer
// than a page, in full pages, and --limit stops it early.
func TestAgentsLs_FollowsPages(t *testing.T) {
	t.Parallel()
	p, environ := startPaged(t, 450)
	r := runCLI(t, environ, "agents", "ls", "-o", "json")
	r.check(t, ExitOK)
	var out struct{ Agents []struct{ ID string } }
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Agents) != 450 || out.Agents[0].ID != "a-0000" || out.Agents[449].ID != "a-0449" {
		t.Fatalf("agents ls printed %d agents, want all 450 in order", len(out.Agents))
	}
	if p.calls != 3 {
		t.Errorf("agents ls made %d calls (page sizes %v), want 3 full pages of %d", p.calls, p.sizes, limits.MaxPageAgents)
	}

	p, environ = startPaged(t, 450)
	r = runCLI(t, environ, "agents", "ls", "--limit", "250")
	r.check(t, ExitOK)
	if n := strings.Count(r.stdout, "\na-"); n != 250 {
		t.Errorf("agents ls --limit 250 printed %d agents", n)
	}
	if p.calls != 2 || p.sizes[1] != 50 {
		t.Errorf("agents ls --limit 250: calls %d with page sizes %v, want 200 then 50", p.calls, p.sizes)
	}
}

// TestHalt_OversizedReasonNotSent: turbctl checks the bounds before
// sending, exits 3 naming the field and the limit, and the controller
// never sees the call.
func TestHalt_OversizedReasonNotSent(t *testing.T) {
	t.Parallel()
	p, environ := startPaged(t, 1)
	r := runCLI(t, environ, "halt", "--reason", strings.Repeat("x", limits.MaxReason+1))
	r.check(t, ExitInvalid, "reason: is 1025 bytes long, above the limit of 1024 bytes")
	if p.halted != 0 {
		t.Errorf("the controller got %d halts; the oversized one must not be sent", p.halted)
	}
	r = runCLI(t, environ, "halt", "--reason", "bad deploy")
	r.check(t, ExitOK)
}

// TestEvents_FiltersAndPages: the filters reach the controller on every
// page, and every page is printed.
func TestEvents_FiltersAndPages(t *testing.T) {
	t.Parallel()
	p, environ := startPaged(t, 1)
	r := runCLI(t, environ, "events", "--agent", "web-1", "--type", "fault.", "--after", "0")
	r.check(t, ExitOK)
	if !strings.Contains(r.stdout, "fault.created") || !strings.Contains(r.stdout, "fault.active") {
		t.Errorf("events printed:\n%s\nwant both pages", r.stdout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.events) != 2 {
		t.Fatalf("ListEvents calls = %d, want 2 pages", len(p.events))
	}
	for _, req := range p.events {
		if req.GetAgentId() != "web-1" || req.GetType() != "fault." {
			t.Errorf("ListEvents request %v lacks the filters", req)
		}
	}
	r = runCLI(t, environ, "events", "--follow", "--agent", "web-1")
	r.check(t, ExitUsage, "--agent and --type filter the listing")
}
