package fleetsim

import (
	"fmt"
	"runtime"

	"github.com/turbulence-sre/turbulence/agent/hostinfo"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Roles and Zones are the values SpreadLabels deals out.
var (
	Roles = []string{"web", "db", "cache"}
	Zones = []string{"a", "b", "c"}
)

// Racks is how many racks SpreadLabels spreads each zone over.
const Racks = 8

// SpreadLabels is the default Config.Labels: role, zone and rack dealt
// out so that selectors cut the fleet in many ways. Agent i has role
// Roles[i%3], zone Zones[(i/3)%3] (so every role is in every zone) and
// rack "<zone>-r<k>" with k = (i/9) % Racks; every agent also carries
// fleet=sim. Agents i%3 == 0 are the web tier: a third of the fleet.
func SpreadLabels(i int) map[string]string {
	zone := Zones[(i/len(Roles))%len(Zones)]
	return map[string]string{
		"role":  Roles[i%len(Roles)],
		"zone":  zone,
		"rack":  fmt.Sprintf("%s-r%d", zone, (i/(len(Roles)*len(Zones)))%Racks),
		"fleet": "sim",
	}
}

// simFacts are the host facts agent i reports: varied sizes, so that a
// listing looks like a fleet, and the agent version "fleetsim".
func simFacts(name string, i int) *turbulencev1.HostFacts {
	return &turbulencev1.HostFacts{
		Hostname:     name,
		Os:           "linux",
		Arch:         runtime.GOARCH,
		Kernel:       "6.1.0-fleetsim",
		Cpus:         uint32(2 << (i % 4)),         // 2, 4, 8, 16
		MemoryBytes:  uint64(4<<30) << (i / 9 % 3), // 4, 8, 16 GiB, across racks
		AgentVersion: "fleetsim",
	}
}

// allKernelFeatures is every kernel feature an agent can report: the
// simulated hosts lack nothing, so only policy and labels make agents
// differ unless Config.KernelFeatures says otherwise.
var allKernelFeatures = []string{
	hostinfo.FeatureNetem, hostinfo.FeaturePrio, hostinfo.FeatureTbf, hostinfo.FeatureHtb, hostinfo.FeatureIngress,
	hostinfo.FeatureU32, hostinfo.FeatureIFB, hostinfo.FeatureMirred, hostinfo.FeatureNftables,
}
