package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeControl is a test-only ControlService: it records what it was sent
// and answers with canned results or errors.
type fakeControl struct {
	turbulencev1.UnimplementedControlServiceServer

	mu        sync.Mutex
	applies   []*turbulencev1.ApplyFaultRequest
	applyErrs []error // answered in order, one per ApplyFault call; nil = success
	faults    map[string]*turbulencev1.Fault
	events    []*turbulencev1.Event
	// refuseWith, when set, is the reason the agent refuses every applied
	// fault (the fault reads back FAILED).
	refuseWith string
	// endStreams makes WatchEvents end after the events it has, as a
	// controller that shuts down does; otherwise it follows new events
	// until the caller goes away.
	endStreams bool
	// changed is closed and replaced when an event is added.
	changed chan struct{}
	// watching is signalled (when not nil) each time a WatchEvents
	// stream has sent what it had and waits for more.
	watching chan struct{}
}

// addEventLocked appends an event of fault id with the next sequence
// number and wakes the open streams. f.mu must be held.
func (f *fakeControl) addEventLocked(typ, agentID, faultID string) {
	f.events = append(f.events, &turbulencev1.Event{Sequence: uint64(len(f.events) + 1), Type: typ, AgentId: agentID, FaultId: faultID})
	if f.changed != nil {
		close(f.changed)
	}
	f.changed = make(chan struct{})
}

// setVerdict moves fault id to state st, as the agent's report does, and
// records the event of it.
func (f *fakeControl) setVerdict(id string, st turbulencev1.FaultState, typ string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	flt := proto.Clone(f.faults[id]).(*turbulencev1.Fault)
	flt.State = st
	f.faults[id] = flt
	f.addEventLocked(typ, flt.GetAgentId(), id)
}

func (f *fakeControl) ApplyFault(_ context.Context, req *turbulencev1.ApplyFaultRequest) (*turbulencev1.Fault, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applies = append(f.applies, req)
	if len(f.applyErrs) > 0 {
		err := f.applyErrs[0]
		f.applyErrs = f.applyErrs[1:]
		if err != nil {
			return nil, err
		}
	}
	// The agent's verdict, as --wait will read it: applied, unless the
	// test set a refusal.
	applied := &turbulencev1.Fault{Id: "f-42", AgentId: req.GetAgentId(), Spec: req.GetSpec(),
		State: turbulencev1.FaultState_FAULT_STATE_ACTIVE}
	if f.refuseWith != "" {
		applied.State, applied.Reason = turbulencev1.FaultState_FAULT_STATE_FAILED, f.refuseWith
	}
	f.addEventLocked("fault.created", req.GetAgentId(), applied.GetId())
	if _, ok := f.faults[applied.GetId()]; !ok {
		f.faults[applied.GetId()] = applied
		f.addEventLocked(map[bool]string{true: "fault.failed", false: "fault.active"}[f.refuseWith != ""], req.GetAgentId(), applied.GetId())
	}
	return &turbulencev1.Fault{Id: "f-42", AgentId: req.GetAgentId(), Spec: req.GetSpec(),
		State: turbulencev1.FaultState_FAULT_STATE_PENDING}, nil
}

func (f *fakeControl) GetFault(ctx context.Context, req *turbulencev1.GetFaultRequest) (*turbulencev1.Fault, error) {
	if req.GetId() == "slow" {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if flt, ok := f.faults[req.GetId()]; ok {
		return flt, nil
	}
	return nil, status.Errorf(codes.NotFound, "fault %q does not exist", req.GetId())
}

func (f *fakeControl) ListAgents(context.Context, *turbulencev1.ListAgentsRequest) (*turbulencev1.ListAgentsResponse, error) {
	return &turbulencev1.ListAgentsResponse{Agents: []*turbulencev1.Agent{{Id: "a1", Connected: true}}}, nil
}

func (f *fakeControl) GetAgent(_ context.Context, req *turbulencev1.GetAgentRequest) (*turbulencev1.Agent, error) {
	return &turbulencev1.Agent{Id: req.GetId(), Connected: true}, nil
}

func (f *fakeControl) WatchEvents(req *turbulencev1.WatchEventsRequest, stream grpc.ServerStreamingServer[turbulencev1.Event]) error {
	after := req.GetAfterSequence()
	for {
		f.mu.Lock()
		events, end := f.events, f.endStreams
		if f.changed == nil {
			f.changed = make(chan struct{})
		}
		changed, watching := f.changed, f.watching
		f.mu.Unlock()
		for _, ev := range events {
			if ev.GetSequence() <= after {
				continue
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
			after = ev.GetSequence()
		}
		if end {
			return nil // ends the stream, which ends --follow
		}
		if watching != nil {
			select {
			case watching <- struct{}{}:
			default:
			}
		}
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-changed:
		}
	}
}

func (f *fakeControl) ListEvents(_ context.Context, req *turbulencev1.ListEventsRequest) (*turbulencev1.ListEventsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &turbulencev1.ListEventsResponse{}
	for _, ev := range f.events {
		if ev.GetSequence() > req.GetAfterSequence() && (req.GetAgentId() == "" || ev.GetAgentId() == req.GetAgentId()) &&
			(req.GetType() == "" || ev.GetType() == req.GetType()) {
			resp.Events = append(resp.Events, ev)
		}
	}
	return resp, nil
}

func (f *fakeControl) requests() []*turbulencev1.ApplyFaultRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*turbulencev1.ApplyFaultRequest(nil), f.applies...)
}

// leaderCluster is a ClusterService that names itself leader, for the
// commands that check there is one (status).
type leaderCluster struct {
	turbulencev1.UnimplementedClusterServiceServer
	// none, when set, names no leader.
	none bool
}

func (l leaderCluster) ListServers(context.Context, *turbulencev1.ListServersRequest) (*turbulencev1.ListServersResponse, error) {
	return &turbulencev1.ListServersResponse{AnsweredBy: "c1", Servers: []*turbulencev1.Server{{Id: "c1", Leader: !l.none, Suffrage: "voter"}}}, nil
}

// harness is a fake controller behind real mutual TLS, and the admin
// client files to reach it.
type harness struct {
	addr  string
	fake  *fakeControl
	admin tlsutil.Files
}

func startFake(t *testing.T) *harness {
	t.Helper()
	fake := &fakeControl{faults: map[string]*turbulencev1.Fault{}}
	addr, pki := serveFake(t, func(srv *grpc.Server) {
		turbulencev1.RegisterControlServiceServer(srv, fake)
		turbulencev1.RegisterClusterServiceServer(srv, leaderCluster{})
	})
	return &harness{addr: addr, fake: fake, admin: pki.Admin}
}

// serveFake serves the services register adds on 127.0.0.1 over mutual TLS
// with a fresh dev PKI, until the test ends, and returns the address and
// the PKI (its admin certificate is the one turbctl uses).
func serveFake(t *testing.T, register func(*grpc.Server)) (string, tlsutil.DevPKI) {
	t.Helper()
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "a1")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := tlsutil.ServerConfig(pki.Controller)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)))
	register(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String(), pki
}

// environ is the process environment the CLI sees: the admin certificate
// through TURBCTL_* variables, so that most tests also prove the fallback.
func (h *harness) environ() map[string]string {
	return map[string]string{
		EnvController: h.addr,
		EnvCA:         h.admin.CA,
		EnvCert:       h.admin.Cert,
		EnvKey:        h.admin.Key,
	}
}

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, environ map[string]string, args ...string) result {
	t.Helper()
	return runCLIWith(t, environ, nil, args...)
}

// runCLIWith is runCLI with the test environment changed by change first.
func runCLIWith(t *testing.T, environ map[string]string, change func(*env), args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := env{
		now:       func() time.Time { return goldenNow },
		getenv:    func(k string) string { return environ[k] },
		requestID: func() string { return "req-fixed" },
		backoff:   time.Millisecond,
	}
	if change != nil {
		change(&e)
	}
	code := run(t.Context(), e, args, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

func (r result) check(t *testing.T, wantCode int, wantStderr ...string) {
	t.Helper()
	t.Logf("exit %d; stderr:\n%s", r.code, r.stderr)
	if r.code != wantCode {
		t.Errorf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, wantCode, r.stdout, r.stderr)
	}
	for _, s := range wantStderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr does not mention %q:\n%s", s, r.stderr)
		}
	}
}

func TestApplyCPU_SendsSpecAndPrintsID(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	// Global flags given explicitly here (the other tests use the environment).
	r := runCLI(t, nil, "--controller", h.addr, "--ca", h.admin.CA, "--cert", h.admin.Cert, "--key", h.admin.Key,
		"fault", "apply", "cpu", "--agent", "a1", "--cores", "2", "--load", "75", "--duration", "30s", "--pin", "0,2")
	r.check(t, ExitOK)
	if r.stdout != "f-42\n" {
		t.Errorf("stdout = %q, want the fault ID %q", r.stdout, "f-42\n")
	}
	want := []*turbulencev1.ApplyFaultRequest{{
		RequestId: "req-fixed",
		AgentId:   "a1",
		Spec: &turbulencev1.FaultSpec{
			Duration: durationpb.New(30 * time.Second),
			Kind:     &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 2, LoadPercent: 75, PinCpus: []uint32{0, 2}}},
		},
	}}
	if diff := cmp.Diff(want, h.fake.requests(), protocmp.Transform()); diff != "" {
		t.Errorf("ApplyFault requests (-want +got):\n%s", diff)
	}
}

func TestApplyCPU_JSONPrintsFault(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	r := runCLI(t, h.environ(), "-o", "json", "fault", "apply", "cpu", "--agent", "a1", "--host-util", "60")
	r.check(t, ExitOK)
	var got struct {
		ID   string `json:"id"`
		Spec struct {
			Duration *string `json:"duration"`
			CPU      struct {
				HostUtilizationPercent int `json:"hostUtilizationPercent"`
			} `json:"cpu"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, r.stdout)
	}
	if got.ID != "f-42" || got.Spec.CPU.HostUtilizationPercent != 60 || got.Spec.Duration != nil {
		t.Errorf("JSON = %+v, want id f-42, host util 60, no duration (controller default)", got)
	}
}

func TestApply_RetryReusesRequestID(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	h.fake.applyErrs = []error{status.Error(codes.Unavailable, "leader election in progress"), nil}
	r := runCLI(t, h.environ(), "fault", "apply", "cpu", "--agent", "a1", "--cores", "1", "--load", "50")
	r.check(t, ExitOK)
	reqs := h.fake.requests()
	if len(reqs) != 2 {
		t.Fatalf("ApplyFault called %d times, want 2 (one retry)", len(reqs))
	}
	if reqs[0].GetRequestId() == "" || reqs[0].GetRequestId() != reqs[1].GetRequestId() {
		t.Errorf("request IDs = %q, %q; want the same non-empty ID on the retry", reqs[0].GetRequestId(), reqs[1].GetRequestId())
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	badRequest, err := status.New(codes.InvalidArgument, "invalid fault spec").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "spec.cpu.cores", Description: "must be at most 8 on this host, got 64"},
			{Field: "spec.duration", Description: "must be at most 10m by the agent's policy"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.fake.applyErrs = []error{
		badRequest.Err(),
		status.Error(codes.InvalidArgument, "agent a1 does not support kind cpu"),
		status.Error(codes.FailedPrecondition, "the fleet is halted: SLO burn"),
		status.Error(codes.PermissionDenied, "role viewer may not apply faults"),
	}
	apply := []string{"fault", "apply", "cpu", "--agent", "a1", "--cores", "64", "--load", "50", "--duration", "1h"}

	// Run in order: each ApplyFault call takes the next canned error.
	r := runCLI(t, h.environ(), apply...)
	r.check(t, ExitInvalid, "invalid request", "spec.cpu.cores: must be at most 8", "spec.duration: must be at most 10m")
	r = runCLI(t, h.environ(), apply...)
	r.check(t, ExitInvalid, "turbctl: invalid request: agent a1 does not support kind cpu")
	r = runCLI(t, h.environ(), apply...)
	r.check(t, ExitRefused, "turbctl: refused: the fleet is halted")
	r = runCLI(t, h.environ(), apply...)
	r.check(t, ExitRefused, "permission denied")

	r = runCLI(t, h.environ(), "fault", "show", "f-missing")
	r.check(t, ExitNotFound, "turbctl: not found:", "f-missing")

	r = runCLI(t, h.environ(), "--timeout", "100ms", "fault", "show", "slow")
	r.check(t, ExitUnavailable, "did not answer within 100ms")
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	if err := lis.Close(); err != nil { // nothing listens there now
		t.Fatal(err)
	}
	environ := h.environ()
	environ[EnvController] = dead
	for _, args := range [][]string{
		{"fault", "ls"},
		{"events", "--follow"},
	} {
		r := runCLI(t, environ, args...)
		r.check(t, ExitUnavailable, "controller "+dead+" unavailable")
	}
	// A mutating call is retried, then gives up with the request ID to
	// repeat it safely.
	r := runCLI(t, environ, "fault", "apply", "cpu", "--agent", "a1", "--cores", "1", "--load", "10")
	r.check(t, ExitUnavailable, "controller "+dead+" unavailable", "--request-id req-fixed")
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"explode"}, `unknown command "explode"`},
		{"unknown subcommand", []string{"fault", "explode"}, `unknown command "explode"`},
		{"group without subcommand", []string{"agents"}, "needs a subcommand"},
		{"unknown flag", []string{"fault", "ls", "--bogus"}, "unknown flag: --bogus"},
		{"bad flag value", []string{"fault", "apply", "cpu", "--agent", "a1", "--cores", "two", "--load", "5"}, `"--cores"`},
		{"missing argument", []string{"fault", "show"}, "takes 1 argument"},
		{"extra argument", []string{"status", "now"}, "takes no arguments"},
		{"bad output", []string{"-o", "yaml", "status"}, "-o/--output must be table or json"},
		{"load above 100", []string{"fault", "apply", "cpu", "--agent", "a1", "--cores", "1", "--load", "150"}, "--load must be between 1 and 100"},
		{"load missing", []string{"fault", "apply", "cpu", "--agent", "a1", "--cores", "1"}, "--load is required"},
		{"cores missing", []string{"fault", "apply", "cpu", "--agent", "a1", "--load", "5"}, "--cores is required"},
		{"agent missing", []string{"fault", "apply", "cpu", "--cores", "1", "--load", "5"}, "--agent is required"},
		{"duration too short", []string{"fault", "apply", "cpu", "--agent", "a1", "--cores", "1", "--load", "5", "--duration", "10ms"}, "--duration must be between"},
		{"pin and cores disagree", []string{"fault", "apply", "cpu", "--agent", "a1", "--cores", "3", "--load", "5", "--pin", "0,1"}, "--pin lists 2 CPUs but --cores is 3"},
		{"load with host util", []string{"fault", "apply", "cpu", "--agent", "a1", "--load", "5", "--host-util", "50"}, "exclude each other"},
		{"unknown fault kind", []string{"fault", "apply", "explode", "--agent", "a1"}, `unknown fault kind "explode": the kinds are cpu, memory, disk-fill, disk-io, network, partition`},
		{"no fault kind", []string{"fault", "apply"}, "needs a fault kind: cpu, memory, disk-fill, disk-io, network, partition"},
	}
	// Exit 2 is a malformed command line; exit 3 a value that turbctl can
	// tell is invalid, as the controller's own refusal of one exits.
	invalid := map[string]bool{
		"bad flag value": true, "bad output": true, "load above 100": true, "duration too short": true,
		"pin and cores disagree": true, "unknown fault kind": true,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, h.environ(), tt.args...)
			code := ExitUsage
			if invalid[tt.name] {
				code = ExitInvalid
			}
			r.check(t, code, tt.want)
			if !strings.HasPrefix(r.stderr, "turbctl: ") {
				t.Errorf("stderr does not start with %q:\n%s", "turbctl: ", r.stderr)
			}
		})
	}
	if n := len(h.fake.requests()); n != 0 {
		t.Errorf("usage errors sent %d ApplyFault calls to the controller, want 0", n)
	}
}

func TestWithoutClientCertificate(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	r := runCLI(t, map[string]string{EnvController: h.addr}, "agents", "ls")
	r.check(t, ExitUsage, "no client certificate", "mutual TLS", "--ca", "--cert", "--key")

	environ := h.environ()
	environ[EnvCert] = filepath.Join(t.TempDir(), "missing.crt")
	r = runCLI(t, environ, "agents", "ls")
	r.check(t, ExitError, "load TLS files", "missing.crt")
}

func TestEventsFollowJSONLines(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	h.fake.endStreams = true
	h.fake.events = []*turbulencev1.Event{
		{Sequence: 1, Type: "agent.registered", AgentId: "a1"},
		{Sequence: 2, Type: "fault.created", AgentId: "a1", FaultId: "f-42"},
		{Sequence: 3, Type: "fault.active", AgentId: "a1", FaultId: "f-42", Message: "worker 4242"},
	}
	r := runCLI(t, h.environ(), "-o", "json", "events", "--follow", "--after", "1")
	r.check(t, ExitOK)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2 (events after sequence 1):\n%s", len(lines), r.stdout)
	}
	for i, l := range lines {
		var ev struct {
			Sequence string `json:"sequence"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %d is not a JSON object: %v: %s", i, err, l)
		}
		if want := []string{"2", "3"}[i]; ev.Sequence != want {
			t.Errorf("line %d sequence = %q, want %q", i, ev.Sequence, want)
		}
	}
}

func TestAgentsList_Table(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	r := runCLI(t, h.environ(), "agents", "ls")
	r.check(t, ExitOK)
	if !strings.HasPrefix(r.stdout, "ID ") || !strings.Contains(r.stdout, "\na1 ") {
		t.Errorf("agents ls table:\n%s", r.stdout)
	}
}
