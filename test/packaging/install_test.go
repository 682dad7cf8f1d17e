package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// make install puts the binaries under PREFIX, units that run them from
// there, and the example configuration, inside DESTDIR; a second install
// keeps an administrator's edits.
func TestInstall_DestdirAndPrefix(t *testing.T) {
	dest := t.TempDir()
	install := func() {
		cmd := exec.Command("make", "--no-print-directory", "install", "DESTDIR="+dest, "PREFIX=/opt/turbulence")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make install: %v\n%s", err, out)
		}
	}
	install()
	for _, f := range []string{
		"opt/turbulence/bin/turbulence-agent", "opt/turbulence/bin/turbulence-controller", "opt/turbulence/bin/turbctl",
		"etc/systemd/system/turbulence-agent.service", "etc/systemd/system/turbulence-controller.service",
		"etc/turbulence/agent.yaml", "etc/default/turbulence-agent", "etc/default/turbulence-controller",
		"etc/modules-load.d/turbulence.conf",
	} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("make install: %v", err)
		}
	}
	for _, unit := range []string{"turbulence-agent", "turbulence-controller"} {
		cmds := unitCommands(t, filepath.Join(dest, "etc/systemd/system", unit+".service"), "ExecStart")
		if argv := cmds["ExecStart"]; len(argv) == 0 || argv[0] != "/opt/turbulence/bin/"+unit {
			t.Errorf("installed %s.service runs %q, want /opt/turbulence/bin/%s", unit, argv, unit)
		}
	}
	policy := filepath.Join(dest, "etc/turbulence/agent.yaml")
	const edited = "max_duration: 10m\n"
	if err := os.WriteFile(policy, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	install()
	if got, _ := os.ReadFile(policy); string(got) != edited {
		t.Errorf("a second make install replaced the edited agent.yaml with %q", strings.SplitN(string(got), "\n", 2)[0])
	}
}
