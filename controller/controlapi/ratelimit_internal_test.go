package controlapi

import (
	"context"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
)

// callerCtx is a handler context whose verified peer certificate holds id.
func callerCtx(t testing.TB, ca *tlsutil.CA, id tlsutil.Identity) context.Context {
	t.Helper()
	certPEM, _, err := ca.Issue(tlsutil.Leaf{Identity: id, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := dir + "/c.crt"
	if err := writeTestFile(path, certPEM); err != nil {
		t.Fatal(err)
	}
	cert, err := tlsutil.ReadCertFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info := credentials.TLSInfo{}
	info.State.VerifiedChains = [][]*x509.Certificate{{cert}}
	return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: info})
}

func TestRateLimiter_PerIdentityHaltExempt(t *testing.T) {
	t.Parallel()
	ca, _, _, err := tlsutil.NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	l := NewRateLimiter(20, 40)
	l.now = func() time.Time { return now }
	intercept := l.Unary()
	call := func(ctx context.Context, method string) error {
		_, err := intercept(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) { return "ok", nil })
		return err
	}
	const svc = "/turbulence.v1.ControlService/"
	alice := callerCtx(t, ca, tlsutil.Identity{Role: tlsutil.RoleOperator, Name: "alice"})
	bob := callerCtx(t, ca, tlsutil.Identity{Role: tlsutil.RoleOperator, Name: "bob"})
	ctrl := callerCtx(t, ca, tlsutil.Identity{Role: tlsutil.RoleController, Name: "c2"})

	for i := range 40 {
		if err := call(alice, svc+"RevertFault"); err != nil {
			t.Fatalf("call %d within the burst: %v", i+1, err)
		}
	}
	err = call(alice, svc+"ApplyFault")
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "at most 20 mutating calls per second, bursts of 40, per identity on each controller node") {
		t.Fatalf("call 41 = %v, want ResourceExhausted naming the limit", err)
	}
	// turbctl tells a rate limit from an oversized message by these
	// details (its exit code 7).
	var quota *errdetails.QuotaFailure
	var retry *errdetails.RetryInfo
	for _, d := range status.Convert(err).Details() {
		switch d := d.(type) {
		case *errdetails.QuotaFailure:
			quota = d
		case *errdetails.RetryInfo:
			retry = d
		}
	}
	if v := quota.GetViolations(); len(v) != 1 || v[0].GetSubject() != "operator/alice" || !strings.Contains(v[0].GetDescription(), "at most 20") {
		t.Errorf("QuotaFailure = %v, want one violation for operator/alice naming the limit", quota)
	}
	if d := retry.GetRetryDelay().AsDuration(); d <= 0 || d > time.Second {
		t.Errorf("RetryInfo delay = %v, want a pause in (0, 1s]", d)
	}
	// The kill switch, reads, other callers and forwarding controllers
	// are not held back.
	for _, tc := range []struct {
		ctx    context.Context
		method string
	}{
		{alice, svc + "Halt"},
		{alice, svc + "ListAudit"},
		{alice, svc + "GetFault"},
		{alice, svc + "WatchEvents"},
		{bob, svc + "ApplyFault"},
		{ctrl, svc + "ApplyFault"},
		{alice, "/grpc.health.v1.Health/Check"},
	} {
		for range 40 {
			if err := call(tc.ctx, tc.method); err != nil {
				t.Fatalf("%s: %v, want no limit", tc.method, err)
			}
		}
	}
	// Cluster writes are limited like control writes.
	if !Mutating("/turbulence.v1.ClusterService/RemoveServer") || Mutating("/turbulence.v1.ClusterService/ListServers") {
		t.Error("Mutating misclassifies ClusterService methods")
	}
	// Tokens come back at the configured rate.
	now = now.Add(100 * time.Millisecond)
	for i := range 2 {
		if err := call(alice, svc+"ApplyFault"); err != nil {
			t.Fatalf("refilled call %d: %v", i+1, err)
		}
	}
	if err := call(alice, svc+"ApplyFault"); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("third call after 100ms = %v, want ResourceExhausted", err)
	}
}

func TestWithAudit_BoundsSummaryAndSetsRequestID(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 1000)
	e := withAudit(&raftv1.LogEntry{Cmd: &raftv1.LogEntry_SetHalt{SetHalt: &raftv1.SetHalt{Halted: true, Reason: long}}})
	if s := e.GetAudit().GetSummary(); len(s) > MaxAuditSummary || !utf8.ValidString(s) || !strings.HasPrefix(s, "halt the fleet: é") {
		t.Errorf("summary = %d bytes (valid UTF-8 %v), want at most %d", len(s), utf8.ValidString(s), MaxAuditSummary)
	}
	if e.GetRequestId() == "" {
		t.Error("no request ID generated")
	}
	if e.GetSetHalt().GetReason() != long {
		t.Error("withAudit changed the command")
	}
}

func writeTestFile(path string, data []byte) error { return os.WriteFile(path, data, 0o600) }
