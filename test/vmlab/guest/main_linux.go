//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/agent/inject/network"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
	"github.com/turbulence-sre/turbulence/test/vmlab"
)

// echoTimeout bounds the wait for one echo answer; on tcg a healthy answer
// takes a few ms plus the configured delay.
const echoTimeout = time.Second

func main() {
	var res vmlab.Result
	if err := run(&res); err != nil {
		res.Error = err.Error()
	}
	line, err := json.Marshal(&res)
	if err != nil {
		line = []byte(fmt.Sprintf(`{"error":%q}`, err.Error()))
	}
	// One write, so the line is not interleaved with kernel messages.
	_, _ = os.Stdout.Write([]byte("\n" + vmlab.ResultPrefix + string(line) + "\n"))
	_ = os.Stdout.Sync()
	unix.Sync()
	// As init, returning would panic the kernel: power off instead, which
	// ends qemu.
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}

func run(res *vmlab.Result) error {
	res.Uptime = map[string]float64{}
	mark := func(phase string) {
		var ts unix.Timespec
		if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) == nil {
			res.Uptime[phase] = ms(time.Duration(ts.Nano()))
		}
	}
	mark("init")
	var uts unix.Utsname
	if err := unix.Uname(&uts); err == nil {
		res.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	// Nothing below needs /proc or /sys, but they make a failing guest
	// easier to inspect; errors are not fatal.
	_ = unix.Mount("proc", "/proc", "proc", 0, "")
	_ = unix.Mount("sysfs", "/sys", "sysfs", 0, "")

	raw, err := os.ReadFile(vmlab.ConfigPath)
	if err != nil {
		return err
	}
	var cfg vmlab.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("%s: %w", vmlab.ConfigPath, err)
	}
	for _, m := range cfg.Modules {
		if err := loadModule(m); err != nil {
			return err
		}
	}
	mark("modules")
	link, err := bringUp(cfg)
	if err != nil {
		return err
	}
	mark("link")
	peer, err := net.ResolveUDPAddr("udp", cfg.Peer)
	if err != nil {
		return err
	}
	conn, err := net.DialUDP("udp", nil, peer)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	e := &echoer{c: conn}

	if res.QdiscsBefore, err = qdiscTree(link); err != nil {
		return err
	}
	// Warm-up: resolves the peer's MAC (ARP) and the code paths, so the
	// first timed echo is not an outlier.
	if _, err := e.rtt(5); err != nil {
		return fmt.Errorf("warm-up echo to %s: %w", cfg.Peer, err)
	}
	if res.BaselineMS, err = e.rtt(cfg.RTTSamples); err != nil {
		return fmt.Errorf("baseline: %w", err)
	}

	in := network.New(network.Config{
		// No resolv.conf in the guest: no DNS exclusion; SSH stays excluded
		// and does not touch the echo.
		Exclusions: network.ExclusionConfig{ResolvConf: "/etc/resolv.conf"},
	})
	target := peer.IP.String() + "/32"
	start := time.Now()
	h, err := in.Apply(context.Background(), fault("lab-delay", cfg.Interface, target,
		&turbulencev1.NetemSpec{Delay: durationpb.New(time.Duration(cfg.DelayMS) * time.Millisecond)}), time.Now().Add(time.Hour))
	if err != nil {
		return fmt.Errorf("apply a %d ms delay: %w", cfg.DelayMS, err)
	}
	res.ApplyMS = ms(time.Since(start))
	if res.QdiscsDelay, err = qdiscTree(link); err != nil {
		return err
	}
	if res.DelayedMS, err = e.rtt(cfg.RTTSamples); err != nil {
		return fmt.Errorf("under the delay: %w", err)
	}
	start = time.Now()
	if err := h.Revert(context.Background()); err != nil {
		return err
	}
	res.RevertMS = ms(time.Since(start))
	if res.QdiscsAfter, err = qdiscTree(link); err != nil {
		return err
	}
	if res.RevertedMS, err = e.rtt(cfg.RTTSamples); err != nil {
		return fmt.Errorf("after revert: %w", err)
	}

	mark("delay")
	if cfg.LossPackets == 0 {
		return nil
	}
	start = time.Now()
	h, err = in.Apply(context.Background(), fault("lab-loss", cfg.Interface, target,
		&turbulencev1.NetemSpec{LossPercent: cfg.LossPercent}), time.Now().Add(time.Hour))
	if err != nil {
		return fmt.Errorf("apply %.0f %% loss: %w", cfg.LossPercent, err)
	}
	res.LossApplyMS = ms(time.Since(start))
	res.LossSent = cfg.LossPackets
	res.LossReceived, err = e.burst(cfg.LossPackets)
	start = time.Now()
	if rerr := h.Revert(context.Background()); rerr != nil {
		return errors.Join(err, rerr)
	}
	res.LossRevertMS = ms(time.Since(start))
	if err != nil {
		return err
	}
	res.QdiscsAfterLoss, err = qdiscTree(link)
	mark("loss")
	return err
}

func fault(id, link, target string, n *turbulencev1.NetemSpec) *turbulencev1.Fault {
	return &turbulencev1.Fault{Id: id, Spec: &turbulencev1.FaultSpec{
		Duration: durationpb.New(time.Hour),
		Kind: &turbulencev1.FaultSpec_Network{Network: &turbulencev1.NetworkSpec{
			Interface: link,
			Netem:     n,
			Target:    &turbulencev1.TrafficTarget{Cidrs: []string{target}},
		}},
	}}
}

// loadModule loads one .ko with finit_module. A module that is already
// there (built in, or loaded as a dependency) is fine.
func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("finit_module %s: %w", path, err)
	}
	return nil
}

// bringUp waits for the NIC virtio_net registers, gives it its address and
// sets it (and lo) up. It subscribes to link events before looking, so a
// NIC that appears in between is not missed.
func bringUp(cfg vmlab.Config) (netlink.Link, error) {
	updates := make(chan netlink.LinkUpdate, 16)
	done := make(chan struct{})
	defer close(done)
	if err := netlink.LinkSubscribe(updates, done); err != nil {
		return nil, fmt.Errorf("subscribe to links: %w", err)
	}
	deadline := time.After(30 * time.Second)
	var link netlink.Link
	for link == nil {
		l, err := netlink.LinkByName(cfg.Interface)
		if err == nil {
			link = l
			break
		}
		select {
		case <-updates:
		case <-deadline:
			return nil, fmt.Errorf("no interface %s 30 s after loading virtio_net: %w", cfg.Interface, err)
		}
	}
	addr, err := netlink.ParseAddr(cfg.GuestCIDR)
	if err != nil {
		return nil, err
	}
	if err := netlink.AddrAdd(link, addr); err != nil {
		return nil, fmt.Errorf("address %s on %s: %w", cfg.GuestCIDR, cfg.Interface, err)
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		_ = netlink.LinkSetUp(lo)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("set %s up: %w", cfg.Interface, err)
	}
	return link, nil
}

// qdiscTree renders link's qdiscs as sorted "kind handle parent" lines: the
// part of the kernel's answer that round-trips exactly.
func qdiscTree(link netlink.Link) ([]string, error) {
	qs, err := netlink.QdiscList(link)
	if err != nil {
		return nil, fmt.Errorf("list qdiscs: %w", err)
	}
	var out []string
	for _, q := range qs {
		a := q.Attrs()
		out = append(out, fmt.Sprintf("%s %s %s", q.Type(), netlink.HandleStr(a.Handle), netlink.HandleStr(a.Parent)))
	}
	slices.Sort(out)
	return out, nil
}

// echoer sends numbered datagrams to the host's UDP echo and matches the
// answers by number, so a late answer to an earlier echo is never taken
// for the current one.
type echoer struct {
	c   *net.UDPConn
	seq uint64
}

// rtt returns the median round trip of n echoes, in ms. The median, not
// the mean: tcg stalls the guest now and then, and one stall is not what
// netem did.
func (e *echoer) rtt(n int) (float64, error) {
	var rtts []float64
	buf := make([]byte, 64)
	for range n {
		e.seq++
		var msg [8]byte
		binary.BigEndian.PutUint64(msg[:], e.seq)
		start := time.Now()
		if _, err := e.c.Write(msg[:]); err != nil {
			return 0, err
		}
		_ = e.c.SetReadDeadline(start.Add(echoTimeout))
		for {
			k, err := e.c.Read(buf)
			if err != nil {
				return 0, fmt.Errorf("echo %d: %w", e.seq, err)
			}
			if k == 8 && binary.BigEndian.Uint64(buf[:8]) == e.seq {
				break
			}
		}
		rtts = append(rtts, ms(time.Since(start)))
	}
	sort.Float64s(rtts)
	return rtts[len(rtts)/2], nil
}

// burst sends n echoes paced 2 ms apart (not a burst the queues would drop
// on their own) and returns how many distinct ones were answered by the
// time the last answer could still arrive.
func (e *echoer) burst(n int) (int, error) {
	first := e.seq + 1
	got := make(chan int, 1)
	go func() {
		seen := make(map[uint64]bool, n)
		buf := make([]byte, 64)
		for {
			k, err := e.c.Read(buf)
			if err != nil { // the deadline set below, after the last send
				got <- len(seen)
				return
			}
			if s := binary.BigEndian.Uint64(buf[:8]); k == 8 && s >= first && s < first+uint64(n) {
				seen[s] = true
			}
		}
	}()
	_ = e.c.SetReadDeadline(time.Time{})
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for range n {
		e.seq++
		var msg [8]byte
		binary.BigEndian.PutUint64(msg[:], e.seq)
		if _, err := e.c.Write(msg[:]); err != nil {
			return 0, err
		}
		<-tick.C
	}
	_ = e.c.SetReadDeadline(time.Now().Add(echoTimeout))
	return <-got, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
