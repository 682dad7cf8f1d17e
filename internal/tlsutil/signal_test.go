//go:build unix

package tlsutil

import (
	"bytes"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a log sink safe for the watcher goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestReloadOnSIGHUP_ReloadsRegisteredReloaders sends a real SIGHUP to the
// test process. Not parallel, and guarded: a guard channel is registered
// for SIGHUP before the signal is sent and released only after the
// watcher has handled it (the runtime delivers a signal to every
// registered channel at once), so at no moment is SIGHUP's default
// action — terminating the test binary — in force.
func TestReloadOnSIGHUP_ReloadsRegisteredReloaders(t *testing.T) {
	pki, err := EnsureDevPKI(t.TempDir(), "a1")
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	r, err := NewReloader(pki.Controller, WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	before := r.NotAfter()

	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)

	type result struct {
		n   int
		err error
	}
	reloaded := make(chan result, 1)
	stop := reloadOn(logger, func(n int, err error) {
		select {
		case reloaded <- result{n, err}:
		default:
		}
	}, syscall.SIGHUP)
	defer stop()

	// Rotate the files. No handshake follows, so only the signal can
	// make r read them.
	reissue(t, pki, pki.Controller, Identity{Role: RoleController, Name: "controller"}, 48*time.Hour)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatalf("send SIGHUP: %v", err)
	}
	select {
	case res := <-reloaded:
		// Other tests' Reloaders may point at removed temporary
		// directories; only this one's outcome matters.
		if res.n < 1 {
			t.Errorf("reloaded %d certificates (error %v), want at least this test's", res.n, res.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reload within 10s of SIGHUP")
	}
	// The dev certificate is valid for longer than the reissued one.
	if after, want := r.NotAfter(), time.Now().Add(48*time.Hour); after.Equal(before) || after.Sub(want).Abs() > time.Minute {
		t.Errorf("NotAfter after SIGHUP = %s (before %s), want the reissued certificate's, about %s", after, before, want)
	}
	if !strings.Contains(logs.String(), `msg="certificate reloaded"`) {
		t.Errorf("logs lack the reload message:\n%s", logs.String())
	}
	stop()
	stop() // idempotent, as a deferred stop after an explicit one
}

// TestReloadAll_KeepsPreviousOnBrokenFiles: a reload that fails names the
// certificate file and leaves the certificate in use.
//
// Not parallel: ReloadAll reaches every Reloader of the process, including
// those of parallel tests whose clocks and log buffers are not made for
// another goroutine. Sequential tests finish before parallel ones start.
func TestReloadAll_KeepsPreviousOnBrokenFiles(t *testing.T) {
	pki, err := EnsureDevPKI(t.TempDir(), "a1")
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReloader(pki.Agent, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	before := r.NotAfter()
	if err := os.WriteFile(pki.Agent.Cert, []byte("not PEM"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReloadAll()
	if err == nil || !strings.Contains(err.Error(), pki.Agent.Cert) {
		t.Errorf("ReloadAll = %v, want an error naming %s", err, pki.Agent.Cert)
	}
	if !r.NotAfter().Equal(before) {
		t.Errorf("NotAfter changed to %s after a failed reload", r.NotAfter())
	}
}
