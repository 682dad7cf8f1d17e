package vmlab_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"go.uber.org/goleak"

	"github.com/turbulence-sre/turbulence/internal/testutil"
	"github.com/turbulence-sre/turbulence/test/vmlab"
)

// The systemd boot's addresses: the guest keeps the lab's 198.18.0.10 and
// finds the host's driver listener on the bridge's peer address.
const (
	sysDriverListen = "198.18.0.1:7101"
	// sysBootBudget bounds the boot, from qemu's start to a running
	// system: about 20 s here on tcg; the rest is margin for a loaded
	// machine.
	sysBootBudget = 4 * time.Minute
	// sysRunBudget bounds the whole VM.
	sysRunBudget = 15 * time.Minute
)

// sysModules are what the booted Debian needs from the guest's /init, in
// this order: the root disk and its filesystem, then what the lab's
// netem guest loads (the NIC and the network injectors' qdiscs,
// classifier and nftables). The root has no /lib/modules: the kernel is
// the lab's, not a package of the image.
var sysModules = append([]string{"virtio_blk", "crc16", "mbcache", "jbd2", "ext4"}, guestModules...)

// sysVM is one booted Debian: its console, and the driver's connection.
type sysVM struct {
	t       *testing.T
	ns      netns.NsHandle
	console *ring
	conn    net.Conn
	r       *bufio.Reader
	mu      sync.Mutex // one request at a time
	booted  time.Duration
}

// ring keeps the last lines of the serial console, for failures.
type ring struct {
	mu    sync.Mutex
	lines []string
	all   int
}

func (r *ring) add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all++
	r.lines = append(r.lines, line)
	if len(r.lines) > 80 {
		r.lines = r.lines[1:]
	}
}

func (r *ring) tail() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// fatalf fails the test with the console's tail, which says what the
// guest was doing.
func (vm *sysVM) fatalf(format string, args ...any) {
	vm.t.Helper()
	vm.t.Fatalf(format+"\nguest console tail:\n%s", append(args, vm.console.tail())...)
}

// do sends one request and returns the answer; data follows a write.
func (vm *sysVM) do(req vmlab.Request, data []byte) vmlab.Response {
	vm.t.Helper()
	vm.mu.Lock()
	defer vm.mu.Unlock()
	req.Size = int64(len(data))
	line, err := json.Marshal(req)
	if err != nil {
		vm.t.Fatal(err)
	}
	timeout := time.Duration(req.TimeoutMS)*time.Millisecond + 2*time.Minute
	_ = vm.conn.SetDeadline(time.Now().Add(timeout))
	if _, err := vm.conn.Write(append(line, '\n')); err != nil {
		vm.fatalf("send %s to the guest: %v", req.Op, err)
	}
	if len(data) > 0 {
		if _, err := vm.conn.Write(data); err != nil {
			vm.fatalf("send %s's data to the guest: %v", req.Path, err)
		}
	}
	answer, err := vm.r.ReadBytes('\n')
	if err != nil {
		vm.fatalf("the guest's answer to %s %q: %v", req.Op, req.Argv, err)
	}
	var resp vmlab.Response
	if err := json.Unmarshal(answer, &resp); err != nil {
		vm.fatalf("the guest's answer %q: %v", answer, err)
	}
	return resp
}

// exec runs argv in the guest and returns its answer; a command that
// could not run at all fails the test.
func (vm *sysVM) exec(argv ...string) vmlab.Response {
	vm.t.Helper()
	resp := vm.do(vmlab.Request{Op: "exec", Argv: argv, TimeoutMS: 120_000}, nil)
	if resp.Error != "" {
		vm.fatalf("guest: %s", resp.Error)
	}
	return resp
}

// must runs argv in the guest and fails the test unless it exits 0.
func (vm *sysVM) must(argv ...string) string {
	vm.t.Helper()
	resp := vm.exec(argv...)
	if resp.Code != 0 {
		vm.fatalf("guest: %s exited %d\nstdout: %s\nstderr: %s", strings.Join(argv, " "), resp.Code, resp.Stdout, resp.Stderr)
	}
	return resp.Stdout
}

// write puts data at path in the guest.
func (vm *sysVM) write(path string, data []byte, mode os.FileMode) {
	vm.t.Helper()
	if resp := vm.do(vmlab.Request{Op: "write", Path: path, Mode: uint32(mode)}, data); resp.Error != "" {
		vm.fatalf("guest: write %s: %s", path, resp.Error)
	}
}

// procs returns the guest's process table.
func (vm *sysVM) procs() []vmlab.Proc {
	vm.t.Helper()
	resp := vm.do(vmlab.Request{Op: "procs"}, nil)
	if resp.Error != "" {
		vm.fatalf("guest: procs: %s", resp.Error)
	}
	return resp.Procs
}

// bootSystemd builds the initramfs for image, makes the lab's network,
// boots qemu in it and waits until the guest's systemd reports the
// system up and its driver has called in. The VM ends with the test.
func bootSystemd(t *testing.T, root string, k kernel, image string, ns netns.NsHandle) *sysVM {
	t.Helper()
	initrd := buildSysInitramfs(t, root, k)

	var ln net.Listener
	var lerr error
	testutil.InNS(t, ns, func() { ln, lerr = net.Listen("tcp", sysDriverListen) })
	if lerr != nil {
		t.Fatalf("driver listener: %v", lerr)
	}
	t.Cleanup(func() { _ = ln.Close() })

	vm := &sysVM{t: t, ns: ns, console: &ring{}}
	ctx, cancel := context.WithTimeout(context.Background(), sysRunBudget)
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-accel", "tcg", "-m", "768", "-smp", "1", "-nographic", "-no-reboot",
		"-kernel", k.vmlinuz(), "-initrd", initrd,
		// net.ifnames=0: eth0 keeps its name; the serial getty is masked
		// (nobody logs in, and without udev its device never appears);
		// journald copies every log line to the console, so that a
		// failure's console tail shows what the agent and systemd said.
		"-append", "console=ttyS0 panic=-1 quiet net.ifnames=0 systemd.show_status=1 systemd.mask=serial-getty@ttyS0.service systemd.journald.forward_to_console=1",
		"-drive", "file="+image+",format=raw,if=virtio,snapshot=on",
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
		cancel()
		t.Fatalf("start qemu: %v", err)
	}
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		sc := bufio.NewScanner(console)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			vm.console.add(strings.TrimRight(sc.Text(), "\r"))
		}
	}()
	exited := make(chan error, 1)
	go func() {
		<-consoleDone
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if vm.conn != nil {
			_ = vm.conn.Close()
		}
		cancel() // kills qemu: the image is a snapshot, nothing to save
		werr := <-exited
		t.Logf("qemu ran %.1f s (%v); %d console lines", time.Since(start).Seconds(), werr, vm.console.all)
	})

	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	select {
	case vm.conn = <-accepted:
	case err := <-exited:
		t.Fatalf("qemu exited before the guest's driver called in: %v\n%s\nguest console tail:\n%s", err, stderr.String(), vm.console.tail())
	case <-time.After(sysBootBudget):
		t.Fatalf("the guest's driver did not call in within %s\nguest console tail:\n%s", sysBootBudget, vm.console.tail())
	}
	vm.r = bufio.NewReader(vm.conn)
	// The driver runs once basic.target is up; the rest of the boot is
	// systemd's to finish.
	state := vm.exec("systemctl", "is-system-running", "--wait")
	vm.booted = time.Since(start)
	if s := strings.TrimSpace(state.Stdout); s != "running" {
		failed := vm.exec("systemctl", "--failed", "--no-legend")
		vm.fatalf("systemctl is-system-running = %q, want running; failed units:\n%s", s, failed.Stdout)
	}
	return vm
}

// buildSysInitramfs writes the systemd boot's initramfs: sysguest as
// /init, its SysConfig and the modules of sysModules.
func buildSysInitramfs(t *testing.T, root string, k kernel) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "init")
	cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", bin, "./test/vmlab/sysguest")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the systemd guest: %v\n%s", err, b)
	}
	guest, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	kos, err := moduleFiles(k, sysModules)
	if err != nil {
		t.Fatal(err)
	}
	cfg := vmlab.SysConfig{RootDevice: "/dev/vda", Interface: "eth0", GuestCIDR: guestCIDR, Host: sysDriverListen}
	for _, ko := range kos {
		cfg.Modules = append(cfg.Modules, filepath.Join("/lib/modules", k.version, ko))
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := initramfsEntries(k, guest, nil, kos)
	if err != nil {
		t.Fatal(err)
	}
	// The netem guest's Config is not this boot's: replace it.
	for i := range entries {
		if entries[i].name == strings.TrimPrefix(vmlab.ConfigPath, "/") {
			entries[i] = cpioEntry{name: strings.TrimPrefix(vmlab.SysConfigPath, "/"), mode: 0o100644, data: raw}
		}
	}
	return writeInitramfs(t, dir, entries)
}

// TestVMLab_Systemd boots Debian 12 with systemd as init (docs/vmlab.md,
// "The systemd boot").
func TestVMLab_Systemd(t *testing.T) {
	testutil.RequirePrivileged(t)
	// Registered first, so it runs last: after qemu, the controller and
	// every listener are gone, none of this test's goroutines may remain
	// (an earlier test's are not its business).
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	ensureTools(t)
	ensureRootfsTools(t)
	root := moduleRoot(t)
	cache := filepath.Join(root, "build", "vmlab")
	start := time.Now()
	k := prepareKernel(t, cache)
	image := prepareRootfs(t, cache)
	t.Logf("kernel %s and root filesystem %s ready in %.1f s", k.version, filepath.Base(filepath.Dir(image)), time.Since(start).Seconds())

	ns := testutil.NewNS(t)
	var srv *servers
	var setupErr error
	testutil.InNS(t, ns, func() { srv, setupErr = labNetwork() })
	if setupErr != nil {
		t.Fatalf("lab network: %v", setupErr)
	}
	t.Cleanup(srv.close)
	fleet := startFleet(t, ns)

	vm := bootSystemd(t, root, k, image, ns)
	t.Logf("booted to a running systemd in %.1f s (qemu start to is-system-running); systemd-analyze: %s",
		vm.booted.Seconds(), strings.TrimSpace(vm.must("systemd-analyze", "time")))
	if pid1 := vm.procs(); len(pid1) == 0 {
		vm.fatalf("no processes in the guest")
	}
	if comm := strings.TrimSpace(vm.must("cat", "/proc/1/comm")); comm != "systemd" {
		vm.fatalf("PID 1 is %q, want systemd", comm)
	}
	runAgentScenario(t, root, vm, fleet)
}
