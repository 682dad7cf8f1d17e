package cli

import (
	"github.com/spf13/cobra"

	"github.com/turbulence-sre/turbulence/internal/faultspec"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

var cpuKind = applyKind{
	name:  faultspec.KindCPU,
	short: "Burn CPU: N cores at a load %, or a whole-host utilisation target",
	long: `Burn CPU on the agent's host with a worker process whose duty cycle is
corrected by feedback until the measured load meets the target.

Either --cores N --load PCT (N = 0 means every online core; --pin lists the
CPUs to pin to, and then --cores may be left out), or --host-util PCT to
bring the whole host's utilisation to PCT given whatever else runs.

Example:
  turbctl fault apply cpu --agent web-1 --cores 2 --load 80 --duration 5m`,
	bind: bindCPU,
}

func bindCPU(cmd *cobra.Command) func(*turbulencev1.FaultSpec) error {
	var (
		cores, load, hostUtil uint32
		pin                   []uint
	)
	f := cmd.Flags()
	f.Uint32Var(&cores, "cores", 0, "number of cores to load; 0 = all online cores (required unless --pin or --host-util)")
	f.Uint32Var(&load, "load", 0, "load per core in percent, 1..100 (required unless --host-util)")
	f.UintSliceVar(&pin, "pin", nil, "CPUs to pin the load to, e.g. 0,2")
	f.Uint32Var(&hostUtil, "host-util", 0, "target whole-host CPU utilisation in percent, 1..100, instead of --cores/--load")

	return func(spec *turbulencev1.FaultSpec) error {
		cpu := &turbulencev1.CPUSpec{Cores: cores, LoadPercent: load}
		changed := f.Changed
		if changed("host-util") {
			if hostUtil < 1 || hostUtil > 100 {
				return invalidf("--host-util must be between 1 and 100, got %d", hostUtil)
			}
			if changed("load") {
				return usagef("--load and --host-util exclude each other")
			}
			cpu.HostUtilizationPercent = hostUtil
		} else if !changed("load") {
			return usagef("--load is required (1..100) unless --host-util is set")
		} else if load < 1 || load > 100 {
			return invalidf("--load must be between 1 and 100, got %d", load)
		}
		if cores > faultspec.MaxCores {
			return invalidf("--cores must be at most %d, got %d", faultspec.MaxCores, cores)
		}
		seen := make(map[uint]bool, len(pin))
		for _, c := range pin {
			if c >= faultspec.MaxCores {
				return invalidf("--pin: CPU %d is out of range 0..%d", c, faultspec.MaxCores-1)
			}
			if seen[c] {
				return invalidf("--pin: CPU %d is listed twice", c)
			}
			seen[c] = true
			cpu.PinCpus = append(cpu.PinCpus, uint32(c))
		}
		switch {
		case len(pin) > 0 && !changed("cores"):
			cpu.Cores = uint32(len(pin))
		case len(pin) > 0 && cores != 0 && int(cores) != len(pin):
			return invalidf("--pin lists %d CPUs but --cores is %d", len(pin), cores)
		case len(pin) == 0 && !changed("cores") && !changed("host-util"):
			return usagef("--cores is required (0 means all online cores)")
		}
		spec.Kind = &turbulencev1.FaultSpec_Cpu{Cpu: cpu}
		return nil
	}
}
