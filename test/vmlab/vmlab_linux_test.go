package vmlab_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/turbulence-sre/turbulence/internal/testutil"
	"github.com/turbulence-sre/turbulence/test/vmlab"
)

// The lab's addresses, all from 198.18.0.0/15 (the benchmarking range:
// nothing real lives there).
const (
	peerCIDR = "198.18.0.1/24" // on the bridge, in the test's namespace
	peerEcho = "198.18.0.1:7007"
	// peer2 is a second address on the same bridge that no fault targets.
	peer2CIDR = "198.18.0.2/24"
	peer2Echo = "198.18.0.2:7007"
	guestCIDR = "198.18.0.10/24"

	// The safety phases' addresses: a third bridge address standing in
	// for the controller, a second port and a counter on the peer's
	// address, TCP echoes on the neighbour's port 22 (SSH, excluded by
	// default) and on another port, and an IPv6 echo on a link-local
	// address of the bridge (no routable IPv6 address anywhere).
	controllerCIDR = "198.18.0.3/24"
	controllerEcho = "198.18.0.3:7443"
	peerPortBEcho  = "198.18.0.1:7008"
	peerCounter    = "198.18.0.1:7009"
	sshEcho        = "198.18.0.2:22"
	notSSHEcho     = "198.18.0.2:2222"
	peer6CIDR      = "fe80::1/64"
	peer6Echo      = "[fe80::1%br0]:7007"
	peer6Guest     = "[fe80::1%eth0]:7007"
	guest6CIDR     = "fe80::10/64"
	// stateDir is the guest agent's state directory (the journal).
	stateDir = "/var/lib/turbulence"
)

// Figures the lab applies and checks.
const (
	delayMS     = 100
	rttSamples  = 15
	lossPercent = 30
	// lossPackets is enough for binomialCheck at 30 % (minSamples: 3734),
	// with a margin for echoes the guest could not send.
	lossPackets = 4200
	// Jitter: netem without a distribution table draws the delay uniformly
	// from [delay-jitter, delay+jitter], whose interquartile range is the
	// jitter itself.
	jitterDelayMS = 50
	jitterMS      = 20
	jitterPackets = 300
	// Duplicate and corrupt, each over statPackets echoes of payloadBytes:
	// large, so that almost every bit netem flips lands under the IP or
	// UDP checksum (only a flip in the source MAC, 6 bytes of 1066, goes
	// unseen).
	// statPackets is enough for binomialCheck at 20 % (minSamples: 6400).
	duplicatePercent = 20
	corruptPercent   = 20
	statPackets      = 6800
	payloadBytes     = 1024
	// Rate: 2 Mbit/s, as netem rate and as a tbf bandwidth limit.
	rateBits    = 2_000_000
	ratePackets = 600
	// deadlineMS: the shortest fault faultspec allows.
	deadlineMS = 1000
	// safetyPackets: echoes per loss measurement of the safety phases.
	safetyPackets = 150
	// rootRateBytes: the tbf root configured before the configured-root
	// phase, 100 Mbit/s (nothing the echoes feel).
	rootRateBytes = 100_000_000 / 8
	// bootBudget bounds the whole VM, boot to power-off: on tcg the kernel
	// boots in about 4 s and the guest's measurements take a few more;
	// the rest is margin for a loaded CI machine.
	bootBudget = 3 * time.Minute
)

func TestVMLab_Netem(t *testing.T) {
	testutil.RequirePrivileged(t)
	ensureTools(t)
	root := moduleRoot(t)
	cache := filepath.Join(root, "build", "vmlab")
	start := time.Now()
	k := prepareKernel(t, cache)
	t.Logf("kernel %s ready in %.1f s", k.version, time.Since(start).Seconds())

	start = time.Now()
	initrd := buildInitramfs(t, root, k)
	t.Logf("guest and initramfs built in %.1f s", time.Since(start).Seconds())
	res := boot(t, k, initrd)
	t.Logf("kernel %s: baseline RTT %.2f ms, with %d ms netem delay %.2f ms (+%.2f), after revert %.2f ms; apply %.2f ms, revert %.2f ms",
		res.Kernel, res.BaselineMS, delayMS, res.DelayedMS, res.DelayedMS-res.BaselineMS, res.RevertedMS, res.ApplyMS, res.RevertMS)
	if res.LossSent > 0 {
		t.Logf("loss %d %%: %d of %d echoes answered (%.1f %% lost)", lossPercent, res.LossReceived, res.LossSent,
			100*float64(res.LossSent-res.LossReceived)/float64(res.LossSent))
	}
	logPhases(t, res)
	logSafety(t, res)
	if res.Error != "" {
		t.Fatalf("guest: %s", res.Error)
	}

	// The delay: what netem added on top of the baseline, within 10 % or
	// 2 ms of what was asked (whichever is looser).
	added := res.DelayedMS - res.BaselineMS
	if tol := math.Max(0.1*delayMS, 2); math.Abs(added-delayMS) > tol {
		t.Errorf("a %d ms netem delay added %.2f ms to the RTT (baseline %.2f ms), want within %.0f ms", delayMS, added, res.BaselineMS, tol)
	}
	// After revert the RTT is back to the baseline's order: tcg's own RTT
	// is a few ms, far below the 100 ms a leftover delay would add.
	if res.RevertedMS >= 10 {
		t.Errorf("RTT after revert = %.2f ms, want < 10 ms (baseline %.2f ms)", res.RevertedMS, res.BaselineMS)
	}
	// The injector's tree (agent/inject/network's doc), in netlink.HandleStr's
	// spelling: htb root 7400:, netem 7401: under the impaired class 7400:1.
	wantDuring := []string{"htb 7400:0 root", "netem 7401:0 7400:1"}
	if !slices.Equal(res.QdiscsDelay, wantDuring) {
		t.Errorf("qdiscs under the delay fault = %q, want %q", res.QdiscsDelay, wantDuring)
	}
	if len(res.QdiscsBefore) == 0 || !slices.Equal(res.QdiscsAfter, res.QdiscsBefore) {
		t.Errorf("qdiscs after revert = %q, want the original %q", res.QdiscsAfter, res.QdiscsBefore)
	}
	if !slices.Equal(res.QdiscsAfterLoss, res.QdiscsBefore) {
		t.Errorf("qdiscs after the loss fault's revert = %q, want the original %q", res.QdiscsAfterLoss, res.QdiscsBefore)
	}

	// The loss: the lost fraction judged by its binomial confidence
	// interval (binomial_linux_test.go), so a wrong rate (or none) fails and
	// chance does not.
	if why := binomialCheck(res.LossSent-res.LossReceived, res.LossSent, lossPercent/100.0); why != "" {
		t.Errorf("%d %% netem loss: %s", lossPercent, why)
	}
	checkPhases(t, res)
	checkSafety(t, res)
}

// buildInitramfs writes the guest's initramfs into a temporary directory:
// the guest binary is rebuilt every run (Go's build cache makes that
// cheap), so it never lags behind the injector it tests.
func buildInitramfs(t *testing.T, root string, k kernel) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "init")
	buildGuest(t, root, bin)
	guest, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	kos, err := moduleFiles(k, guestModules)
	if err != nil {
		t.Fatal(err)
	}
	cfg := vmlab.Config{Interface: "eth0", GuestCIDR: guestCIDR, Peer: peerEcho, DelayMS: delayMS, RTTSamples: rttSamples,
		LossPercent: lossPercent, LossPackets: lossPackets,
		Peer2:         peer2Echo,
		JitterDelayMS: jitterDelayMS, JitterMS: jitterMS, JitterPackets: jitterPackets,
		DuplicatePercent: duplicatePercent, CorruptPercent: corruptPercent, StatPackets: statPackets, PayloadBytes: payloadBytes,
		RateBitsPerSecond: rateBits, RatePackets: ratePackets,
		DeadlineMS: deadlineMS,
		Safety: &vmlab.SafetyConfig{Controller: controllerEcho, SSH: sshEcho, NotSSH: notSSHEcho,
			PeerPortB: peerPortBEcho, Counter: peerCounter, Peer6: peer6Guest, Guest6CIDR: guest6CIDR,
			Packets: safetyPackets, StateDir: stateDir, RootRateBytes: rootRateBytes}}
	for _, ko := range kos {
		cfg.Modules = append(cfg.Modules, filepath.Join("/lib/modules", k.version, ko))
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := initramfsEntries(k, guest, raw, kos)
	if err != nil {
		t.Fatal(err)
	}
	return writeInitramfs(t, dir, entries)
}

// boot makes the lab's network (a namespace with a bridge holding the
// peer address, a tap for the VM and a UDP echo), runs qemu in it and
// returns the guest's Result from the serial console.
func boot(t *testing.T, k kernel, initrd string) vmlab.Result {
	t.Helper()
	ns := testutil.NewNS(t)
	var srv *servers
	var setupErr error
	// Everything happens on a thread inside ns: /dev/net/tun creates the
	// tap in the caller's namespace, not a netlink handle's, and qemu
	// finds tap0 by name from the namespace it starts in.
	testutil.InNS(t, ns, func() { srv, setupErr = labNetwork() })
	if setupErr != nil {
		t.Fatalf("lab network: %v", setupErr)
	}
	t.Cleanup(srv.close)
	srv.serve()

	ctx, cancel := context.WithTimeout(t.Context(), bootBudget)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-accel", "tcg", "-m", "512", "-smp", "1", "-nographic", "-no-reboot",
		"-kernel", k.vmlinuz(), "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 quiet",
		"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0")
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	console, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	testutil.InNS(t, ns, func() { err = cmd.Start() })
	if err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	// Read the console until the result line; the guest powers off right
	// after it, which ends qemu and the stream. The context's deadline
	// ends a guest that hangs.
	var res vmlab.Result
	found := false
	var tail []string
	sc := bufio.NewScanner(console)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if rest, ok := strings.CutPrefix(line, vmlab.ResultPrefix); ok && !found {
			if err := json.Unmarshal([]byte(rest), &res); err != nil {
				t.Errorf("guest result %q: %v", rest, err)
			}
			found = true
			t.Logf("guest result after %.1f s: %s", time.Since(start).Seconds(), rest)
			continue
		}
		tail = append(tail, line)
		if len(tail) > 40 {
			tail = tail[1:]
		}
	}
	werr := cmd.Wait()
	t.Logf("qemu ran %.1f s", time.Since(start).Seconds())
	if !found {
		t.Fatalf("the guest printed no %q line (qemu: %v, context: %v)\nconsole tail:\n%s\nqemu stderr:\n%s",
			strings.TrimSpace(vmlab.ResultPrefix), werr, ctx.Err(), strings.Join(tail, "\n"), stderr.String())
	}
	if werr != nil {
		t.Errorf("qemu after the guest's result: %v\n%s", werr, stderr.String())
	}
	return res
}

// servers are the host side's sockets, all bound inside the lab's
// namespace (they stay there when served from elsewhere).
type servers struct {
	// echo is the peer's UDP echo; peerCount counts what it received, and
	// counter tells the guest that count.
	echo      net.PacketConn
	peerCount atomic.Uint64
	counter   net.PacketConn
	// udp are the other UDP echoes, tcp the TCP ones.
	udp []net.PacketConn
	tcp []net.Listener
}

// labNetwork runs inside the lab's namespace: bridge br0 with the peer
// addresses, tap0 enslaved to it, and the servers.
func labNetwork() (_ *servers, err error) {
	if err := bridgeAndTap(); err != nil {
		return nil, err
	}
	s := &servers{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.echo, err = net.ListenPacket("udp", peerEcho); err != nil {
		return nil, err
	}
	if s.counter, err = net.ListenPacket("udp", peerCounter); err != nil {
		return nil, err
	}
	for _, a := range []string{peer2Echo, controllerEcho, peerPortBEcho, peer6Echo} {
		c, err := net.ListenPacket("udp", a)
		if err != nil {
			return nil, err
		}
		s.udp = append(s.udp, c)
	}
	for _, a := range []string{sshEcho, notSSHEcho} {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return nil, err
		}
		s.tcp = append(s.tcp, l)
	}
	return s, nil
}

func (s *servers) serve() {
	go serveEcho(s.echo, &s.peerCount)
	go serveCounter(s.counter, &s.peerCount)
	for _, c := range s.udp {
		go serveEcho(c, nil)
	}
	for _, l := range s.tcp {
		go serveTCPEcho(l)
	}
}

func (s *servers) close() {
	for _, c := range append([]net.PacketConn{s.echo, s.counter}, s.udp...) {
		if c != nil {
			_ = c.Close()
		}
	}
	for _, l := range s.tcp {
		_ = l.Close()
	}
}

func bridgeAndTap() error {
	h, err := netlink.NewHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := h.LinkAdd(br); err != nil {
		return fmt.Errorf("add bridge: %w", err)
	}
	for _, cidr := range []string{peerCIDR, peer2CIDR, controllerCIDR, peer6CIDR} {
		addr, err := netlink.ParseAddr(cidr)
		if err != nil {
			return err
		}
		// No duplicate address detection: the IPv6 address is bound at
		// once, before the bridge has a carrier.
		addr.Flags = unix.IFA_F_NODAD
		if err := h.AddrAdd(br, addr); err != nil {
			return fmt.Errorf("address the bridge with %s: %w", cidr, err)
		}
	}
	tap := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "tap0"}, Mode: netlink.TUNTAP_MODE_TAP}
	if err := h.LinkAdd(tap); err != nil {
		return fmt.Errorf("add tap: %w", err)
	}
	// The tap stays (persistent) but its queue must be free for qemu,
	// which attaches to it by name: a single-queue tap takes one opener.
	for _, f := range tap.Fds {
		_ = f.Close()
	}
	for _, step := range []func() error{
		func() error { return h.LinkSetMaster(tap, br) },
		func() error { return h.LinkSetUp(tap) },
		func() error { return h.LinkSetUp(br) },
	} {
		if err := step(); err != nil {
			return fmt.Errorf("bridge tap0: %w", err)
		}
	}
	return nil
}

// serveEcho answers every datagram with itself until c is closed, and
// counts them in count if it is not nil.
func serveEcho(c net.PacketConn, count *atomic.Uint64) {
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		if count != nil {
			count.Add(1)
		}
		_, _ = c.WriteTo(buf[:n], from)
	}
}

// serveCounter answers every datagram with count, 8 bytes big-endian.
func serveCounter(c net.PacketConn, count *atomic.Uint64) {
	buf := make([]byte, 64)
	for {
		_, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = c.WriteTo(binary.BigEndian.AppendUint64(nil, count.Load()), from)
	}
}

// serveTCPEcho echoes what each connection sends until it closes.
func serveTCPEcho(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer func() { _ = c.Close() }()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_, _ = io.Copy(c, c)
		}()
	}
}
