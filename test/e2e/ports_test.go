package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// tcpListenState is st 0A (TCP_LISTEN) in /proc/net/tcp{,6}.
const tcpListenState = "0A"

// listeningTCP returns the TCP sockets of this process that are in the
// LISTEN state, as "inode address" strings keyed by inode. It matches
// the socket inodes behind /proc/self/fd with the rows of /proc/net/tcp
// and /proc/net/tcp6, so sockets of other processes on the host do not
// count.
func listeningTCP(t *testing.T) map[string]string {
	t.Helper()
	mine := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err != nil {
			continue // closed since ReadDir
		}
		if inode, ok := strings.CutPrefix(target, "socket:["); ok {
			mine[strings.TrimSuffix(inode, "]")] = true
		}
	}
	out := map[string]string{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != tcpListenState || !mine[fields[9]] {
				continue
			}
			out[fields[9]] = fmt.Sprintf("%s %s", table, fields[1])
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
	}
	return out
}

// TestAgent_ListensOnNoTCPPort proves the agent's design rule: it dials
// the controller and serves nothing on TCP (the optional metrics address
// aside, which is off here). The controller runs in this same process, so
// its listeners are taken before the agent starts and only what appears
// after counts.
func TestAgent_ListensOnNoTCPPort(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("needs Linux /proc/net/tcp")
	}
	srv := controllertest.NewServer(t, nil)
	sockDir := t.TempDir()
	if err := os.Chmod(sockDir, 0o700); err != nil { // the local socket's rule
		t.Fatal(err)
	}
	before := listeningTCP(t)
	if len(before) == 0 {
		t.Fatal("found no listening socket of the in-process controller: the /proc reading is broken, so its silence below would prove nothing")
	}
	// Self-check: a listener opened now is seen, on IPv4 and IPv6.
	for _, network := range []string{"tcp4", "tcp6"} {
		probe, err := net.Listen(network, map[string]string{"tcp4": "127.0.0.1:0", "tcp6": "[::1]:0"}[network])
		if err != nil {
			t.Logf("%s probe: %v (no %s loopback here)", network, err, network)
			continue
		}
		if n := len(listeningTCP(t)); n != len(before)+1 {
			t.Errorf("%s probe listener not seen: %d listening sockets, want %d", network, n, len(before)+1)
		}
		_ = probe.Close()
	}

	a := runAgent(t, []string{srv.Addr}, srv.PKI.Agent, func(c *agent.Config) {
		// The operator's socket is a unix socket; serve it, to show it is
		// not TCP.
		c.LocalSocket = filepath.Join(sockDir, "agent.sock")
	})
	api := srv.AdminClient(t)
	controllertest.WaitFor(t, 15*time.Second, "the agent to connect", func() bool {
		ag, err := api.GetAgent(t.Context(), &turbulencev1.GetAgentRequest{Id: a.ID()})
		return err == nil && ag.GetConnected()
	})

	after := listeningTCP(t)
	for inode, addr := range after {
		if _, ok := before[inode]; !ok {
			t.Errorf("a TCP socket started listening with the agent: inode %s, %s", inode, addr)
		}
	}
}
