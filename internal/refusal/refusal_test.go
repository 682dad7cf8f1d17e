package refusal

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/internal/testutil"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRecorder_CountsEveryRefusalAndLogsAtABoundedRate(t *testing.T) {
	t.Parallel()
	var logs testutil.SyncBuffer
	now := time.Unix(1000, 0)
	r := newRecorder(slog.New(slog.NewTextHandler(&logs, nil)), func() time.Time { return now })
	const n = 1000
	for range n {
		r.Record(ListenerGRPC, ReasonPermissionDenied, "viewer/v from 127.0.0.1:1", "/turbulence.v1.ControlService/Halt", "no")
	}
	if got := r.Count(Key{ListenerGRPC, ReasonPermissionDenied}); got != n {
		t.Errorf("count = %d, want %d", got, n)
	}
	lines := strings.Count(logs.String(), "msg=refused")
	if lines != LogBurst {
		t.Errorf("%d log lines for %d refusals at one instant, want the burst of %d", lines, n, LogBurst)
	}
	// A second later one more line, saying how many were dropped.
	now = now.Add(LogEvery)
	r.Record(ListenerRaft, ReasonTLSHandshake, "peer at 127.0.0.1:2", "TLS handshake", "timeout")
	out := logs.String()
	if got := strings.Count(out, "msg=refused"); got != LogBurst+1 {
		t.Errorf("%d log lines after a second, want %d", got, LogBurst+1)
	}
	if !strings.Contains(out, "suppressed_before=990") {
		t.Errorf("the line after the pause does not say 990 were suppressed:\n%s", out)
	}
	for _, want := range []string{"listener=grpc", "reason=permission_denied", `who="viewer/v from 127.0.0.1:1"`, "what=/turbulence.v1.ControlService/Halt", "why=no"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

func TestRecorder_EachListsEverySeries(t *testing.T) {
	t.Parallel()
	r := New(nil)
	r.Record(ListenerRaft, ReasonConnectionLimit, "x", "connection", "cap")
	var got []string
	var total uint64
	r.Each(func(k Key, n uint64) {
		got = append(got, k.Listener+"/"+k.Reason)
		total += n
	})
	if len(got) != len(Listeners)*len(Reasons) || got[0] != "grpc/permission_denied" || total != 1 {
		t.Errorf("Each = %v (total %d), want every listener × reason in order and a total of 1", got, total)
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{status.Error(codes.InvalidArgument, "bad"), ""},
		{status.Error(codes.Unavailable, "later"), ""},
		{errors.New("plain"), ""},
		{status.Error(codes.PermissionDenied, "no"), ReasonPermissionDenied},
		{status.Error(codes.Unauthenticated, "who?"), ReasonUnauthenticated},
		{WithReason(codes.PermissionDenied, ErrorInfoWrongAgentID, "not you"), ReasonWrongAgentID},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if st := status.Convert(WithReason(codes.PermissionDenied, ErrorInfoWrongAgentID, "not you")); st.Code() != codes.PermissionDenied || st.Message() != "not you" {
		t.Errorf("WithReason changed the status: %v", st)
	}
}

func TestUnaryInterceptor_RecordsRefusalsOnly(t *testing.T) {
	t.Parallel()
	r := New(nil)
	ic := r.UnaryInterceptor()
	info := &grpc.UnaryServerInfo{FullMethod: "/svc/M"}
	for _, err := range []error{nil, status.Error(codes.InvalidArgument, "x"), status.Error(codes.PermissionDenied, "x")} {
		_, _ = ic(context.Background(), nil, info, func(context.Context, any) (any, error) { return nil, err })
	}
	if got := r.Count(Key{ListenerGRPC, ReasonPermissionDenied}); got != 1 {
		t.Errorf("permission_denied = %d, want 1", got)
	}
	var total uint64
	r.Each(func(_ Key, n uint64) { total += n })
	if total != 1 {
		t.Errorf("%d refusals counted, want 1 (success and bad input are not refusals)", total)
	}
}

// TestCredentials_RecordsFailedHandshake: a client without a certificate
// fails the mutual-TLS handshake, and the wrapper records it.
func TestCredentials_RecordsFailedHandshake(t *testing.T) {
	t.Parallel()
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "a1")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := tlsutil.ServerConfig(pki.Controller)
	if err != nil {
		t.Fatal(err)
	}
	r := New(nil)
	creds := r.Credentials(credentials.NewTLS(cfg)).Clone()
	server, client := net.Pipe()
	done := make(chan error, 1)
	go func() {
		_, _, err := creds.ServerHandshake(server)
		_ = server.Close()
		done <- err
	}()
	// No client certificate.
	c := tls.Client(client, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}) //nolint:gosec // the test's client checks nothing on purpose
	_ = c.Handshake()
	_, _ = c.Read(make([]byte, 1))
	_ = c.Close()
	if err := <-done; err == nil {
		t.Fatal("handshake without a client certificate succeeded")
	}
	if got := r.Count(Key{ListenerGRPC, ReasonTLSHandshake}); got != 1 {
		t.Errorf("tls_handshake = %d, want 1", got)
	}
}
