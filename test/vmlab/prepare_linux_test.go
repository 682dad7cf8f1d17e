package vmlab_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/turbulence-sre/turbulence/internal/testutil"
	"github.com/turbulence-sre/turbulence/test/vmlab"
)

// kernelMeta is the Debian package whose dependency names the current
// stock kernel image.
const kernelMeta = "linux-image-amd64"

// guestModules are the modules the guest loads, in this order (issue 5's
// recipe): the virtio NIC stack, then the qdiscs and classifier the
// network injector builds. Their dependencies come from modules.dep.
var guestModules = []string{
	"virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
	"failover", "net_failover", "virtio_net",
	"sch_htb", "sch_tbf", "cls_u32", "sch_netem",
	// netlink.NewHandle opens a socket of every family it supports, and
	// XFRM and NETFILTER are modules on Debian: a real host's kernel
	// loads them on demand through modprobe, which the guest has not.
	"xfrm_user", "nfnetlink",
	// The partition injector's nftables (its expressions — meta, payload,
	// bitwise, cmp, counter — and the inet family are built into
	// nf_tables). nf_tables needs libcrc32c, whose init asks the crypto
	// API for crc32c: a real host's modprobe loads it on demand (a softdep),
	// the guest loads it first.
	"crc32c_generic", "nf_tables",
}

// missing reports a prerequisite the lab cannot have: a failure where
// privileged tests must run (TURBULENCE_REQUIRE_PRIVILEGED=1), a skip
// elsewhere, so a laptop without apt or network is not blocked.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := "VM lab prerequisite missing: " + fmt.Sprintf(format, args...)
	if os.Getenv(testutil.RequirePrivilegedEnv) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg + " (set " + testutil.RequirePrivilegedEnv + "=1 to make this a failure)")
}

// run runs a command and returns its stdout, with stderr in the error.
func run(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// moduleRoot is the repository root, from go env GOMOD: the cache lives
// in its build/ (ignored by git, removed by make clean).
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := run("", "go", "env", "GOMOD")
	if err != nil || strings.TrimSpace(out) == "" || strings.TrimSpace(out) == os.DevNull {
		t.Fatalf("find the module root with go env GOMOD: %v (%q)", err, out)
	}
	return filepath.Dir(strings.TrimSpace(out))
}

// ensureTools installs what the lab runs on the host when it is not there
// yet: qemu, and depmod from kmod. dpkg and apt come with Debian.
func ensureTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing(t, "%s not found: the lab needs a Debian host", tool)
		}
	}
	installMissing(t, map[string]string{"qemu-system-x86_64": "qemu-system-x86", "depmod": "kmod"})
}

// installMissing installs, with apt-get, the package of each tool (a
// command name, to its Debian package) that is not on the PATH.
func installMissing(t *testing.T, tools map[string]string) {
	t.Helper()
	var pkgs []string
	for tool, pkg := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			pkgs = append(pkgs, pkg)
		}
	}
	if len(pkgs) == 0 {
		return
	}
	sort.Strings(pkgs)
	t.Logf("installing %s", strings.Join(pkgs, " "))
	install := append([]string{"install", "-y", "-qq"}, pkgs...)
	if _, err := run("", "apt-get", install...); err != nil {
		// A fresh machine may not have package lists yet.
		if _, uerr := run("", "apt-get", "update", "-qq"); uerr != nil {
			missing(t, "install %s: %v\nthen %v", strings.Join(pkgs, " "), err, uerr)
		}
		if _, err := run("", "apt-get", install...); err != nil {
			missing(t, "install %s: %v", strings.Join(pkgs, " "), err)
		}
	}
}

// writeInitramfs writes entries as dir/initramfs.cpio.gz and returns its
// path. gzip at its fastest: on tcg, inflating costs the guest less than
// qemu's copying 12 MB more into it (about 3 s less per boot here).
func writeInitramfs(t *testing.T, dir string, entries []cpioEntry) string {
	t.Helper()
	out := filepath.Join(dir, "initramfs.cpio.gz")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeCpio(zw, entries); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// kernel is an unpacked, depmod-indexed Debian kernel.
type kernel struct {
	root    string // the dpkg -x tree
	version string // its /lib/modules/<version>
}

func (k kernel) vmlinuz() string { return filepath.Join(k.root, "boot", "vmlinuz-"+k.version) }
func (k kernel) modDir() string  { return filepath.Join(k.root, "lib", "modules", k.version) }

// readyMark is written last into a cached kernel directory: a tree without
// it is a half-finished preparation and is done again.
const readyMark = ".vmlab-ready"

// prepareKernel returns the kernel image package linux-image-amd64
// depends on, from build/vmlab when an earlier run got it, otherwise
// fetched with apt-get download, unpacked with dpkg -x and indexed with
// depmod -b.
func prepareKernel(t *testing.T, cache string) kernel {
	t.Helper()
	pkg, err := kernelPackage()
	if err != nil {
		// No apt metadata: an earlier run's kernel still does.
		if k, ok := cachedKernel(cache); ok {
			t.Logf("apt-cache: %v; using the cached %s", err, k.root)
			return k
		}
		missing(t, "%v", err)
	}
	// Several `go test` runs can share a checkout (engineers, CI jobs):
	// one prepares, the others wait for it instead of deleting its
	// half-made tree.
	unlock := lockCache(t, cache)
	defer unlock()
	dir := filepath.Join(cache, pkg)
	if k, err := kernelAt(dir); err == nil {
		if _, err := os.Stat(filepath.Join(dir, readyMark)); err == nil {
			return k
		}
	}
	t.Logf("preparing %s in %s (once: later runs reuse it)", pkg, dir)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	dl := filepath.Join(cache, "download")
	if err := os.MkdirAll(dl, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := run(dl, "apt-get", "download", pkg); err != nil {
		// Stale package lists name a version the mirror no longer has.
		if _, uerr := run("", "apt-get", "update", "-qq"); uerr != nil {
			missing(t, "download the kernel: %v\nthen %v", err, uerr)
		}
		if _, err := run(dl, "apt-get", "download", pkg); err != nil {
			missing(t, "download the kernel: %v", err)
		}
	}
	debs, _ := filepath.Glob(filepath.Join(dl, pkg+"_*.deb"))
	if len(debs) == 0 {
		t.Fatalf("apt-get download %s left no .deb in %s", pkg, dl)
	}
	if _, err := run("", "dpkg", "-x", debs[len(debs)-1], dir); err != nil {
		t.Fatal(err)
	}
	k, err := kernelAt(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Debian's package has no modules.dep (its postinst makes it).
	if _, err := run("", "depmod", "-b", dir, k.version); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, readyMark), []byte(pkg+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The tree is the cache; the .deb is not needed again.
	_ = os.RemoveAll(dl)
	return k
}

// lockCache takes an exclusive flock on cache/.lock; the kernel releases
// it if the test process dies.
func lockCache(t *testing.T, cache string) (unlock func()) {
	t.Helper()
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		_ = f.Close()
		t.Fatalf("lock %s: %v", cache, err)
	}
	return func() { _ = f.Close() } // closing the last fd drops the lock
}

// kernelPackage asks apt (locally, no network) which image package the
// meta package depends on, e.g. linux-image-6.1.0-56-amd64.
func kernelPackage() (string, error) {
	out, err := run("", "apt-cache", "depends", kernelMeta)
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("apt-cache depends %s names no linux-image package:\n%s", kernelMeta, out)
}

func cachedKernel(cache string) (kernel, bool) {
	marks, _ := filepath.Glob(filepath.Join(cache, "linux-image-*", readyMark))
	sort.Strings(marks)
	for i := len(marks) - 1; i >= 0; i-- {
		if k, err := kernelAt(filepath.Dir(marks[i])); err == nil {
			return k, true
		}
	}
	return kernel{}, false
}

// kernelAt finds the one kernel version unpacked in dir.
func kernelAt(dir string) (kernel, error) {
	vs, err := filepath.Glob(filepath.Join(dir, "lib", "modules", "*"))
	if err != nil || len(vs) != 1 {
		return kernel{}, fmt.Errorf("%s: want one kernel under lib/modules, found %d", dir, len(vs))
	}
	k := kernel{root: dir, version: filepath.Base(vs[0])}
	if _, err := os.Stat(k.vmlinuz()); err != nil {
		return kernel{}, err
	}
	return k, nil
}

// moduleFiles returns the .ko files (relative to the module directory)
// that load names in order: each module's dependencies (modules.dep lists
// all of them, the deepest last) before it, every file once. A name that
// is built into the kernel needs nothing.
func moduleFiles(k kernel, names []string) ([]string, error) {
	dep, err := os.ReadFile(filepath.Join(k.modDir(), "modules.dep"))
	if err != nil {
		return nil, err
	}
	builtin, _ := os.ReadFile(filepath.Join(k.modDir(), "modules.builtin"))
	deps := map[string][]string{}
	file := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(dep))
	for sc.Scan() {
		ko, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n := modName(ko)
		file[n] = ko
		deps[n] = strings.Fields(rest)
	}
	var out []string
	seen := map[string]bool{}
	add := func(ko string) {
		if !seen[ko] {
			seen[ko] = true
			out = append(out, ko)
		}
	}
	for _, n := range names {
		ko, ok := file[n]
		if !ok {
			if bytes.Contains(builtin, []byte("/"+n+".ko\n")) {
				continue
			}
			return nil, fmt.Errorf("module %s is neither in modules.dep nor built into %s", n, k.version)
		}
		d := deps[n]
		for i := len(d) - 1; i >= 0; i-- {
			add(d[i])
		}
		add(ko)
	}
	return out, nil
}

// modName is the kernel's name for a module file: base name, no .ko (or
// compressed suffix), dashes as underscores.
func modName(ko string) string {
	b := path.Base(ko)
	b = b[:strings.Index(b, ".ko")]
	return strings.ReplaceAll(b, "-", "_")
}

// buildGuest compiles test/vmlab/guest as a static linux/amd64 binary: the
// initramfs has no libc.
func buildGuest(t *testing.T, root, out string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", out, "./test/vmlab/guest")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the guest: %v\n%s", err, b)
	}
}

// cpioEntry is one file, directory or device node of the initramfs.
type cpioEntry struct {
	name         string // without the leading slash
	mode         uint32 // type and permission bits
	data         []byte
	rmajor, rmin uint32
}

// writeCpio writes entries as a newc archive, the format the kernel
// unpacks as an initramfs: written here rather than by the cpio tool, so
// the layout (device node, modes) needs no fakeroot and no file tree.
func writeCpio(w io.Writer, entries []cpioEntry) error {
	pad := func(n int) []byte { return make([]byte, (4-n%4)%4) }
	bw := bufio.NewWriter(w)
	write := func(ino int, e cpioEntry) {
		nlink := 1
		if e.mode&0o170000 == 0o040000 {
			nlink = 2
		}
		hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, e.rmajor, e.rmin, len(e.name)+1, 0)
		_, _ = bw.WriteString(hdr)
		_, _ = bw.WriteString(e.name + "\x00")
		_, _ = bw.Write(pad(len(hdr) + len(e.name) + 1))
		_, _ = bw.Write(e.data)
		_, _ = bw.Write(pad(len(e.data)))
	}
	for i, e := range entries {
		write(i+1, e)
	}
	write(0, cpioEntry{name: "TRAILER!!!"})
	return bw.Flush()
}

// initramfsEntries lays out the guest's root: /init, /dev/console (the
// kernel opens it for init's stdout before anything is mounted), /dev/null,
// mount
// points, the Config and the modules at their /lib/modules paths, parent
// directories before their contents.
func initramfsEntries(k kernel, guest []byte, config []byte, kos []string) ([]cpioEntry, error) {
	const dir, file, exe = 0o040755, 0o100644, 0o100755
	var entries []cpioEntry
	made := map[string]bool{}
	var mkdir func(d string)
	mkdir = func(d string) {
		if d == "." || d == "" || made[d] {
			return
		}
		mkdir(path.Dir(d))
		made[d] = true
		entries = append(entries, cpioEntry{name: d, mode: dir})
	}
	for _, d := range []string{"dev", "proc", "sys", "etc"} {
		mkdir(d)
	}
	entries = append(entries,
		cpioEntry{name: "dev/console", mode: 0o020600, rmajor: 5, rmin: 1},
		// /dev/null: os/exec gives a child it as stdin (the restart phase
		// re-executes the guest).
		cpioEntry{name: "dev/null", mode: 0o020666, rmajor: 1, rmin: 3},
		cpioEntry{name: "init", mode: exe, data: guest},
		cpioEntry{name: strings.TrimPrefix(vmlab.ConfigPath, "/"), mode: file, data: config},
	)
	for _, ko := range kos {
		b, err := os.ReadFile(filepath.Join(k.modDir(), ko))
		if err != nil {
			return nil, err
		}
		name := path.Join("lib/modules", k.version, ko)
		mkdir(path.Dir(name))
		entries = append(entries, cpioEntry{name: name, mode: file, data: b})
	}
	return entries, nil
}
