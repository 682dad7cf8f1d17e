package inject

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/turbulence-sre/turbulence/internal/faultspec"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// meteredInjector applies faults whose measured load reads 0 once they
// are reverted, as a CPU worker's does.
type meteredInjector struct{}

func (meteredInjector) Kind() string { return faultspec.KindCPU }

func (meteredInjector) Apply(context.Context, *turbulencev1.Fault, time.Time) (Handle, error) {
	return &meteredHandle{}, nil
}

type meteredHandle struct {
	mu       sync.Mutex
	reverted bool
}

func (h *meteredHandle) Revert(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reverted = true
	return nil
}

func (h *meteredHandle) Observe(st *turbulencev1.FaultStatus) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st.WorkerPid = 4242
	if !h.reverted {
		st.MeasuredCpuPercent = 37.5
	}
}

func (h *meteredHandle) Done() <-chan struct{} { return nil }
func (h *meteredHandle) Err() error            { return nil }
func (h *meteredHandle) Undo() []byte          { return nil }

// TestManager_EndedStatusKeepsEffectAndEndTime: the status of an ended
// fault says when it ended, by the agent's clock, and keeps the effect
// measured while it ran, so that the controller can record both however
// late it hears of them (invariant 8).
func TestManager_EndedStatusKeepsEffectAndEndTime(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m := NewManager(slog.New(slog.NewTextHandler(io.Discard, nil)), meteredInjector{})
		defer m.Close(ReasonAgentStopping)
		if _, err := m.Apply(t.Context(), cpuFault("f1", time.Minute)); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		deadline := time.Now().Add(time.Minute)
		if held := m.Held(); len(held) != 1 || held[0].GetMeasuredCpuPercent() != 37.5 {
			t.Fatalf("held = %v, want f1 measuring 37.5", held)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		_, ended, _ := m.Report()
		if len(ended) != 1 {
			t.Fatalf("ended = %v, want f1", ended)
		}
		st := ended[0]
		if st.GetMeasuredCpuPercent() != 37.5 {
			t.Errorf("ended measured_cpu_percent = %v, want the last measured 37.5", st.GetMeasuredCpuPercent())
		}
		if st.GetEndedAt() == nil || !st.GetEndedAt().AsTime().Equal(deadline) {
			t.Errorf("ended_at = %v, want the deadline %s", st.GetEndedAt(), deadline)
		}
	})
}

// TestManager_RecoveredStatusGetsEndTime: a fault reverted by start-up
// recovery is reported with the time of that revert.
func TestManager_RecoveredStatusGetsEndTime(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m, _ := newTestManager()
		defer m.Close(ReasonAgentStopping)
		now := time.Now()
		m.RecordRecovered([]*turbulencev1.FaultStatus{{FaultId: "old", State: turbulencev1.FaultState_FAULT_STATE_REVERTED, Reason: "agent restarted: reverted at start-up"}})
		_, ended, _ := m.Report()
		if len(ended) != 1 || !ended[0].GetEndedAt().AsTime().Equal(now) {
			t.Errorf("ended = %v, want old with ended_at %s", ended, now)
		}
	})
}
