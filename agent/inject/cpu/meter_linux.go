package cpu

import (
	"time"

	"github.com/turbulence-sre/turbulence/agent/internal/procfs"
)

// processCPUTime reads utime+stime of every thread of pid from
// <procRoot>/<pid>/stat.
func processCPUTime(procRoot string, pid int) (time.Duration, error) {
	st, err := procfs.ReadStat(procRoot, pid)
	if err != nil {
		return 0, err
	}
	return time.Duration(st.CPUTicks) * time.Second / procfs.UserHZ, nil
}
