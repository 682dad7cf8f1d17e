package packaging

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/turbulence-sre/turbulence/test/internal/testbuild"
)

// systemctlLogEnv names the file where this test binary, run as
// "systemctl" (a link in a scratch PATH), appends the arguments it was
// given: the maintainer scripts' calls, recorded instead of made.
const systemctlLogEnv = "TURBULENCE_TEST_SYSTEMCTL_LOG"

func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "systemctl" {
		os.Exit(recordSystemctl(os.Args[1:]))
	}
	// goleak's Cleanup replaces its os.Exit, so it exits itself.
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		for _, d := range []string{packages.dir, binaries.dir} {
			if d != "" {
				_ = os.RemoveAll(d)
			}
		}
		os.Exit(code)
	}))
}

// binaries are the three programs, built once for the package's tests
// (as make build builds them) into a directory TestMain removes.
var binaries struct {
	once  sync.Once
	dir   string
	paths []string
}

// builtBinaries returns the paths of turbulence-agent,
// turbulence-controller and turbctl, building them on first use.
func builtBinaries(t *testing.T) (agent, controller, turbctl string) {
	t.Helper()
	binaries.once.Do(func() {
		dir, err := os.MkdirTemp("", "turbulence-packaging-bin-")
		if err != nil {
			t.Fatal(err)
		}
		binaries.dir = dir
		binaries.paths = testbuild.BuildBinaries(t, dir, "./agent/cmd/turbulence-agent", "./controller/cmd/turbulence-controller", "./controller/cmd/turbctl")
	})
	if len(binaries.paths) != 3 {
		t.Fatal("the binaries were not built (see the first test's failure)")
	}
	return binaries.paths[0], binaries.paths[1], binaries.paths[2]
}

func recordSystemctl(args []string) int {
	f, err := os.OpenFile(os.Getenv(systemctlLogEnv), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "systemctl (test):", err)
		return 1
	}
	defer func() { _ = f.Close() }()
	if _, err := fmt.Fprintln(f, strings.Join(args, " ")); err != nil {
		return 1
	}
	return 0
}
