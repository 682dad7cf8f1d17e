package cpu

import (
	"sync"
	"time"
)

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
