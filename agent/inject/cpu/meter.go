package cpu

import (
	"sync"
	"time"

	"github.com/turbulence-sre/turbulence/agent/internal/procfs"
)

// sampler measures a fault's CPU load: its worker's (meter) or the whole
// host's (hostMeter).
type sampler interface {
	// sample returns the load since the previous reading, in percent.
	sample(now time.Time) float64
	// lastWindow is the wall time the latest figure covers.
	lastWindow() time.Duration
}

// minSampleWindow is the shortest interval a measurement is computed over;
// /proc counts CPU time in 10 ms ticks, so shorter windows are mostly
// rounding. A read sooner than this returns the previous figure.
const minSampleWindow = 250 * time.Millisecond

// meter turns cumulative CPU time readings of one process into a load
// percentage per core between two readings.
type meter struct {
	procRoot string
	pid      int
	cores    int

	mu       sync.Mutex
	lastCPU  time.Duration
	lastWall time.Time
	last     float64
	window   time.Duration // the wall time last was computed over
}

func newMeter(procRoot string, pid, cores int, start time.Time) *meter {
	return &meter{procRoot: procRoot, pid: pid, cores: cores, lastWall: start}
}

// sample returns the load since the previous reading, in percent of the
// loaded cores. It returns 0 when the CPU time cannot be read.
func (m *meter) sample(now time.Time) float64 {
	cpu, err := processCPUTime(m.procRoot, m.pid)
	if err != nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	wall := now.Sub(m.lastWall)
	if wall < minSampleWindow {
		return m.last
	}
	m.last = loadPercent(cpu-m.lastCPU, wall, m.cores)
	m.lastCPU, m.lastWall, m.window = cpu, now, wall
	return m.last
}

// lastWindow returns the wall time the latest figure was computed over.
func (m *meter) lastWindow() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.window
}

// loadPercent is cpu time over wall time, per core, in percent.
func loadPercent(cpu, wall time.Duration, cores int) float64 {
	if wall <= 0 || cores <= 0 || cpu < 0 {
		return 0
	}
	return 100 * float64(cpu) / float64(wall) / float64(cores)
}

// hostMeter measures the whole host's CPU utilisation from /proc/stat, in
// percent of all online CPUs.
type hostMeter struct {
	procRoot string

	mu       sync.Mutex
	prev     procfs.CPUTimes
	lastWall time.Time
	last     float64
	window   time.Duration
}

func newHostMeter(procRoot string, start time.Time) *hostMeter {
	m := &hostMeter{procRoot: procRoot, lastWall: start}
	m.prev, _ = procfs.ReadCPUTimes(procRoot) // a failed read leaves zero: the first window then reads 0
	return m
}

func (m *hostMeter) sample(now time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.lastWall) < minSampleWindow {
		return m.last
	}
	cur, err := procfs.ReadCPUTimes(m.procRoot)
	if err != nil || cur.Total <= m.prev.Total || m.prev.Total == 0 {
		m.prev = cur
		return 0
	}
	m.last = 100 * float64(cur.Busy-m.prev.Busy) / float64(cur.Total-m.prev.Total)
	m.window, m.lastWall, m.prev = now.Sub(m.lastWall), now, cur
	return m.last
}

func (m *hostMeter) lastWindow() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.window
}
