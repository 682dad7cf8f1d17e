package vmlab_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/turbulence-sre/turbulence/test/internal/testbuild"
)

// packageSet is what the guest installs with dpkg -i.
type packageSet struct {
	// Agent installs /usr/bin/turbulence-agent and its unit; Controller
	// /usr/bin/turbulence-controller and its unit (the guest never runs
	// it: systemd-analyze verify checks its unit against its binary).
	Agent, Controller string
	// StandIn says these are the lab's own packages, not `make package`'s.
	StandIn bool
}

// agentPackage is the one place the systemd boot gets its packages. Until
// `make package` (issue 17) is on main, it builds stand-ins with
// dpkg-deb from the repository's units and freshly built binaries, laid
// out as that target's contract says: /usr/bin/turbulence-agent,
// /lib/systemd/system/turbulence-agent.service, /etc/turbulence/agent.yaml
// and /etc/default/turbulence-agent (conffiles), certificates expected in
// /etc/turbulence/tls. The stand-ins have no maintainer scripts: the test
// reloads systemd and starts the agent itself, as an operator does after
// provisioning certificates, which the real postinst leaves to them too.
//
// To switch to the real packages: run `make package` in the module root
// and return dist/turbulence-agent_*_amd64.deb and
// dist/turbulence-controller_*_amd64.deb with StandIn false.
func agentPackage(t *testing.T, root string) packageSet {
	t.Helper()
	dir := t.TempDir()
	bins := testbuild.BuildBinaries(t, filepath.Join(dir, "bin"), "./agent/cmd/turbulence-agent", "./controller/cmd/turbulence-controller")
	defaults := "# /etc/default/turbulence-agent: read by turbulence-agent.service.\n" +
		"# TURBULENCE_CONTROLLER=host:port of a controller\n" +
		"# TURBULENCE_AGENT_ARGS=extra flags, e.g. --policy /etc/turbulence/agent.yaml\n"
	agent := buildDeb(t, dir, "turbulence-agent", "Turbulence fault-injection agent (VM lab stand-in)", []debFile{
		{"usr/bin/turbulence-agent", bins[0], "", 0o755},
		{"lib/systemd/system/turbulence-agent.service", filepath.Join(root, "packaging/systemd/turbulence-agent.service"), "", 0o644},
		{"etc/turbulence/agent.yaml", filepath.Join(root, "packaging/agent.yaml"), "", 0o644},
		{"etc/default/turbulence-agent", "", defaults, 0o644},
	}, []string{"/etc/turbulence/agent.yaml", "/etc/default/turbulence-agent"})
	controller := buildDeb(t, dir, "turbulence-controller", "Turbulence controller (VM lab stand-in)", []debFile{
		{"usr/bin/turbulence-controller", bins[1], "", 0o755},
		{"lib/systemd/system/turbulence-controller.service", filepath.Join(root, "packaging/systemd/turbulence-controller.service"), "", 0o644},
	}, nil)
	return packageSet{Agent: agent, Controller: controller, StandIn: true}
}

// debFile is one file of a stand-in package: copied from src, or with
// the given content when src is empty.
type debFile struct {
	path, src, content string
	mode               os.FileMode
}

// buildDeb lays files out in a staging directory and builds name's .deb
// with dpkg-deb, owned by root.
func buildDeb(t *testing.T, dir, name, description string, files []debFile, conffiles []string) string {
	t.Helper()
	stage := filepath.Join(dir, name)
	control := "Package: " + name + "\nVersion: 0.0.0~vmlab\nArchitecture: amd64\n" +
		"Maintainer: Turbulence VM lab <root@localhost>\nDescription: " + description + "\n"
	files = append(files, debFile{"DEBIAN/control", "", control, 0o644})
	if len(conffiles) > 0 {
		var c string
		for _, f := range conffiles {
			c += f + "\n"
		}
		files = append(files, debFile{"DEBIAN/conffiles", "", c, 0o644})
	}
	for _, f := range files {
		data := []byte(f.content)
		if f.src != "" {
			var err error
			if data, err = os.ReadFile(f.src); err != nil {
				t.Fatal(err)
			}
		}
		p := filepath.Join(stage, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, name+".deb")
	// -Zgzip -z1: the guest unpacks it under tcg, where xz costs seconds.
	if _, err := run("", "dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", stage, out); err != nil {
		t.Fatal(err)
	}
	return out
}
