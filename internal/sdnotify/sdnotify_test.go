package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// listen opens a unixgram socket standing in for systemd's and points
// NOTIFY_SOCKET at it.
func listen(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 256)
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotifier_SendsEachState(t *testing.T) {
	c := listen(t)
	t.Setenv("WATCHDOG_USEC", "4000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n := New(nil)
	if got := n.WatchdogInterval(); got != 2*time.Second {
		t.Errorf("WatchdogInterval = %v, want half of WATCHDOG_USEC, 2s", got)
	}
	for _, tc := range []struct {
		send func()
		want string
	}{{n.Ready, "READY=1"}, {n.Watchdog, "WATCHDOG=1"}, {n.Stopping, "STOPPING=1"}} {
		tc.send()
		if got := read(t, c); got != tc.want {
			t.Errorf("sent %q, want %q", got, tc.want)
		}
	}
}

// A watchdog armed for another process (WATCHDOG_PID) is not ours: a
// re-executed child must not believe it feeds its parent's watchdog.
func TestNotifier_WatchdogOfAnotherPIDIsOff(t *testing.T) {
	c := listen(t)
	t.Setenv("WATCHDOG_USEC", "4000000")
	t.Setenv("WATCHDOG_PID", "1")
	n := New(nil)
	if got := n.WatchdogInterval(); got != 0 {
		t.Errorf("WatchdogInterval = %v, want 0 for another PID's watchdog", got)
	}
	n.Watchdog()
	n.Ready()
	if got := read(t, c); got != "READY=1" {
		t.Errorf("first message %q, want READY=1 (no WATCHDOG=1 before it)", got)
	}
}

// Outside systemd nothing is sent and nothing fails.
func TestNotifier_NoSocketIsNoop(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	n := New(nil)
	if n.WatchdogInterval() != 0 {
		t.Errorf("WatchdogInterval = %v without systemd, want 0", n.WatchdogInterval())
	}
	n.Ready()
	n.Watchdog()
	n.Stopping()
}
