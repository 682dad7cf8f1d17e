package policy

import (
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"sigs.k8s.io/yaml"

	"github.com/turbulence-sre/turbulence/internal/config"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// FuzzPolicyFile decodes policy files as Load does (strictly, over the
// defaults) and checks that nothing panics, that a policy Validate
// accepts survives an encode/decode round trip unchanged, and that
// checking a fault against it never panics (invariant 4: the policy is
// the agent's last word, it must not be the thing that crashes).
func FuzzPolicyFile(f *testing.F) {
	if example, err := os.ReadFile("../../packaging/agent.yaml"); err == nil {
		f.Add(example)
	}
	for _, s := range []string{
		"",
		"max_duration: 10m\nallowed_kinds: [cpu]\n",
		"max_duration: 0s\n",
		"cpu:\n  max_load_percent: 101\n",
		"memory:\n  reserve_bytes: 1GiB\n  max_percent_of_total: 50\n",
		"network:\n  protected_cidrs: [\"10.0.0.0/8\", \"fd00::/8\", \"nonsense\"]\n",
		"allowed_kinds: [teleport]\n",
		"max_duraton: 1h\n",
		"worker_nice: 20\n",
		"disk:\n  min_free_bytes: 1GiB\n  min_free_percent: 5\n",
	} {
		f.Add([]byte(s))
	}
	specs := []*turbulencev1.FaultSpec{
		{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 2, LoadPercent: 50}}},
		{Duration: durationpb.New(time.Hour), Kind: &turbulencev1.FaultSpec_Memory{Memory: &turbulencev1.MemorySpec{Size: &turbulencev1.MemorySpec_PercentOfTotal{PercentOfTotal: 90}}}},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := Default()
		if err := config.DecodeStrict(data, &p); err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			return
		}
		out, err := yaml.Marshal(p)
		if err != nil {
			t.Fatalf("valid policy %+v does not encode: %v", p, err)
		}
		back := Default()
		if err := config.DecodeStrict(out, &back); err != nil {
			t.Fatalf("valid policy encoded as %q does not decode: %v", out, err)
		}
		if diff := cmp.Diff(p, back); diff != "" {
			t.Fatalf("round trip changed the policy (-before +after):\n%s", diff)
		}
		for _, s := range specs {
			_ = p.Check(s, Host{TotalMemoryBytes: 8 << 30, CPUs: 4, ActiveFaults: 1})
		}
	})
}
