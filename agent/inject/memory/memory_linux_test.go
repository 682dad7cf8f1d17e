package memory

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func bytesSpec(n uint64) *turbulencev1.MemorySpec {
	return &turbulencev1.MemorySpec{Size: &turbulencev1.MemorySpec_Bytes{Bytes: n}}
}

func TestInjector_HoldsTargetReportsResidentAndReverts(t *testing.T) {
	const want = 64 << 20
	m := inject.NewManager(slog.New(slog.NewTextHandler(io.Discard, nil)), New(os.Args[0], "/proc"))
	defer m.Close(inject.ReasonAgentStopping)

	st, err := m.Apply(t.Context(), memFault("f-mem", bytesSpec(want)))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	pid := int(st.GetWorkerPid())
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		t.Fatalf("Apply status worker_pid = %d, want a live process", pid)
	}
	testutil.WaitFor(t, 10*time.Second, func() (bool, string) {
		held := m.Held()
		if len(held) != 1 {
			return false, fmt.Sprintf("%d faults held, want 1", len(held))
		}
		rss := held[0].GetResidentBytes()
		return withinTolerance(rss, want) && !held[0].GetDegraded(), fmt.Sprintf("resident_bytes %d (degraded %v), want %d ±1%%", rss, held[0].GetDegraded(), want)
	})

	st, err = m.Revert(t.Context(), "f-mem", inject.ReasonRevertRequested)
	if err != nil || st.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTED {
		t.Fatalf("Revert = %v, %v, want REVERTED", st, err)
	}
	// The ended status keeps what the fault achieved while it ran; the
	// worker itself is gone (below).
	if rss := st.GetResidentBytes(); !withinTolerance(rss, want) {
		t.Errorf("resident_bytes of the ended fault = %d, want the %d it held, ±1%%", rss, want)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("kill(%d, 0) after revert = %v, want ESRCH", pid, err)
	}
}

// lockedBytes reads VmLck from /proc/<pid>/status.
func lockedBytes(t *testing.T, pid int) uint64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read status: %v", err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmLck:"); ok {
			n, err := parseKB(rest)
			if err != nil {
				t.Fatalf("VmLck: %v", err)
			}
			return n
		}
	}
	t.Fatalf("no VmLck in /proc/%d/status", pid)
	return 0
}

// clock is a settable now for the handle's settle logic.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestHandle_DegradedOnlyAfterSettleAndOffTarget runs a real worker but
// reads its statm from a fixture, so that the resident size the handle
// sees, and the time, are the test's to choose.
func TestHandle_DegradedOnlyAfterSettleAndOffTarget(t *testing.T) {
	const want = 8 << 20
	root := fixtureProc(t, "MemTotal: 8388608 kB\nMemAvailable: 8388608 kB\n")
	clk := &clock{t: time.Now()}
	in := New(os.Args[0], root)
	in.now = clk.now
	h, err := in.Apply(t.Context(), memFault("f-degraded", bytesSpec(want)), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	t.Cleanup(func() { _ = h.Revert(t.Context()) })
	var probe turbulencev1.FaultStatus
	h.Observe(&probe)
	pid := int(probe.GetWorkerPid())
	page := uint64(os.Getpagesize())
	setResident := func(b uint64) {
		t.Helper()
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("100000 %d 500 200 0 90000 0\n", b/page)
		if err := os.WriteFile(filepath.Join(dir, "statm"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	observe := func() *turbulencev1.FaultStatus {
		st := &turbulencev1.FaultStatus{}
		h.Observe(st)
		return st
	}

	setResident(want / 2)
	if st := observe(); st.GetResidentBytes() != want/2 || st.GetDegraded() {
		t.Errorf("before settle: resident %d, degraded %v; want %d, not degraded (still ramping)", st.GetResidentBytes(), st.GetDegraded(), want/2)
	}
	clk.add(settleTime(0, want) + time.Millisecond)
	if st := observe(); !st.GetDegraded() {
		t.Errorf("after settle at half the target: degraded = false, want true")
	}
	setResident(want * 1015 / 1000)
	if st := observe(); !st.GetDegraded() {
		t.Errorf("after settle 1.5%% over the target: degraded = false, want true")
	}
	setResident(want * 995 / 1000)
	if st := observe(); st.GetDegraded() {
		t.Errorf("after settle 0.5%% under the target: degraded = true, want false")
	}

	if err := h.Revert(t.Context()); err != nil {
		t.Fatalf("Revert: %v", err)
	}
	if st := observe(); st.GetResidentBytes() != 0 || st.GetDegraded() {
		t.Errorf("after revert: resident %d, degraded %v; want 0, false", st.GetResidentBytes(), st.GetDegraded())
	}
}

func TestInjector_RampAndMlockReachTarget(t *testing.T) {
	const want = 64 << 20
	in := New(os.Args[0], "/proc", WithNice(5))
	spec := bytesSpec(want)
	spec.Ramp = durationpb.New(500 * time.Millisecond)
	spec.Mlock = true // root here; unprivileged, the worker holds it unlocked
	h, err := in.Apply(t.Context(), memFault("f-ramp", spec), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	t.Cleanup(func() { _ = h.Revert(t.Context()) })
	testutil.WaitFor(t, 10*time.Second, func() (bool, string) {
		var st turbulencev1.FaultStatus
		h.Observe(&st)
		return withinTolerance(st.GetResidentBytes(), want), fmt.Sprintf("resident_bytes %d, want %d ±1%%", st.GetResidentBytes(), want)
	})
	if os.Geteuid() == 0 {
		// Root may lock without limit: the pages the worker touched must be
		// locked. They are the target minus the worker's own footprint
		// (runtime and binary text, ~30 MiB for a -race test binary), which
		// mlock does not cover.
		var st turbulencev1.FaultStatus
		h.Observe(&st)
		if locked := lockedBytes(t, int(st.GetWorkerPid())); locked < want/4 {
			t.Errorf("VmLck = %d bytes, want at least %d of the %d held (--mlock)", locked, want/4, want)
		}
	}
	if err := h.Revert(t.Context()); err != nil {
		t.Fatalf("Revert: %v", err)
	}
	select {
	case <-h.Done():
	default:
		t.Errorf("Done not closed after Revert")
	}
}
