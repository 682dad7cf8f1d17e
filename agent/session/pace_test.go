package session

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/killswitch"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// beatStream is a Connect stream that records when each heartbeat was
// sent; only Send is used by send.
type beatStream struct {
	grpc.BidiStreamingClient[turbulencev1.AgentMessage, turbulencev1.ControllerMessage]
	mu    sync.Mutex
	beats []time.Time
}

func (b *beatStream) Send(m *turbulencev1.AgentMessage) error {
	if m.GetHeartbeat() != nil {
		b.mu.Lock()
		b.beats = append(b.beats, time.Now())
		b.mu.Unlock()
	}
	return nil
}

// gaps are the times between the heartbeats sent since the i-th.
func (b *beatStream) gaps(from int) []time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []time.Duration
	for i := from + 1; i < len(b.beats); i++ {
		out = append(out, b.beats[i].Sub(b.beats[i-1]))
	}
	return out
}

func (b *beatStream) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.beats)
}

// A lease renewal that names a heartbeat interval re-paces the
// heartbeats from then on; one longer than a third of the lease TTL is
// cut to a third, so that the lease is always renewed in time whatever
// a controller says (invariant 2).
func TestSend_RenewalRepacesHeartbeats(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		log := slog.New(slog.DiscardHandler)
		m := inject.NewManager(log)
		defer m.Close(inject.ReasonAgentStopping)
		lease := killswitch.NewLease(log, m)
		defer lease.Stop()
		lease.Renew(15 * time.Second)
		s := &Session{cfg: Config{Lease: lease, Manager: m}, log: log, flush: make(chan flushReq)}
		st := &beatStream{}
		pace := make(chan time.Duration, 1)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = s.send(ctx, st, make(chan *turbulencev1.AgentMessage), time.Second, pace)
		}()

		time.Sleep(3 * time.Second) // at 0, 1, 2, 3 s
		synctest.Wait()
		repace(pace, 3*time.Second)
		time.Sleep(9 * time.Second) // at 6, 9, 12 s
		mark := st.count() - 1
		repace(pace, time.Hour)
		time.Sleep(10 * time.Second) // at 17, 22 s: a third of the 15 s lease
		cancel()
		<-done

		want := []time.Duration{time.Second, time.Second, time.Second, 3 * time.Second, 3 * time.Second, 3 * time.Second, 5 * time.Second, 5 * time.Second}
		got := st.gaps(0)
		if len(got) != len(want) {
			t.Fatalf("gaps between heartbeats %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("gaps between heartbeats %v, want %v (an hour asked for after heartbeat %d)", got, want, mark)
			}
		}
	})
}
