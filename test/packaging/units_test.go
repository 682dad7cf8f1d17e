// Package packaging checks the files under packaging/ against the real
// binaries: a systemd unit whose ExecStart the binary does not accept
// starts nothing and loops on Restart=on-failure, and systemd-analyze
// verify does not notice.
package packaging

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unitCommands reads the Exec lines named keys from a unit file, joining
// continuation lines and expanding what systemd would: Environment=
// defaults (${V} and $V; an empty unquoted $V is no word at all), %S
// (/var/lib) and %d (the credentials directory).
func unitCommands(t *testing.T, path string, keys ...string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }() // read-only
	env := map[string]string{}
	out := map[string][]string{}
	var line string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") && line == "" {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			line += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		line += l
		k, v, ok := strings.Cut(line, "=")
		line = ""
		if !ok {
			continue
		}
		if k == "Environment" {
			ek, ev, _ := strings.Cut(v, "=")
			env[ek] = ev
			continue
		}
		for _, want := range keys {
			if k == want {
				var words []string
				for _, w := range strings.Fields(v) {
					w = strings.NewReplacer("%S", "/var/lib", "%d", "/run/credentials/unit").Replace(w)
					w = os.Expand(w, func(n string) string { return env[n] })
					if w != "" {
						words = append(words, w)
					}
				}
				out[k] = words
			}
		}
	}
	return out
}

func TestUnits_ExecLinesAreAccepted(t *testing.T) {
	agentBin, controllerBin, _ := builtBinaries(t)
	bins := []string{agentBin, controllerBin}
	byName := map[string]string{}
	for _, b := range bins {
		byName["/usr/bin/"+filepath.Base(b)] = b
	}
	for _, unit := range []string{"turbulence-agent.service", "turbulence-controller.service"} {
		cmds := unitCommands(t, filepath.Join("..", "..", "packaging", "systemd", unit), "ExecStart", "ExecStopPost")
		if len(cmds["ExecStart"]) == 0 {
			t.Fatalf("%s: no ExecStart", unit)
		}
		for key, argv := range cmds {
			bin, ok := byName[argv[0]]
			if !ok {
				t.Errorf("%s %s runs %q, not a binary of this repository", unit, key, argv[0])
				continue
			}
			args := append(append([]string{}, argv[1:]...), "--help")
			out, err := exec.Command(bin, args...).CombinedOutput()
			if err != nil {
				t.Errorf("%s %s: %s %q: %v\n%s", unit, key, filepath.Base(bin), args, err, out)
			}
		}
	}
}

// The agent unit names the certificate files the agent uses by default,
// so that a host installed by the book needs no TLS flags.
func TestUnits_AgentCertPathsAreTheDefaults(t *testing.T) {
	agentBin, _, _ := builtBinaries(t)
	help, _ := exec.Command(agentBin, "help").CombinedOutput()
	argv := unitCommands(t, filepath.Join("..", "..", "packaging", "systemd", "turbulence-agent.service"), "ExecStart")["ExecStart"]
	for i, w := range argv {
		if (w == "--ca" || w == "--cert" || w == "--key") && i+1 < len(argv) {
			if !strings.Contains(string(help), `(default "`+argv[i+1]+`")`) {
				t.Errorf("unit has %s %s, but the agent's default differs:\n%s", w, argv[i+1], help)
			}
		}
	}
}

// Every binary answers --version with its name and build version, and
// the agent's help lists its subcommands.
func TestBinaries_VersionAndHelp(t *testing.T) {
	agentBin, controllerBin, turbctlBin := builtBinaries(t)
	bins := []string{agentBin, controllerBin, turbctlBin}
	for _, b := range bins {
		out, err := exec.Command(b, "--version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), filepath.Base(b)+" ") || strings.Contains(string(out), " dev ") {
			t.Errorf("%s --version = %q, %v; want its name and build version", filepath.Base(b), out, err)
		}
	}
	for _, args := range [][]string{{"help"}, {"--help"}} {
		out, err := exec.Command(bins[0], args...).CombinedOutput()
		if err != nil {
			t.Errorf("turbulence-agent %q: %v\n%s", args, err, out)
		}
		for _, sub := range []string{"status", "halt", "resume", "cleanup", "--version"} {
			if !strings.Contains(string(out), "turbulence-agent "+sub) {
				t.Errorf("turbulence-agent %q does not list %q:\n%s", args, sub, out)
			}
		}
	}
}

// Both units pass systemd-analyze verify: no unknown keys, no key in the
// wrong section, commands that exist. The units name /usr/bin, which on
// this machine is not ours to write to, so the check runs on copies that
// name the freshly built binaries instead (the paths themselves are
// checked by TestUnits_ExecLinesAreAccepted).
func TestUnits_SystemdAnalyzeVerifyIsClean(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze: %v (make packaging-tools installs it)", err)
	}
	dir := t.TempDir()
	agentBin, controllerBin, _ := builtBinaries(t)
	rewrite := strings.NewReplacer("/usr/bin/turbulence-agent", agentBin, "/usr/bin/turbulence-controller", controllerBin)
	for _, unit := range []string{"turbulence-agent.service", "turbulence-controller.service"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "packaging", "systemd", unit))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, unit)
		if err := os.WriteFile(path, []byte(rewrite.Replace(string(data))), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", path).CombinedOutput()
		if err != nil || len(out) != 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
		}
	}
}

// Both units are Type=notify, only the daemon itself may notify, and the
// agent's watchdog is armed (its enforcement loop feeds it).
func TestUnits_NotifyAndWatchdog(t *testing.T) {
	want := map[string][]string{
		"turbulence-agent.service":      {"Type=notify", "NotifyAccess=main", "WatchdogSec=30s", "Restart=on-failure"},
		"turbulence-controller.service": {"Type=notify", "NotifyAccess=main", "Restart=on-failure"},
	}
	for unit, lines := range want {
		data, err := os.ReadFile(filepath.Join("..", "..", "packaging", "systemd", unit))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			if !strings.Contains("\n"+string(data), "\n"+l+"\n") {
				t.Errorf("%s has no line %q", unit, l)
			}
		}
	}
}

// The units' hardening does not regress: systemd-analyze security's
// exposure (×10) stays at or under what packaging/README.md records,
// agent 3.8 and controller 1.4.
func TestUnits_SecurityExposure(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze: %v (make packaging-tools installs it)", err)
	}
	for unit, threshold := range map[string]string{"turbulence-agent.service": "38", "turbulence-controller.service": "14"} {
		path := filepath.Join("..", "..", "packaging", "systemd", unit)
		out, err := exec.Command(analyze, "security", "--offline=true", "--threshold="+threshold, path).CombinedOutput()
		if err != nil {
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			t.Errorf("%s: exposure above %s.%s: %v\n%s", unit, threshold[:1], threshold[1:], err, lines[len(lines)-1])
		}
	}
}

// The agent's default state directory is the one its unit has systemd
// create (StateDirectory=), and the one the package ships.
func TestUnits_AgentStateDirIsTheDefault(t *testing.T) {
	agentBin, _, _ := builtBinaries(t)
	help, _ := exec.Command(agentBin, "help").CombinedOutput()
	data, err := os.ReadFile(filepath.Join("..", "..", "packaging", "systemd", "turbulence-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	var dir string
	for l := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "StateDirectory="); ok {
			dir = "/var/lib/" + v
		}
	}
	if dir != "/var/lib/turbulence" {
		t.Errorf("agent unit's StateDirectory is %q, want /var/lib/turbulence (the package's)", dir)
	}
	if !strings.Contains(string(help), `(default "`+dir+`")`) {
		t.Errorf("agent's --state-dir default is not the unit's %s:\n%s", dir, help)
	}
}
