package clusterapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/controller/raftnode"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// fakeRaft records what the service asked of raft, in order.
type fakeRaft struct {
	servers  []raftnode.Server
	applyErr error
	// changeErr fails AddNonvoter, Promote and RemoveServer; verifyErr
	// VerifyPeer.
	changeErr error
	verifyErr error
	calls     []string
	entries   []*raftv1.LogEntry
}

func (f *fakeRaft) ID() string { return "c1" }
func (f *fakeRaft) Self() raftnode.Peer {
	return raftnode.Peer{ID: "c1", Address: raftnode.Address{Raft: "127.0.0.1:1", GRPC: "127.0.0.1:2"}}
}
func (f *fakeRaft) Servers() ([]raftnode.Server, error) { return f.servers, nil }
func (f *fakeRaft) VerifyPeer(_ context.Context, id string, _ raftnode.Address) error {
	f.calls = append(f.calls, "verify "+id)
	return f.verifyErr
}

func (f *fakeRaft) AddNonvoter(_ context.Context, id string, _ raftnode.Address) error {
	f.calls = append(f.calls, "nonvoter "+id)
	return f.changeErr
}

func (f *fakeRaft) Promote(_ context.Context, id string) error {
	f.calls = append(f.calls, "promote "+id)
	return f.changeErr
}

// caughtUp is a Prober whose node lists every ID asked about: caught up.
func caughtUp(_ context.Context, id, _ string) ([]raftnode.Server, error) {
	return []raftnode.Server{{ID: id, Suffrage: "nonvoter"}}, nil
}

// lagging is a Prober whose node knows no configuration yet.
func lagging(context.Context, string, string) ([]raftnode.Server, error) { return nil, nil }

func (f *fakeRaft) RemoveServer(_ context.Context, id string) error {
	f.calls = append(f.calls, "remove "+id)
	return f.changeErr
}

func (f *fakeRaft) Apply(_ context.Context, e *raftv1.LogEntry) (any, error) {
	if f.applyErr != nil {
		return nil, f.applyErr
	}
	f.calls = append(f.calls, "record "+e.GetAudit().GetAction())
	f.entries = append(f.entries, e)
	return nil, nil
}

// asCaller is a handler context whose verified peer certificate names id,
// as grpc-go builds it after a mutual-TLS handshake.
func asCaller(t *testing.T, id tlsutil.Identity) context.Context {
	t.Helper()
	ca, _, _, err := tlsutil.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := ca.Issue(tlsutil.Leaf{Identity: id, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	info := credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}}
	return peer.NewContext(t.Context(), &peer.Peer{AuthInfo: info})
}

var admin = tlsutil.Identity{Role: tlsutil.RoleAdmin, Name: "alice"}

func members(ids ...string) []raftnode.Server {
	var out []raftnode.Server
	for i, id := range ids {
		out = append(out, raftnode.Server{ID: id, Suffrage: "voter", Leader: i == 0,
			Address: raftnode.Address{Raft: "127.0.0.1:1", GRPC: "127.0.0.1:2"}})
	}
	return out
}

func TestJoin_RecordsBeforeTheChange(t *testing.T) {
	t.Parallel()
	f := &fakeRaft{servers: members("c1")}
	_, err := New(f, caughtUp).Join(asCaller(t, admin), &turbulencev1.JoinRequest{Id: "c2", RaftAddress: "127.0.0.1:7421", GrpcAddress: "127.0.0.1:7420"})
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	if want := []string{"verify c2", "record cluster.join", "nonvoter c2", "promote c2"}; !slices.Equal(f.calls, want) {
		t.Errorf("calls = %q, want %q", f.calls, want)
	}
	e := f.entries[0]
	if e.GetActor() != "admin/alice" || e.GetRequestId() == "" || e.GetRecordAudit() == nil {
		t.Errorf("audit entry = %v, want actor admin/alice, a request ID and a RecordAudit command", e)
	}
}

func TestJoin_RecordRefusedMeansNoChange(t *testing.T) {
	t.Parallel()
	f := &fakeRaft{servers: members("c1"), applyErr: raftnode.ErrNotLeader}
	_, err := New(f, caughtUp).Join(asCaller(t, admin), &turbulencev1.JoinRequest{Id: "c2", RaftAddress: "127.0.0.1:7421", GrpcAddress: "127.0.0.1:7420"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("Join with an audit record that cannot commit: %v, want Unavailable", err)
	}
	if want := []string{"verify c2"}; !slices.Equal(f.calls, want) {
		t.Errorf("calls = %q, want %q: no change without its record", f.calls, want)
	}
}

func TestRemove_FailedChangeIsRecordedToo(t *testing.T) {
	t.Parallel()
	f := &fakeRaft{servers: members("c1", "c2"), changeErr: raftnode.ErrUnavailable}
	_, err := New(f, caughtUp).RemoveServer(asCaller(t, admin), &turbulencev1.RemoveServerRequest{Id: "c2"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("RemoveServer = %v, want Unavailable", err)
	}
	if want := []string{"record cluster.remove", "remove c2", "record cluster.remove.failed"}; !slices.Equal(f.calls, want) {
		t.Errorf("calls = %q, want %q", f.calls, want)
	}
	if a, b := f.entries[0].GetRequestId(), f.entries[1].GetRequestId(); a != b {
		t.Errorf("request IDs %q and %q differ; the failure must name the request it follows", a, b)
	}
}

func TestMembership_RefusedInputLeavesNoRecord(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		call func(*Server, context.Context) error
		want codes.Code
	}{
		{"remove an unknown server", func(s *Server, ctx context.Context) error {
			_, err := s.RemoveServer(ctx, &turbulencev1.RemoveServerRequest{Id: "nope"})
			return err
		}, codes.NotFound},
		{"join without addresses", func(s *Server, ctx context.Context) error {
			_, err := s.Join(ctx, &turbulencev1.JoinRequest{Id: "c2"})
			return err
		}, codes.InvalidArgument},
		{"join of a voter already there", func(s *Server, ctx context.Context) error {
			_, err := s.Join(ctx, &turbulencev1.JoinRequest{Id: "c1", RaftAddress: "127.0.0.1:1", GrpcAddress: "127.0.0.1:2"})
			return err
		}, codes.OK},
		{"remove by an operator", func(s *Server, _ context.Context) error {
			_, err := s.RemoveServer(asCaller(t, tlsutil.Identity{Role: tlsutil.RoleOperator, Name: "o"}), &turbulencev1.RemoveServerRequest{Id: "c1"})
			return err
		}, codes.PermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeRaft{servers: members("c1")}
			err := tc.call(New(f, caughtUp), asCaller(t, admin))
			if status.Code(err) != tc.want {
				t.Errorf("err = %v, want %s", err, tc.want)
			}
			if len(f.calls) != 0 {
				t.Errorf("calls = %q, want none", f.calls)
			}
		})
	}
}

// TestJoin_ControllerJoinsOnlyItself is issue 13's finding 4: a
// controller certificate joined a made-up node. Now it may ask only for
// its own node ID; nothing is verified, recorded or changed otherwise.
func TestJoin_ControllerJoinsOnlyItself(t *testing.T) {
	t.Parallel()
	f := &fakeRaft{servers: members("c1")}
	ctx := asCaller(t, tlsutil.Identity{Role: tlsutil.RoleController, Name: "c2"})
	_, err := New(f, caughtUp).Join(ctx, &turbulencev1.JoinRequest{Id: "phantom", RaftAddress: "127.0.0.1:9", GrpcAddress: "127.0.0.1:10"})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `may join only as node "c2"`) {
		t.Errorf("Join(phantom) by controller/c2 = %v, want PermissionDenied naming c2", err)
	}
	if len(f.calls) != 0 {
		t.Errorf("calls = %q, want none", f.calls)
	}
	// Its own ID is fine.
	if _, err := New(f, caughtUp).Join(ctx, &turbulencev1.JoinRequest{Id: "c2", RaftAddress: "127.0.0.1:9", GrpcAddress: "127.0.0.1:10"}); err != nil {
		t.Errorf("Join(c2) by controller/c2 = %v", err)
	}
}

// TestJoin_UnverifiedPeerChangesNothing: a node that does not answer on
// its raft port as the controller it claims to be is refused before any
// record or change.
func TestJoin_UnverifiedPeerChangesNothing(t *testing.T) {
	t.Parallel()
	f := &fakeRaft{servers: members("c1"), verifyErr: raftnode.ErrPeerUnverified}
	_, err := New(f, caughtUp).Join(asCaller(t, admin), &turbulencev1.JoinRequest{Id: "c2", RaftAddress: "127.0.0.1:9", GrpcAddress: "127.0.0.1:10"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "nothing was changed") {
		t.Errorf("Join = %v, want FailedPrecondition saying nothing was changed", err)
	}
	if want := []string{"verify c2"}; !slices.Equal(f.calls, want) {
		t.Errorf("calls = %q, want %q", f.calls, want)
	}
}

// TestJoin_LaggingNodeStaysNonvoter: a node that has not caught up within
// the catch-up timeout is not promoted; the caller is told to retry.
func TestJoin_LaggingNodeStaysNonvoter(t *testing.T) {
	t.Parallel()
	f := &fakeRaft{servers: members("c1")}
	s := New(f, lagging)
	s.CatchUpTimeout = 300 * time.Millisecond
	_, err := s.Join(asCaller(t, admin), &turbulencev1.JoinRequest{Id: "c2", RaftAddress: "127.0.0.1:9", GrpcAddress: "127.0.0.1:10"})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "stays a non-voter") {
		t.Errorf("Join = %v, want Unavailable saying the node stays a non-voter", err)
	}
	if want := []string{"verify c2", "record cluster.join", "nonvoter c2", "record cluster.join.failed"}; !slices.Equal(f.calls, want) {
		t.Errorf("calls = %q, want %q (no promotion)", f.calls, want)
	}
}
