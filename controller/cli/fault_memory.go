package cli

import (
	"strconv"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/internal/config"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

var memoryKind = applyKind{
	name:  faultspec.KindMemory,
	short: "Hold memory: a resident size in bytes or a percentage of total memory",
	long: `Hold memory on the agent's host with a worker process that touches anonymous
pages until its RESIDENT size (what the kernel counts, not a mapping size)
is the target, and corrects it for the whole hold.

Exactly one of --bytes SIZE (e.g. 512MiB, 2GiB, 1073741824) or --percent P
(of the host's total memory). --ramp grows the size linearly over that time
instead of at once; --mlock locks the pages against swap (an agent without
the privilege holds them unlocked and says so in its log). The agent refuses
a size above what its host has available, minus its reserve, and its local
policy may cap it further. The worker is the OOM killer's first choice.

Example:
  turbctl fault apply memory --agent web-1 --bytes 2GiB --ramp 30s --duration 5m`,
	bind: bindMemory,
}

func bindMemory(cmd *cobra.Command) func(*turbulencev1.FaultSpec) error {
	var (
		size    string
		percent uint32
		ramp    = cmd.Flags().Duration("ramp", 0, "time over which to grow to the size, e.g. 30s (default: at once)")
		mlock   = cmd.Flags().Bool("mlock", false, "lock the held pages in memory so they cannot be swapped")
	)
	f := cmd.Flags()
	f.StringVar(&size, "bytes", "", "resident size to hold, e.g. 512MiB or 2GiB (this or --percent is required)")
	f.Uint32Var(&percent, "percent", 0, "resident size as a percentage of the host's total memory, 1..100")

	return func(spec *turbulencev1.FaultSpec) error {
		mem := &turbulencev1.MemorySpec{Mlock: *mlock}
		switch changed := f.Changed; {
		case changed("bytes") && changed("percent"):
			return usagef("--bytes and --percent exclude each other")
		case changed("bytes"):
			n, err := config.ParseByteSize(size)
			if err != nil {
				return invalidf("--bytes: %v", err)
			}
			if n == 0 {
				return invalidf("--bytes must be greater than 0")
			}
			mem.Size = &turbulencev1.MemorySpec_Bytes{Bytes: uint64(n)}
		case changed("percent"):
			if percent < 1 || percent > 100 {
				return invalidf("--percent must be between 1 and 100, got %d", percent)
			}
			mem.Size = &turbulencev1.MemorySpec_PercentOfTotal{PercentOfTotal: percent}
		default:
			return usagef("--bytes or --percent is required")
		}
		if f.Changed("ramp") {
			if *ramp < 0 || *ramp > faultspec.MaxDuration {
				return invalidf("--ramp must be between 0s and %s, got %s", faultspec.MaxDuration, *ramp)
			}
			mem.Ramp = durationpb.New(*ramp)
		}
		spec.Kind = &turbulencev1.FaultSpec_Memory{Memory: mem}
		return nil
	}
}

// resident renders the resident size an agent achieved beside what was
// asked, when the spec names bytes: "1.0GiB (99.8% of 1.0GiB asked)". A
// percentage of total memory is resolved on the agent and not reported
// back, so it gets the achieved size alone.
func resident(asked *turbulencev1.MemorySpec, got uint64) string {
	if got == 0 {
		return none
	}
	s := bytesIEC(got)
	if want := asked.GetBytes(); want > 0 {
		s += " (" + strconv.FormatFloat(100*float64(got)/float64(want), 'f', 1, 64) + "% of " + bytesIEC(want) + " asked)"
	}
	return s
}
