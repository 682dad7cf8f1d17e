package controller_test

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/metrics"
	"github.com/turbulence-sre/turbulence/internal/refusal"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestRefusals_LoggedAndCounted is issue 13's finding 7: refused calls
// and failed handshakes left no trace. Each kind of refusal now gives a
// log line saying who, what and why, and a count on the metrics
// endpoint.
func TestRefusals_LoggedAndCounted(t *testing.T) {
	t.Parallel()
	var logs testutil.SyncBuffer
	s := controllertest.NewServer(t, func(c *controller.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		c.GRPCGuard.Limits.PerSource = 4
	})

	// permission_denied: a viewer applies a fault.
	viewer := s.ControlClient(t, s.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleViewer, Name: "vera"}))
	_, err := viewer.ApplyFault(t.Context(), &turbulencev1.ApplyFaultRequest{RequestId: "r1", AgentId: controllertest.AgentName,
		Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: 10}}}})
	if err == nil {
		t.Fatal("a viewer applied a fault")
	}

	// wrong_agent_id: an agent certificate says hello as another agent.
	a := s.OpenAgentStream(t)
	a.Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Hello{Hello: &turbulencev1.Hello{AgentId: "someone-else"}}})
	if _, err := a.Recv(10 * time.Second); err == nil {
		t.Fatal("an agent posing as another got an answer")
	}

	// tls_handshake on the gRPC port: a client that speaks no TLS.
	plain, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = plain.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	_ = plain.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _ = plain.Read(make([]byte, 64))
	_ = plain.Close()

	// tls_handshake on the raft port: an agent certificate.
	agentTLS, err := tlsutil.ClientConfig(s.PKI.Agent, "")
	if err != nil {
		t.Fatal(err)
	}
	if rc, err := tls.Dial("tcp", s.Controller.RaftAddr(), agentTLS); err == nil {
		_ = rc.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _ = rc.Read(make([]byte, 1))
		_ = rc.Close()
	}

	// connection_limit: five connections from one address, cap four.
	for range 5 {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9)}}
		c, err := d.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
	}

	want := []refusal.Key{
		{Listener: refusal.ListenerGRPC, Reason: refusal.ReasonPermissionDenied},
		{Listener: refusal.ListenerGRPC, Reason: refusal.ReasonWrongAgentID},
		{Listener: refusal.ListenerGRPC, Reason: refusal.ReasonTLSHandshake},
		{Listener: refusal.ListenerRaft, Reason: refusal.ReasonTLSHandshake},
		{Listener: refusal.ListenerGRPC, Reason: refusal.ReasonConnectionLimit},
	}
	testutil.WaitFor(t, 20*time.Second, func() (bool, string) {
		for _, k := range want {
			if s.Controller.Refusals(k) == 0 {
				return false, "no refusal counted for " + k.Listener + "/" + k.Reason
			}
		}
		return true, ""
	})

	out := logs.String()
	for _, line := range []string{
		`reason=permission_denied who="viewer/vera from 127.0.0.1:`,
		`what=/turbulence.v1.ControlService/ApplyFault`,
		`reason=wrong_agent_id who="agent/` + controllertest.AgentName,
		`what=/turbulence.v1.AgentService/Connect why="agent session: hello.agent_id \"someone-else\"`,
		`listener=grpc reason=tls_handshake who="peer at 127.0.0.1:`,
		`listener=raft reason=tls_handshake who="peer at 127.0.0.1:`,
		`listener=grpc reason=connection_limit who="peer at 127.0.0.9:`,
	} {
		if !strings.Contains(out, line) {
			t.Errorf("log lacks %s", line)
		}
	}

	reg := metrics.NewRegistry()
	s.Controller.RegisterMetrics(reg)
	var exp bytes.Buffer
	if err := metrics.Write(&exp, reg); err != nil {
		t.Fatal(err)
	}
	for _, k := range want {
		prefix := `turbulence_controller_refusals_total{listener="` + k.Listener + `",reason="` + k.Reason + `"} `
		if !strings.Contains(exp.String(), prefix) || strings.Contains(exp.String(), prefix+"0\n") {
			t.Errorf("metrics lack a non-zero %s…:\n%s", prefix, exp.String())
		}
	}
	if !strings.Contains(exp.String(), "# TYPE turbulence_controller_refusals_total counter") {
		t.Errorf("refusals are not a counter:\n%s", exp.String())
	}
}
