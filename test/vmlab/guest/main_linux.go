//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/agent/guardian"
	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/inject/network"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
	"github.com/turbulence-sre/turbulence/test/vmlab"
)

// echoTimeout bounds the wait for one echo answer; on tcg a healthy answer
// takes a few ms plus the configured delay.
const echoTimeout = time.Second

func main() {
	if len(os.Args) > 1 && os.Args[1] == guardian.Subcommand {
		// The guardian of the crash child's fault: the guest binary is
		// the lab's agent binary.
		exe, err := os.Executable()
		if err != nil {
			os.Exit(1)
		}
		os.Exit(guardian.Main(os.Args[2:], os.Stdin, os.Stderr, agent.JournalFile, func(stateDir string) guardian.Recoverer {
			return agent.RecoverGuarded(stateDir, exe)
		}))
	}
	if len(os.Args) > 1 && os.Args[1] == vmlab.CrashChildArg {
		// The restart phase's agent: it runs until the lab kills it, and
		// returns only when it failed.
		err := crashChild()
		_, _ = os.Stdout.WriteString("error: " + err.Error() + "\n")
		os.Exit(1)
	}
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

	cfg, err := readConfig()
	if err != nil {
		return err
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
	if cfg.LossPackets > 0 {
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
		if res.QdiscsAfterLoss, err = qdiscTree(link); err != nil {
			return err
		}
		mark("loss")
	}
	l := &lab{cfg: cfg, res: res, in: in, link: link, target: target, e: e, mark: mark}
	return l.more(conn)
}

func readConfig() (vmlab.Config, error) {
	var cfg vmlab.Config
	raw, err := os.ReadFile(vmlab.ConfigPath)
	if err != nil {
		return cfg, err
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return cfg, fmt.Errorf("%s: %w", vmlab.ConfigPath, err)
	}
	return cfg, nil
}

// lab carries what the phases after delay and loss share.
type lab struct {
	cfg    vmlab.Config
	res    *vmlab.Result
	in     *network.Injector
	link   netlink.Link
	target string
	e      *echoer
	mark   func(string)
}

// more runs the phases after delay and loss, each its own fault, applied
// and taken back in turn: jitter, duplicate, corrupt, rate (netem, then
// tbf), targeting, a fault the Manager ends at its deadline, then the
// safety phases (safety_linux.go).
func (l *lab) more(conn *net.UDPConn) error {
	cfg, res := l.cfg, l.res
	res.QdiscsAfterPhase = map[string][]string{}
	size := max(cfg.PayloadBytes, 64)
	if cfg.JitterPackets > 0 {
		// The jitter's baseline, measured the same way (paced, kernel
		// receive timestamps) with no fault on.
		p, err := l.e.probe(probeOpts{n: 50, pace: 4 * time.Millisecond, size: 64, tail: 300 * time.Millisecond, rtts: true})
		if err != nil {
			return fmt.Errorf("jitter baseline: %w", err)
		}
		res.JitterBaseline = &p
		n := &turbulencev1.NetemSpec{
			Delay:  durationpb.New(time.Duration(cfg.JitterDelayMS) * time.Millisecond),
			Jitter: durationpb.New(time.Duration(cfg.JitterMS) * time.Millisecond),
		}
		if err := l.phase("jitter", n, nil, func() error {
			p, err := l.e.probe(probeOpts{n: cfg.JitterPackets, pace: 4 * time.Millisecond, size: 64, tail: time.Second, rtts: true})
			res.Jitter = &p
			return err
		}); err != nil {
			return err
		}
	}
	if cfg.StatPackets > 0 {
		stat := func(dst **vmlab.Probe) func() error {
			return func() error {
				p, err := l.e.probe(probeOpts{n: cfg.StatPackets, pace: 2 * time.Millisecond, size: size, tail: 500 * time.Millisecond})
				*dst = &p
				return err
			}
		}
		if err := l.phase("duplicate", &turbulencev1.NetemSpec{DuplicatePercent: cfg.DuplicatePercent}, nil, stat(&res.Duplicate)); err != nil {
			return err
		}
		if err := l.phase("corrupt", &turbulencev1.NetemSpec{CorruptPercent: cfg.CorruptPercent}, nil, stat(&res.Corrupt)); err != nil {
			return err
		}
	}
	if cfg.RatePackets > 0 {
		bytesPerSec := cfg.RateBitsPerSecond / 8
		wire := size + 8 + 20 + 14 // UDP, IPv4, Ethernet: what the qdiscs count
		// Offer 1.25 times the rate, so the qdisc, not the sender, sets the
		// pace of what gets through.
		pace := time.Duration(float64(wire*8) / (1.25 * float64(cfg.RateBitsPerSecond)) * float64(time.Second))
		for _, kind := range []string{"netem", "tbf"} {
			var n *turbulencev1.NetemSpec
			var b *turbulencev1.BandwidthSpec
			if kind == "netem" {
				n = &turbulencev1.NetemSpec{RateBytesPerSecond: bytesPerSec}
			} else {
				// A bucket of 100 ms of the rate, not the injector's default
				// 10 ms: on tcg the host stalls the vCPU now and then, and a
				// small bucket turns each stall into lost throughput
				// (netem's rate clock catches up by itself).
				b = &turbulencev1.BandwidthSpec{RateBytesPerSecond: bytesPerSec, BurstBytes: uint32(bytesPerSec / 10)}
			}
			rr := vmlab.RateResult{Kind: kind, WireLen: wire}
			err := l.phase("rate-"+kind, n, b, func() error {
				var err error
				if rr.Qdiscs, err = qdiscTree(l.link); err != nil {
					return err
				}
				rr.Probe, err = l.e.probe(probeOpts{n: cfg.RatePackets, pace: pace, size: size, tail: 1500 * time.Millisecond, spanSkip: 500 * time.Millisecond})
				return err
			})
			res.Rate = append(res.Rate, rr)
			if err != nil {
				return err
			}
		}
	}
	if cfg.Peer2 != "" {
		if err := l.targeting(); err != nil {
			return err
		}
	}
	if cfg.DeadlineMS > 0 {
		if err := l.deadline(); err != nil {
			return err
		}
	}
	if cfg.Safety != nil {
		return l.safety()
	}
	return nil
}

// phase applies one fault toward the peer, runs during, takes the fault
// back and records the tree left behind.
func (l *lab) phase(name string, n *turbulencev1.NetemSpec, b *turbulencev1.BandwidthSpec, during func() error) error {
	f := fault("lab-"+name, l.cfg.Interface, l.target, n)
	f.GetSpec().GetNetwork().Bandwidth = b
	h, err := l.in.Apply(context.Background(), f, time.Now().Add(time.Hour))
	if err != nil {
		return fmt.Errorf("apply the %s fault: %w", name, err)
	}
	err = during()
	if rerr := h.Revert(context.Background()); rerr != nil {
		return errors.Join(err, fmt.Errorf("revert the %s fault: %w", name, rerr))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	tree, err := qdiscTree(l.link)
	l.res.QdiscsAfterPhase[name] = tree
	l.mark(name)
	return err
}

// targeting delays only the peer's /32 and measures both the peer and
// Peer2, an address on the same bridge, through the same interface.
func (l *lab) targeting() error {
	cfg, res := l.cfg, l.res
	p2, err := net.ResolveUDPAddr("udp", cfg.Peer2)
	if err != nil {
		return err
	}
	c2, err := net.DialUDP("udp", nil, p2)
	if err != nil {
		return err
	}
	defer func() { _ = c2.Close() }()
	e2 := &echoer{c: c2}
	if _, err := e2.rtt(5); err != nil {
		return fmt.Errorf("warm-up echo to %s: %w", cfg.Peer2, err)
	}
	if res.Peer2BaselineMS, err = e2.rtt(cfg.RTTSamples); err != nil {
		return fmt.Errorf("peer2 baseline: %w", err)
	}
	n := &turbulencev1.NetemSpec{Delay: durationpb.New(time.Duration(cfg.DelayMS) * time.Millisecond)}
	return l.phase("targeting", n, nil, func() error {
		var err error
		if res.UntargetedMS, err = e2.rtt(cfg.RTTSamples); err != nil {
			return fmt.Errorf("untargeted peer: %w", err)
		}
		if res.TargetedMS, err = l.e.rtt(cfg.RTTSamples); err != nil {
			return fmt.Errorf("targeted peer: %w", err)
		}
		return nil
	})
}

// deadline applies a delay through inject.Manager with a short duration
// and asks for no revert: the Manager's own timer must take it back.
func (l *lab) deadline() error {
	cfg, res := l.cfg, l.res
	m := inject.NewManager(slog.New(slog.DiscardHandler), l.in)
	defer m.Close("lab done")
	f := fault("lab-deadline", cfg.Interface, l.target,
		&turbulencev1.NetemSpec{Delay: durationpb.New(time.Duration(cfg.DelayMS) * time.Millisecond)})
	f.Spec.Duration = durationpb.New(time.Duration(cfg.DeadlineMS) * time.Millisecond)
	start := time.Now()
	if _, err := m.Apply(context.Background(), f); err != nil {
		return fmt.Errorf("apply through the Manager: %w", err)
	}
	var err error
	if res.DeadlineQdiscs, err = qdiscTree(l.link); err != nil {
		return err
	}
	if res.DeadlineDelayedMS, err = l.e.rtt(3); err != nil {
		return fmt.Errorf("under the deadline fault: %w", err)
	}
	limit := time.Duration(cfg.DeadlineMS)*time.Millisecond + 10*time.Second
	for time.Since(start) < limit {
		tree, err := qdiscTree(l.link)
		if err != nil {
			return err
		}
		if slices.Equal(tree, res.QdiscsBefore) {
			res.DeadlineGoneMS = ms(time.Since(start))
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	res.QdiscsAfterPhase["deadline"], err = qdiscTree(l.link)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// The fault has ended (or is ending): Revert returns what the Manager
	// recorded, and reverts nothing itself if the timer did.
	st, err := m.Revert(ctx, f.GetId(), "lab: after the deadline")
	if err != nil {
		return err
	}
	res.DeadlineReason = st.GetReason()
	res.DeadlineHeld = len(m.Held())
	l.mark("deadline")
	return nil
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

type probeOpts struct {
	n    int           // echoes to send
	pace time.Duration // between sends, on an absolute schedule
	size int           // datagram payload, at least 8
	tail time.Duration // how long answers may still come after the last send
	rtts bool          // keep each RTT
	// spanSkip: the throughput window starts this long after the first
	// answer.
	spanSkip time.Duration
}

// setTimestamps asks the kernel to timestamp every datagram c receives.
func setTimestamps(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil {
		return err
	}
	return serr
}

// rxTimestamp finds SCM_TIMESTAMPNS in oob, as wall-clock ns.
func rxTimestamp(oob []byte) (int64, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return sec*1e9 + nsec, true
		}
	}
	return 0, false
}

// probe sends o.n numbered echoes of o.size bytes (the number, then a
// pattern derived from it) o.pace apart and sorts the answers: right and
// first, duplicate, or wrong. Answers to earlier probes are ignored.
func (e *echoer) probe(o probeOpts) (vmlab.Probe, error) {
	size := max(o.size, 8)
	first := e.seq + 1
	// Times are wall-clock ns: an answer's is the kernel's receive
	// timestamp (SO_TIMESTAMPNS), so the guest's own scheduling on its one
	// tcg vCPU does not count toward the RTT.
	sent := make([]atomic.Int64, o.n)
	kernelTS := setTimestamps(e.c) == nil
	var (
		answered, dups, bad int
		rtts                = make([]float64, o.n)
		arrivals            []int64
	)
	done := make(chan struct{})
	_ = e.c.SetReadDeadline(time.Time{})
	go func() {
		defer close(done)
		counts := make([]int, o.n)
		buf := make([]byte, size+64)
		oob := make([]byte, 128)
		for {
			k, oobn, _, _, err := e.c.ReadMsgUDP(buf, oob)
			if err != nil { // the deadline set after the last send
				return
			}
			now := time.Now().UnixNano()
			if kernelTS {
				if ts, ok := rxTimestamp(oob[:oobn]); ok {
					now = ts
				}
			}
			if k < 8 {
				bad++
				continue
			}
			s := binary.BigEndian.Uint64(buf[:8])
			if s < first && k == size { // late answer to an earlier probe
				continue
			}
			if k != size || s >= first+uint64(o.n) || !patternOK(buf[:k], s) {
				bad++
				continue
			}
			i := s - first
			counts[i]++
			if counts[i] > 1 {
				dups++
				continue
			}
			answered++
			rtts[i] = ms(time.Duration(now - sent[i].Load()))
			arrivals = append(arrivals, now)
		}
	}()
	msg := make([]byte, size)
	start := time.Now()
	next := start
	var werr error
	var late time.Duration
	for i := range o.n {
		e.seq++
		fill(msg, e.seq)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		} else {
			late = max(late, -d)
		}
		next = next.Add(o.pace)
		sent[i].Store(time.Now().UnixNano())
		// A full queue (ENOBUFS) or a drop in nftables' output hook
		// (EPERM, the partition) loses the datagram: counted as sent.
		if _, err := e.c.Write(msg); err != nil && !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EPERM) {
			werr = err
			break
		}
	}
	p := vmlab.Probe{Sent: o.n, SendMS: ms(time.Since(start)), MaxLateMS: ms(late), KernelTimestamps: kernelTS}
	_ = e.c.SetReadDeadline(time.Now().Add(o.tail))
	<-done
	_ = e.c.SetReadDeadline(time.Time{})
	p.Answered, p.Duplicates, p.Bad = answered, dups, bad
	if o.rtts {
		for _, r := range rtts {
			if r > 0 { // answered
				p.RTTs = append(p.RTTs, float64(int(r*100))/100)
			}
		}
	}
	// The throughput window starts spanSkip after the first answer, once
	// a token bucket's initial burst is spent.
	if len(arrivals) > 1 {
		i := 0
		for i < len(arrivals)-1 && arrivals[i]-arrivals[0] < int64(o.spanSkip) {
			i++
		}
		p.SpanMS = ms(time.Duration(arrivals[len(arrivals)-1] - arrivals[i]))
		p.SpanAnswers = len(arrivals) - 1 - i
	}
	return p, werr
}

func fill(msg []byte, seq uint64) {
	binary.BigEndian.PutUint64(msg[:8], seq)
	for j := 8; j < len(msg); j++ {
		msg[j] = byte(seq*31 + uint64(j))
	}
}

func patternOK(msg []byte, seq uint64) bool {
	for j := 8; j < len(msg); j++ {
		if msg[j] != byte(seq*31+uint64(j)) {
			return false
		}
	}
	return true
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
