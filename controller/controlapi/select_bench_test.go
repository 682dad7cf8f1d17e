package controlapi

import (
	"fmt"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// BenchmarkListAgents_Select10k lists, page by page, the agents that a
// selector matches among 10,000 (a third match): the cost of the filter
// that the fleet-targeting dry run of issue 14 will build on.
func BenchmarkListAgents_Select10k(b *testing.B) {
	st := state.New()
	for i := range 10_000 {
		a := &turbulencev1.Agent{Id: fmt.Sprintf("agent-%05d", i), Labels: map[string]string{
			"zone": fmt.Sprintf("z%d", i%3), "role": "web", "rack": fmt.Sprintf("r%d", i%40)}}
		if _, err := st.ApplyRegisterAgent(state.Meta{}, a); err != nil {
			b.Fatal(err)
		}
	}
	ca, _, _, err := tlsutil.NewCA("test", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	s := New(Config{State: st, Hub: quietHub{}})
	ctx := callerCtx(b, ca, tlsutil.Identity{Role: tlsutil.RoleViewer, Name: "v"})
	for b.Loop() {
		n := 0
		for token := ""; ; {
			resp, err := s.ListAgents(ctx, &turbulencev1.ListAgentsRequest{Selector: "role=web,zone in (z1),rack notin (r7)", PageSize: 200, PageToken: token})
			if err != nil {
				b.Fatal(err)
			}
			n += len(resp.GetAgents())
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		if n == 0 {
			b.Fatal("no agent matched")
		}
	}
}
