package localapi

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/turbulence-sre/turbulence/internal/testutil"
)

// nobody is the uid the test connects as.
const nobody = 65534

// TestPrivilegedServer_RefusesNonRootPeer checks layer 3 of the package
// doc alone: with the file modes opened on purpose, a caller that is
// neither root nor the agent's user is still refused, by SO_PEERCRED.
func TestPrivilegedServer_RefusesNonRootPeer(t *testing.T) {
	testutil.RequirePrivileged(t)
	path := socketPath(t)
	b := &fakeBackend{}
	serve(t, path, b)
	// Open layers 1 and 2, as a careless operator might.
	for p, mode := range map[string]os.FileMode{filepath.Dir(filepath.Dir(path)): 0o755, filepath.Dir(path): 0o755, path: 0o666} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}

	// Only this goroutine's OS thread takes the effective uid of nobody:
	// the raw setresuid changes the calling thread alone (the Go runtime's
	// syscall.Setuid would change every thread). The kernel records the
	// connecting thread's credentials for SO_PEERCRED.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), nobody, ^uintptr(0)); e != 0 {
			runtime.UnlockOSThread()
			errc <- e
			return
		}
		_, err := Call(t.Context(), path, Request{Op: OpHalt, Reason: "not mine to pull"})
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), 0, ^uintptr(0)); e == 0 {
			runtime.UnlockOSThread()
		} // else: the thread stays locked and dies with the goroutine
		errc <- err
	}()
	err := <-errc
	if err == nil || !strings.Contains(err.Error(), "permission denied: uid 65534 is not root") {
		t.Errorf("halt as uid %d = %v, want refused as not root", nobody, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.halted {
		t.Errorf("a refused caller halted the agent")
	}
}
