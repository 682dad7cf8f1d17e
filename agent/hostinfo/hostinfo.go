// Package hostinfo gathers the HostFacts an agent sends in its Hello: host
// name, OS, architecture, kernel release, CPU count and total memory
// (through gopsutil, as agent/hostmetrics reads the rest). The /proc root
// is a parameter so that tests read fixtures.
package hostinfo

import (
	"context"
	"os"
	"runtime"

	"github.com/shirou/gopsutil/v3/common"
	"github.com/shirou/gopsutil/v3/mem"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Facts returns the facts of this host. Facts it cannot read stay empty:
// they are informative, never a reason not to connect.
func Facts(procRoot, agentVersion string) *turbulencev1.HostFacts {
	hostname, _ := os.Hostname()
	return &turbulencev1.HostFacts{
		Hostname:     hostname,
		Os:           runtime.GOOS,
		Arch:         runtime.GOARCH,
		Kernel:       kernelRelease(),
		Cpus:         uint32(runtime.NumCPU()),
		MemoryBytes:  memTotal(procRoot),
		AgentVersion: agentVersion,
	}
}

// memTotal is the host's total memory in bytes, read by gopsutil from
// <procRoot>/meminfo; 0 if unknown.
func memTotal(procRoot string) uint64 {
	ctx := context.WithValue(context.Background(), common.EnvKey, common.EnvMap{common.HostProcEnvKey: procRoot})
	m, err := mem.VirtualMemoryWithContext(ctx)
	if err != nil {
		return 0
	}
	return m.Total
}
