package cli

import (
	"fmt"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// degraded renders the Degraded row of `fault show`: "no", or "yes" and
// always why (issue 17: a host-utilisation fault showed "yes" alone).
// The agent's report carries the measurement and the target but not the
// sentence, so turbctl says it from them: what was asked, what was
// measured, and for a whole-host target the cause a reader needs most,
// that the host's own load counts.
func degraded(spec *turbulencev1.FaultSpec, st *turbulencev1.FaultStatus) string {
	if !st.GetDegraded() {
		return "no"
	}
	return "yes: " + degradedWhy(spec, st)
}

func degradedWhy(spec *turbulencev1.FaultSpec, st *turbulencev1.FaultStatus) string {
	switch k := spec.GetKind().(type) {
	case *turbulencev1.FaultSpec_Cpu:
		got := st.GetMeasuredCpuPercent()
		if want := k.Cpu.GetHostUtilizationPercent(); want > 0 {
			if got > float64(want) {
				return fmt.Sprintf("the host measured %.1f%% busy against a target of %d%%: other processes alone keep it busier than the target, and a fault can only add load", got, want)
			}
			return fmt.Sprintf("the host measured %.1f%% busy against a target of %d%%: the workers could not make up the difference (the agent's CPU ceiling, a cgroup limit, or CPUs taken by higher-priority work)", got, want)
		}
		return fmt.Sprintf("the loaded cores measured %.1f%% against a target of %d%% per core: the cores are contended by other work, or throttled", got, k.Cpu.GetLoadPercent())
	case *turbulencev1.FaultSpec_Memory:
		return fmt.Sprintf("resident memory is %s after the ramp: the kernel reclaimed or refused pages (memory pressure, a cgroup limit)", resident(k.Memory, st.GetResidentBytes()))
	case *turbulencev1.FaultSpec_DiskIo:
		ds := st.GetDisk()
		if ds.GetTargetIops() == 0 && ds.GetTargetBytesPerSecond() > 0 {
			return fmt.Sprintf("measured %s/s against a target of %s/s: the device or filesystem cannot keep up, or other I/O competes",
				bytesIEC(uint64(ds.GetMeasuredBytesPerSecond())), bytesIEC(uint64(ds.GetTargetBytesPerSecond())))
		}
		return fmt.Sprintf("measured %.0f IOPS against a target of %.0f: the device or filesystem cannot keep up, or other I/O competes", ds.GetMeasuredIops(), ds.GetTargetIops())
	}
	if r := st.GetReason(); r != "" {
		return r
	}
	return "the fault applied but its measured effect is off its target"
}
