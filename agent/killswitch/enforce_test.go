package killswitch

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeOverdue records the enforcement loop's passes in order with its
// alive calls, and blocks a pass while it is stuck (a channel, not a
// mutex: synctest sees a goroutine blocked on a channel as idle).
type fakeOverdue struct {
	mu     sync.Mutex
	events []string
	stuck  chan struct{} // a pass waits for it to close; nil: not stuck
}

func (f *fakeOverdue) EndOverdue(time.Time) int {
	f.mu.Lock()
	stuck := f.stuck
	f.mu.Unlock()
	if stuck != nil {
		<-stuck
	}
	f.record("enforce")
	return 0
}

// stick makes the next passes block until release is called.
func (f *fakeOverdue) stick() (release func()) {
	c := make(chan struct{})
	f.mu.Lock()
	f.stuck = c
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		f.stuck = nil
		f.mu.Unlock()
		close(c)
	}
}

func (f *fakeOverdue) record(e string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
}

func (f *fakeOverdue) count(e string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, x := range f.events {
		if x == e {
			n++
		}
	}
	return n
}

// Every pass enforces first and only then reports alive.
func TestEnforce_AliveOnlyAfterEachPass(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := &fakeOverdue{}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			Enforce(ctx, time.Second, f, nil, func() { f.record("alive") })
		}()
		time.Sleep(2500 * time.Millisecond)
		synctest.Wait()
		cancel()
		<-done
		f.mu.Lock()
		got := append([]string(nil), f.events...)
		f.mu.Unlock()
		want := []string{"enforce", "alive", "enforce", "alive", "enforce", "alive"}
		if len(got) != len(want) {
			t.Fatalf("events = %q, want %q", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("events = %q, want %q", got, want)
			}
		}
	})
}

// A stuck enforcement pass stops the alive calls (and so systemd's
// watchdog pings) until it gets going again.
func TestEnforce_StuckPassStopsAlive(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := &fakeOverdue{}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			Enforce(ctx, time.Second, f, nil, func() { f.record("alive") })
		}()
		synctest.Wait()
		if n := f.count("alive"); n != 1 {
			t.Fatalf("alive calls at start = %d, want 1", n)
		}
		release := f.stick()
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := f.count("alive"); n != 1 {
			t.Errorf("alive calls while enforcement was stuck for a minute = %d, want still 1", n)
		}
		release()
		synctest.Wait()
		// The stuck pass finishes, then the tick the ticker kept runs one
		// more at once.
		if n := f.count("alive"); n < 2 {
			t.Errorf("alive calls once unstuck = %d, want more than 1", n)
		}
		cancel()
		<-done
	})
}

// The loop expires a lease its timer has not acted on, and the timer,
// firing later, does not revert a second time.
func TestEnforce_ExpiresOverdueLeaseOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		rev := &fakeReverter{}
		l := newLease(rev)
		defer l.Stop()
		l.Renew(5 * time.Second)
		l.expireIfOverdue(time.Now().Add(4 * time.Second))
		if got := rev.calls(); len(got) != 0 {
			t.Fatalf("expired before its end: %q", got)
		}
		l.expireIfOverdue(time.Now().Add(5 * time.Second))
		if got := rev.calls(); len(got) != 1 || got[0] != Reason {
			t.Fatalf("RevertAll calls = %q, want one with %q", got, Reason)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := rev.calls(); len(got) != 1 {
			t.Errorf("RevertAll calls = %d after the timer's time too, want still 1", len(got))
		}
		if n := l.Expired(); n != 1 {
			t.Errorf("Expired() = %d, want 1", n)
		}
		// A renewal arms it again.
		l.Renew(0)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := rev.calls(); len(got) != 2 {
			t.Errorf("RevertAll calls = %d after a renewal ran out, want 2", len(got))
		}
	})
}
