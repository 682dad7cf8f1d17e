package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// testVersion is the version the tests build packages with.
const testVersion = "9.8.7+test"

// packages is what `make package` built, once for the package's tests,
// into a scratch dist directory that TestMain removes.
var packages struct {
	once sync.Once
	dir  string
	err  error
	out  []byte
}

func builtPackages(t *testing.T) string {
	t.Helper()
	packages.once.Do(func() {
		packages.dir, packages.err = os.MkdirTemp("", "turbulence-dist-")
		if packages.err != nil {
			return
		}
		// Binaries and tools in a directory of its own: the VM lab
		// runs make package too, at the same time under go test ./....
		cmd := exec.Command("make", "--no-print-directory", "package", "VERSION="+testVersion, "DIST="+packages.dir,
			"PKG_BIN="+filepath.Join(packages.dir, "bin"), "TOOLS="+filepath.Join(packages.dir, "tools"))
		cmd.Dir = filepath.Join("..", "..")
		packages.out, packages.err = cmd.CombinedOutput()
	})
	if packages.err != nil {
		t.Fatalf("make package: %v\n%s", packages.err, packages.out)
	}
	return packages.dir
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// debContents maps each path in deb to its mode, as dpkg-deb -c lists
// them.
func debContents(t *testing.T, deb string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for l := range strings.Lines(run(t, "dpkg-deb", "-c", deb)) {
		f := strings.Fields(l)
		if len(f) < 6 {
			continue
		}
		out[strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")] = f[0]
	}
	return out
}

// The packages hold what the contract says (packaging/README.md): paths,
// modes, conffiles, maintainer scripts, and binaries that say the
// package's version.
func TestPackage_DebContents(t *testing.T) {
	dist := builtPackages(t)
	for _, tc := range []struct {
		pkg       string
		files     map[string]string // path → mode
		conffiles []string
		bins      []string
	}{{
		pkg: "turbulence-agent",
		files: map[string]string{
			"/usr/bin/turbulence-agent":                    "-rwxr-xr-x",
			"/lib/systemd/system/turbulence-agent.service": "-rw-r--r--",
			"/etc/turbulence/agent.yaml":                   "-rw-r--r--",
			"/etc/default/turbulence-agent":                "-rw-r--r--",
			"/etc/modules-load.d/turbulence.conf":          "-rw-r--r--",
			"/etc/turbulence/tls":                          "drwxr-xr-x",
			"/var/lib/turbulence":                          "drwx------",
		},
		conffiles: []string{"/etc/default/turbulence-agent", "/etc/modules-load.d/turbulence.conf", "/etc/turbulence/agent.yaml"},
		bins:      []string{"turbulence-agent"},
	}, {
		pkg: "turbulence-controller",
		files: map[string]string{
			"/usr/bin/turbulence-controller":                    "-rwxr-xr-x",
			"/usr/bin/turbctl":                                  "-rwxr-xr-x",
			"/lib/systemd/system/turbulence-controller.service": "-rw-r--r--",
			"/etc/default/turbulence-controller":                "-rw-r--r--",
		},
		conffiles: []string{"/etc/default/turbulence-controller"},
		bins:      []string{"turbulence-controller", "turbctl"},
	}} {
		t.Run(tc.pkg, func(t *testing.T) {
			deb := filepath.Join(dist, tc.pkg+"_"+testVersion+"_amd64.deb")
			contents := debContents(t, deb)
			for path, mode := range tc.files {
				if got, ok := contents[path]; !ok {
					t.Errorf("%s has no %s", filepath.Base(deb), path)
				} else if got != mode {
					t.Errorf("%s: %s has mode %s, want %s", filepath.Base(deb), path, got, mode)
				}
			}
			ctl := t.TempDir()
			run(t, "dpkg-deb", "-e", deb, ctl)
			conf, err := os.ReadFile(filepath.Join(ctl, "conffiles"))
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Fields(string(conf))
			slices.Sort(got)
			if !slices.Equal(got, tc.conffiles) {
				t.Errorf("conffiles = %q, want %q", got, tc.conffiles)
			}
			for _, s := range []string{"postinst", "prerm", "postrm"} {
				if fi, err := os.Stat(filepath.Join(ctl, s)); err != nil || fi.Mode()&0o111 == 0 {
					t.Errorf("maintainer script %s: %v, want an executable", s, err)
				}
			}
			if v := strings.TrimSpace(run(t, "dpkg-deb", "-f", deb, "Version")); v != testVersion+"-1" {
				t.Errorf("Version = %q, want %q", v, testVersion+"-1")
			}
			root := t.TempDir()
			run(t, "dpkg-deb", "-x", deb, root)
			for _, b := range tc.bins {
				if out := run(t, filepath.Join(root, "usr", "bin", b), "--version"); !strings.HasPrefix(out, b+" "+testVersion+" ") {
					t.Errorf("%s --version = %q, want it to say %s", b, out, testVersion)
				}
			}
			unit := tc.pkg + ".service"
			shipped, _ := os.ReadFile(filepath.Join(root, "lib", "systemd", "system", unit))
			want, _ := os.ReadFile(filepath.Join("..", "..", "packaging", "systemd", unit))
			if len(want) == 0 || string(shipped) != string(want) {
				t.Errorf("the package's %s differs from packaging/systemd/%s", unit, unit)
			}
		})
	}
}

// postinst reloads systemd always, and enables and starts the agent only
// when its three certificate files exist; otherwise it says how to
// provision them. systemctl is recorded, not run (TestMain).
func TestPackage_AgentPostinstStartsOnlyWithCertificates(t *testing.T) {
	dist := builtPackages(t)
	ctl := t.TempDir()
	run(t, "dpkg-deb", "-e", filepath.Join(dist, "turbulence-agent_"+testVersion+"_amd64.deb"), ctl)
	for _, tc := range []struct {
		name   string
		certs  []string
		start  bool
		saying string
	}{
		{"no certificates", nil, false, "no certificates yet"},
		{"key missing", []string{"ca.crt", "agent.crt"}, false, "no certificates yet"},
		{"all three", []string{"ca.crt", "agent.crt", "agent.key"}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, d := range []string{"run/systemd/system", "etc/turbulence/tls"} {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range tc.certs {
				if err := os.WriteFile(filepath.Join(root, "etc/turbulence/tls", c), []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			calls, out := runScript(t, filepath.Join(ctl, "postinst"), root, "configure")
			if !slices.Contains(calls, "daemon-reload") {
				t.Errorf("postinst calls %q, want daemon-reload", calls)
			}
			started := slices.Contains(calls, "restart turbulence-agent.service") && slices.Contains(calls, "enable turbulence-agent.service")
			if started != tc.start {
				t.Errorf("postinst with %q calls %q; started = %v, want %v", tc.certs, calls, started, tc.start)
			}
			if !strings.Contains(out, tc.saying) {
				t.Errorf("postinst output %q does not say %q", out, tc.saying)
			}
		})
	}
}

// runScript runs a maintainer script against the scratch tree root with
// a recorded systemctl, and returns its systemctl calls and output.
func runScript(t *testing.T, script, root string, args ...string) (calls []string, out string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(self, filepath.Join(bin, "systemctl")); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "systemctl.log")
	cmd := exec.Command(script, args...)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "TURBULENCE_PKG_ROOT="+root, systemctlLogEnv+"="+log)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", filepath.Base(script), args, err, b)
	}
	data, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for l := range strings.Lines(string(data)) {
		calls = append(calls, strings.TrimSpace(l))
	}
	return calls, string(b)
}

// The .rpm files hold the same, under RPM's own unit directory.
func TestPackage_RPMContents(t *testing.T) {
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Fatalf("rpm: %v (make packaging-tools installs it)", err)
	}
	dist := builtPackages(t)
	for pkg, want := range map[string][]string{
		"turbulence-agent":      {"/usr/bin/turbulence-agent", "/usr/lib/systemd/system/turbulence-agent.service", "/etc/turbulence/agent.yaml", "/etc/default/turbulence-agent", "/etc/modules-load.d/turbulence.conf", "/var/lib/turbulence"},
		"turbulence-controller": {"/usr/bin/turbulence-controller", "/usr/bin/turbctl", "/usr/lib/systemd/system/turbulence-controller.service", "/etc/default/turbulence-controller"},
	} {
		rpm := filepath.Join(dist, pkg+"-"+testVersion+"-1.x86_64.rpm")
		files := strings.Fields(run(t, "rpm", "-qlp", rpm))
		for _, f := range want {
			if !slices.Contains(files, f) {
				t.Errorf("%s lacks %s: %q", filepath.Base(rpm), f, files)
			}
		}
		conf := strings.Fields(run(t, "rpm", "-qcp", rpm))
		if !slices.Contains(conf, "/etc/default/"+pkg) {
			t.Errorf("%s config files %q lack /etc/default/%s", filepath.Base(rpm), conf, pkg)
		}
		if v := run(t, "rpm", "-qp", "--queryformat", "%{VERSION}", rpm); v != testVersion {
			t.Errorf("%s VERSION = %q, want %q", filepath.Base(rpm), v, testVersion)
		}
		if s := run(t, "rpm", "-qp", "--scripts", rpm); !strings.Contains(s, "postinstall") || !strings.Contains(s, "preuninstall") {
			t.Errorf("%s scripts lack postinstall or preuninstall:\n%s", filepath.Base(rpm), s)
		}
	}
}

// The controller's postinst starts the node only with its certificates
// and its cluster flags in /etc/default/turbulence-controller.
func TestPackage_ControllerPostinstStartsOnlyConfigured(t *testing.T) {
	dist := builtPackages(t)
	ctl := t.TempDir()
	run(t, "dpkg-deb", "-e", filepath.Join(dist, "turbulence-controller_"+testVersion+"_amd64.deb"), ctl)
	for _, tc := range []struct {
		name  string
		args  string
		start bool
	}{
		{"certificates, no flags", "", false},
		{"certificates and flags", `"--node-id c1 --bootstrap"`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, d := range []string{"run/systemd/system", "etc/turbulence/tls", "etc/default"} {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range []string{"ca.crt", "controller.crt", "controller.key"} {
				if err := os.WriteFile(filepath.Join(root, "etc/turbulence/tls", c), []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(root, "etc/default/turbulence-controller"), []byte("TURBULENCE_CONTROLLER_ARGS="+tc.args+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			calls, out := runScript(t, filepath.Join(ctl, "postinst"), root, "configure")
			started := slices.Contains(calls, "restart turbulence-controller.service")
			if started != tc.start || !slices.Contains(calls, "daemon-reload") {
				t.Errorf("postinst calls %q (output %q); started = %v, want %v", calls, out, started, tc.start)
			}
		})
	}
}
