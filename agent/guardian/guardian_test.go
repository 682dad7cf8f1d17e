package guardian

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/turbulence-sre/turbulence/agent/bootclock"
	"github.com/turbulence-sre/turbulence/agent/journal"
	"github.com/turbulence-sre/turbulence/agent/leasefile"
)

// TestMain makes the boot clock follow time.Now: the tests run in
// synctest bubbles, whose fake time the kernel's boot clock does not
// follow.
func TestMain(m *testing.M) {
	bootclock.WallForTests()
	goleak.VerifyTestMain(m)
}

// TestRevert_SecondRevertFindsTheOutcome: whoever takes a fault's lock
// second finds the first one's outcome and does not touch the host.
func TestRevert_SecondRevertFindsTheOutcome(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var calls int
	revert := func() error { calls++; return nil }
	first, taken, err := Revert(dir, "f1", "deadline", revert)
	if err != nil || !taken || first.Reason != "deadline" {
		t.Fatalf("first Revert = %+v, %v, %v; want taken with reason deadline", first, taken, err)
	}
	second, taken, err := Revert(dir, "f1", "halt", revert)
	if err != nil || taken || second.Reason != "deadline" || !second.At.Equal(first.At) {
		t.Fatalf("second Revert = %+v, %v, %v; want the first outcome, not taken", second, taken, err)
	}
	if calls != 1 {
		t.Errorf("the host revert ran %d times, want once", calls)
	}
	// A failed revert writes nothing: the next one runs.
	boom := errors.New("boom")
	if _, _, err := Revert(dir, "f2", "deadline", func() error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("failing Revert = %v, want boom", err)
	}
	if _, taken, err := Revert(dir, "f2", "deadline", revert); err != nil || !taken {
		t.Errorf("Revert after a failure = %v, %v; want taken", taken, err)
	}
	if err := Forget(dir, "f1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(LockPath(dir, "f1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file after Forget: %v", err)
	}
	if err := Forget(dir, "f1"); err != nil {
		t.Errorf("second Forget = %v, want nil", err)
	}
}

// TestRevert_ConcurrentRevertersRunOnce: the agent and the guardian both
// reverting at once: exactly one touches the host.
func TestRevert_ConcurrentRevertersRunOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var mu sync.Mutex
	calls := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, _, err := Revert(dir, "f1", "x", func() error {
				mu.Lock()
				calls++
				mu.Unlock()
				return nil
			}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if calls != 1 {
		t.Errorf("host revert ran %d times, want 1", calls)
	}
}

func TestLockPath_DistinctForEveryID(t *testing.T) {
	t.Parallel()
	a, b := LockPath("/s", "a/b"), LockPath("/s", "a_b")
	if a == b || filepath.Dir(a) != filepath.Join("/s", dirName) || filepath.Dir(b) != filepath.Join("/s", dirName) {
		t.Errorf("LockPath(a/b) = %s, LockPath(a_b) = %s: want two names in %s", a, b, filepath.Join("/s", dirName))
	}
}

func TestLease_RoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, ok, err := leasefile.Read(dir); ok || err != nil {
		t.Fatalf("leasefile.Read of nothing = %v, %v", ok, err)
	}
	want := time.Unix(1700000000, 123456789)
	if err := leasefile.Write(dir, want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := leasefile.Read(dir)
	if !ok || err != nil || !got.Equal(want) {
		t.Errorf("leasefile.Read = %v, %v, %v; want %v", got, ok, err, want)
	}
}

// fixture is a state directory whose journal holds one open fault.
type fixture struct {
	dir     string
	j       *journal.Journal
	mu      sync.Mutex
	undos   [][]byte // what the recoverer was called with
	recover Recoverer
}

func newFixture(t *testing.T, deadline time.Time) *fixture {
	t.Helper()
	return newFixtureBoot(t, deadline, bootclock.Instant{})
}

// newFixtureBoot is newFixture with the intent's deadline on the boot
// clock too; zero leaves it out, as an older agent's record does.
func newFixtureBoot(t *testing.T, deadline time.Time, boot bootclock.Instant) *fixture {
	t.Helper()
	fx := &fixture{dir: t.TempDir()}
	j, _, err := journal.OpenFile(filepath.Join(fx.dir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	fx.j = j
	for _, r := range []journal.Record{
		{Op: journal.OpIntent, FaultID: "f1", Kind: "network", At: time.Now(), Deadline: deadline, BootDeadline: boot},
		{Op: journal.OpApplied, FaultID: "f1", Kind: "network", At: time.Now(), Undo: []byte(`{"net_interface":"eth0"}`)},
	} {
		if err := j.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	fx.recover = func(_ context.Context, o journal.Open) error {
		fx.mu.Lock()
		defer fx.mu.Unlock()
		fx.undos = append(fx.undos, o.Undo)
		return nil
	}
	return fx
}

func (fx *fixture) recovered() int {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	return len(fx.undos)
}

func (fx *fixture) watch() *watch {
	return &watch{log: slog.New(slog.DiscardHandler), stateDir: fx.dir, faultID: "f1", journal: filepath.Join(fx.dir, "journal"), recover: fx.recover}
}

// run runs a guardian until it exits and returns when it did.
func (fx *fixture) run(stdin io.Reader) time.Time {
	fx.watch().run(stdin)
	return time.Now()
}

// TestGuardian_AgentGoneRevertsAtTheDeadline: with the agent gone (its
// pipe closed), the guardian takes the fault back at its deadline, from
// the journal's undo record, and writes its outcome.
func TestGuardian_AgentGoneRevertsAtTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		deadline := time.Now().Add(10 * time.Second)
		fx := newFixture(t, deadline)
		if err := leasefile.Write(fx.dir, deadline.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		r, w := io.Pipe()
		done := make(chan time.Time, 1)
		go func() { done <- fx.run(r) }()
		synctest.Wait()
		if n := fx.recovered(); n != 0 {
			t.Fatalf("reverted %d times before the deadline", n)
		}
		_ = w.Close() // the agent dies
		ended := <-done
		if !ended.Equal(deadline) {
			t.Errorf("guardian reverted at %v, want the deadline %v", ended, deadline)
		}
		if n := fx.recovered(); n != 1 || string(fx.undos[0]) != `{"net_interface":"eth0"}` {
			t.Errorf("recovered %d times with %q, want once with the undo record", n, fx.undos)
		}
		o, taken, err := Revert(fx.dir, "f1", "later", func() error { return nil })
		if err != nil || taken || o.Reason != ReasonDeadline {
			t.Errorf("outcome = %+v, %v, %v; want the guardian's %q", o, taken, err, ReasonDeadline)
		}
	})
}

// TestGuardian_LiveAgentGetsGrace: while the agent's pipe is open, the
// guardian waits Grace past the deadline, so that a live agent reverts;
// a hung one is overtaken then.
func TestGuardian_LiveAgentGetsGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		deadline := time.Now().Add(time.Second)
		fx := newFixture(t, deadline)
		r, w := io.Pipe()
		defer func() { _ = w.Close() }()
		ended := fx.run(r)
		if want := deadline.Add(Grace); !ended.Equal(want) {
			t.Errorf("guardian of a hung agent reverted at %v, want deadline + Grace = %v", ended, want)
		}
		if n := fx.recovered(); n != 1 {
			t.Errorf("recovered %d times, want 1", n)
		}
	})
}

// TestGuardian_StuckLockHolderIsOvertaken: an agent frozen in the middle
// of its own revert holds the fault's lock. The guardian, whose fault is
// due, waits LockPatience for the lock and then takes the fault back
// without it, writing its outcome where the agent will find it.
func TestGuardian_StuckLockHolderIsOvertaken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		deadline := time.Now().Add(time.Second)
		fx := newFixture(t, deadline)
		frozen, err := LockFault(fx.dir, "f1") // the agent, stopped mid-revert
		if err != nil {
			t.Fatal(err)
		}
		r, w := io.Pipe()
		defer func() { _ = w.Close() }() // the agent is alive, only stuck
		ended := fx.run(r)
		if want := deadline.Add(Grace + LockPatience); ended.After(want) {
			t.Errorf("guardian took the fault back at %v, after deadline + Grace + LockPatience = %v", ended, want)
		}
		if n := fx.recovered(); n != 1 {
			t.Fatalf("recovered %d times while the agent held the lock, want 1", n)
		}
		// The agent wakes, and its retry finds the guardian's outcome.
		if err := frozen.Unlock(); err != nil {
			t.Fatal(err)
		}
		o, taken, err := Revert(fx.dir, "f1", "deadline", func() error { return nil })
		if err != nil || taken || o.Reason != ReasonDeadline {
			t.Errorf("the agent's revert after waking = %+v, taken %v, %v; want the guardian's outcome %q", o, taken, err, ReasonDeadline)
		}
	})
}

// TestGuardian_LeaseEndsFirst: the agent gone and its lease ending before
// the deadline, the guardian reverts at the lease's end, with that reason.
func TestGuardian_LeaseEndsFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, time.Now().Add(time.Hour))
		lease := time.Now().Add(10 * time.Second)
		if err := leasefile.Write(fx.dir, lease); err != nil {
			t.Fatal(err)
		}
		r, w := io.Pipe()
		_ = w.Close()
		if ended := fx.run(r); !ended.Equal(lease) {
			t.Errorf("reverted at %v, want the lease's end %v", ended, lease)
		}
		o, _, err := Revert(fx.dir, "f1", "x", func() error { return nil })
		if err != nil || o.Reason != ReasonLease {
			t.Errorf("outcome %+v, %v; want reason %q", o, err, ReasonLease)
		}
	})
}

// TestGuardian_AgentRevertedFirst: the agent took the fault back (its
// outcome under the lock, then the journal closed): the guardian exits
// without touching the host.
func TestGuardian_AgentRevertedFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := newFixture(t, time.Now().Add(time.Minute))
		r, w := io.Pipe()
		done := make(chan struct{})
		go func() { fx.run(r); close(done) }()
		synctest.Wait()
		if _, _, err := Revert(fx.dir, "f1", "revert requested", func() error { return nil }); err != nil {
			t.Fatal(err)
		}
		if err := fx.j.Append(journal.Record{Op: journal.OpReverted, FaultID: "f1", At: time.Now()}); err != nil {
			t.Fatal(err)
		}
		_ = w.Close() // the agent's Close
		<-done
		if n := fx.recovered(); n != 0 {
			t.Errorf("guardian reverted %d times after the agent did", n)
		}
	})
}

// TestGuardian_RenewedLeasePostpones: a lease renewed while the guardian
// waits moves its revert; with the agent alive and renewing, only the
// deadline (plus Grace) ends it.
func TestGuardian_RenewedLeasePostpones(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		deadline := time.Now().Add(time.Minute)
		fx := newFixture(t, deadline)
		if err := leasefile.Write(fx.dir, time.Now().Add(10*time.Second)); err != nil {
			t.Fatal(err)
		}
		r, w := io.Pipe()
		defer func() { _ = w.Close() }()
		done := make(chan time.Time, 1)
		go func() { done <- fx.run(r) }()
		// The agent renews every 5 s until past the deadline.
		for range 14 {
			time.Sleep(5 * time.Second) // fake time in the bubble
			if err := leasefile.Write(fx.dir, time.Now().Add(10*time.Second)); err != nil {
				t.Error(err)
			}
		}
		if ended := <-done; !ended.Equal(deadline.Add(Grace)) {
			t.Errorf("reverted at %v, want deadline + Grace %v", ended, deadline.Add(Grace))
		}
	})
}

// bootIn returns the boot clock's instant d from now.
func bootIn(t *testing.T, d time.Duration) bootclock.Instant {
	t.Helper()
	now, err := bootclock.Now()
	if err != nil {
		t.Fatal(err)
	}
	return now.Add(d)
}

// TestGuardian_WallClockStepForwardEndsNothingEarly: the wall clock
// stepped forward an hour after the fault arrived, so its wall-clock
// deadline reads an hour ago; on the boot clock, which no step moves, it
// is 10 s away. The guardian of a live agent must leave the fault alone
// until then (plus Grace), not take it back at once.
func TestGuardian_WallClockStepForwardEndsNothingEarly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		due := time.Now().Add(10 * time.Second)
		fx := newFixtureBoot(t, time.Now().Add(-time.Hour), bootIn(t, 10*time.Second))
		r, w := io.Pipe()
		defer func() { _ = w.Close() }()
		if ended := fx.run(r); !ended.Equal(due.Add(Grace)) {
			t.Errorf("guardian took the fault back at %v, want its deadline on the boot clock + Grace, %v", ended, due.Add(Grace))
		}
	})
}

// TestGuardian_WallClockStepBackKeepsNothingLate: the wall clock stepped
// back an hour, so the fault's wall-clock deadline reads an hour away; on
// the boot clock it is 10 s away. With the agent gone, the guardian must
// take the fault back in 10 s, not in an hour.
func TestGuardian_WallClockStepBackKeepsNothingLate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		due := time.Now().Add(10 * time.Second)
		fx := newFixtureBoot(t, time.Now().Add(time.Hour), bootIn(t, 10*time.Second))
		r, w := io.Pipe()
		_ = w.Close() // the agent is gone
		if ended := fx.run(r); !ended.Equal(due) {
			t.Errorf("guardian took the fault back at %v, want its deadline on the boot clock, %v", ended, due)
		}
	})
}
