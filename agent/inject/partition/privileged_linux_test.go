package partition

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/vishvananda/netns"

	"github.com/turbulence-sre/turbulence/agent/inject/network"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func exclusions(t *testing.T, controller string) network.ExclusionConfig {
	t.Helper()
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(rc, []byte("nameserver 198.18.0.53\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return network.ExclusionConfig{Controllers: []string{controller}, ResolvConf: rc}
}

func partitionFault(id string, dir turbulencev1.Direction, cidrs ...string) *turbulencev1.Fault {
	return &turbulencev1.Fault{Id: id, Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute),
		Kind: &turbulencev1.FaultSpec_Partition{Partition: &turbulencev1.PartitionSpec{Direction: dir, Target: &turbulencev1.TrafficTarget{Cidrs: cidrs}}}}}
}

// connects reports whether a TCP connection from -> to:port succeeds
// within a short timeout (a dropped SYN times out).
func connects(t *testing.T, from *testutil.NSPair, inA bool, addr string) bool {
	t.Helper()
	ns := from.A
	if !inA {
		ns = from.B
	}
	var c net.Conn
	var err error
	testutil.InNS(t, ns, func() { c, err = net.DialTimeout("tcp", addr, 300*time.Millisecond) })
	if err == nil {
		_ = c.Close()
	}
	return err == nil
}

// udpReaches reports whether a datagram sent from namespace from reaches l.
func udpReaches(t *testing.T, from netns.NsHandle, l net.PacketConn) bool {
	t.Helper()
	var c net.Conn
	var err error
	testutil.InNS(t, from, func() { c, err = net.Dial("udp", l.LocalAddr().String()) })
	if err != nil {
		t.Fatalf("dial udp: %v", err)
	}
	defer func() { _ = c.Close() }()
	_, _ = c.Write([]byte("probe"))
	_ = l.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 16)
	_, _, err = l.ReadFrom(buf)
	return err == nil
}

func listenUDP(t *testing.T, ns netns.NsHandle, addr string) net.PacketConn {
	t.Helper()
	var l net.PacketConn
	var err error
	testutil.InNS(t, ns, func() { l, err = net.ListenPacket("udp", addr) })
	if err != nil {
		t.Fatalf("listen udp: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func TestPrivilegedPartition_DropsExactlyTheTarget(t *testing.T) {
	testutil.RequirePrivileged(t)
	p := testutil.NewNSPair(t, 2) // B: .2, .3, .4
	// .4 is a controller: inside the target, yet never cut.
	in := NewInNetNS(Config{Exclusions: exclusions(t, "198.18.0.4:7443")}, int(p.A))
	for _, a := range []string{"198.18.0.2", "198.18.0.3", "198.18.0.4"} {
		testutil.ListenIn(t, p.B, "tcp", a+":8080")
	}
	udp2, udp3 := listenUDP(t, p.B, "198.18.0.2:8081"), listenUDP(t, p.B, "198.18.0.3:8081")

	h, err := in.Apply(t.Context(), partitionFault("f-part", turbulencev1.Direction_DIRECTION_EGRESS, "198.18.0.3/32", "198.18.0.4/32"), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if !connects(t, p, true, "198.18.0.2:8080") {
		t.Error("TCP to 198.18.0.2 (not targeted) failed")
	}
	if connects(t, p, true, "198.18.0.3:8080") {
		t.Error("TCP to 198.18.0.3 (targeted) connected")
	}
	if !connects(t, p, true, "198.18.0.4:8080") {
		t.Error("TCP to the controller 198.18.0.4 (targeted but excluded) failed")
	}
	if !udpReaches(t, p.A, udp2) {
		t.Error("UDP to 198.18.0.2 (not targeted) lost")
	}
	if udpReaches(t, p.A, udp3) {
		t.Error("UDP to 198.18.0.3 (targeted) arrived")
	}
	var st turbulencev1.FaultStatus
	h.Observe(&st)
	if st.GetNetwork().GetDrops() == 0 || !slices.ContainsFunc(st.GetExclusions(), func(s string) bool { return s == "controller 198.18.0.4:7443" }) {
		t.Errorf("Observe = %v, want drops counted and the controller listed as excluded", &st)
	}
	if err := h.Revert(t.Context()); err != nil {
		t.Fatalf("Revert: %v", err)
	}
	if names, _ := (nft{netns: int(p.A)}).List(); len(names) != 0 {
		t.Errorf("tables after revert = %q, want none", names)
	}
	if !connects(t, p, true, "198.18.0.3:8080") || !udpReaches(t, p.A, udp3) {
		t.Error("198.18.0.3 still cut after revert")
	}
	if err := h.Revert(t.Context()); err != nil {
		t.Errorf("second Revert = %v, want nil", err)
	}
}

func TestPrivilegedPartition_Directions(t *testing.T) {
	testutil.RequirePrivileged(t)
	p := testutil.NewNSPair(t, 0)
	toB4 := listenUDP(t, p.B, "198.18.0.2:8081")
	toB6 := listenUDP(t, p.B, "[fd00:198:18::2]:8081")
	toA4 := listenUDP(t, p.A, "198.18.0.1:8081")
	in := NewInNetNS(Config{Exclusions: exclusions(t, "198.18.0.9:7443")}, int(p.A))
	for _, tc := range []struct {
		dir        turbulencev1.Direction
		aToB, bToA bool // whether datagrams still arrive
	}{
		{turbulencev1.Direction_DIRECTION_EGRESS, false, true},
		{turbulencev1.Direction_DIRECTION_INGRESS, true, false},
		{turbulencev1.Direction_DIRECTION_BOTH, false, false},
	} {
		t.Run(tc.dir.String(), func(t *testing.T) {
			h, err := in.Apply(t.Context(), partitionFault("f-"+tc.dir.String(), tc.dir, "198.18.0.0/24", "fd00:198:18::/64"), time.Now().Add(time.Minute))
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			defer func() { _ = h.Revert(t.Context()) }()
			if got := udpReaches(t, p.A, toB4); got != tc.aToB {
				t.Errorf("UDP A -> B arrives = %v, want %v", got, tc.aToB)
			}
			if got := udpReaches(t, p.A, toB6); got != tc.aToB {
				t.Errorf("UDP A -> B over IPv6 arrives = %v, want %v", got, tc.aToB)
			}
			if got := udpReaches(t, p.B, toA4); got != tc.bToA {
				t.Errorf("UDP B -> A arrives = %v, want %v", got, tc.bToA)
			}
		})
	}
}
