package vmlab_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
	"github.com/turbulence-sre/turbulence/test/vmlab"
)

// The agent under systemd in the booted Debian.
const (
	agentUnit      = "turbulence-agent.service"
	controllerUnit = "turbulence-controller.service"
	agentBinary    = "/usr/bin/turbulence-agent"
	// defaultStateDir is the agent binary's state directory when neither
	// the unit nor /etc/default/turbulence-agent passes --state-dir.
	defaultStateDir = "/var/lib/turbulence"
	// journalName is the agent's journal in its state directory, which it
	// locks (agent/journal) for as long as it runs.
	journalName = "journal"
)

// unit returns the properties of a unit, as `systemctl show` prints them.
func (vm *sysVM) unit(name string, props ...string) map[string]string {
	vm.t.Helper()
	argv := []string{"systemctl", "show", name}
	for _, p := range props {
		argv = append(argv, "-p", p)
	}
	out := vm.must(argv...)
	m := map[string]string{}
	for line := range strings.SplitSeq(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// agentProcs returns the guest's processes run from the agent's binary:
// the agent, its workers (argv[1] "worker") and guardians ("guard").
func (vm *sysVM) agentProcs() []vmlab.Proc {
	vm.t.Helper()
	var out []vmlab.Proc
	for _, p := range vm.procs() {
		if len(p.Argv) > 0 && p.Argv[0] == agentBinary {
			out = append(out, p)
		}
	}
	return out
}

// workers returns the agent binary's processes whose argv[1] is role.
func workers(ps []vmlab.Proc, role string) []vmlab.Proc {
	var out []vmlab.Proc
	for _, p := range ps {
		if len(p.Argv) > 1 && p.Argv[1] == role {
			out = append(out, p)
		}
	}
	return out
}

func describe(ps []vmlab.Proc) string {
	var s []string
	for _, p := range ps {
		s = append(s, fmt.Sprintf("%d(ppid %d, %s): %s", p.PID, p.PPID, p.State, strings.Join(p.Argv, " ")))
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "; ")
}

// contract is an assertion on the unit's systemd integration
// (Type=notify, READY after recovery, the watchdog): a failure prints the
// guest's console tail.
type contract struct {
	t  *testing.T
	vm *sysVM
}

func (c contract) check(ok bool, format string, args ...any) {
	c.t.Helper()
	if ok {
		return
	}
	c.t.Errorf(format+"\nguest console tail:\n%s", append(args, c.vm.console.tail())...)
}

// uintProp parses a numeric unit property ("0" when unset).
func uintProp(t *testing.T, m map[string]string, key string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(m[key], 10, 64)
	if err != nil {
		t.Fatalf("unit property %s=%q: %v", key, m[key], err)
	}
	return v
}

// usecProp parses a time span property as systemctl show prints it
// ("2s", "1min 30s", "100ms"; "infinity" and "0" are no span: 0).
func usecProp(t *testing.T, m map[string]string, key string) time.Duration {
	t.Helper()
	d, err := parseSpan(m[key])
	if err != nil {
		t.Fatalf("unit property %s=%q: %v", key, m[key], err)
	}
	return d
}

// parseSpan reads systemd's rendering of a time span.
func parseSpan(v string) (time.Duration, error) {
	if v == "infinity" || v == "0" || v == "" {
		return 0, nil
	}
	var total time.Duration
	for _, part := range strings.Fields(v) {
		if n, ok := strings.CutSuffix(part, "min"); ok {
			part = n + "m"
		}
		d, err := time.ParseDuration(part)
		if err != nil {
			return 0, err
		}
		total += d
	}
	return total, nil
}

// setVar sets KEY=value in an environment file, replacing an active line
// of KEY or adding one, and keeps every other line.
func setVar(file, key, value string) string {
	var out []string
	done := false
	for line := range strings.SplitSeq(strings.TrimRight(file, "\n"), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), key+"=") {
			if done {
				continue
			}
			line, done = key+"="+value, true
		}
		out = append(out, line)
	}
	if !done {
		out = append(out, key+"="+value)
	}
	return strings.Join(out, "\n") + "\n"
}

// stateDirOf finds the agent's --state-dir in text (the unit's ExecStart
// and its environment file), or returns the binary's default.
func stateDirOf(text string) string {
	f := strings.FieldsFunc(text, func(r rune) bool { return r == ' ' || r == '\n' || r == '"' || r == '\'' || r == ';' })
	for i, w := range f {
		if v, ok := strings.CutPrefix(w, "--state-dir="); ok {
			return v
		}
		if w == "--state-dir" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return defaultStateDir
}

// runAgentScenario installs the agent's package in the booted guest and
// proves the unit's life cycle against the controller outside the VM.
func runAgentScenario(t *testing.T, root string, vm *sysVM, fleet *sysFleet) {
	pkgs := agentPackage(t, root)

	// Install: dpkg -i, with no certificates yet. Nothing may start.
	upload := func(src, dst string) {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		vm.write(dst, data, 0o644)
		t.Logf("uploaded %s (%.1f MB) in %.1f s", filepath.Base(src), float64(len(data))/1e6, time.Since(start).Seconds())
	}
	upload(pkgs.Agent, "/root/turbulence-agent.deb")
	start := time.Now()
	vm.must("dpkg", "-i", "/root/turbulence-agent.deb")
	t.Logf("dpkg -i turbulence-agent: %.1f s", time.Since(start).Seconds())
	p := vm.unit(agentUnit, "LoadState", "ActiveState", "Type", "NotifyAccess", "TimeoutAbortUSec", "TimeoutStopUSec", "RestartUSec", "Restart")
	t.Logf("installed unit: %v", p)
	if p["LoadState"] != "loaded" || p["ActiveState"] != "inactive" {
		vm.fatalf("after dpkg -i without certificates: LoadState=%s ActiveState=%s, want loaded and inactive (nothing starts an agent that has no certificates)", p["LoadState"], p["ActiveState"])
	}
	c := contract{t: t, vm: vm}
	c.check(p["Type"] == "notify", "the agent's unit is Type=%s, want notify", p["Type"])

	// Provision as an operator does: certificates, the controller's
	// address, a reload.
	for _, f := range []struct {
		src, dst string
		mode     os.FileMode
	}{
		{fleet.agent.CA, "/etc/turbulence/tls/ca.crt", 0o644},
		{fleet.agent.Cert, "/etc/turbulence/tls/agent.crt", 0o644},
		{fleet.agent.Key, "/etc/turbulence/tls/agent.key", 0o600},
	} {
		data, err := os.ReadFile(f.src)
		if err != nil {
			t.Fatal(err)
		}
		vm.write(f.dst, data, f.mode)
	}
	// The package's defaults file keeps what it says; only the controller
	// line is the test's.
	defaults := setVar(vm.must("cat", "/etc/default/turbulence-agent"), "TURBULENCE_CONTROLLER", sysControllerGRPC)
	vm.write("/etc/default/turbulence-agent", []byte(defaults), 0o644)
	vm.must("systemctl", "daemon-reload")
	journal := filepath.Join(stateDirOf(vm.unit(agentUnit, "ExecStart")["ExecStart"]+"\n"+defaults), journalName)

	checkReady(t, vm, fleet, c, journal)
	// systemd reports a unit's watchdog once it has started it.
	watchdog := usecProp(t, vm.unit(agentUnit, "WatchdogUSec"), "WatchdogUSec")
	c.check(watchdog > 0, "the agent's unit has no WatchdogSec")
	checkFaultAndStop(t, vm, fleet)
	checkKillRestart(t, vm, fleet)
	checkWatchdog(t, vm, fleet, c, watchdog)
	checkClockSkew(t, vm, fleet)
	checkVerify(t, vm, pkgs)
}

// checkReady: the unit is active only once the agent said READY, which
// it says only after start-up recovery. An agent that cannot recover (its
// journal is locked by someone else, so it exits in start-up) must never
// make the unit active; with Type=simple it would, at fork.
func checkReady(t *testing.T, vm *sysVM, fleet *sysFleet, c contract, journal string) {
	t.Helper()
	if r := vm.do(vmlab.Request{Op: "lock", Path: journal}, nil); r.Error != "" {
		vm.fatalf("lock the agent's journal: %s", r.Error)
	}
	vm.must("systemctl", "start", "--no-block", agentUnit)
	var p map[string]string
	fleet.waitForVM(vm, 2*time.Minute, "the agent to exit in start-up (journal locked)", func() (bool, string) {
		p = vm.unit(agentUnit, "ActiveState", "SubState", "NRestarts", "ExecMainStatus", "ActiveEnterTimestampMonotonic")
		return p["NRestarts"] != "0" || p["ActiveState"] == "failed", fmt.Sprint(p)
	})
	log := vm.must("journalctl", "--no-pager", "-o", "cat", "-u", agentUnit)
	if !strings.Contains(log, "in use by another process") {
		vm.fatalf("the agent's journal (systemd's) does not say it found its journal in use:\n%s", log)
	}
	c.check(p["ActiveEnterTimestampMonotonic"] == "0",
		"the unit became active (ActiveEnterTimestampMonotonic=%s) although the agent never finished start-up recovery: it exited on its locked journal (%v)",
		p["ActiveEnterTimestampMonotonic"], p)
	if r := vm.do(vmlab.Request{Op: "unlock", Path: journal}, nil); r.Error != "" {
		vm.fatalf("unlock the agent's journal: %s", r.Error)
	}
	_ = vm.exec("systemctl", "reset-failed", agentUnit) // the failed starts count toward the start limit

	start := time.Now()
	vm.must("systemctl", "restart", agentUnit) // with Type=notify, returns once READY arrived
	took := time.Since(start)
	// Right away, with no wait: a ready agent serves its local socket.
	status := vm.exec(agentBinary, "status")
	p = vm.unit(agentUnit, "ActiveState", "SubState", "MainPID", "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic", "StatusText")
	if p["ActiveState"] != "active" {
		vm.fatalf("after systemctl restart: %v, want active", p)
	}
	wait := time.Duration(uintProp(t, p, "ActiveEnterTimestampMonotonic")-uintProp(t, p, "ExecMainStartTimestampMonotonic")) * time.Microsecond
	c.check(wait > 0, "the unit went active at the agent's exec, not after it said READY: %v", p)
	t.Logf("systemctl restart returned after %.2f s; the unit went active %.3f s after the agent's exec (READY); status text %q",
		took.Seconds(), wait.Seconds(), p["StatusText"])
	c.check(status.Code == 0, "turbulence-agent status, right after systemctl start returned, exited %d: %s%s", status.Code, status.Stdout, status.Stderr)
	t.Logf("agent connected to the controller %.1f s after it was active", fleet.waitConnected(vm).Seconds())
}

// waitWorker waits for a CPU worker of the agent main.
func waitWorker(vm *sysVM, fleet *sysFleet, main string) vmlab.Proc {
	vm.t.Helper()
	var w vmlab.Proc
	fleet.waitForVM(vm, time.Minute, "the CPU fault's worker in the guest", func() (bool, string) {
		ps := vm.agentProcs()
		for _, p := range workers(ps, "worker") {
			if strconv.Itoa(p.PPID) == main {
				w = p
				return true, ""
			}
		}
		return false, describe(ps)
	})
	return w
}

// checkFaultAndStop: a fault applied with turbctl on the host runs in the
// guest (its worker, a child of the agent's main process), and
// `systemctl stop` takes it back: no worker, no guardian, no agent left.
func checkFaultAndStop(t *testing.T, vm *sysVM, fleet *sysFleet) {
	t.Helper()
	main := vm.unit(agentUnit, "MainPID")["MainPID"]
	id := fleet.applyCPU(vm)
	w := waitWorker(vm, fleet, main)
	t.Logf("fault %s runs in the guest: worker %d (%s)", id, w.PID, strings.Join(w.Argv, " "))

	start := time.Now()
	vm.must("systemctl", "stop", agentUnit)
	t.Logf("systemctl stop took %.1f s", time.Since(start).Seconds())
	if left := vm.agentProcs(); len(left) > 0 {
		vm.fatalf("after systemctl stop, processes of the agent's binary are left: %s", describe(left))
	}
	if p := vm.unit(agentUnit, "ActiveState", "Result"); p["ActiveState"] != "inactive" || p["Result"] != "success" {
		vm.fatalf("after systemctl stop: %v, want inactive and success (the agent reverted and exited 0)", p)
	}
	// The agent reverted the fault itself before it exited, and said so.
	fleet.waitForVM(vm, time.Minute, "the controller to hear the stopped agent reverted its fault", func() (bool, string) {
		flt, err := fleet.fault(id)
		if err != nil {
			return false, err.Error()
		}
		return flt.GetState() == turbulencev1.FaultState_FAULT_STATE_REVERTED, fmt.Sprintf("%s (%s)", flt.GetState(), flt.GetReason())
	})
	if flt, err := fleet.fault(id); err == nil {
		t.Logf("controller: fault %s is %s (%s)", id, flt.GetState(), flt.GetReason())
	}
}

// checkKillRestart: SIGKILL of the agent's main process under a fault;
// systemd restarts it (Restart=on-failure) after ExecStopPost's cleanup,
// and nothing of the old run is left: its worker is gone and no fault
// runs.
func checkKillRestart(t *testing.T, vm *sysVM, fleet *sysFleet) {
	t.Helper()
	vm.must("systemctl", "start", agentUnit)
	fleet.waitConnected(vm)
	p := vm.unit(agentUnit, "MainPID", "NRestarts")
	id := fleet.applyCPU(vm)
	w := waitWorker(vm, fleet, p["MainPID"])
	start := time.Now()
	vm.must("systemctl", "kill", "--kill-whom=main", "--signal=SIGKILL", agentUnit)
	q := waitRestart(t, vm, fleet, p, 2*time.Minute)
	t.Logf("SIGKILL of agent %s under fault %s: restarted as %s after %.1f s (NRestarts %s -> %s)",
		p["MainPID"], id, q["MainPID"], time.Since(start).Seconds(), p["NRestarts"], q["NRestarts"])
	ps := vm.agentProcs()
	if slices.ContainsFunc(ps, func(x vmlab.Proc) bool { return x.PID == w.PID }) ||
		len(workers(ps, "worker")) > 0 || len(workers(ps, "guard")) > 0 {
		vm.fatalf("after SIGKILL and the restart, the old run left processes (old worker %d): %s", w.PID, describe(ps))
	}
	// ExecStopPost's cleanup took the fault back and kept its outcome in
	// the state directory; the restarted agent reports it, so the
	// controller learns how and when the fault really ended.
	fleet.waitConnected(vm)
	fleet.waitForVM(vm, time.Minute, "the controller to record the killed agent's fault REVERTED by the cleanup", func() (bool, string) {
		flt, err := fleet.fault(id)
		if err != nil {
			return false, err.Error()
		}
		return flt.GetState() == turbulencev1.FaultState_FAULT_STATE_REVERTED && flt.GetReason() == agent.ReasonCleanup,
			fmt.Sprintf("%s (%s)", flt.GetState(), flt.GetReason())
	})
	if flt, err := fleet.fault(id); err == nil {
		t.Logf("controller: the killed agent's fault %s is %s (%s)", id, flt.GetState(), flt.GetReason())
	}
	if ps := workers(vm.agentProcs(), "worker"); len(ps) > 0 {
		vm.fatalf("the restarted agent runs workers of a fault the killed one held: %s", describe(ps))
	}
}

// waitRestart waits until systemd restarted the agent whose properties
// before were p (MainPID, NRestarts) and the new one is active.
func waitRestart(t *testing.T, vm *sysVM, fleet *sysFleet, p map[string]string, limit time.Duration) map[string]string {
	t.Helper()
	var q map[string]string
	fleet.waitForVM(vm, limit, "systemd to restart the agent", func() (bool, string) {
		q = vm.unit(agentUnit, "MainPID", "NRestarts", "ActiveState", "SubState")
		return q["NRestarts"] != p["NRestarts"] && q["ActiveState"] == "active" && q["MainPID"] != "0" && q["MainPID"] != p["MainPID"], fmt.Sprint(q)
	})
	if uintProp(t, q, "NRestarts") <= uintProp(t, p, "NRestarts") {
		vm.fatalf("NRestarts went from %s to %s, want up", p["NRestarts"], q["NRestarts"])
	}
	return q
}

// checkWatchdog: SIGSTOP of the agent's main process stops the loop that
// feeds the watchdog; after WatchdogSec systemd aborts it and restarts
// it, and the fault it held is gone.
func checkWatchdog(t *testing.T, vm *sysVM, fleet *sysFleet, c contract, watchdog time.Duration) {
	t.Helper()
	if watchdog == 0 {
		c.check(false, "watchdog phase not run: the unit has no WatchdogSec, so SIGSTOP would never be noticed")
		return
	}
	fleet.waitConnected(vm)
	p := vm.unit(agentUnit, "MainPID", "NRestarts", "TimeoutAbortUSec", "TimeoutStopUSec", "RestartUSec")
	id := fleet.applyCPU(vm)
	w := waitWorker(vm, fleet, p["MainPID"])
	abort := usecProp(t, p, "TimeoutAbortUSec")
	if abort == 0 {
		abort = usecProp(t, p, "TimeoutStopUSec")
	}
	// A stopped process never handles the watchdog's SIGABRT: systemd
	// SIGKILLs it after the abort timeout.
	limit := watchdog + abort + usecProp(t, p, "RestartUSec") + 2*time.Minute
	start := time.Now()
	vm.must("systemctl", "kill", "--kill-whom=main", "--signal=SIGSTOP", agentUnit)
	q := waitRestart(t, vm, fleet, p, limit)
	t.Logf("SIGSTOP of agent %s under fault %s: the watchdog (WatchdogSec %s, abort timeout %s) had it restarted as %s after %.1f s",
		p["MainPID"], id, watchdog, abort, q["MainPID"], time.Since(start).Seconds())
	log := vm.must("journalctl", "--no-pager", "-o", "cat", "-u", agentUnit)
	c.check(strings.Contains(log, "Watchdog timeout"), "systemd's journal for the unit does not say the watchdog fired:\n%s", log)
	ps := vm.agentProcs()
	if slices.ContainsFunc(ps, func(x vmlab.Proc) bool { return x.PID == w.PID }) || len(workers(ps, "worker")) > 0 {
		vm.fatalf("after the watchdog's restart, the stuck run left processes (old worker %d): %s", w.PID, describe(ps))
	}
}

// checkVerify: systemd-analyze verify, in the guest, against the
// installed units and binaries, is clean for both units.
func checkVerify(t *testing.T, vm *sysVM, pkgs packageSet) {
	t.Helper()
	data, err := os.ReadFile(pkgs.Controller)
	if err != nil {
		t.Fatal(err)
	}
	vm.write("/root/turbulence-controller.deb", data, 0o644)
	vm.must("dpkg", "-i", "/root/turbulence-controller.deb")
	if p := vm.unit(controllerUnit, "LoadState", "ActiveState"); p["LoadState"] != "loaded" || p["ActiveState"] != "inactive" {
		vm.fatalf("after dpkg -i of the controller without certificates: %v, want loaded and inactive", p)
	}
	for _, u := range []string{agentUnit, controllerUnit} {
		// Run from a service, systemd's tools log to the journal: make
		// verify's findings come back on stderr.
		r := vm.exec("env", "SYSTEMD_LOG_TARGET=console", "systemd-analyze", "verify", "/lib/systemd/system/"+u)
		out := strings.TrimSpace(r.Stdout + r.Stderr)
		if r.Code != 0 || out != "" {
			t.Errorf("systemd-analyze verify %s: exit %d, want 0 and no output:\n%s", u, r.Code, out)
		} else {
			t.Logf("systemd-analyze verify %s: clean", u)
		}
	}
}
