package controlapi_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestListAudit_EveryWriteRecorded drives each mutating call through real
// mTLS and raft and reads the audit log back as a viewer.
func TestListAudit_EveryWriteRecorded(t *testing.T) {
	srv, _ := newServerWithAgent(t, nil)
	admin := srv.AdminClient(t)
	viewer := srv.ControlClient(t, srv.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleViewer, Name: "carol"}))
	ctx := t.Context()
	start := time.Now()

	f, err := admin.ApplyFault(ctx, &turbulencev1.ApplyFaultRequest{RequestId: "req-apply", AgentId: controllertest.AgentName, Spec: cpuSpec(30, durationpb.New(time.Minute))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RevertFault(ctx, &turbulencev1.RevertFaultRequest{RequestId: "req-revert", Id: f.GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := viewer.Halt(ctx, &turbulencev1.HaltRequest{Reason: "slo burn"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Resume(ctx, &turbulencev1.ResumeRequest{RequestId: "req-resume"}); err != nil {
		t.Fatal(err)
	}

	resp, err := viewer.ListAudit(ctx, &turbulencev1.ListAuditRequest{})
	if err != nil {
		t.Fatalf("viewer ListAudit: %v", err)
	}
	type row struct{ actor, request, action, summary string }
	var got []row
	for _, e := range resp.GetEntries() {
		if e.GetTime().AsTime().Before(start.Add(-time.Second)) || e.GetTime().AsTime().After(time.Now()) {
			t.Errorf("audit %d time %v is not the proposer's clock during the test", e.GetSequence(), e.GetTime().AsTime())
		}
		if e.GetRequestId() == "" {
			t.Errorf("audit %d has no request ID", e.GetSequence())
		}
		req := e.GetRequestId()
		if e.GetAction() == "fleet.halt" {
			req = "(generated)"
		}
		got = append(got, row{e.GetActor(), req, e.GetAction(), e.GetSummary()})
	}
	want := []row{
		{"admin/dev-admin", "req-resume", "fleet.resume", "resume the fleet"},
		{"viewer/carol", "(generated)", "fleet.halt", "halt the fleet: slo burn"},
		{"admin/dev-admin", "req-revert", "fault.revert", "revert fault " + f.GetId()},
		{"admin/dev-admin", "req-apply", "fault.apply", "apply cpu fault " + f.GetId() + " to agent test-agent for 1m0s"},
	}
	if len(got) != len(want) {
		t.Fatalf("audit log = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("audit[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}

	// Filters.
	byViewer, err := admin.ListAudit(ctx, &turbulencev1.ListAuditRequest{Actor: "viewer/carol"})
	if err != nil || len(byViewer.GetEntries()) != 1 {
		t.Errorf("ListAudit(actor viewer/carol) = %v, %v; want the halt only", byViewer, err)
	}
	one, err := admin.ListAudit(ctx, &turbulencev1.ListAuditRequest{Limit: 1})
	if err != nil || len(one.GetEntries()) != 1 || one.GetEntries()[0].GetAction() != "fleet.resume" {
		t.Errorf("ListAudit(limit 1) = %v, %v; want the resume", one, err)
	}
	future, err := admin.ListAudit(ctx, &turbulencev1.ListAuditRequest{Since: timestamppb.New(time.Now().Add(time.Hour))})
	if err != nil || len(future.GetEntries()) != 0 {
		t.Errorf("ListAudit(since in an hour) = %v, %v; want nothing", future, err)
	}

	// Bad queries name the field and the limit.
	_, err = admin.ListAudit(ctx, &turbulencev1.ListAuditRequest{Limit: 5000})
	wantCode(t, err, codes.InvalidArgument, "limit: 5000 is above the maximum of 1000")
	_, err = admin.ListAudit(ctx, &turbulencev1.ListAuditRequest{Since: timestamppb.New(time.Now()), Until: timestamppb.New(time.Now().Add(-time.Hour))})
	wantCode(t, err, codes.InvalidArgument, "until: must be after since")
}

// TestListAudit_RefusalBeforeRaftLeavesNoRecord: a request refused by
// validation is never proposed (invariant 6), so it leaves no audit
// record either; refusals inside the FSM are recorded with their reason
// (controller/fsm TestFSM_AuditRecordedWithTheWrite).
func TestListAudit_RefusalBeforeRaftLeavesNoRecord(t *testing.T) {
	srv, _ := newServerWithAgent(t, nil)
	admin := srv.AdminClient(t)
	ctx := t.Context()
	_, err := admin.ApplyFault(ctx, &turbulencev1.ApplyFaultRequest{AgentId: controllertest.AgentName, Spec: cpuSpec(150, durationpb.New(time.Minute))})
	wantCode(t, err, codes.InvalidArgument)
	resp, err := admin.ListAudit(ctx, &turbulencev1.ListAuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetEntries()); n != 0 {
		t.Errorf("audit log after an invalid request holds %d records, want 0 (invariant 6: nothing proposed)", n)
	}
}
