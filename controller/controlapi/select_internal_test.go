package controlapi

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestListAgents_Select: the selector and the explicit IDs filter before
// paging; every matching agent comes once, in ID order, whatever the page
// size, and no other agent comes at all. bigFleetServer labels agent i
// with zone z(i%3).
func TestListAgents_Select(t *testing.T) {
	t.Parallel()
	s, ctx := bigFleetServer(t, 300)
	zone := func(i int) string { return fmt.Sprintf("z%d", i%3) }
	ids := func(keep func(i int) bool) []string {
		var out []string
		for i := range 300 {
			if keep(i) {
				out = append(out, fmt.Sprintf("agent-%05d", i))
			}
		}
		return out
	}
	tests := []struct {
		name string
		req  *turbulencev1.ListAgentsRequest
		want []string
	}{
		{"everything", &turbulencev1.ListAgentsRequest{}, ids(func(int) bool { return true })},
		{"equal", &turbulencev1.ListAgentsRequest{Selector: "zone=z1"}, ids(func(i int) bool { return zone(i) == "z1" })},
		{"not equal", &turbulencev1.ListAgentsRequest{Selector: "zone!=z1"}, ids(func(i int) bool { return zone(i) != "z1" })},
		{"in and notin", &turbulencev1.ListAgentsRequest{Selector: "zone in (z0,z2),zone notin (z2)"}, ids(func(i int) bool { return zone(i) == "z0" })},
		{"exists", &turbulencev1.ListAgentsRequest{Selector: "zone"}, ids(func(int) bool { return true })},
		{"absent", &turbulencev1.ListAgentsRequest{Selector: "!zone"}, nil},
		{"no such label value", &turbulencev1.ListAgentsRequest{Selector: "zone=z9"}, nil},
		{"ids", &turbulencev1.ListAgentsRequest{Ids: []string{"agent-00010", "agent-00005", "not-registered"}},
			[]string{"agent-00005", "agent-00010"}},
		{"ids and selector", &turbulencev1.ListAgentsRequest{Ids: []string{"agent-00010", "agent-00005"}, Selector: "zone=z1"},
			[]string{"agent-00010"}},
	}
	for _, tt := range tests {
		for _, size := range []uint32{0, 7, 100} {
			t.Run(fmt.Sprintf("%s/page%d", tt.name, size), func(t *testing.T) {
				t.Parallel()
				var got []string
				for token := ""; ; {
					req := &turbulencev1.ListAgentsRequest{Selector: tt.req.GetSelector(), Ids: tt.req.GetIds(), PageSize: size, PageToken: token}
					resp, err := s.ListAgents(ctx, req)
					if err != nil {
						t.Fatalf("ListAgents(%v) = %v", req, err)
					}
					if token != "" && len(resp.GetAgents()) == 0 {
						t.Fatalf("ListAgents(%v): an empty page after a page token", req)
					}
					for _, a := range resp.GetAgents() {
						got = append(got, a.GetId())
					}
					if token = resp.GetNextPageToken(); token == "" {
						break
					}
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("ListAgents(selector %q, ids %v) by pages of %d = %d agents %.80v…, want %d %.80v…",
						tt.req.GetSelector(), tt.req.GetIds(), size, len(got), got, len(tt.want), tt.want)
				}
			})
		}
	}
}

// TestListAgents_BadSelector: a selector that does not parse, or uses an
// operator outside the grammar, is InvalidArgument with a field violation
// naming "selector", and nothing is listed.
func TestListAgents_BadSelector(t *testing.T) {
	t.Parallel()
	s, ctx := bigFleetServer(t, 10)
	for _, sel := range []string{"zone in (z1", "zone=z1,", "zo ne=z1", "cpus>4", "zone=" + strings.Repeat("x", 64)} {
		resp, err := s.ListAgents(ctx, &turbulencev1.ListAgentsRequest{Selector: sel})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("ListAgents(selector %q) = %v, %v; want InvalidArgument", sel, resp, err)
			continue
		}
		st, _ := status.FromError(err)
		if !strings.HasPrefix(st.Message(), "selector: ") {
			t.Errorf("ListAgents(selector %q) message %q, want it to start with the field name", sel, st.Message())
		}
		var field string
		for _, d := range st.Details() {
			if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) == 1 {
				field = br.GetFieldViolations()[0].GetField()
			}
		}
		if field != "selector" {
			t.Errorf("ListAgents(selector %q) field violation %q, want \"selector\"", sel, field)
		}
	}
}
