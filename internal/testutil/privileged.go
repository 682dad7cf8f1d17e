package testutil

import (
	"os"
	"slices"
	"strings"
	"sync"
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

// VMLabFeatures are the kernel features the VM lab (test/vmlab) proves on
// a stock kernel. Under RequirePrivilegedEnv=1 a privileged test may skip
// only by naming one of them through SkipKernelFeature: any other skip is
// a failure, because nothing else would ever run that test. Add a feature
// here only together with a VM lab phase that exercises it.
var VMLabFeatures = []string{"sch_netem"}

// allowedSkips holds the tests that skipped through SkipKernelFeature with
// a feature the VM lab covers; the check RequirePrivileged registers lets
// those skips through.
var allowedSkips sync.Map // testing.TB → struct{}

func requireEnv() bool { return os.Getenv(RequirePrivilegedEnv) == "1" }

// RequirePrivileged skips t unless the process is root. When
// TURBULENCE_REQUIRE_PRIVILEGED=1 it fails t instead of skipping, and any
// later skip of t fails it too unless it came from SkipKernelFeature with
// a feature in VMLabFeatures: the skip rule is checked here, by the
// helper, not left to convention or to a report.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		if requireEnv() {
			t.Cleanup(func() {
				if _, ok := allowedSkips.LoadAndDelete(t); ok || !t.Skipped() {
					return
				}
				t.Errorf("%s=1: this privileged test skipped, and only a kernel-feature skip of %v (testutil.SkipKernelFeature) is allowed in CI",
					RequirePrivilegedEnv, VMLabFeatures)
			})
		}
		return
	}
	if requireEnv() {
		t.Fatalf("privileged test needs root, and %s=1 forbids skipping it", RequirePrivilegedEnv)
	}
	t.Skip("privileged test: needs root (set " + RequirePrivilegedEnv + "=1 to make this a failure)")
}

// SkipKernelFeature skips t because the running kernel lacks feature. The
// reason carries KernelFeaturePrefix. Under TURBULENCE_REQUIRE_PRIVILEGED=1
// it fails t instead when feature is not one the VM lab covers
// (VMLabFeatures).
func SkipKernelFeature(t testing.TB, feature, why string) {
	t.Helper()
	why = strings.TrimSpace(why)
	if requireEnv() && !slices.Contains(VMLabFeatures, feature) {
		t.Fatalf("%s=1: the kernel lacks %q (%s), and only %v may be skipped in CI (the VM lab covers them)",
			RequirePrivilegedEnv, feature, why, VMLabFeatures)
	}
	allowedSkips.Store(t, struct{}{})
	t.Skip(KernelFeaturePrefix + " " + feature + ": " + why + " (covered by the VM lab)")
}
