// Package testbuild builds the project's daemons for tests that run them as
// processes (test/chaos, the test/e2e benchmarks).
package testbuild

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BuildBinaries builds the main packages pkgs ("./agent/cmd/turbulence-agent",
// …, relative to the module root) into dir as `make build` does: static
// (CGO_ENABLED=0) and with -trimpath, so that tests run the binaries a host
// runs. It returns the path of each binary, in the order of pkgs.
func BuildBinaries(tb testing.TB, dir string, pkgs ...string) []string {
	tb.Helper()
	return BuildWithTags(tb, dir, "", pkgs...)
}

// BuildWithTags is BuildBinaries with the build tags tags
// (comma-separated; "" for none), e.g. turbulence_testhooks, which adds
// the test hooks a release build never has (agent/testhooks_on.go).
func BuildWithTags(tb testing.TB, dir, tags string, pkgs ...string) []string {
	tb.Helper()
	// go test puts its own GOROOT/bin first in PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		tb.Fatalf("build %s: %v", strings.Join(pkgs, " "), err)
	}
	gomod, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" {
		tb.Fatalf("build %s: find the module root: %v", strings.Join(pkgs, " "), err)
	}
	args := []string{"build", "-trimpath", "-o", dir + string(filepath.Separator)}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	args = append(args, pkgs...)
	cmd := exec.Command(goBin, args...)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	paths := make([]string, len(pkgs))
	for i, p := range pkgs {
		paths[i] = filepath.Join(dir, filepath.Base(p))
	}
	return paths
}
