package hostinfo

import (
	"slices"
	"testing"

	"github.com/turbulence-sre/turbulence/internal/testutil"
)

// TestPrivilegedKernelFeatures checks the probe against what this CI
// kernel is known to have (docs/dependencies.md): htb, tbf, u32, ingress, ifb
// with the mirred redirect ingress faults use,
// nftables; netem and prio only where the kernel has them.
func TestPrivilegedKernelFeatures(t *testing.T) {
	testutil.RequirePrivileged(t)
	got := KernelFeatures()
	t.Logf("kernel features: %q", got)
	for _, want := range []string{FeatureHtb, FeatureTbf, FeatureU32, FeatureIngress, FeatureIFB, FeatureMirred, FeatureNftables} {
		if !slices.Contains(got, want) {
			t.Errorf("KernelFeatures() = %q, lacks %s", got, want)
		}
	}
}
