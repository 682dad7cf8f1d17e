package network

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/agent/policy"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// testExclusions: a controller and a resolver inside 198.18.0.0/15.
func testExclusions(t *testing.T) ExclusionConfig {
	t.Helper()
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(rc, []byte("nameserver 198.18.0.53\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return ExclusionConfig{Controllers: []string{"198.18.0.9:7443"}, ResolvConf: rc}
}

func bandwidthFault(id, link string, rate uint64, cidrs ...string) *turbulencev1.Fault {
	return &turbulencev1.Fault{Id: id, Spec: &turbulencev1.FaultSpec{
		Duration: durationpb.New(time.Minute),
		Kind: &turbulencev1.FaultSpec_Network{Network: &turbulencev1.NetworkSpec{
			Interface: link,
			Bandwidth: &turbulencev1.BandwidthSpec{RateBytesPerSecond: rate},
			Target:    &turbulencev1.TrafficTarget{Cidrs: cidrs},
		}},
	}}
}

// tree renders link's qdiscs as "kind handle parent" lines, the part of
// the kernel's answer that round-trips exactly.
func tree(t *testing.T, o ops, link string) []string {
	t.Helper()
	qs, err := o.Qdiscs(link)
	if err != nil {
		t.Fatalf("qdiscs of %s: %v", link, err)
	}
	var out []string
	for _, q := range qs {
		out = append(out, fmt.Sprintf("%s %s %s", q.Kind, fmtHandle(q.Handle), fmtHandle(q.Parent)))
	}
	slices.Sort(out)
	return out
}

func TestPrivilegedNetwork_BandwidthIsMeasuredAndReverted(t *testing.T) {
	testutil.RequirePrivileged(t)
	p := testutil.NewNSPair(t, 0)
	o := netlinkOps{h: p.HA}
	before := tree(t, o, p.LinkA)
	in := NewWithHandle(Config{Exclusions: testExclusions(t)}, p.HA)

	ln := testutil.ListenIn(t, p.B, "tcp", "198.18.0.2:0")
	unshaped := measureTCP(t, p, ln, 500*time.Millisecond)

	const rate = 1_000_000 // bytes per second
	h, err := in.Apply(t.Context(), bandwidthFault("f-bw", p.LinkA, rate), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := []string{"htb 7400: root", "tbf 7402: 7400:1"}
	if got := tree(t, o, p.LinkA); !slices.Equal(got, want) {
		t.Fatalf("qdiscs while applied = %q, want %q", got, want)
	}
	got := measureUDP(t, p, 2*time.Second)
	if got < 0.9*rate || got > 1.1*rate {
		t.Errorf("wire rate under a %d B/s limit = %.0f B/s, want within 10 %% (unshaped TCP: %.0f B/s)", rate, got, unshaped)
	}
	t.Logf("configured %d B/s, measured %.0f B/s (%.1f %%), unshaped TCP %.0f B/s", rate, got, 100*got/rate, unshaped)

	var st turbulencev1.FaultStatus
	h.Observe(&st)
	if st.GetNetwork().GetPackets() == 0 || len(st.GetExclusions()) == 0 {
		t.Errorf("Observe = %v, want packets counted and exclusions listed", &st)
	}
	if err := h.Revert(t.Context()); err != nil {
		t.Fatalf("Revert: %v", err)
	}
	if got := tree(t, o, p.LinkA); !slices.Equal(got, before) {
		t.Errorf("qdiscs after revert = %q, want the original %q", got, before)
	}
	if err := h.Revert(t.Context()); err != nil {
		t.Errorf("second Revert = %v, want nil (idempotent)", err)
	}
}

// measureTCP sends from A to ln in B for d and returns what B received per
// second.
func measureTCP(t *testing.T, p *testutil.NSPair, ln net.Listener, d time.Duration) float64 {
	t.Helper()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer func() { _ = c.Close() }()
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}()
	var c net.Conn
	var err error
	testutil.InNS(t, p.A, func() { c, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second) })
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	buf := make([]byte, 32<<10)
	start := time.Now()
	_ = c.SetWriteDeadline(start.Add(d))
	for time.Since(start) < d {
		if _, err := c.Write(buf); err != nil {
			break // the write deadline
		}
	}
	_ = c.Close()
	n := <-got
	return float64(n) / time.Since(start).Seconds()
}

// udpPayload and udpWire: a datagram's payload, and its size on the wire
// as tbf counts it (UDP, IPv4 and Ethernet headers).
const (
	udpPayload = 1000
	udpWire    = udpPayload + 8 + 20 + 14
)

// measureUDP floods B from A for warm-up + d + tail and returns the wire
// rate B received during d, after the queue and the first burst settled:
// the steady state, which is what a rate limit promises.
func measureUDP(t testing.TB, p *testutil.NSPair, d time.Duration) float64 {
	t.Helper()
	return measureUDPFlow(t, p.A, p.B, "198.18.0.2", d)
}

func TestPrivilegedNetwork_TargetingHurtsOnlyTheTarget(t *testing.T) {
	testutil.RequirePrivileged(t)
	p := testutil.NewNSPair(t, 1) // B has .2 and .3
	in := NewWithHandle(Config{Exclusions: testExclusions(t)}, p.HA)
	for _, tc := range []struct {
		name, target, hit, miss string
	}{
		{"ipv4", "198.18.0.3/32", "198.18.0.3", "198.18.0.2"},
		{"ipv6", "fd00:198:18::2/128", "fd00:198:18::2", "198.18.0.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := in.Apply(t.Context(), bandwidthFault("f-"+tc.name, p.LinkA, 10_000_000, tc.target), time.Now().Add(time.Minute))
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			defer func() {
				if err := h.Revert(t.Context()); err != nil {
					t.Errorf("Revert: %v", err)
				}
			}()
			packets := func() uint64 {
				var st turbulencev1.FaultStatus
				h.Observe(&st)
				return st.GetNetwork().GetPackets()
			}
			sendUDP(t, p, tc.miss, 50)
			if n := packets(); n != 0 {
				t.Errorf("after 50 packets to %s (not targeted): impaired class saw %d packets, want 0", tc.miss, n)
			}
			sendUDP(t, p, tc.hit, 50)
			if n := packets(); n < 50 {
				t.Errorf("after 50 packets to %s (targeted): impaired class saw %d packets, want >= 50", tc.hit, n)
			}
		})
	}
}

// sendUDP sends n datagrams from A to addr:9 from an unconnected socket,
// so that the ICMP unreachable answers fail no later write.
func sendUDP(t *testing.T, p *testutil.NSPair, addr string, n int) {
	t.Helper()
	var c net.PacketConn
	var err error
	testutil.InNS(t, p.A, func() { c, err = net.ListenPacket("udp", ":0") })
	if err != nil {
		t.Fatalf("udp socket: %v", err)
	}
	defer func() { _ = c.Close() }()
	to, err := net.ResolveUDPAddr("udp", net.JoinHostPort(addr, "9"))
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := c.WriteTo([]byte("turbulence"), to); err != nil {
			t.Fatalf("send to %s: %v", to, err)
		}
	}
}

func TestPrivilegedNetwork_RootQdiscIsKeptOrRestored(t *testing.T) {
	testutil.RequirePrivileged(t)
	p := testutil.NewNSPair(t, 0)
	o := netlinkOps{h: p.HA}
	mine := Qdisc{Link: p.LinkA, Kind: "tbf", Handle: 0x8001 << 16, Parent: HandleRoot, Tbf: &Tbf{RateBytes: 5_000_000, Burst: 50_000, Limit: 500_000}}
	if err := o.ReplaceQdisc(mine); err != nil {
		t.Fatalf("configure the operator's root: %v", err)
	}
	before := tree(t, o, p.LinkA)

	refusing := NewWithHandle(Config{Exclusions: testExclusions(t)}, p.HA)
	_, err := refusing.Apply(t.Context(), bandwidthFault("f-1", p.LinkA, 1000), time.Now().Add(time.Minute))
	if r, ok := errors.AsType[*policy.Refusal](err); !ok || r.Rule != "network.replace_root_qdisc" {
		t.Fatalf("Apply over a configured root = %v, want a network.replace_root_qdisc refusal", err)
	}
	if got := tree(t, o, p.LinkA); !slices.Equal(got, before) {
		t.Fatalf("qdiscs after a refusal = %q, want untouched %q", got, before)
	}

	allowing := NewWithHandle(Config{Exclusions: testExclusions(t), ReplaceRootQdisc: true}, p.HA)
	h, err := allowing.Apply(t.Context(), bandwidthFault("f-2", p.LinkA, 1000), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatalf("Apply with replace_root_qdisc: %v", err)
	}
	if _, err := allowing.Apply(t.Context(), bandwidthFault("f-3", p.LinkA, 1000), time.Now().Add(time.Minute)); err == nil || !strings.Contains(err.Error(), "f-2") {
		t.Errorf("second fault on %s = %v, want a refusal naming f-2", p.LinkA, err)
	}
	if err := h.Revert(t.Context()); err != nil {
		t.Fatalf("Revert: %v", err)
	}
	if got := tree(t, o, p.LinkA); !slices.Equal(got, before) {
		t.Errorf("qdiscs after revert = %q, want the operator's %q back", got, before)
	}
	qs, _ := o.Qdiscs(p.LinkA)
	if r := findRoot(qs); r == nil || r.Tbf == nil || r.Tbf.RateBytes != mine.Tbf.RateBytes {
		t.Errorf("restored root = %v, want rate %d", r, mine.Tbf.RateBytes)
	}
}

func TestPrivilegedNetwork_BadInputChangesNothing(t *testing.T) {
	testutil.RequirePrivileged(t)
	p := testutil.NewNSPair(t, 0)
	o := netlinkOps{h: p.HA}
	before := tree(t, o, p.LinkA)
	in := NewWithHandle(Config{Exclusions: testExclusions(t)}, p.HA)
	_, err := in.Apply(t.Context(), bandwidthFault("f-1", "turb-nope", 1000), time.Now().Add(time.Minute))
	if !errors.Is(err, ErrNoInterface) || !strings.Contains(err.Error(), "spec.network.interface") {
		t.Errorf("Apply on an unknown interface = %v, want ErrNoInterface naming the field", err)
	}
	if got := tree(t, o, p.LinkA); !slices.Equal(got, before) {
		t.Errorf("qdiscs = %q, want untouched %q", got, before)
	}
}

func TestPrivilegedNetwork_Netem(t *testing.T) {
	testutil.RequirePrivileged(t)
	p := testutil.NewNSPair(t, 0)
	in := NewWithHandle(Config{Exclusions: testExclusions(t)}, p.HA)
	f := &turbulencev1.Fault{Id: "f-netem", Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute),
		Kind: &turbulencev1.FaultSpec_Network{Network: &turbulencev1.NetworkSpec{
			Interface: p.LinkA, Netem: &turbulencev1.NetemSpec{Delay: durationpb.New(50 * time.Millisecond)}}}}}
	h, err := in.Apply(t.Context(), f, time.Now().Add(time.Minute))
	if errors.Is(err, syscall.ENOENT) {
		testutil.SkipKernelFeature(t, "sch_netem", "this kernel cannot create a netem qdisc")
	}
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	defer func() { _ = h.Revert(t.Context()) }()
	want := []string{"htb 7400: root", "netem 7401: 7400:1"}
	if got := tree(t, netlinkOps{h: p.HA}, p.LinkA); !slices.Equal(got, want) {
		t.Errorf("qdiscs = %q, want %q", got, want)
	}
}
