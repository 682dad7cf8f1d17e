// Package hostinfo gathers the HostFacts an agent sends in its Hello: host
// name, OS, architecture, kernel release, CPU count and total memory. The
// /proc root is a parameter so that tests read fixtures.
package hostinfo

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

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

// memTotal reads MemTotal from <procRoot>/meminfo, in bytes; 0 if unknown.
func memTotal(procRoot string) uint64 {
	data, err := os.ReadFile(filepath.Join(procRoot, "meminfo"))
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0
		}
		kb, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return 0
		}
		return kb * 1024 // the kernel's "kB" is KiB
	}
	return 0
}
