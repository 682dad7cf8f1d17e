package controlapi

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller/agentapi"
	"github.com/turbulence-sre/turbulence/controller/hostseries"
	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/limits"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// quietHub is a Dispatcher with no sessions: the list calls read only the
// state here.
type quietHub struct{}

func (quietHub) DispatchApply(*turbulencev1.Fault)          {}
func (quietHub) DispatchRevert(*turbulencev1.Fault, string) {}
func (quietHub) BroadcastHalt(string)                       {}
func (quietHub) BroadcastResume()                           {}
func (quietHub) Liveness(string) (agentapi.Liveness, bool)  { return agentapi.Liveness{}, false }
func (quietHub) HeldStatus(string, string) (*turbulencev1.FaultStatus, bool) {
	return nil, false
}
func (quietHub) HostMetrics() *hostseries.Store { return hostseries.New(0, 0) }

// bigFleet is 30,000 agents and 30,000 faults (one per agent, created a
// millisecond apart, and a few sharing a creation time so that the ID
// breaks the tie), applied to the state as raft would.
const bigFleet = 30_000

func bigFleetServer(t *testing.T, size int) (*Server, context.Context) {
	t.Helper()
	st := state.New()
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	for i := range size {
		m := state.Meta{Time: t0, Actor: "agent/x"}
		id := fmt.Sprintf("agent-%05d", i)
		if _, err := st.ApplyRegisterAgent(m, &turbulencev1.Agent{Id: id, Labels: map[string]string{"zone": "z" + fmt.Sprint(i%3)}}); err != nil {
			t.Fatal(err)
		}
		created := t0.Add(time.Duration(i/4) * time.Millisecond)
		f := &turbulencev1.Fault{
			Id: fmt.Sprintf("f-%05d", size-i), AgentId: id, CreatedAt: timestamppb.New(created),
			Deadline: timestamppb.New(created.Add(time.Minute)),
			Spec:     &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{LoadPercent: 10}}},
		}
		if _, err := st.ApplyCreateFault(state.Meta{Time: created}, f); err != nil {
			t.Fatal(err)
		}
	}
	ca, _, _, err := tlsutil.NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return New(Config{State: st, Hub: quietHub{}}), callerCtx(t, ca, tlsutil.Identity{Role: tlsutil.RoleViewer, Name: "v"})
}

// TestPaging_BigFleet lists 30,000 agents and 30,000 faults from the
// state by following page tokens with the default page size, as turbctl
// does: every record comes once, in order, and no page is larger than a
// gRPC message.
func TestPaging_BigFleet(t *testing.T) {
	s, ctx := bigFleetServer(t, bigFleet)

	var agents []string
	pages := 0
	for token := ""; ; {
		resp, err := s.ListAgents(ctx, &turbulencev1.ListAgentsRequest{PageToken: token})
		if err != nil {
			t.Fatalf("ListAgents page %d: %v", pages, err)
		}
		pages++
		if n := proto.Size(resp); n > limits.MaxMessageBytes {
			t.Fatalf("ListAgents page %d is %d bytes, above the message cap", pages, n)
		}
		if len(resp.GetAgents()) > limits.DefaultPageAgents {
			t.Fatalf("ListAgents page %d has %d agents, above the default page of %d", pages, len(resp.GetAgents()), limits.DefaultPageAgents)
		}
		for _, a := range resp.GetAgents() {
			agents = append(agents, a.GetId())
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(agents) != bigFleet || pages != bigFleet/limits.DefaultPageAgents {
		t.Fatalf("ListAgents pages = %d agents in %d pages, want %d in %d", len(agents), pages, bigFleet, bigFleet/limits.DefaultPageAgents)
	}
	for i, id := range agents {
		if want := fmt.Sprintf("agent-%05d", i); id != want {
			t.Fatalf("agent %d = %s, want %s (every agent once, by ID)", i, id, want)
		}
	}

	seen := map[string]bool{}
	var last *turbulencev1.Fault
	for token := ""; ; {
		resp, err := s.ListFaults(ctx, &turbulencev1.ListFaultsRequest{PageToken: token, PageSize: limits.MaxPageFaults})
		if err != nil {
			t.Fatalf("ListFaults: %v", err)
		}
		for _, f := range resp.GetFaults() {
			if seen[f.GetId()] {
				t.Fatalf("fault %s listed twice", f.GetId())
			}
			seen[f.GetId()] = true
			if last != nil && f.GetCreatedAt().AsTime().Before(last.GetCreatedAt().AsTime()) {
				t.Fatalf("fault %s listed after the newer %s", f.GetId(), last.GetId())
			}
			last = f
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(seen) != bigFleet {
		t.Fatalf("ListFaults pages = %d faults, want %d", len(seen), bigFleet)
	}

	// A filter is applied before paging: one agent's faults, one page.
	resp, err := s.ListFaults(ctx, &turbulencev1.ListFaultsRequest{AgentId: "agent-00042"})
	if err != nil || len(resp.GetFaults()) != 1 || resp.GetNextPageToken() != "" {
		t.Fatalf("ListFaults(agent-00042) = %v, %v; want its one fault and no next page", resp, err)
	}
}

func TestPaging_Refusals(t *testing.T) {
	s, ctx := bigFleetServer(t, 10)
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"agents page_size above the maximum", func() error {
			_, err := s.ListAgents(ctx, &turbulencev1.ListAgentsRequest{PageSize: limits.MaxPageAgents + 1})
			return err
		}, fmt.Sprintf("page_size: %d is above the maximum of %d", limits.MaxPageAgents+1, limits.MaxPageAgents)},
		{"faults page_size above the maximum", func() error {
			_, err := s.ListFaults(ctx, &turbulencev1.ListFaultsRequest{PageSize: 1 << 30})
			return err
		}, fmt.Sprintf("page_size: 1073741824 is above the maximum of %d", limits.MaxPageFaults)},
		{"events limit above the maximum", func() error {
			_, err := s.ListEvents(ctx, &turbulencev1.ListEventsRequest{Limit: limits.MaxPageEvents + 1})
			return err
		}, fmt.Sprintf("limit: %d is above the maximum of %d", limits.MaxPageEvents+1, limits.MaxPageEvents)},
		{"a token of another list", func() error {
			_, err := s.ListAgents(ctx, &turbulencev1.ListAgentsRequest{PageToken: faultToken(state.FaultCursor{ID: "f-1"})})
			return err
		}, "page_token: is not a page token of this list"},
		{"a made-up token", func() error {
			_, err := s.ListFaults(ctx, &turbulencev1.ListFaultsRequest{PageToken: "!!"})
			return err
		}, "page_token: is not a page token of this list"},
		{"an unknown kind", func() error {
			_, err := s.ListFaults(ctx, &turbulencev1.ListFaultsRequest{Kind: "gpu"})
			return err
		}, `kind: "gpu" is not a fault kind`},
		{"until before since", func() error {
			_, err := s.ListFaults(ctx, &turbulencev1.ListFaultsRequest{Since: timestamppb.Now(), Until: timestamppb.New(time.Unix(0, 0))})
			return err
		}, "until: must be after since"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tt.want) {
				t.Fatalf("error = %v, want InvalidArgument with %q", err, tt.want)
			}
		})
	}
}

// TestPaging_NoPageSizeGetsFirstPage: a caller that sends no page size
// (every client before paging) gets the first page and a token, never the
// whole list.
func TestPaging_NoPageSizeGetsFirstPage(t *testing.T) {
	s, ctx := bigFleetServer(t, 2000)
	a, err := s.ListAgents(ctx, &turbulencev1.ListAgentsRequest{})
	if err != nil || len(a.GetAgents()) != limits.DefaultPageAgents || a.GetNextPageToken() == "" {
		t.Fatalf("ListAgents{} = %d agents, token %q, %v; want the default page and a token", len(a.GetAgents()), a.GetNextPageToken(), err)
	}
	f, err := s.ListFaults(ctx, &turbulencev1.ListFaultsRequest{})
	if err != nil || len(f.GetFaults()) != limits.DefaultPageFaults || f.GetNextPageToken() == "" {
		t.Fatalf("ListFaults{} = %d faults, token %q, %v; want the default page and a token", len(f.GetFaults()), f.GetNextPageToken(), err)
	}
	e, err := s.ListEvents(ctx, &turbulencev1.ListEventsRequest{})
	if err != nil || len(e.GetEvents()) != limits.DefaultPageEvents || e.GetNextPageToken() == "" {
		t.Fatalf("ListEvents{} = %d events, token %q, %v; want the default page and a token", len(e.GetEvents()), e.GetNextPageToken(), err)
	}
	// The next page of events starts after the last one.
	e2, err := s.ListEvents(ctx, &turbulencev1.ListEventsRequest{PageToken: e.GetNextPageToken()})
	if err != nil || e2.GetEvents()[0].GetSequence() != e.GetEvents()[len(e.GetEvents())-1].GetSequence()+1 {
		t.Fatalf("ListEvents next page = %v, want it to start right after the first", err)
	}
}
