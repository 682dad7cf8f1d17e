package worker

import (
	"os"

	"github.com/turbulence-sre/turbulence/agent/internal/procfs"
)

func readHostSample() (hostSample, error) {
	ct, err := procfs.ReadCPUTimes("/proc")
	if err != nil {
		return hostSample{}, err
	}
	self, err := procfs.ReadStat("/proc", os.Getpid())
	if err != nil {
		return hostSample{}, err
	}
	return hostSample{busy: ct.Busy, total: ct.Total, own: self.CPUTicks, cpus: ct.CPUs}, nil
}
