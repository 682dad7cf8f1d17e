package killswitch

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeReverter struct {
	mu      sync.Mutex
	reasons []string
}

func (f *fakeReverter) RevertAll(reason string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reasons = append(f.reasons, reason)
	return 1
}

func (f *fakeReverter) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reasons...)
}

func newLease(rev Reverter) *Lease {
	return NewLease(slog.New(slog.NewTextHandler(io.Discard, nil)), rev)
}

func TestLease_ExpiresAfterTTLWithoutRenewal(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		rev := &fakeReverter{}
		l := newLease(rev)
		defer l.Stop()
		l.Renew(5 * time.Second)
		time.Sleep(5*time.Second - time.Nanosecond)
		synctest.Wait()
		if got := rev.calls(); len(got) != 0 {
			t.Fatalf("reverted before the TTL: %v", got)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if got := rev.calls(); len(got) != 1 || got[0] != Reason {
			t.Errorf("RevertAll calls = %q, want one with %q", got, Reason)
		}
		// Not re-armed: nothing more happens without a controller.
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := rev.calls(); len(got) != 1 {
			t.Errorf("RevertAll calls = %d after a minute, want still 1", len(got))
		}
	})
}

func TestLease_RenewalKeepsFaults(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		rev := &fakeReverter{}
		l := newLease(rev)
		defer l.Stop()
		l.Renew(5 * time.Second)
		// Renewed every 4 s for a minute: never expires. Renew(0) keeps the TTL.
		for range 15 {
			time.Sleep(4 * time.Second)
			l.Renew(0)
		}
		synctest.Wait()
		if got := rev.calls(); len(got) != 0 {
			t.Errorf("reverted despite renewals: %v", got)
		}
		if l.TTL() != 5*time.Second {
			t.Errorf("TTL = %v, want 5s", l.TTL())
		}
	})
}

func TestLease_DefaultTTLBeforeAnyController(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		rev := &fakeReverter{}
		l := newLease(rev)
		defer l.Stop()
		time.Sleep(DefaultTTL)
		synctest.Wait()
		if l.Expired() != 1 {
			t.Errorf("Expired() = %d after DefaultTTL without a controller, want 1", l.Expired())
		}
	})
}

func TestLease_StopDisarms(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		rev := &fakeReverter{}
		l := newLease(rev)
		l.Stop()
		l.Renew(time.Second) // ignored after Stop
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := rev.calls(); len(got) != 0 {
			t.Errorf("stopped lease reverted: %v", got)
		}
	})
}
