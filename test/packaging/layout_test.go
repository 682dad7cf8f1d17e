package packaging

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/turbulence-sre/turbulence/controller/cli"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// unitTLSPaths returns the certificate files a unit names: the agent's
// --ca/--cert/--key arguments, the controller's LoadCredential sources.
func unitTLSPaths(t *testing.T, unit string) []string {
	t.Helper()
	path := filepath.Join("..", "..", "packaging", "systemd", unit)
	var out []string
	argv := unitCommands(t, path, "ExecStart")["ExecStart"]
	for i, w := range argv {
		if (w == "--ca" || w == "--cert" || w == "--key") && i+1 < len(argv) && strings.HasPrefix(argv[i+1], "/etc/") {
			out = append(out, argv[i+1])
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }() // read-only
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "LoadCredential="); ok {
			_, src, _ := strings.Cut(v, ":")
			out = append(out, src)
		}
	}
	return out
}

// TestLayout_TurbctlWritesWhatTheUnitsRead: `turbctl tls cert create`
// for an agent and for a controller, with the default --out-dir, writes
// exactly the files the units name (issue 17: it wrote agent-web-1.crt
// while the unit read agent.crt). The default directory is replaced by a
// temporary one here; the file names and the directory the units use
// are checked against tlsutil.DefaultDir.
func TestLayout_TurbctlWritesWhatTheUnitsRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	turbctl := func(args ...string) {
		t.Helper()
		if code := cli.Main(args, io.Discard, io.Discard); code != cli.ExitOK {
			t.Fatalf("turbctl %s: exit %d", strings.Join(args, " "), code)
		}
	}
	turbctl("tls", "ca", "create", "--dir", caDir)
	for _, c := range []struct {
		unit string
		args []string
	}{
		{"turbulence-agent.service", []string{"--role", "agent", "--name", "web-1"}},
		{"turbulence-controller.service", []string{"--role", "controller", "--name", "c1", "--ip", "198.18.0.1"}},
	} {
		host := filepath.Join(dir, c.unit)
		turbctl(append([]string{"tls", "cert", "create", "--ca-dir", caDir, "--out-dir", host}, c.args...)...)
		paths := unitTLSPaths(t, c.unit)
		if len(paths) != 3 {
			t.Fatalf("%s names %d certificate files (%v), want 3", c.unit, len(paths), paths)
		}
		for _, p := range paths {
			if filepath.Dir(p) != tlsutil.DefaultDir {
				t.Errorf("%s reads %s, outside %s, the directory turbctl writes by default", c.unit, p, tlsutil.DefaultDir)
			}
			if _, err := os.Stat(filepath.Join(host, filepath.Base(p))); err != nil {
				t.Errorf("%s reads %s, which turbctl tls cert create did not write: %v", c.unit, p, err)
			}
		}
	}
}
