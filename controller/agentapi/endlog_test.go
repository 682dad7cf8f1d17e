package agentapi

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/turbulence-sre/turbulence/controller/state"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// syncBuffer is a log sink safe for the session's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestSessionEnd_ConnectionDropIsLogged: a session whose connection
// drops under it (gRPC cancels the stream) leaves a log line with its
// cause, as every other end does.
func TestSessionEnd_ConnectionDropIsLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf syncBuffer
		logger := slog.New(slog.NewTextHandler(&buf, nil))
		h := New(Config{Raft: leaderOnly{}, State: state.New()})
		ctx, cancel := context.WithCancel(t.Context())
		stream := &pipeStream{ctx: ctx, in: make(chan *turbulencev1.AgentMessage)}
		done := make(chan error, 1)
		go func() { done <- h.serve(ctx, "a1", "agent/a1", &turbulencev1.Hello{AgentId: "a1"}, stream, logger) }()
		synctest.Wait()
		cancel() // what gRPC does when the connection goes
		if err := <-done; err == nil {
			t.Error("session ended without an error when its stream was cancelled")
		}
		if got := buf.String(); !strings.Contains(got, "agent session ended") || !strings.Contains(got, "cause="+CauseConnectionLost) {
			t.Errorf("log after a dropped connection:\n%s\nwant a line \"agent session ended\" with cause=%s", got, CauseConnectionLost)
		}
	})
}

// TestEndLog_RateLimited: a burst of ends logs endLogPerSecond lines a
// second, and the next line logged says how many were left out.
func TestEndLog_RateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf syncBuffer
		logger := slog.New(slog.NewTextHandler(&buf, nil))
		h := New(Config{Raft: leaderOnly{}, State: state.New()})
		for range endLogPerSecond + 5 {
			h.sessionEnded(logger, CauseNotLeader, nil)
		}
		if n := strings.Count(buf.String(), "agent session ended"); n != endLogPerSecond {
			t.Errorf("%d lines for %d ends within a second, want %d", n, endLogPerSecond+5, endLogPerSecond)
		}
		time.Sleep(time.Second)
		h.sessionEnded(logger, CauseShutdown, nil)
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if last := lines[len(lines)-1]; !strings.Contains(last, "ends_not_logged_before=5") {
			t.Errorf("first line after the burst = %q, want ends_not_logged_before=5", last)
		}
	})
}
