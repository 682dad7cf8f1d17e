package controllertest

import (
	"context"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// FakeAgent speaks the agent side of AgentService.Connect by hand, over
// real mutual TLS, so tests can see exactly what the controller sends.
type FakeAgent struct {
	// Welcome is the controller's answer to the Hello.
	Welcome *turbulencev1.Welcome
	stream  turbulencev1.AgentService_ConnectClient
	msgs    chan *turbulencev1.ControllerMessage
	errc    chan error
	cancel  context.CancelFunc
}

// ConnectAgent opens a session with the PKI's agent certificate, sends
// hello (its AgentId defaults to AgentName, its capabilities to cpu) and
// waits for the Welcome. Another AgentId gets a certificate of its own. The session ends in t.Cleanup.
func (s *Server) ConnectAgent(t testing.TB, hello *turbulencev1.Hello) *FakeAgent {
	t.Helper()
	if hello == nil {
		hello = &turbulencev1.Hello{}
	}
	if hello.AgentId == "" {
		hello.AgentId = AgentName
	}
	if hello.Capabilities == nil {
		hello.Capabilities = &turbulencev1.Capabilities{FaultKinds: []string{"cpu"}}
	}
	client := s.AgentClient(t)
	if hello.AgentId != AgentName {
		// An agent's ID must be the name in its certificate.
		client = turbulencev1.NewAgentServiceClient(s.Dial(t, s.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleAgent, Name: hello.AgentId})))
	}
	a := openAgentStream(t, client)
	a.Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Hello{Hello: hello}})
	m, err := a.Recv(10 * time.Second)
	if err != nil {
		t.Fatalf("agent %s: waiting for Welcome: %v", hello.AgentId, err)
	}
	if a.Welcome = m.GetWelcome(); a.Welcome == nil {
		t.Fatalf("agent %s: first message = %v, want a Welcome", hello.AgentId, m)
	}
	return a
}

// OpenAgentStream opens a Connect stream with the PKI's agent certificate
// and sends nothing yet.
func (s *Server) OpenAgentStream(t testing.TB) *FakeAgent {
	t.Helper()
	return openAgentStream(t, s.AgentClient(t))
}

func openAgentStream(t testing.TB, client turbulencev1.AgentServiceClient) *FakeAgent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := client.Connect(ctx)
	if err != nil {
		cancel()
		t.Fatalf("open agent stream: %v", err)
	}
	a := &FakeAgent{stream: stream, msgs: make(chan *turbulencev1.ControllerMessage, 64), errc: make(chan error, 1), cancel: cancel}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := stream.Recv()
			if err != nil {
				a.errc <- err
				return
			}
			select {
			case a.msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return a
}

// Vanish ends the stream from the agent's side without a word, as an
// agent that was killed or cut off does.
func (a *FakeAgent) Vanish() { a.cancel() }

// Send sends one message to the controller.
func (a *FakeAgent) Send(t testing.TB, m *turbulencev1.AgentMessage) {
	t.Helper()
	if err := a.stream.Send(m); err != nil {
		t.Fatalf("agent send: %v", err)
	}
}

// Recv returns the next message from the controller, or the error that
// ended the stream, or an error after timeout.
func (a *FakeAgent) Recv(timeout time.Duration) (*turbulencev1.ControllerMessage, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case m := <-a.msgs:
		return m, nil
	case err := <-a.errc:
		a.errc <- err // keep it for the next caller
		// The reader queues every message before the error that ended
		// the stream, but select picks at random among ready cases: a
		// message still queued comes first (a Redirect followed by the
		// server's end was once reported as the end alone).
		select {
		case m := <-a.msgs:
			return m, nil
		default:
		}
		return nil, err
	case <-t.C:
		return nil, context.DeadlineExceeded
	}
}

// Next returns the next message that is not a lease renewal, failing the
// test if none comes within timeout.
func (a *FakeAgent) Next(t testing.TB, timeout time.Duration) *turbulencev1.ControllerMessage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m, err := a.Recv(time.Until(deadline))
		if err != nil {
			t.Fatalf("agent: waiting for a command: %v", err)
		}
		if m.GetLease() == nil {
			return m
		}
	}
}
