package vmlab_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// packageSet is what the guest installs with dpkg -i.
type packageSet struct {
	// Agent installs /usr/bin/turbulence-agent and its unit; Controller
	// /usr/bin/turbulence-controller and its unit (the guest never runs
	// it: systemd-analyze verify checks its unit against its binary).
	Agent, Controller string
}

// packageVersion stamps the lab's packages, so that a log line tells them
// from a release.
const packageVersion = "0.0.0+vmlab"

// agentPackage builds the real packages with `make package`, into the
// test's own directories: test/packaging builds them too, at the same
// time under go test ./..., so neither may share the other's output,
// binary or tool directory.
func agentPackage(t *testing.T, root string) packageSet {
	t.Helper()
	dir := t.TempDir()
	dist := filepath.Join(dir, "dist")
	cmd := exec.Command("make", "--no-print-directory", "package",
		"VERSION="+packageVersion, "DIST="+dist,
		"PKG_BIN="+filepath.Join(dir, "bin"), "TOOLS="+filepath.Join(dir, "tools"))
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make package: %v\n%s", err, out)
	}
	set := packageSet{
		Agent:      filepath.Join(dist, "turbulence-agent_"+packageVersion+"_amd64.deb"),
		Controller: filepath.Join(dist, "turbulence-controller_"+packageVersion+"_amd64.deb"),
	}
	for _, f := range []string{set.Agent, set.Controller} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("make package did not write %s: %v", f, err)
		}
	}
	return set
}
