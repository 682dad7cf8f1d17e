package localapi

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeBackend is an agent reduced to its halt flag and one fault.
type fakeBackend struct {
	mu     sync.Mutex
	halted bool
	reason string
	faults []Fault
}

func (b *fakeBackend) Status(context.Context) Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Status{AgentID: "a1", Hostname: "h1", LocallyHalted: b.halted, LocalHaltReason: b.reason, Faults: append([]Fault{}, b.faults...)}
}

func (b *fakeBackend) Halt(_ context.Context, reason string) []Fault {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.halted, b.reason = true, reason
	out := b.faults
	for i := range out {
		out[i].State, out[i].Reason = "reverted", "local halt"
	}
	b.faults = nil
	return out
}

func (b *fakeBackend) Resume(context.Context) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	was := b.halted
	b.halted, b.reason = false, ""
	return was, nil
}

// socketPath returns a short socket path in a fresh directory: unix
// socket paths are limited to about 108 bytes, which t.TempDir can exceed.
func socketPath(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the local API checks peer credentials with SO_PEERCRED (Linux)")
	}
	dir, err := os.MkdirTemp("", "tla")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "run", "agent.sock")
}

// serve runs a Server on path until the test ends; stop ends it early.
func serve(t *testing.T, path string, b Backend) (stop func()) {
	t.Helper()
	s, err := Listen(Config{Path: path, Backend: b})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return within 10s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestServer_StatusHaltResumeRoundTrip(t *testing.T) {
	t.Parallel()
	path := socketPath(t)
	b := &fakeBackend{faults: []Fault{{ID: "f1", Kind: "cpu", State: "active", MeasuredCPUPercent: 19.5}}}
	stop := serve(t, path, b)
	ctx := t.Context()

	resp, err := Call(ctx, path, Request{Op: OpStatus})
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	want := &Status{AgentID: "a1", Hostname: "h1", Faults: []Fault{{ID: "f1", Kind: "cpu", State: "active", MeasuredCPUPercent: 19.5}}}
	if diff := cmp.Diff(want, resp.Status); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}

	resp, err = Call(ctx, path, Request{Op: OpHalt, Reason: "db latency"})
	if err != nil {
		t.Fatalf("halt: %v", err)
	}
	if diff := cmp.Diff([]Fault{{ID: "f1", Kind: "cpu", State: "reverted", MeasuredCPUPercent: 19.5, Reason: "local halt"}}, resp.Reverted); diff != "" {
		t.Errorf("halt reverted (-want +got):\n%s", diff)
	}
	if !resp.Status.LocallyHalted || resp.Status.LocalHaltReason != "db latency" || len(resp.Status.Faults) != 0 {
		t.Errorf("status after halt = %+v, want halted locally for %q with no faults", resp.Status, "db latency")
	}

	resp, err = Call(ctx, path, Request{Op: OpResume})
	if err != nil || !resp.WasHalted || resp.Status.LocallyHalted {
		t.Errorf("resume = %+v, %v; want was_halted and no longer halted", resp, err)
	}
	resp, err = Call(ctx, path, Request{Op: OpResume})
	if err != nil || resp.WasHalted {
		t.Errorf("second resume = %+v, %v; want ok with was_halted false", resp, err)
	}

	if _, err := Call(ctx, path, Request{Op: "reboot"}); err == nil || !strings.Contains(err.Error(), `unknown op "reboot"`) {
		t.Errorf("unknown op: err = %v, want it named", err)
	}

	stop()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket after Run returned: Lstat = %v, want it removed", err)
	}
	_, err = Call(ctx, path, Request{Op: OpStatus})
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "agent not running or socket at "+path+" not found") {
		t.Errorf("status with no server = %v, want ErrNotRunning naming the path", err)
	}
}

func TestServer_SocketAndDirectoryModes(t *testing.T) {
	t.Parallel()
	path := socketPath(t)
	serve(t, path, &fakeBackend{})
	for _, c := range []struct {
		path string
		want fs.FileMode
	}{
		{filepath.Dir(path), fs.ModeDir | 0o700},
		{path, fs.ModeSocket | 0o600},
	} {
		fi, err := os.Lstat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (fs.ModeType | fs.ModePerm); got != c.want {
			t.Errorf("mode of %s = %v, want %v", c.path, got, c.want)
		}
		if uid, ok := ownerUID(fi); !ok || uid != os.Geteuid() {
			t.Errorf("owner of %s = %d (%v), want uid %d", c.path, uid, ok, os.Geteuid())
		}
	}
}

func TestListen_RemovesStaleSocketOnly(t *testing.T) {
	t.Parallel()
	t.Run("stale socket is replaced", func(t *testing.T) {
		t.Parallel()
		path := socketPath(t)
		if err := prepareDir(filepath.Dir(path)); err != nil {
			t.Fatal(err)
		}
		// A killed agent leaves its socket file behind, with nobody on it.
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		_ = l.Close()
		if _, err := os.Lstat(path); err != nil {
			t.Fatalf("stale socket not left behind: %v", err)
		}
		serve(t, path, &fakeBackend{})
		if _, err := Call(t.Context(), path, Request{Op: OpStatus}); err != nil {
			t.Errorf("status over the new socket: %v", err)
		}
	})
	t.Run("live socket is another agent", func(t *testing.T) {
		t.Parallel()
		path := socketPath(t)
		serve(t, path, &fakeBackend{})
		if _, err := Listen(Config{Path: path, Backend: &fakeBackend{}}); err == nil || !strings.Contains(err.Error(), "another agent is serving") {
			t.Errorf("second Listen = %v, want refused", err)
		}
		if _, err := Call(t.Context(), path, Request{Op: OpStatus}); err != nil {
			t.Errorf("first server no longer answers after the refused Listen: %v", err)
		}
	})
	t.Run("a file that is not a socket is kept", func(t *testing.T) {
		t.Parallel()
		path := socketPath(t)
		if err := prepareDir(filepath.Dir(path)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Listen(Config{Path: path, Backend: &fakeBackend{}}); err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Errorf("Listen over a regular file = %v, want refused", err)
		}
		if data, err := os.ReadFile(path); err != nil || string(data) != "precious" {
			t.Errorf("regular file after Listen = %q, %v; want it untouched", data, err)
		}
	})
	t.Run("an open directory is refused, not changed", func(t *testing.T) {
		t.Parallel()
		path := socketPath(t)
		dir := filepath.Dir(path)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := Listen(Config{Path: path, Backend: &fakeBackend{}}); err == nil || !strings.Contains(err.Error(), "0700") {
			t.Errorf("Listen in a 0755 directory = %v, want refused", err)
		}
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("directory mode after refused Listen = %v, %v; want 0755 untouched", fi.Mode(), err)
		}
	})
}

func TestServer_BadRequestAndIdleClientAtShutdown(t *testing.T) {
	t.Parallel()
	path := socketPath(t)
	stop := serve(t, path, &fakeBackend{})

	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if _, err := conn.Write([]byte("not json\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	n, _ := conn.Read(buf)
	if got := string(buf[:n]); !strings.Contains(got, `"ok":false`) || !strings.Contains(got, "bad request") {
		t.Errorf("answer to garbage = %q, want a bad request error", got)
	}

	// A client that connects and never sends must not hold up shutdown.
	idle, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = idle.Close() }()
	// Make sure the server accepted it before stopping: a status on a
	// second connection is served after the idle one was accepted.
	if _, err := Call(t.Context(), path, Request{Op: OpStatus}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	stop()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Run took %v to stop with an idle client, want well under the %v request timeout", d, requestTimeout)
	}
}

func TestPeerUID_IsTheCaller(t *testing.T) {
	t.Parallel()
	path := socketPath(t)
	if err := prepareDir(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	}
	l, err := listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	sc, err := l.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sc.Close() }()
	if uid, err := peerUID(sc); err != nil || uid != os.Geteuid() {
		t.Errorf("peerUID = %d, %v; want this process's uid %d", uid, err, os.Geteuid())
	}
}
