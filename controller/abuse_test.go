package controller_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/limits"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// floodText is a 4 MB text: as much as fits in one message under the gRPC
// cap, as the viewer and the agent of issue 13 sent.
var floodText = strings.Repeat("x", 4_000_000)

// dirBytes is the total size of the files under dir.
func dirBytes(tb testing.TB, dir string) int64 {
	tb.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		tb.Fatalf("size of %s: %v", dir, err)
	}
	return n
}

// maxDirGrowth is what a refused flood may add to the data directory:
// nothing should be written at all, but raft may persist an unrelated
// term or configuration entry meanwhile. The flood without bounds added
// 240 MB (60 x 4 MB).
const maxDirGrowth = 64 << 10

// wantBoundsRefusal checks that err is InvalidArgument naming the field and
// its limit.
func wantBoundsRefusal(tb testing.TB, err error, field string, limit int) {
	tb.Helper()
	if status.Code(err) != codes.InvalidArgument {
		tb.Fatalf("error = %v, want InvalidArgument", err)
	}
	msg := status.Convert(err).Message()
	if !strings.Contains(msg, field+":") || !strings.Contains(msg, "limit of "+strconv.Itoa(limit)) {
		tb.Fatalf("message %q does not name the field %q and the limit %d", msg, field, limit)
	}
}

// TestAbuse_ViewerHaltFlood is finding 1 of issue 13: a viewer may halt
// (halt is exempt from rate limits), and 60 halts with 4 MB reasons filled
// the data disk. They are refused at the edge now: the log does not move,
// the data directory does not grow, and the cluster stays writable.
func TestAbuse_ViewerHaltFlood(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	viewer := srv.ControlClient(t, srv.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleViewer, Name: "mallory"}))
	ctx := t.Context()
	beforeIndex, beforeBytes := srv.Controller.LastRaftIndex(), dirBytes(t, srv.Config.DataDir)

	for i := range 60 {
		_, err := viewer.Halt(ctx, &turbulencev1.HaltRequest{RequestId: "r-" + strconv.Itoa(i), Reason: floodText})
		wantBoundsRefusal(t, err, "reason", limits.MaxReason)
	}
	_, err := viewer.Halt(ctx, &turbulencev1.HaltRequest{RequestId: floodText, Reason: "x"})
	wantBoundsRefusal(t, err, "request_id", limits.MaxRequestID)

	if after := srv.Controller.LastRaftIndex(); after != beforeIndex {
		t.Errorf("raft log moved from %d to %d during a refused flood", beforeIndex, after)
	}
	if grew := dirBytes(t, srv.Config.DataDir) - beforeBytes; grew > maxDirGrowth {
		t.Errorf("data directory grew by %d bytes during a refused flood, want at most %d", grew, maxDirGrowth)
	}

	// Writable: the same viewer halts with a reason of a sane size.
	h, err := viewer.Halt(ctx, &turbulencev1.HaltRequest{Reason: "bad deploy"})
	if err != nil || !h.GetHalted() || h.GetReason() != "bad deploy" {
		t.Fatalf("Halt after the flood = %v, %v; want halted with the reason", h, err)
	}
	if _, err := srv.AdminClient(t).Resume(ctx, &turbulencev1.ResumeRequest{}); err != nil {
		t.Fatalf("Resume after the flood: %v", err)
	}
}

// TestAbuse_HaltWhenHaltedAppendsNothing: a halt that changes nothing
// writes nothing, so a flood of valid halts cannot grow the log either.
func TestAbuse_HaltWhenHaltedAppendsNothing(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	viewer := srv.ControlClient(t, srv.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleViewer, Name: "v"}))
	ctx := t.Context()
	first, err := viewer.Halt(ctx, &turbulencev1.HaltRequest{Reason: "first"})
	if err != nil {
		t.Fatal(err)
	}
	before := srv.Controller.LastRaftIndex()
	for range 20 {
		h, err := viewer.Halt(ctx, &turbulencev1.HaltRequest{Reason: strings.Repeat("r", limits.MaxReason)})
		if err != nil {
			t.Fatalf("Halt on a halted fleet: %v", err)
		}
		if h.GetReason() != "first" || !h.GetSince().AsTime().Equal(first.GetSince().AsTime()) {
			t.Fatalf("Halt on a halted fleet = %v, want the first halt kept (%v)", h, first)
		}
	}
	if after := srv.Controller.LastRaftIndex(); after != before {
		t.Errorf("raft log moved from %d to %d for halts that changed nothing", before, after)
	}
}

// TestAbuse_AgentLabelFlood is the agent half of finding 1: an agent
// certificate reconnecting with 4 MB of labels grew the log by 92 MB in 20
// reconnects. The Hello is refused before registration now.
func TestAbuse_AgentLabelFlood(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	beforeIndex, beforeBytes := srv.Controller.LastRaftIndex(), dirBytes(t, srv.Config.DataDir)
	for i := range 20 {
		labels := map[string]string{"zone": floodText}
		if i%2 == 1 {
			// Many small labels rather than one large one.
			labels = map[string]string{}
			for j := range 1000 {
				labels["k"+strconv.Itoa(j)] = strings.Repeat("v", 200)
			}
		}
		a := srv.OpenAgentStream(t)
		a.Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Hello{Hello: &turbulencev1.Hello{
			AgentId: controllertest.AgentName, Labels: labels,
		}}})
		_, err := a.Recv(10 * time.Second)
		if i%2 == 0 {
			wantBoundsRefusal(t, err, `hello.labels["zone"]`, limits.MaxLabelValue)
		} else {
			wantBoundsRefusal(t, err, "hello.labels", limits.MaxLabels)
		}
	}
	if after := srv.Controller.LastRaftIndex(); after != beforeIndex {
		t.Errorf("raft log moved from %d to %d during a refused label flood", beforeIndex, after)
	}
	if grew := dirBytes(t, srv.Config.DataDir) - beforeBytes; grew > maxDirGrowth {
		t.Errorf("data directory grew by %d bytes during a refused label flood, want at most %d", grew, maxDirGrowth)
	}
	// The same agent, with sane labels, registers.
	srv.ConnectAgent(t, &turbulencev1.Hello{Labels: map[string]string{"zone": "a"}})
	got, err := srv.AdminClient(t).GetAgent(t.Context(), &turbulencev1.GetAgentRequest{Id: controllertest.AgentName})
	if err != nil || got.GetLabels()["zone"] != "a" {
		t.Fatalf("GetAgent after the flood = %v, %v; want the agent with zone=a", got, err)
	}
}

// TestAbuse_AuditListsAfterOversizedAttempts is finding 2: two applies
// with a 4 MB request ID made every `audit ls` fail. They are refused at
// the edge, leave no record, and the audit log still lists.
func TestAbuse_AuditListsAfterOversizedAttempts(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	srv.ConnectAgent(t, nil)
	admin := srv.AdminClient(t)
	ctx := t.Context()
	for range 2 {
		_, err := admin.ApplyFault(ctx, &turbulencev1.ApplyFaultRequest{RequestId: floodText, AgentId: controllertest.AgentName})
		wantBoundsRefusal(t, err, "request_id", limits.MaxRequestID)
		_, err = admin.Resume(ctx, &turbulencev1.ResumeRequest{RequestId: floodText})
		wantBoundsRefusal(t, err, "request_id", limits.MaxRequestID)
	}
	// A halt at the largest reason allowed is recorded (its summary cut).
	if _, err := admin.Halt(ctx, &turbulencev1.HaltRequest{Reason: strings.Repeat("r", limits.MaxReason)}); err != nil {
		t.Fatal(err)
	}
	resp, err := admin.ListAudit(ctx, &turbulencev1.ListAuditRequest{})
	if err != nil {
		t.Fatalf("ListAudit after oversized attempts: %v", err)
	}
	for _, e := range resp.GetEntries() {
		if len(e.GetRequestId()) > limits.MaxRequestID || len(e.GetSummary()) > limits.MaxAuditSummary {
			t.Errorf("audit entry over its bounds: request ID %d bytes, summary %d bytes", len(e.GetRequestId()), len(e.GetSummary()))
		}
	}
	if n := len(resp.GetEntries()); n == 0 || resp.GetEntries()[0].GetAction() != "fleet.halt" {
		t.Errorf("ListAudit = %d entries, newest %v; want the halt on top", n, resp.GetEntries())
	}
}

// readRSS returns the process's resident set size in bytes, from
// /proc/self/status (0 where there is none).
func readRSS(tb testing.TB) int64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				tb.Fatalf("parse VmRSS %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	return 0
}
