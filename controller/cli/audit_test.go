package cli

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func goldenAudit() *turbulencev1.ListAuditResponse {
	return &turbulencev1.ListAuditResponse{Entries: []*turbulencev1.AuditEntry{
		{Sequence: 4, Time: ts(-10 * time.Second), Actor: "admin/alice", RequestId: "3f1c-resume", Action: "fleet.resume", Summary: "resume the fleet"},
		{Sequence: 3, Time: ts(-2 * time.Minute), Actor: "viewer/carol", RequestId: "r-5e2a", Action: "fleet.halt", Summary: "halt the fleet: SLO burn on checkout"},
		{Sequence: 2, Time: ts(-3 * time.Minute), Actor: "operator/bob", RequestId: "9b0d-apply", Action: "fault.apply",
			Summary: "apply cpu fault f-0002 to agent db-2 for 1h30m0s", Error: "fleet halted by viewer/carol: SLO burn on checkout"},
		{Sequence: 1, Time: ts(-1 * time.Hour), Actor: "admin/alice", RequestId: "7c44-apply", Action: "fault.apply", Summary: "apply cpu fault f-0001 to agent web-1 for 30s"},
	}}
}

// TestGoldenAudit renders `turbctl audit ls` output. Regenerate with:
// go test ./controller/cli -run TestGoldenAudit -update
func TestGoldenAudit(t *testing.T) {
	t.Parallel()
	checkGoldens(t, []string{"table", "json"}, []goldenCase{
		{"audit_ls", func(a *app) error { return a.printAudit(goldenAudit()) }},
		{"audit_ls_empty", func(a *app) error { return a.printAudit(&turbulencev1.ListAuditResponse{}) }},
	})
}

// auditFake answers ListAudit and records the request.
type auditFake struct {
	turbulencev1.UnimplementedControlServiceServer
	mu  sync.Mutex
	got []*turbulencev1.ListAuditRequest
}

func (f *auditFake) ListAudit(_ context.Context, req *turbulencev1.ListAuditRequest) (*turbulencev1.ListAuditResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, req)
	return goldenAudit(), nil
}

func TestAuditLs_FlagsBecomeTheQuery(t *testing.T) {
	t.Parallel()
	fake := &auditFake{}
	addr, pki := serveFake(t, func(srv *grpc.Server) { turbulencev1.RegisterControlServiceServer(srv, fake) })
	environ := (&harness{addr: addr, admin: pki.Admin}).environ()

	r := runCLI(t, environ, "audit", "ls", "--actor", "viewer/carol", "--since", "24h", "--until", "2026-03-01T11:00:00Z", "--limit", "20")
	r.check(t, ExitOK)
	want := &turbulencev1.ListAuditRequest{
		Actor:    "viewer/carol",
		Since:    timestamppb.New(goldenNow.Add(-24 * time.Hour)),
		Until:    timestamppb.New(time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)),
		PageSize: 20,
	}
	fake.mu.Lock()
	got := fake.got
	fake.mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("ListAudit calls = %d, want 1", len(got))
	}
	if diff := cmp.Diff(want, got[0], protocmp.Transform()); diff != "" {
		t.Errorf("ListAudit request (-want +got):\n%s", diff)
	}
	if !bytes.Contains([]byte(r.stdout), []byte("halt the fleet: SLO burn on checkout")) {
		t.Errorf("stdout lacks the halt record:\n%s", r.stdout)
	}

	bad := runCLI(t, environ, "audit", "ls", "--since", "yesterday")
	bad.check(t, ExitInvalid, `--since must be an RFC 3339 time`)
}
