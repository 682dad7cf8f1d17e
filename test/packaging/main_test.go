package packaging

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
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
		if packages.dir != "" {
			_ = os.RemoveAll(packages.dir)
		}
		os.Exit(code)
	}))
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
