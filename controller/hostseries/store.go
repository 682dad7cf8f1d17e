package hostseries

import (
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/turbulence-sre/turbulence/internal/limits"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Metric names, as a host probe names them.
const (
	CPUPercent            = "cpu_percent"
	MemoryUsedPercent     = "memory_used_percent"
	MemoryUsedBytes       = "memory_used_bytes"
	Load1                 = "load1"
	Load5                 = "load5"
	Load15                = "load15"
	DiskUsedPercent       = "disk_used_percent"
	DiskIOBytesPerSecond  = "disk_io_bytes_per_second"
	NetworkBytesPerSecond = "network_bytes_per_second"
)

// metricNames are every kept metric, in the order of entry.v.
var metricNames = [nMetrics]string{
	CPUPercent, MemoryUsedPercent, MemoryUsedBytes, Load1, Load5, Load15,
	DiskUsedPercent, DiskIOBytesPerSecond, NetworkBytesPerSecond,
}

const nMetrics = 9

// ProbeMetrics are the metrics a host probe may name
// (controller/experiment/spec.go, HostProbe.Metric).
var ProbeMetrics = []string{CPUPercent, MemoryUsedPercent, Load1, DiskUsedPercent, DiskIOBytesPerSecond, NetworkBytesPerSecond}

// Metrics returns every metric name the store keeps.
func Metrics() []string { return append([]string(nil), metricNames[:]...) }

func metricIndex(name string) int {
	for i, n := range metricNames {
		if n == name {
			return i
		}
	}
	return -1
}

// Defaults of New.
const (
	DefaultWindow = 10 * time.Minute
	// prunesPerWindow is how often, per window, the store sweeps for
	// agents silent for longer than the window: a sweep visits every
	// agent, so it runs by the clock, not per record.
	prunesPerWindow = 4
)

// Sample is one sample of an agent's series. A metric the agent could
// not read is NaN; Value says so with ok false.
type Sample struct {
	// Time is when the agent took the sample, on the controller's clock.
	Time                  time.Time
	CPUPercent            float64
	MemoryUsedPercent     float64
	MemoryUsedBytes       float64
	Load1, Load5, Load15  float64
	DiskUsedPercent       float64
	DiskIOBytesPerSecond  float64
	NetworkBytesPerSecond float64
}

// Value returns the named metric; ok is false for an unknown name or a
// metric the agent could not read.
func (s Sample) Value(metric string) (v float64, ok bool) {
	switch metric {
	case CPUPercent:
		v = s.CPUPercent
	case MemoryUsedPercent:
		v = s.MemoryUsedPercent
	case MemoryUsedBytes:
		v = s.MemoryUsedBytes
	case Load1:
		v = s.Load1
	case Load5:
		v = s.Load5
	case Load15:
		v = s.Load15
	case DiskUsedPercent:
		v = s.DiskUsedPercent
	case DiskIOBytesPerSecond:
		v = s.DiskIOBytesPerSecond
	case NetworkBytesPerSecond:
		v = s.NetworkBytesPerSecond
	default:
		return 0, false
	}
	return v, !math.IsNaN(v)
}

// entry is a sample as the ring keeps it: 48 bytes.
type entry struct {
	t int64 // Unix nanoseconds, controller clock
	v [nMetrics]float32
}

// ring is one agent's series. Caller holds Store.mu.
type ring struct {
	buf  []entry // grows to the store's capacity, then wraps
	next int     // where the next entry goes once buf is full
	// lastSampled is the agent's own sampled_at of the newest entry
	// (agent clock): a heartbeat that repeats a sample (one sent early
	// when a fault ended) is recorded once.
	lastSampled int64
}

func (r *ring) newest() *entry {
	if len(r.buf) == 0 {
		return nil
	}
	if len(r.buf) < cap(r.buf) || r.next == 0 {
		return &r.buf[len(r.buf)-1]
	}
	return &r.buf[r.next-1]
}

// Store keeps the series of every agent. It is safe for concurrent use.
type Store struct {
	window   time.Duration
	capacity int

	mu     sync.Mutex
	agents map[string]*ring
	// pruned is when the last sweep ran (Record's received clock).
	pruned time.Time
	// reportInterval is how often agents report now (nanoseconds), as
	// the leader paces them (SetReportInterval).
	reportInterval atomic.Int64
}

// SetReportInterval says how often agents report now: the heartbeat
// interval the leader tells them, which it slows as the fleet grows
// (docs/design.md, "Heartbeat pacing"). Readers judge a value's age by
// it (ReportInterval).
func (s *Store) SetReportInterval(d time.Duration) { s.reportInterval.Store(int64(d)) }

// ReportInterval is how often agents report now (SetReportInterval);
// zero if never said.
func (s *Store) ReportInterval() time.Duration { return time.Duration(s.reportInterval.Load()) }

// New returns a Store that keeps window's worth of samples taken every
// interval: window/interval samples per agent, between 2 and
// limits.MaxMetricSamples. Zero window means DefaultWindow; zero
// interval means one second.
func New(window, interval time.Duration) *Store {
	if window <= 0 {
		window = DefaultWindow
	}
	if interval <= 0 {
		interval = time.Second
	}
	n := int((window + interval - 1) / interval)
	return &Store{
		window:   window,
		capacity: min(max(n, 2), limits.MaxMetricSamples),
		agents:   make(map[string]*ring),
	}
}

// Window is how far back the store keeps samples.
func (s *Store) Window() time.Duration { return s.window }

// Capacity is the most samples kept per agent.
func (s *Store) Capacity() int { return s.capacity }

// Record adds the sample of a heartbeat received at received and sent at
// sentAt by the agent's clock. The sample is stamped on the controller's
// clock as received less its age when sent (sentAt - sampled_at, both
// the agent's clock), so that an agent's clock skew does not move it.
// A sample older than or equal to the agent's newest is not recorded.
func (s *Store) Record(agentID string, m *turbulencev1.HostMetrics, sentAt, received time.Time) {
	if m == nil || m.GetSampledAt() == nil {
		return
	}
	sampled := m.GetSampledAt().AsTime()
	age := time.Duration(0)
	if !sentAt.IsZero() {
		age = min(max(sentAt.Sub(sampled), 0), s.window)
	}
	e := entry{t: received.Add(-age).UnixNano()}
	for i, v := range values(m) {
		e.v[i] = float32(v)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.agents[agentID]
	if !ok {
		r = &ring{buf: make([]entry, 0, s.capacity)}
		s.agents[agentID] = r
	}
	if sampled.UnixNano() <= r.lastSampled {
		return
	}
	r.lastSampled = sampled.UnixNano()
	if n := r.newest(); n != nil && e.t < n.t {
		e.t = n.t // keep the series in order on the controller's clock
	}
	if len(r.buf) < cap(r.buf) {
		r.buf = append(r.buf, e)
	} else {
		r.buf[r.next] = e
		r.next = (r.next + 1) % len(r.buf)
	}
	if received.Sub(s.pruned) >= s.window/prunesPerWindow {
		s.prune(received)
	}
}

// values returns a heartbeat sample's metrics in the order of entry.v,
// NaN for those the agent did not send. The agent is trusted with what
// it measures, not with the shape of a number: a value no measurement
// can give (negative, not finite, a percentage above 100, beyond
// float32) is kept as absent, so that a broken agent's sample can
// neither pass nor fail a probe by accident.
func values(m *turbulencev1.HostMetrics) [nMetrics]float64 {
	nan := math.NaN()
	opt := func(v *float64, most float64) float64 {
		if v == nil || !(*v >= 0 && *v <= most) { // NaN fails both
			return nan
		}
		return *v
	}
	sum := func(a, b *float64) float64 {
		return opt(a, math.MaxFloat32) + opt(b, math.MaxFloat32) // NaN if either is
	}
	memBytes := nan
	if m.MemoryUsedBytes != nil {
		memBytes = float64(*m.MemoryUsedBytes)
	}
	return [nMetrics]float64{
		opt(m.CpuPercent, 100), opt(m.MemoryUsedPercent, 100), memBytes,
		opt(m.Load1, math.MaxFloat32), opt(m.Load5, math.MaxFloat32), opt(m.Load15, math.MaxFloat32),
		opt(m.DiskUsedPercent, 100),
		opt(f64(sum(m.DiskReadBytesPerSecond, m.DiskWriteBytesPerSecond)), math.MaxFloat32),
		opt(f64(sum(m.NetworkRxBytesPerSecond, m.NetworkTxBytesPerSecond)), math.MaxFloat32),
	}
}

func f64(v float64) *float64 { return &v }

// prune forgets agents whose newest sample is older than the window: an
// agent gone for good costs nothing after that. Caller holds s.mu.
func (s *Store) prune(now time.Time) {
	s.pruned = now
	cutoff := now.Add(-s.window).UnixNano()
	for id, r := range s.agents {
		if n := r.newest(); n == nil || n.t < cutoff {
			delete(s.agents, id)
		}
	}
}

// Latest returns the agent's newest value of metric and when it was
// sampled; ok is false when there is none (an unknown agent or metric,
// no sample yet, or a metric the agent could not read in its newest
// sample). The caller judges whether the time is recent enough.
func (s *Store) Latest(agentID, metric string) (float64, time.Time, bool) {
	i := metricIndex(metric)
	if i < 0 {
		return 0, time.Time{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.agents[agentID]
	if !ok {
		return 0, time.Time{}, false
	}
	n := r.newest()
	if n == nil || isNaN32(n.v[i]) {
		return 0, time.Time{}, false
	}
	return widen(n.v[i]), time.Unix(0, n.t), true
}

// Series returns the agent's samples taken at or after since, oldest
// first; nil when there are none.
func (s *Store) Series(agentID string, since time.Time) []Sample {
	s.mu.Lock()
	r, ok := s.agents[agentID]
	if !ok {
		s.mu.Unlock()
		return nil
	}
	// Copy the entries under the lock, convert them outside it.
	entries := make([]entry, 0, len(r.buf))
	from := since.UnixNano()
	if since.IsZero() {
		from = math.MinInt64
	}
	for _, part := range [2][]entry{r.buf[r.next:], r.buf[:r.next]} {
		for _, e := range part {
			if e.t >= from {
				entries = append(entries, e)
			}
		}
	}
	s.mu.Unlock()
	if len(entries) == 0 {
		return nil
	}
	out := make([]Sample, len(entries))
	for i, e := range entries {
		out[i] = e.sample()
	}
	return out
}

// LatestSample returns the agent's newest sample.
func (s *Store) LatestSample(agentID string) (Sample, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.agents[agentID]
	if !ok || r.newest() == nil {
		return Sample{}, false
	}
	return r.newest().sample(), true
}

// Reset forgets every series: a node that stops leading keeps none
// (soft state is the leader's only).
func (s *Store) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.agents)
}

// Agents returns how many agents have a series.
func (s *Store) Agents() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.agents)
}

func (e entry) sample() Sample {
	var w [nMetrics]float64
	for i, v := range e.v {
		w[i] = widen(v)
	}
	return Sample{
		Time:       time.Unix(0, e.t),
		CPUPercent: w[0], MemoryUsedPercent: w[1], MemoryUsedBytes: w[2],
		Load1: w[3], Load5: w[4], Load15: w[5],
		DiskUsedPercent: w[6], DiskIOBytesPerSecond: w[7], NetworkBytesPerSecond: w[8],
	}
}

func isNaN32(v float32) bool { return v != v }

// widen returns the float64 of the shortest decimal that reads back as
// v, so that a stored 12.3 is 12.3 again rather than 12.300000190734863.
// A whole number (byte counts) is returned as it is: exact.
func widen(v float32) float64 {
	if w := float64(v); isNaN32(v) || math.IsInf(w, 0) || w == math.Trunc(w) {
		return w
	}
	var buf [32]byte
	f, err := strconv.ParseFloat(string(strconv.AppendFloat(buf[:0], float64(v), 'g', -1, 32)), 64)
	if err != nil {
		return float64(v)
	}
	return f
}
