package vmlab_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// These check the lab's own plumbing without root or qemu, so a broken
// initramfs or module order shows up as such and not as a guest that
// never answers.

func TestModuleFiles_DependenciesFirstEachOnce(t *testing.T) {
	t.Parallel()
	k := kernel{root: t.TempDir(), version: "6.1.0-test"}
	if err := os.MkdirAll(k.modDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	// modules.dep lists every dependency, the deepest last (as depmod
	// writes it).
	dep := "kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko\n" +
		"kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\n" +
		"kernel/net/core/failover.ko:\n" +
		"kernel/net/sched/sch-netem.ko:\n"
	if err := os.WriteFile(filepath.Join(k.modDir(), "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(k.modDir(), "modules.builtin"), []byte("kernel/net/sched/sch_htb.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := moduleFiles(k, []string{"virtio_net", "failover", "sch_htb", "sch_netem"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kernel/net/core/failover.ko", "kernel/drivers/net/net_failover.ko", "kernel/drivers/net/virtio_net.ko", "kernel/net/sched/sch-netem.ko"}
	if !slices.Equal(got, want) {
		t.Errorf("moduleFiles = %q, want %q", got, want)
	}
	if _, err := moduleFiles(k, []string{"sch_prio"}); err == nil {
		t.Error("moduleFiles of a module the kernel lacks = nil error, want one naming it")
	}
}

func TestWriteCpio_NewcLayout(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	in := []cpioEntry{
		{name: "dev", mode: 0o040755},
		{name: "dev/console", mode: 0o020600, rmajor: 5, rmin: 1},
		{name: "init", mode: 0o100755, data: []byte("hello")},
	}
	if err := writeCpio(&buf, in); err != nil {
		t.Fatal(err)
	}
	// Walk the archive as the kernel does: 110-byte header, name, pad to
	// 4, data, pad to 4.
	b := buf.Bytes()
	field := func(h []byte, i int) int {
		v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			t.Fatalf("header field %d: %v", i, err)
		}
		return int(v)
	}
	align := func(n int) int { return (n + 3) &^ 3 }
	var names []string
	for off := 0; ; {
		h := b[off : off+110]
		if string(h[:6]) != "070701" {
			t.Fatalf("offset %d: magic %q", off, h[:6])
		}
		size, namesize := field(h, 6), field(h, 11)
		name := string(b[off+110 : off+110+namesize-1])
		if name == "TRAILER!!!" {
			break
		}
		names = append(names, name)
		data := b[align(off+110+namesize) : align(off+110+namesize)+size]
		if name == "init" && string(data) != "hello" {
			t.Errorf("init data = %q", data)
		}
		if name == "dev/console" && (field(h, 1) != 0o020600 || field(h, 9) != 5 || field(h, 10) != 1) {
			t.Errorf("dev/console: mode %o rdev %d:%d, want 20600 5:1", field(h, 1), field(h, 9), field(h, 10))
		}
		off = align(align(off+110+namesize) + size)
	}
	if want := []string{"dev", "dev/console", "init"}; !slices.Equal(names, want) {
		t.Errorf("entries = %q, want %q", names, want)
	}
	if len(b)%4 != 0 {
		t.Errorf("archive length %d is not 4-aligned", len(b))
	}
}

func TestDebianMirrors_BothSourceFormats(t *testing.T) {
	t.Parallel()
	etc := t.TempDir()
	if err := os.MkdirAll(filepath.Join(etc, "sources.list.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Addresses from the documentation ranges: the parser needs URIs,
	// never a real host.
	files := map[string]string{
		"sources.list": "# deb http://192.0.2.9/debian bookworm main\n" +
			"deb [arch=amd64 signed-by=/k.gpg] http://192.0.2.1/tools stable-updates main\n",
		"sources.list.d/other.sources": "Types: deb\nURIs: http://192.0.2.2/node\nSuites: nodistro\nComponents: main\n",
		"sources.list.d/debian.sources": "Types: deb-src\nURIs: http://192.0.2.3/debian\nSuites: bookworm\n\n" +
			"Types: deb\n# a comment\nURIs: http://192.0.2.4/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n" +
			"Types: deb\nURIs: http://192.0.2.4/debian-security\nSuites: bookworm-security\nComponents: main\n",
		"sources.list.d/off.list.disabled": "deb http://192.0.2.5/debian bookworm main\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mirror, security, err := debianMirrors(etc)
	if err != nil {
		t.Fatal(err)
	}
	if mirror != "http://192.0.2.4/debian" || security != "http://192.0.2.4/debian-security" {
		t.Errorf("debianMirrors = %q, %q; want the deb822 archive and its security archive", mirror, security)
	}

	// No Debian archive at all: a clear error, not an empty mirror.
	if err := os.WriteFile(filepath.Join(etc, "sources.list.d/debian.sources"), []byte("Types: deb\nURIs: http://192.0.2.4/debian\nSuites: bookworm\nEnabled: no\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if m, _, err := debianMirrors(etc); err == nil {
		t.Errorf("debianMirrors without an enabled Debian source = %q, nil; want an error", m)
	}
}

func TestParseSpan_SystemctlShowRendering(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"2s": 2 * time.Second, "1min 30s": 90 * time.Second, "100ms": 100 * time.Millisecond,
		"1h 2min": time.Hour + 2*time.Minute, "infinity": 0, "0": 0,
	} {
		got, err := parseSpan(in)
		if err != nil || got != want {
			t.Errorf("parseSpan(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseSpan("soon"); err == nil {
		t.Error(`parseSpan("soon") = nil error, want one`)
	}
}

func TestSetVarAndStateDirOf(t *testing.T) {
	t.Parallel()
	in := "# comment\nTURBULENCE_CONTROLLER=127.0.0.1:7420\nTURBULENCE_AGENT_ARGS=\"--policy /etc/turbulence/agent.yaml --state-dir /var/lib/turbulence\"\n"
	got := setVar(in, "TURBULENCE_CONTROLLER", "198.18.0.1:7420")
	want := "# comment\nTURBULENCE_CONTROLLER=198.18.0.1:7420\nTURBULENCE_AGENT_ARGS=\"--policy /etc/turbulence/agent.yaml --state-dir /var/lib/turbulence\"\n"
	if got != want {
		t.Errorf("setVar = %q, want %q", got, want)
	}
	if got := setVar("# only comments\n", "K", "v"); got != "# only comments\nK=v\n" {
		t.Errorf("setVar without the key = %q", got)
	}
	if d := stateDirOf(got + want); d != "/var/lib/turbulence" {
		t.Errorf("stateDirOf = %q, want the --state-dir of the environment file", d)
	}
	if d := stateDirOf("{ argv[]=/usr/bin/turbulence-agent run --state-dir=/srv/t ; }"); d != "/srv/t" {
		t.Errorf("stateDirOf(--state-dir=) = %q", d)
	}
	if d := stateDirOf("{ argv[]=/usr/bin/turbulence-agent run ; }"); d != defaultStateDir {
		t.Errorf("stateDirOf without the flag = %q, want %q", d, defaultStateDir)
	}
}
