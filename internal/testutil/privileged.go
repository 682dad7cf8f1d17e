package testutil

import (
	"os"
	"strings"
	"testing"
)

// RequirePrivilegedEnv is the environment variable CI sets: with it, a
// privileged test that would skip fails instead, so a root-only test can
// never be silently skipped where it is supposed to run.
const RequirePrivilegedEnv = "TURBULENCE_REQUIRE_PRIVILEGED"

// KernelFeaturePrefix starts the reason of a skip caused by a kernel
// feature this machine lacks (sch_netem on the CI kernel); those tests run
// in the VM lab instead, so such a skip is allowed even in CI.
const KernelFeaturePrefix = "kernel-feature:"

// RequirePrivileged skips t unless the process is root. When
// TURBULENCE_REQUIRE_PRIVILEGED=1 it fails t instead of skipping.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv(RequirePrivilegedEnv) == "1" {
		t.Fatalf("privileged test needs root, and %s=1 forbids skipping it", RequirePrivilegedEnv)
	}
	t.Skip("privileged test: needs root (set " + RequirePrivilegedEnv + "=1 to make this a failure)")
}

// SkipKernelFeature skips t because the running kernel lacks feature. The
// reason carries KernelFeaturePrefix, the only kind of skip CI allows for
// privileged tests.
func SkipKernelFeature(t testing.TB, feature, why string) {
	t.Helper()
	t.Skip(KernelFeaturePrefix + " " + feature + ": " + strings.TrimSpace(why) + " (covered by the VM lab)")
}
