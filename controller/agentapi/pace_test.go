package agentapi

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/turbulence-sre/turbulence/controller/state"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func TestPace(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		beat, ttl      time.Duration
		rate, sessions int
		want           time.Duration
	}{
		{"small fleet keeps the configured interval", time.Second, 15 * time.Second, 2000, 100, time.Second},
		{"exactly the rate", time.Second, 15 * time.Second, 2000, 2000, time.Second},
		{"one more is rounded up to the next step", time.Second, 15 * time.Second, 2000, 2001, 1250 * time.Millisecond},
		{"twice the rate beats half as often", time.Second, 15 * time.Second, 2000, 4000, 2 * time.Second},
		{"10,000 agents", time.Second, 15 * time.Second, 2000, 10000, 5 * time.Second},
		{"never slower than a third of the lease", time.Second, 15 * time.Second, 2000, 50000, 5 * time.Second},
		{"a short lease caps it sooner", time.Second, 6 * time.Second, 2000, 10000, 2 * time.Second},
		{"a configured interval above a third of the lease is kept", 4 * time.Second, 9 * time.Second, 2000, 10000, 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := New(Config{Raft: leaderOnly{}, State: state.New(), HeartbeatInterval: tt.beat, LeaseTTL: tt.ttl, MaxHeartbeatRate: tt.rate})
			if got := h.pace(tt.sessions); got != tt.want {
				t.Errorf("pace(%d) = %v, want %v", tt.sessions, got, tt.want)
			}
		})
	}
}

// welcomeInterval is the heartbeat interval of the Welcome register
// queued for s.
func welcomeInterval(t *testing.T, s *session) time.Duration {
	t.Helper()
	q := s.box.take()
	if len(q) == 0 {
		t.Fatal("nothing queued, want a Welcome")
	}
	m := q[0]
	w := m.GetWelcome()
	if w == nil {
		t.Fatalf("first message %v, want a Welcome", m)
	}
	return w.GetHeartbeatInterval().AsDuration()
}

// renewalInterval is the heartbeat interval the next lease renewal of s
// carries (0: none, the agent keeps its interval).
func renewalInterval(h *Hub, s *session) time.Duration {
	r := h.leaseRenewal(s).GetLease()
	if r.GetHeartbeatInterval() == nil {
		return 0
	}
	return r.GetHeartbeatInterval().AsDuration()
}

// As the fleet grows, newcomers are welcomed with a slower interval and
// agents already attached learn it from their next lease renewal, once;
// as it shrinks they are told to beat faster again. An agent is judged
// silent by the interval it was told, and after a shortening by the
// longer one until that one has passed twice.
func TestPace_FleetIsToldItsInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := New(Config{Raft: leaderOnly{}, State: state.New(), HeartbeatInterval: time.Second, LeaseTTL: 30 * time.Second, MaxHeartbeatRate: 1})
		a1 := openSession(t, h, "a1")
		if got := welcomeInterval(t, a1); got != time.Second {
			t.Fatalf("first agent welcomed with %v, want 1s", got)
		}
		a2 := openSession(t, h, "a2")
		a3 := openSession(t, h, "a3")
		welcomeInterval(t, a2)
		if got := welcomeInterval(t, a3); got != 3*time.Second {
			t.Fatalf("third agent at 1 heartbeat/s welcomed with %v, want 3s", got)
		}
		if got := renewalInterval(h, a1); got != 3*time.Second {
			t.Fatalf("first agent's renewal after the fleet grew carries %v, want 3s", got)
		}
		if got := renewalInterval(h, a1); got != 0 {
			t.Fatalf("the next renewal carries %v again, want nothing (already told)", got)
		}
		if got := h.HeartbeatInterval(); got != 3*time.Second {
			t.Errorf("HeartbeatInterval() = %v, want 3s", got)
		}

		// Told 3s, a1 is not silent 4s after its last heartbeat.
		h.onHeartbeat(t.Context(), a1, &turbulencev1.Heartbeat{})
		time.Sleep(4 * time.Second)
		if lv, _ := h.Liveness("a1"); !lv.Connected {
			t.Fatal("agent told 3s shown disconnected 4s after its heartbeat")
		}

		// The fleet shrinks: a1 is told 1s, and judged by 3s for 6s more.
		h.unregister(a2)
		h.unregister(a3)
		h.onHeartbeat(t.Context(), a1, &turbulencev1.Heartbeat{})
		if got := renewalInterval(h, a1); got != time.Second {
			t.Fatalf("renewal after the fleet shrank carries %v, want 1s", got)
		}
		time.Sleep(5 * time.Second)
		if lv, _ := h.Liveness("a1"); !lv.Connected {
			t.Fatal("agent shown disconnected 5s after the interval shortened, while its old 3s interval still counts")
		}
		h.onHeartbeat(t.Context(), a1, &turbulencev1.Heartbeat{})
		time.Sleep(2*time.Second + time.Millisecond)
		if lv, _ := h.Liveness("a1"); lv.Connected {
			t.Error("agent silent for two of its new 1s intervals (the old one no longer counting) still shown connected")
		}
	})
}

// An agent that retention has just named departed is registered through
// raft when it comes back, even unchanged, until the prune entry is
// decided: its registration then keeps it in the state (or brings it
// back), whichever side of the entry it lands.
func TestRegisteredAs_DepartingAgentIsWritten(t *testing.T) {
	st := state.New()
	a := &turbulencev1.Agent{Id: "a1", Labels: map[string]string{"rack": "r1"}}
	if _, err := st.ApplyRegisterAgent(state.Meta{Time: time.Now().Add(-30 * 24 * time.Hour)}, a); err != nil {
		t.Fatal(err)
	}
	h := New(Config{Raft: leaderOnly{}, State: st})
	if !h.registeredAs(a) {
		t.Fatal("agent registered exactly so: registeredAs = false, want true (no write)")
	}
	if got := h.Departed([]string{"a1"}, time.Now().Add(-10*24*time.Hour), time.Now(), 7*24*time.Hour); len(got) != 1 {
		t.Fatalf("Departed = %v, want a1", got)
	}
	if h.registeredAs(a) {
		t.Error("agent named departed: registeredAs = true, want false (write it)")
	}
	h.DepartedDone()
	if !h.registeredAs(a) {
		t.Error("after the prune entry was decided: registeredAs = false, want true")
	}
}
