//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/agent/guardian"
	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/inject/network"
	"github.com/turbulence-sre/turbulence/agent/inject/partition"
	"github.com/turbulence-sre/turbulence/agent/journal"
	"github.com/turbulence-sre/turbulence/agent/policy"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
	"github.com/turbulence-sre/turbulence/test/vmlab"
)

// The safety phases: the controller link under a 100 % loss fault, the
// partition injector, the agent killed and restarted, and a configured
// root qdisc put back. Each builds its injectors as agent.New does, from
// the controller address and a policy that protects it.

// restartFaultID is the fault the crash child applies.
const restartFaultID = "lab-restart"

// guardedFaultID and guardedFaultLife are the fault of the crash child
// that is never restarted: short, so that its deadline comes soon after
// the kill.
const (
	guardedFaultID   = "lab-guarded"
	guardedFaultLife = 6 * time.Second
)

// safety runs the safety phases, in turn, after the netem ones.
func (l *lab) safety() error {
	s := l.cfg.Safety
	if err := l.safetyWarmUp(); err != nil {
		return err
	}
	if err := l.controllerLink(); err != nil {
		return fmt.Errorf("controller link: %w", err)
	}
	if err := l.partitions(); err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	if err := l.restart(); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	if err := l.neverRestarted(); err != nil {
		return fmt.Errorf("never restarted: %w", err)
	}
	if s.RootRateBytes > 0 {
		if err := l.configuredRoot(); err != nil {
			return fmt.Errorf("configured root: %w", err)
		}
	}
	return nil
}

// agentPolicy is the policy agent.New enforces with no policy file: the
// defaults, with the controller's address protected (agent/protect.go).
func agentPolicy(controller string) (policy.Policy, error) {
	p := policy.Default()
	ap, err := netip.ParseAddrPort(controller)
	if err != nil {
		return p, err
	}
	p.Network.ProtectedCIDRs = append(p.Network.ProtectedCIDRs, netip.PrefixFrom(ap.Addr(), ap.Addr().BitLen()).String())
	return p, nil
}

// agentManager is an inject.Manager with the network and partition
// injectors configured as agent.New configures them; replaceRoot is the
// policy's network.replace_root_qdisc.
func agentManager(controller string, replaceRoot bool, log *slog.Logger) (*inject.Manager, error) {
	pol, err := agentPolicy(controller)
	if err != nil {
		return nil, err
	}
	pol.Network.ReplaceRootQdisc = replaceRoot
	// agent.New hands the injectors the controllers and the policy file's
	// own protected CIDRs (none here); protectControllers adds the
	// controllers to the policy the Manager checks.
	ex := network.ExclusionConfig{Controllers: []string{controller}}
	m := inject.NewManager(log,
		network.New(network.Config{Logger: log, Exclusions: ex, ReplaceRootQdisc: pol.Network.ReplaceRootQdisc}),
		partition.New(partition.Config{Logger: log, Exclusions: ex}))
	m.UsePolicy(pol, policy.Host{TotalMemoryBytes: 512 << 20, CPUs: 1})
	return m, nil
}

// safetyWarmUp resolves every new destination's link-layer address (ARP,
// IPv6 neighbour discovery) before any fault, so that no measurement pays
// for it.
func (l *lab) safetyWarmUp() error {
	s := l.cfg.Safety
	if s.Guest6CIDR != "" {
		addr, err := netlink.ParseAddr(s.Guest6CIDR)
		if err != nil {
			return err
		}
		// No duplicate address detection: the address is usable at once.
		addr.Flags = unix.IFA_F_NODAD
		if err := netlink.AddrAdd(l.link, addr); err != nil {
			return fmt.Errorf("address %s on %s: %w", s.Guest6CIDR, l.cfg.Interface, err)
		}
	}
	for _, a := range []string{s.Controller, s.PeerPortB, l.cfg.Peer2, s.Peer6} {
		if a == "" {
			continue
		}
		e, closeFn, err := dialEcho(a)
		if err != nil {
			return err
		}
		_, err = e.rtt(3)
		closeFn()
		if err != nil {
			return fmt.Errorf("warm-up echo to %s: %w", a, err)
		}
	}
	return nil
}

func dialEcho(addr string) (*echoer, func(), error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, nil, err
	}
	c, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		return nil, nil, err
	}
	return &echoer{c: c}, func() { _ = c.Close() }, nil
}

// loss sends Packets echoes to addr, 2 ms apart, and returns what came
// back.
func (l *lab) loss(addr string) (vmlab.Probe, error) {
	e, closeFn, err := dialEcho(addr)
	if err != nil {
		return vmlab.Probe{}, err
	}
	defer closeFn()
	return e.probe(probeOpts{n: l.cfg.Safety.Packets, pace: 2 * time.Millisecond, size: 64, tail: 400 * time.Millisecond})
}

// tcpEchoes opens n TCP connections to addr, one after the other, and
// counts those that connected within timeout and echoed a message back.
func tcpEchoes(addr string, n int, timeout time.Duration) vmlab.TCPResult {
	r := vmlab.TCPResult{Tried: n}
	msg := []byte("turbulence-vmlab!")
	for range n {
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			continue
		}
		_ = c.SetDeadline(time.Now().Add(timeout))
		buf := make([]byte, len(msg))
		if _, err := c.Write(msg); err == nil {
			if _, err := io.ReadFull(c, buf); err == nil && bytes.Equal(buf, msg) {
				r.OK++
			}
		}
		_ = c.Close()
	}
	return r
}

// peerReceived asks the host's counter how many datagrams the peer's echo
// has received so far.
func (l *lab) peerReceived() (int, error) {
	e, closeFn, err := dialEcho(l.cfg.Safety.Counter)
	if err != nil {
		return 0, err
	}
	defer closeFn()
	buf := make([]byte, 16)
	for range 3 {
		if _, err := e.c.Write([]byte("count")); err != nil {
			return 0, err
		}
		_ = e.c.SetReadDeadline(time.Now().Add(echoTimeout))
		k, err := e.c.Read(buf)
		if err == nil && k == 8 {
			return int(binary.BigEndian.Uint64(buf[:8])), nil
		}
	}
	return 0, errors.New("the host's counter did not answer")
}

// inetTables lists the nftables tables of family inet.
func inetTables() ([]string, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, err
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list nftables tables: %w", err)
	}
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	slices.Sort(out)
	return out, nil
}

// heldStatus is the Manager's current status of fault id.
func heldStatus(m *inject.Manager, id string) *turbulencev1.FaultStatus {
	for _, st := range m.Held() {
		if st.GetFaultId() == id {
			return st
		}
	}
	return nil
}

// controllerLink applies 100 % loss to everything on the interface
// through inject.Manager, with the controller as the agent knows it: the
// controller's echo must still answer, SSH must still connect, and the
// neighbour, which nothing excludes, must be cut off.
func (l *lab) controllerLink() error {
	s := l.cfg.Safety
	r := &vmlab.ControllerLinkResult{}
	l.res.ControllerLink = r
	r.SSHBase = tcpEchoes(s.SSH, 3, time.Second)
	r.NotSSHBase = tcpEchoes(s.NotSSH, 3, time.Second)
	m, err := agentManager(s.Controller, false, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer m.Close("lab done")
	f := &turbulencev1.Fault{Id: "lab-controller-link", Spec: &turbulencev1.FaultSpec{
		Duration: durationpb.New(time.Hour),
		Kind: &turbulencev1.FaultSpec_Network{Network: &turbulencev1.NetworkSpec{
			Interface: l.cfg.Interface,
			Netem:     &turbulencev1.NetemSpec{LossPercent: 100},
			// No target: every packet of the interface.
		}},
	}}
	st, err := m.Apply(context.Background(), f)
	if err != nil {
		return fmt.Errorf("apply 100 %% loss: %w", err)
	}
	r.Exclusions = st.GetExclusions()
	if r.Qdiscs, err = qdiscTree(l.link); err != nil {
		return err
	}
	r.Controller, err = l.loss(s.Controller)
	if err == nil {
		r.Target, err = l.loss(l.cfg.Peer2)
	}
	if err == nil {
		r.SSH = tcpEchoes(s.SSH, 20, time.Second)
		r.NotSSH = tcpEchoes(s.NotSSH, 3, 500*time.Millisecond)
		r.Drops = heldStatus(m, f.GetId()).GetNetwork().GetDrops()
	}
	if r.State, err = revertMeasured(m, f.GetId(), err); err != nil {
		return err
	}
	if r.QdiscsAfter, err = qdiscTree(l.link); err != nil {
		return err
	}
	l.res.QdiscsAfterPhase["controller-link"] = r.QdiscsAfter
	l.mark("controller-link")
	return nil
}

// partitions applies partition faults through inject.Manager, one at a
// time: the peer's UDP port A out, then in, everything both ways (the
// blackhole), and the peer's IPv6 address; then one whose target
// includes the controller, which the policy must refuse.
func (l *lab) partitions() error {
	s := l.cfg.Safety
	m, err := agentManager(s.Controller, false, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer m.Close("lab done")
	peer, err := netip.ParseAddrPort(l.cfg.Peer)
	if err != nil {
		return err
	}
	portA := &turbulencev1.TrafficTarget{Cidrs: []string{peer.Addr().String() + "/32"}, Ports: []uint32{uint32(peer.Port())},
		Protocol: turbulencev1.Protocol_PROTOCOL_UDP}
	v4 := map[string]string{"peer": l.cfg.Peer, "peer port B": s.PeerPortB, "neighbour": l.cfg.Peer2, "controller": s.Controller}
	phases := []partitionPhase{
		{"egress", turbulencev1.Direction_DIRECTION_EGRESS, portA, v4, true, false},
		{"ingress", turbulencev1.Direction_DIRECTION_INGRESS, portA, v4, true, false},
		{"blackhole", turbulencev1.Direction_DIRECTION_BOTH, &turbulencev1.TrafficTarget{}, v4, false, true},
	}
	if s.Peer6 != "" {
		p6, err := netip.ParseAddrPort(s.Peer6)
		if err != nil {
			return err
		}
		phases = append(phases, partitionPhase{"ipv6", turbulencev1.Direction_DIRECTION_EGRESS,
			&turbulencev1.TrafficTarget{Cidrs: []string{p6.Addr().WithZone("").String() + "/128"}, Ports: []uint32{uint32(p6.Port())}, Protocol: turbulencev1.Protocol_PROTOCOL_UDP},
			map[string]string{"ipv6 peer": s.Peer6, "peer": l.cfg.Peer}, false, false})
	}
	for _, ph := range phases {
		r := vmlab.PartitionResult{Name: ph.name, Direction: ph.dir.String(), Target: describeTarget(ph.target), Probes: map[string]vmlab.Probe{}, PeerReceived: -1}
		err := l.partition(m, &r, ph)
		l.res.Partitions = append(l.res.Partitions, r)
		if err != nil {
			return fmt.Errorf("%s: %w", ph.name, err)
		}
		l.mark("partition-" + ph.name)
	}
	// The agent's policy refuses a target that includes the controller:
	// nothing is applied.
	ctrl, err := netip.ParseAddrPort(s.Controller)
	if err != nil {
		return err
	}
	f := partitionFault("lab-partition-controller", turbulencev1.Direction_DIRECTION_BOTH,
		&turbulencev1.TrafficTarget{Cidrs: []string{ctrl.Addr().String() + "/32"}})
	if _, err := m.Apply(context.Background(), f); err != nil {
		l.res.PolicyRefusal = err.Error()
	} else {
		// Not refused: the host checks the empty PolicyRefusal.
		_, _ = m.Revert(context.Background(), f.GetId(), "lab: should have been refused")
	}
	l.res.TablesAfterRefusal, err = inetTables()
	return err
}

// partitionPhase is one partition fault and what to measure under it.
type partitionPhase struct {
	name   string
	dir    turbulencev1.Direction
	target *turbulencev1.TrafficTarget
	// probes are the destinations to measure, by name.
	probes map[string]string
	// count asks the host's counter how many echoes reached the peer.
	count bool
	// ssh measures TCP to the neighbour's port 22 and another port.
	ssh bool
}

func partitionFault(id string, dir turbulencev1.Direction, t *turbulencev1.TrafficTarget) *turbulencev1.Fault {
	return &turbulencev1.Fault{Id: id, Spec: &turbulencev1.FaultSpec{
		Duration: durationpb.New(time.Hour),
		Kind:     &turbulencev1.FaultSpec_Partition{Partition: &turbulencev1.PartitionSpec{Direction: dir, Target: t}},
	}}
}

func describeTarget(t *turbulencev1.TrafficTarget) string {
	if len(t.GetCidrs()) == 0 && len(t.GetPorts()) == 0 && t.GetProtocol() == turbulencev1.Protocol_PROTOCOL_UNSPECIFIED {
		return "everything"
	}
	var parts []string
	if len(t.GetCidrs()) > 0 {
		parts = append(parts, strings.Join(t.GetCidrs(), ","))
	}
	if t.GetProtocol() != turbulencev1.Protocol_PROTOCOL_UNSPECIFIED {
		parts = append(parts, strings.ToLower(strings.TrimPrefix(t.GetProtocol().String(), "PROTOCOL_")))
	}
	for _, p := range t.GetPorts() {
		parts = append(parts, fmt.Sprintf("port %d", p))
	}
	return strings.Join(parts, " ")
}

// partition runs one partition fault and measures every destination in
// probes under it.
func (l *lab) partition(m *inject.Manager, r *vmlab.PartitionResult, ph partitionPhase) error {
	s := l.cfg.Safety
	probes, count := ph.probes, ph.count
	f := partitionFault("lab-partition-"+r.Name, ph.dir, ph.target)
	st, err := m.Apply(context.Background(), f)
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	r.Exclusions = st.GetExclusions()
	r.Tables, err = inetTables()
	for _, name := range slices.Sorted(maps.Keys(probes)) {
		if err != nil {
			break
		}
		before := 0
		if count && name == "peer" {
			if before, err = l.peerReceived(); err != nil {
				break
			}
		}
		var p vmlab.Probe
		if p, err = l.loss(probes[name]); err != nil {
			break
		}
		r.Probes[name] = p
		if count && name == "peer" {
			var after int
			if after, err = l.peerReceived(); err == nil {
				r.PeerReceived = after - before
			}
		}
	}
	if err == nil && ph.ssh {
		a, b := tcpEchoes(s.SSH, 20, time.Second), tcpEchoes(s.NotSSH, 3, 500*time.Millisecond)
		r.SSH, r.NotSSH = &a, &b
	}
	if err == nil {
		r.Drops = heldStatus(m, f.GetId()).GetNetwork().GetDrops()
	}
	if r.State, err = revertMeasured(m, f.GetId(), err); err != nil {
		return err
	}
	r.TablesAfter, err = inetTables()
	return err
}

// revertMeasured reverts fault id once its measurements are taken, even
// when measuring failed with measureErr, and returns its final state and
// either error.
func revertMeasured(m *inject.Manager, id string, measureErr error) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	end, err := m.Revert(ctx, id, "lab: measured")
	if err != nil {
		return "", errors.Join(measureErr, err)
	}
	return end.GetState().String(), measureErr
}

// restartReplaceRoot is the crash child's second argument when its
// policy allows replacing a configured root (the configured-root phase).
const restartReplaceRoot = "replace-root"

// restart re-executes the guest as an agent that applies a delay through
// inject.Manager with a journal in the state directory, kills it with
// SIGKILL once the fault is on, and runs the agent's start-up recovery
// (agent.Cleanup: the journal, then the sweep) on what it left.
func (l *lab) restart() error {
	r := &vmlab.RestartResult{FaultID: restartFaultID}
	l.res.Restart = r
	if err := l.crashAndRecover(r, false); err != nil {
		return err
	}
	l.res.QdiscsAfterPhase["restart"] = r.QdiscsAfter
	l.mark("restart")
	return nil
}

// crashAndRecover runs the crash child (with a policy that allows
// replacing a configured root if replaceRoot), kills it under its fault
// and recovers.
func (l *lab) crashAndRecover(r *vmlab.RestartResult, replaceRoot bool) error {
	s := l.cfg.Safety
	var args []string
	if replaceRoot {
		args = append(args, restartReplaceRoot)
	}
	_, kill, err := startCrashChild(args...)
	if err != nil {
		return err
	}
	if r.Qdiscs, err = qdiscTree(l.link); err != nil {
		return errors.Join(err, kill())
	}
	if r.DelayedMS, err = l.e.rtt(l.cfg.RTTSamples); err != nil {
		return errors.Join(fmt.Errorf("under the child's fault: %w", err), kill())
	}
	// The agent dies: no revert, no deferred function, no journal record.
	if err := kill(); err != nil {
		return err
	}
	if r.QdiscsAfterKill, err = qdiscTree(l.link); err != nil {
		return err
	}
	jpath := filepath.Join(s.StateDir, agent.JournalFile)
	if r.OpenAfterKill, err = openInJournal(jpath); err != nil {
		return err
	}

	// The agent starts again: its start-up recovery, as `turbulence-agent
	// cleanup` runs it.
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	start := time.Now()
	rec, cerr := agent.Cleanup(agent.Config{StateDir: s.StateDir, ProcRoot: "/proc", Logger: log})
	r.CleanupMS = ms(time.Since(start))
	if cerr != nil {
		r.CleanupError = cerr.Error()
	}
	for _, st := range rec.Reverted {
		r.Reverted = append(r.Reverted, st.GetFaultId()+": "+st.GetReason())
	}
	r.Swept = append(r.Swept, rec.Swept...)
	for _, ln := range strings.Split(strings.TrimSpace(logBuf.String()), "\n") {
		if ln != "" {
			r.Log = append(r.Log, ln)
		}
	}
	if r.QdiscsAfter, err = qdiscTree(l.link); err != nil {
		return err
	}
	if r.RevertedMS, err = l.e.rtt(l.cfg.RTTSamples); err != nil {
		return fmt.Errorf("after recovery: %w", err)
	}
	if r.OpenAfter, err = openInJournal(jpath); err != nil {
		return err
	}
	rec2, err := agent.Cleanup(agent.Config{StateDir: s.StateDir, ProcRoot: "/proc"})
	if err != nil {
		return fmt.Errorf("second cleanup: %w", err)
	}
	r.SecondReverted = len(rec2.Reverted) + len(rec2.Swept)
	return nil
}

// startCrashChild re-executes the guest as the crash child with args
// after its fixed first word, waits until it says it applied its fault,
// and returns the fault's deadline and a function that SIGKILLs it.
func startCrashChild(args ...string) (time.Time, func() error, error) {
	exe, err := os.Executable()
	if err != nil {
		return time.Time{}, nil, err
	}
	cmd := exec.Command(exe, append([]string{vmlab.CrashChildArg}, args...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return time.Time{}, nil, err
	}
	if err := cmd.Start(); err != nil {
		return time.Time{}, nil, fmt.Errorf("start the crash child: %w", err)
	}
	kill := func() error {
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			return err
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) && !ee.Exited() { // killed, as meant
			return nil
		}
		return fmt.Errorf("the crash child ended by itself: %w", err)
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case got := <-line:
		var nanos int64
		if _, err := fmt.Sscanf(got, "applied %d", &nanos); err != nil {
			return time.Time{}, nil, errors.Join(fmt.Errorf("the crash child said %q", got), kill())
		}
		return time.Unix(0, nanos), kill, nil
	case <-time.After(30 * time.Second):
		return time.Time{}, nil, errors.Join(errors.New("the crash child did not apply its fault within 30 s"), kill())
	}
}

// neverRestarted is the agent killed and never restarted: the crash child
// applies a short delay with a guardian, is SIGKILLed a few seconds before
// its deadline, and nothing but the guardian takes the delay back. The
// host's qdiscs are sampled every 5 ms from the kill on.
func (l *lab) neverRestarted() error {
	s := l.cfg.Safety
	r := &vmlab.GuardedResult{FaultID: guardedFaultID}
	l.res.Guarded = r
	deadline, kill, err := startCrashChild(vmlab.GuardedChildArg)
	if err != nil {
		return err
	}
	if r.Qdiscs, err = qdiscTree(l.link); err != nil {
		return errors.Join(err, kill())
	}
	if r.DelayedMS, err = l.e.rtt(l.cfg.RTTSamples); err != nil {
		return errors.Join(fmt.Errorf("under the child's fault: %w", err), kill())
	}
	if err := kill(); err != nil {
		return err
	}
	r.KillBeforeDeadlineMS = ms(time.Until(deadline))
	limit := deadline.Add(30 * time.Second)
	for {
		tree, err := qdiscTree(l.link)
		if err != nil {
			return err
		}
		now := time.Now()
		if !slices.ContainsFunc(tree, hasAgentHandle) {
			r.GoneAfterDeadlineMS = ms(now.Sub(deadline))
			r.QdiscsAfter = tree
			break
		}
		if now.After(limit) {
			r.QdiscsAfter = tree
			return fmt.Errorf("the guardian left the delay on the interface 30 s past its deadline: %q", tree)
		}
		time.Sleep(5 * time.Millisecond) // the sampling period of the interface's state
	}
	if r.RevertedMS, err = l.e.rtt(l.cfg.RTTSamples); err != nil {
		return fmt.Errorf("after the guardian: %w", err)
	}
	// A later start closes the journal with the guardian's own outcome.
	rec, cerr := agent.Cleanup(agent.Config{StateDir: s.StateDir, ProcRoot: "/proc"})
	if cerr != nil {
		r.CleanupError = cerr.Error()
	}
	for _, st := range rec.Reverted {
		r.Reverted = append(r.Reverted, st.GetFaultId()+": "+st.GetReason())
	}
	l.mark("never restarted")
	return nil
}

// hasAgentHandle says whether a qdiscTree line ("kind handle parent") is
// a qdisc of the agent's handle range.
func hasAgentHandle(line string) bool {
	f := strings.Fields(line)
	if len(f) < 2 {
		return false
	}
	major, err := strconv.ParseUint(strings.SplitN(f[1], ":", 2)[0], 16, 16)
	return err == nil && network.IsAgentHandle(uint32(major)<<16)
}

// openInJournal lists the fault IDs the journal at path holds as open.
func openInJournal(path string) ([]string, error) {
	j, open, err := journal.OpenFile(path)
	if err != nil {
		return nil, err
	}
	ids := []string{}
	for _, o := range open {
		ids = append(ids, o.Intent.FaultID)
	}
	return ids, j.Close()
}

// crashChild is the agent that dies: it opens the journal in the state
// directory as the agent's start-up does, applies a delay toward the peer
// through inject.Manager with that journal (replacing a configured root
// if its second argument says so), says "applied" on stdout and waits to
// be killed.
func crashChild() error {
	cfg, err := readConfig()
	if err != nil {
		return err
	}
	s := cfg.Safety
	if s == nil {
		return errors.New("no safety config")
	}
	if err := os.MkdirAll(s.StateDir, 0o700); err != nil {
		return err
	}
	j, open, err := journal.OpenFile(filepath.Join(s.StateDir, agent.JournalFile))
	if err != nil {
		return err
	}
	if len(open) > 0 {
		return fmt.Errorf("the journal already lists %d open faults", len(open))
	}
	replaceRoot := len(os.Args) > 2 && os.Args[2] == restartReplaceRoot
	guarded := len(os.Args) > 2 && os.Args[2] == vmlab.GuardedChildArg
	m, err := agentManager(s.Controller, replaceRoot, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	m.UseJournal(j)
	peer, err := netip.ParseAddrPort(cfg.Peer)
	if err != nil {
		return err
	}
	f := fault(restartFaultID, cfg.Interface, peer.Addr().String()+"/32",
		&turbulencev1.NetemSpec{Delay: durationpb.New(time.Duration(cfg.DelayMS) * time.Millisecond)})
	if guarded {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		m.UseGuardians(guardian.Starter{Binary: exe, StateDir: s.StateDir})
		f.Id = guardedFaultID
		f.Spec.Duration = durationpb.New(guardedFaultLife)
	}
	st, err := m.Apply(context.Background(), f)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(os.Stdout, "applied %d\n", st.GetDeadline().AsTime().UnixNano()); err != nil {
		return err
	}
	select {} // until SIGKILL
}

// configuredRoot puts a tbf root on the interface, as an operator would,
// and applies a delay on top of it: refused by an injector whose policy
// does not allow replacing a configured root, applied and then put back
// exactly by one whose policy does — by its revert, and by start-up
// recovery after an agent that held it was killed.
func (l *lab) configuredRoot() error {
	s := l.cfg.Safety
	r := &vmlab.ConfiguredRoot{}
	l.res.ConfiguredRoot = r
	rate := s.RootRateBytes
	burst := uint32(max(rate/100, 3028)) // 10 ms of the rate
	tbf := &netlink.Tbf{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.link.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
		Rate:       rate, Limit: 4 * burst, Buffer: netlink.Xmittime(rate, burst),
	}
	if err := netlink.QdiscReplace(tbf); err != nil {
		return fmt.Errorf("configure a tbf root: %w", err)
	}
	var err error
	if r.Root, err = rootDetail(l.link); err != nil {
		return err
	}
	peer, err := netip.ParseAddrPort(l.cfg.Peer)
	if err != nil {
		return err
	}
	f := fault("lab-configured-root", l.cfg.Interface, peer.Addr().String()+"/32",
		&turbulencev1.NetemSpec{Delay: durationpb.New(time.Duration(l.cfg.DelayMS) * time.Millisecond)})
	ex := network.ExclusionConfig{Controllers: []string{s.Controller}}
	if h, err := network.New(network.Config{Exclusions: ex}).Apply(context.Background(), f, time.Now().Add(time.Hour)); err != nil {
		r.Refusal = err.Error()
	} else {
		// Not refused: the host checks the empty Refusal.
		_ = h.Revert(context.Background())
	}
	if r.QdiscsAfterRefusal, err = qdiscTree(l.link); err != nil {
		return err
	}
	h, err := network.New(network.Config{Exclusions: ex, ReplaceRootQdisc: true}).Apply(context.Background(), f, time.Now().Add(time.Hour))
	if err != nil {
		return fmt.Errorf("apply with replace_root_qdisc: %w", err)
	}
	r.Qdiscs, err = qdiscTree(l.link)
	if err == nil {
		r.DelayedMS, err = l.e.rtt(l.cfg.RTTSamples)
	}
	if rerr := h.Revert(context.Background()); rerr != nil {
		return errors.Join(err, rerr)
	}
	if err != nil {
		return err
	}
	if r.QdiscsAfter, err = qdiscTree(l.link); err != nil {
		return err
	}
	if r.RootAfter, err = rootDetail(l.link); err != nil {
		return err
	}
	// The same fault by an agent that dies under it: start-up recovery
	// puts the configured root back from the journal.
	r.Restart = &vmlab.RestartResult{FaultID: restartFaultID}
	if err := l.crashAndRecover(r.Restart, true); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	if r.RootAfterRestart, err = rootDetail(l.link); err != nil {
		return err
	}
	// Leave the interface as the lab found it.
	if err := netlink.QdiscDel(tbf); err != nil {
		return fmt.Errorf("remove the lab's tbf root: %w", err)
	}
	if r.QdiscsDefault, err = qdiscTree(l.link); err != nil {
		return err
	}
	l.mark("configured-root")
	return nil
}

// rootDetail renders link's root qdisc with the parameters the kernel
// reports for it.
func rootDetail(link netlink.Link) (string, error) {
	qs, err := netlink.QdiscList(link)
	if err != nil {
		return "", err
	}
	for _, q := range qs {
		a := q.Attrs()
		if a.Parent != netlink.HANDLE_ROOT {
			continue
		}
		s := fmt.Sprintf("%s %s root", q.Type(), netlink.HandleStr(a.Handle))
		if t, ok := q.(*netlink.Tbf); ok {
			s += fmt.Sprintf(" rate %d buffer %d limit %d peakrate %d minburst %d", t.Rate, t.Buffer, t.Limit, t.Peakrate, t.Minburst)
		}
		return s, nil
	}
	return "", errors.New("no root qdisc")
}
