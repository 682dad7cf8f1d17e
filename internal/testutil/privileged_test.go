package testutil

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// childEnv names the case TestSkipRuleChild plays when TestSkipRule runs
// this test binary again.
const childEnv = "TURBULENCE_TESTUTIL_CHILD"

// TestSkipRuleChild is one privileged test with a given way of skipping,
// run by TestSkipRule in a child process; run directly it does nothing.
func TestSkipRuleChild(t *testing.T) {
	switch os.Getenv(childEnv) {
	case "":
		return
	case "listed-feature":
		SkipKernelFeature(t, "sch_netem", "no netem qdisc")
	case "unlisted-feature":
		SkipKernelFeature(t, "memory cgroup", "no memory controller")
	case "privileged-plain-skip":
		RequirePrivileged(t)
		t.Skip("some reason that is not a kernel feature")
	case "privileged-listed-feature":
		RequirePrivileged(t)
		SkipKernelFeature(t, "sch_netem", "no netem qdisc")
	case "privileged-passes":
		RequirePrivileged(t)
	}
}

// TestSkipRule runs each case in a child test process, with and without
// TURBULENCE_REQUIRE_PRIVILEGED=1, and checks the verdict go test prints.
func TestSkipRule(t *testing.T) {
	root := os.Geteuid() == 0
	for _, tc := range []struct {
		name     string
		ci       bool
		needRoot bool
		want     string // "PASS", "SKIP" or "FAIL"
	}{
		{"listed-feature", true, false, "SKIP"},
		{"listed-feature", false, false, "SKIP"},
		{"unlisted-feature", true, false, "FAIL"},
		{"unlisted-feature", false, false, "SKIP"},
		{"privileged-plain-skip", true, true, "FAIL"},
		{"privileged-plain-skip", false, true, "SKIP"},
		{"privileged-listed-feature", true, true, "SKIP"},
		{"privileged-passes", true, true, "PASS"},
	} {
		name := tc.name
		if tc.ci {
			name += "/ci"
		}
		t.Run(name, func(t *testing.T) {
			if tc.needRoot && !root {
				t.Skip("this case plays a privileged test that runs, which needs root")
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestSkipRuleChild$", "-test.v", "-test.count=1")
			env := []string{childEnv + "=" + tc.name, RequirePrivilegedEnv + "=0"}
			if tc.ci {
				env[1] = RequirePrivilegedEnv + "=1"
			}
			cmd.Env = append(os.Environ(), env...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				t.Fatal(err)
			}
			verdict := "--- " + tc.want + ": TestSkipRuleChild"
			if !strings.Contains(out.String(), verdict) || (tc.want == "FAIL") != (err != nil) {
				t.Errorf("child %s (CI=%v): exit %v, want a %s; output:\n%s", tc.name, tc.ci, err, tc.want, out.String())
			}
		})
	}
}
