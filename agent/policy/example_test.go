package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The documented example file is the defaults, field for field, so the
// documentation cannot drift from the code.
func TestExampleFileIsTheDefaults(t *testing.T) {
	t.Parallel()
	p, err := Load("../../packaging/agent.yaml", false)
	if err != nil {
		t.Fatalf("packaging/agent.yaml: %v", err)
	}
	want := Default()
	if want.Network.ProtectedCIDRs == nil {
		want.Network.ProtectedCIDRs = []string{}
	}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("packaging/agent.yaml differs from Default() (-default +file):\n%s", diff)
	}
}
