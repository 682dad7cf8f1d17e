package e2e

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/inject/partition"
	"github.com/turbulence-sre/turbulence/agent/policy"
	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/cli"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// An experiment whose own fault breaks its probe (issue 16, "Tests"):
// a real HTTP service on a loopback address of this file's own, a real
// agent on the same host, and an experiment whose one step partitions
// that address and port. The probe on the service times out, the runner
// aborts, the agent deletes its nftables table, and the service answers
// again. The table's creation and deletion are seen by the kernel's own
// notifications (NFT_MSG_NEWTABLE, NFT_MSG_DELTABLE), not by the agent's
// word. The partition lives in the host's own network namespace but drops
// only TCP to faultAbortAddr on the service's port: traffic nobody but
// this test makes (the rules of docs/design.md's test addresses).

// faultAbortAddr is the loopback address the service listens on; nothing
// else in the repository uses it.
const faultAbortAddr = "127.0.0.86"

// faultAbortFleet is a controller, one real agent on this host, and the
// HTTP service its experiments partition.
type faultAbortFleet struct {
	*fleet
	owner inject.Owner // the agent's mark: its tables start with its tag
	port  int
	url   string
}

func startFaultAbortFleet(tb testing.TB) *faultAbortFleet {
	tb.Helper()
	testutil.RequirePrivileged(tb)
	// One agent is all the fleet: the controller's default cap on a
	// group's share of the fleet would refuse to choose it.
	srv := controllertest.NewServer(tb, func(c *controller.Config) { c.MaxGroupPercent = 100 })
	var stateDir string
	a := runAgent(tb, []string{srv.Addr}, srv.PKI.Agent, func(c *agent.Config) {
		p := policy.Default()
		// One fault per experiment; a benchmark runs many a minute.
		p.MaxNewFaultsPerMinute = 100000
		c.Policy = &p
		stateDir = c.StateDir
	})
	f := &faultAbortFleet{fleet: &fleet{srv: srv, agent: a, api: srv.AdminClient(tb)}, owner: inject.NewOwner(a.ID(), stateDir)}
	controllertest.WaitFor(tb, waitLong, "the agent to connect", func() bool {
		ag, err := f.api.GetAgent(tb.Context(), &turbulencev1.GetAgentRequest{Id: a.ID()})
		return err == nil && ag.GetConnected()
	})

	ln, err := net.Listen("tcp", net.JoinHostPort(faultAbortAddr, "0"))
	if err != nil {
		tb.Fatalf("listen on %s: %v", faultAbortAddr, err)
	}
	hs := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})}
	served := make(chan struct{})
	go func() { defer close(served); _ = hs.Serve(ln) }()
	tb.Cleanup(func() { _ = hs.Close(); <-served })
	f.port = ln.Addr().(*net.TCPAddr).Port
	f.url = fmt.Sprintf("http://%s/healthz", ln.Addr())
	return f
}

// answers GETs the service once, on a new connection, within timeout.
func (f *faultAbortFleet) answers(timeout time.Duration) error {
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	resp, err := c.Get(f.url)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", f.url, resp.StatusCode)
	}
	return nil
}

// experiment is the file: one step partitioning the service's address
// and port on the agent's host, and the service's probe as steady state
// and abort condition. The step lasts a minute: were the abort not made,
// the test would fail waiting for it long before the fault ends.
func (f *faultAbortFleet) experiment() string {
	return fmt.Sprintf(`
name: e2e-own-fault-abort
hypothesis: the service answers while its own host drops its traffic (it cannot; the run must abort)
owner: sre
seed: 16
targets:
  host: {agents: [%s]}
steps:
  - name: cut
    target: host
    duration: 1m
    fault: {partition: {direction: DIRECTION_BOTH, target: {cidrs: ["%s/32"], ports: [%d], protocol: PROTOCOL_TCP}}}
probes:
  - name: home
    interval: 100ms
    http: {url: %q, timeout: 300ms}
steady_state: [home]
abort_when: [home]
recovery: 10s
`, f.agent.ID(), faultAbortAddr, f.port, f.url)
}

// tableEvent is one kernel notice of an nftables table of family inet
// made or deleted, and when the watcher read it.
type tableEvent struct {
	at      time.Time
	deleted bool
	name    string
}

// tableWatch reads the kernel's nftables notices in the host's network
// namespace, on a thread of its own at real-time priority when it may
// (as observe in effects_linux_test.go does), so that its clock is the
// kernel's moment and not its own late wake-up.
type tableWatch struct {
	mu     sync.Mutex
	events []tableEvent
	err    error
}

func watchTables(tb testing.TB) *tableWatch {
	tb.Helper()
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err == nil {
		err = unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (unix.NFNLGRP_NFTABLES - 1)})
	}
	if err != nil {
		tb.Fatalf("nftables notices: %v", err)
	}
	// A pipe whose closing wakes the watcher to stop.
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC); err != nil {
		tb.Fatal(err)
	}
	w := &tableWatch{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 2}, 0) != nil {
			runtime.UnlockOSThread()
		} // else the thread ends with the goroutine, its priority with it
		w.read(fd, pipe[0])
	}()
	tb.Cleanup(func() {
		_ = unix.Close(pipe[1])
		<-done
		_ = unix.Close(pipe[0])
		_ = unix.Close(fd)
	})
	return w
}

func (w *tableWatch) read(fd, stop int) {
	buf := make([]byte, 1<<16)
	newTable := uint16(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWTABLE)
	delTable := uint16(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_DELTABLE)
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(stop), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			w.fail(err)
			return
		}
		if fds[1].Revents != 0 {
			return
		}
		now := time.Now()
		n, err := unix.Read(fd, buf)
		if err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
				continue
			}
			// ENOBUFS: notices were lost; the test cannot vouch for what
			// it did not see.
			w.fail(err)
			return
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			typ := m.Header.Type
			// struct nfgenmsg (family, version, resource id) comes first.
			if (typ != newTable && typ != delTable) || len(m.Data) < 4 || m.Data[0] != unix.NFPROTO_INET {
				continue
			}
			w.mu.Lock()
			w.events = append(w.events, tableEvent{at: now, deleted: typ == delTable, name: tableName(m.Data[4:])})
			w.mu.Unlock()
		}
	}
}

func (w *tableWatch) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.err = err
}

// tableName finds the NFTA_TABLE_NAME attribute of a table notice.
func tableName(attrs []byte) string {
	for len(attrs) >= unix.SizeofNlAttr {
		l := int(binary.NativeEndian.Uint16(attrs[0:2]))
		typ := binary.NativeEndian.Uint16(attrs[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < unix.SizeofNlAttr || l > len(attrs) {
			return ""
		}
		if typ == unix.NFTA_TABLE_NAME {
			return strings.TrimRight(string(attrs[unix.SizeofNlAttr:l]), "\x00")
		}
		attrs = attrs[min(len(attrs), (l+unix.NLA_ALIGNTO-1)&^(unix.NLA_ALIGNTO-1)):]
	}
	return ""
}

// seen returns when the kernel announced table made and deleted (zero
// when it did not).
func (w *tableWatch) seen(table string) (made, deleted time.Time, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.events {
		switch {
		case e.name != table:
		case e.deleted && deleted.IsZero():
			deleted = e.at
		case !e.deleted && made.IsZero():
			made = e.at
		}
	}
	return made, deleted, w.err
}

// ownTables lists the inet tables in the host's namespace that carry the
// agent's mark.
func (f *faultAbortFleet) ownTables(tb testing.TB) []string {
	tb.Helper()
	c, err := nftables.New()
	if err != nil {
		tb.Fatal(err)
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		tb.Fatalf("list the host's nftables tables: %v", err)
	}
	prefix := partition.TableName(f.owner, "")
	var out []string
	for _, t := range ts {
		if strings.HasPrefix(t.Name, prefix) {
			out = append(out, t.Name)
		}
	}
	return out
}

// faultAbortRun is one run of the experiment, as the controller recorded
// it at its end, and what the kernel saw of its fault.
type faultAbortRun struct {
	x      *turbulencev1.Experiment // with its samples
	faults []*turbulencev1.Fault    // every member of the step's group
	table  string
	// made and deleted are the kernel's notices of the fault's table.
	made, deleted time.Time
	// failedAt is the first failing sample of the probe after the step
	// started.
	failedAt time.Time
}

// run starts the experiment with turbctl, waits for it to end, and checks
// what the issue asks of it: ABORTED naming the probe, every fault
// REVERTED, the table the kernel saw made also seen deleted, no table of
// the agent's left on the host, and the service answering again.
func (f *faultAbortFleet) run(tb testing.TB, w *tableWatch) faultAbortRun {
	tb.Helper()
	code, out, stderr := f.turbctl(tb, "experiment", "run", writeExperimentTB(tb, f.experiment()), "-o", "json")
	var started struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &started); code != cli.ExitOK || err != nil || started.ID == "" {
		tb.Fatalf("experiment run: exit %d, %v\n%s\n%s", code, err, out, stderr)
	}
	var r faultAbortRun
	controllertest.WaitFor(tb, waitLong, "experiment "+started.ID+" to end", func() bool {
		x, err := f.api.GetExperiment(tb.Context(), &turbulencev1.GetExperimentRequest{Id: started.ID, WithSamples: true})
		r.x = x
		return err == nil && x.GetState() != turbulencev1.ExperimentState_EXPERIMENT_STATE_PENDING &&
			x.GetState() != turbulencev1.ExperimentState_EXPERIMENT_STATE_RUNNING
	})
	x := r.x
	if x.GetState() != turbulencev1.ExperimentState_EXPERIMENT_STATE_ABORTED || x.GetFailedProbe() != "home" || !strings.Contains(x.GetReason(), "probe home failed") {
		tb.Fatalf("experiment %s ended %v, failed probe %q, reason %q; want ABORTED by probe home", x.GetId(), x.GetState(), x.GetFailedProbe(), x.GetReason())
	}
	if len(x.GetSteps()) != 1 || x.GetSteps()[0].GetGroupId() == "" {
		tb.Fatalf("steps = %v, want the one step with its group", x.GetSteps())
	}
	step := x.GetSteps()[0]
	controllertest.WaitFor(tb, waitLong, "every fault of group "+step.GetGroupId()+" to be REVERTED", func() bool {
		g, err := f.api.GetFaultGroup(tb.Context(), &turbulencev1.GetFaultGroupRequest{Id: step.GetGroupId()})
		if err != nil || len(g.GetMembers()) == 0 {
			return false
		}
		r.faults = r.faults[:0]
		for _, m := range g.GetMembers() {
			flt, err := f.api.GetFault(tb.Context(), &turbulencev1.GetFaultRequest{Id: m.GetFaultId()})
			if err != nil || flt.GetState() != stateReverted {
				return false
			}
			r.faults = append(r.faults, flt)
		}
		return true
	})
	if len(r.faults) != 1 || r.faults[0].GetAgentId() != f.agent.ID() {
		tb.Fatalf("faults of the step = %v, want one on %s", r.faults, f.agent.ID())
	}
	r.table = partition.TableName(f.owner, r.faults[0].GetId())
	var err error
	r.made, r.deleted, err = w.seen(r.table)
	if err != nil {
		tb.Fatalf("watching the kernel's nftables notices: %v", err)
	}
	if r.made.IsZero() || r.deleted.IsZero() {
		tb.Fatalf("the kernel announced table %s made at %v and deleted at %v; want both", r.table, r.made, r.deleted)
	}
	if left := f.ownTables(tb); len(left) != 0 {
		tb.Fatalf("nftables tables of the agent left on the host after the abort: %v", left)
	}
	if err := f.answers(2 * time.Second); err != nil {
		tb.Fatalf("the service does not answer after the abort: %v", err)
	}
	for _, s := range probeSamples(x, "home") {
		if t := time.Unix(0, s.GetTimeUnixNano()); !s.GetOk() && !t.Before(step.GetStartedAt().AsTime()) {
			r.failedAt = t
			break
		}
	}
	if r.failedAt.IsZero() {
		tb.Fatalf("no failing sample of probe home after the step started: %v", probeSamples(x, "home"))
	}
	return r
}

func probeSamples(x *turbulencev1.Experiment, probe string) []*turbulencev1.ProbeSample {
	for _, s := range x.GetSeries() {
		if s.GetProbe() == probe {
			return s.GetSamples()
		}
	}
	return nil
}

// writeExperimentTB is writeExperiment for benchmarks too.
func writeExperimentTB(tb testing.TB, text string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "experiment.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// TestPrivilegedExperiment_OwnPartitionBreaksProbeAborts is the issue's
// "one whose fault breaks the probe aborts and leaves nothing applied",
// with a real fault: the partition the experiment itself applied, not a
// service flipped to failing by hand.
func TestPrivilegedExperiment_OwnPartitionBreaksProbeAborts(t *testing.T) {
	f := startFaultAbortFleet(t)
	if err := f.answers(2 * time.Second); err != nil {
		t.Fatalf("the service does not answer before the experiment: %v", err)
	}
	if left := f.ownTables(t); len(left) != 0 {
		t.Fatalf("tables of the agent's before any fault: %v", left)
	}
	w := watchTables(t)
	r := f.run(t, w)
	x, step, flt := r.x, r.x.GetSteps()[0], r.faults[0]

	// The steady state held before: the runner said so before the step,
	// and every sample of the probe before the step passed.
	var types []string
	for _, e := range x.GetEvents() {
		types = append(types, e.GetType())
	}
	held, stepped := slices.Index(types, "steady_state.held"), slices.Index(types, "step.started")
	if held < 0 || stepped < held || !slices.Contains(types, "aborted") {
		t.Errorf("events = %v; want steady_state.held, then step.started, and aborted", types)
	}
	before := 0
	for _, s := range probeSamples(x, "home") {
		if time.Unix(0, s.GetTimeUnixNano()).Before(step.GetStartedAt().AsTime()) {
			before++
			if !s.GetOk() {
				t.Errorf("a sample of home before the step failed: %v", s)
			}
		}
	}
	if before == 0 {
		t.Errorf("no sample of home before the step started at %v", step.GetStartedAt().AsTime())
	}
	// The probe failed because of the fault: after the kernel had the
	// table, and on a timeout (the SYN dropped), not some other error.
	if r.failedAt.Before(r.made) {
		t.Errorf("the first failing sample (%v) came before the table was made (%v)", r.failedAt, r.made)
	}
	if !strings.Contains(x.GetReason(), "timeout") {
		t.Errorf("reason = %q, want the probe's timeout", x.GetReason())
	}
	if flt.GetReason() == "deadline" {
		t.Errorf("fault %s ended by its deadline, want the experiment's revert", flt.GetId())
	}
	// turbctl says the same to people.
	if code, out, _ := f.turbctl(t, "experiment", "show", x.GetId()); code != cli.ExitOK || !strings.Contains(out, "ABORTED") || !strings.Contains(out, "home") {
		t.Errorf("experiment show: exit %d\n%s", code, out)
	}

	applied := flt.GetStatus().GetAppliedAt().AsTime()
	ended := flt.GetEndedAt().AsTime()
	t.Logf("fault %s: table %s", flt.GetId(), r.table)
	t.Logf("table made (kernel) -> the agent's applied_at: %v", applied.Sub(r.made))
	t.Logf("applied -> first failing sample of home: %v", r.failedAt.Sub(applied))
	t.Logf("applied -> experiment recorded ABORTED: %v", x.GetEndedAt().AsTime().Sub(applied))
	t.Logf("applied -> table deleted (kernel): %v; -> fault ended (agent): %v", r.deleted.Sub(applied), ended.Sub(applied))
	t.Logf("first failing sample -> table deleted (kernel): %v; -> fault ended (agent): %v; -> ABORTED recorded: %v",
		r.deleted.Sub(r.failedAt), ended.Sub(r.failedAt), x.GetEndedAt().AsTime().Sub(r.failedAt))
}

// BenchmarkExperimentOwnPartitionAbort runs the experiment of
// TestPrivilegedExperiment_OwnPartitionBreaksProbeAborts once per op and
// reports the time from the first failing sample of the probe to the
// kernel's notice that the fault's table is gone: the issue's "within 1 s
// of the failing probe sample", with the fault itself the cause. The
// probe samples every 100 ms with a 300 ms timeout; a sample fails at its
// timeout, and the figure starts there. It also reports how long the
// table lived, made to deleted by the kernel's notices: the probe's
// detection (its timeout and interval) and the abort together.
func BenchmarkExperimentOwnPartitionAbort(b *testing.B) {
	f := startFaultAbortFleet(b)
	w := watchTables(b)
	var lat, life []time.Duration
	for b.Loop() {
		r := f.run(b, w)
		lat = append(lat, r.deleted.Sub(r.failedAt))
		life = append(life, r.deleted.Sub(r.made))
	}
	slices.Sort(lat)
	slices.Sort(life)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[min(len(lat)-1, len(lat)*99/100)]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(ms(life[len(life)/2]), "life-p50-ms")
	b.ReportMetric(ms(life[len(life)-1]), "life-max-ms")
	b.ReportMetric(0, "ns/op")
}
