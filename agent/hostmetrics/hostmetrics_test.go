package hostmetrics

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitSample samples until ok accepts a sample or the deadline passes.
func waitSample(t *testing.T, s *Sampler, timeout time.Duration, ok func(*turbulencev1.HostMetrics) bool) *turbulencev1.HostMetrics {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last *turbulencev1.HostMetrics
	for time.Now().Before(deadline) {
		last = s.Sample(t.Context())
		if ok(last) {
			return last
		}
		// Let the kernel's counters advance by a few ticks: polling, not
		// synchronisation; the loop's condition decides.
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no acceptable sample within %v; last %v", timeout, last)
	return nil
}

func TestSampler_SaneValuesOnThisHost(t *testing.T) {
	dir := t.TempDir()
	s := New(Config{Paths: []string{dir}})
	if s.Latest() != nil {
		t.Fatal("Latest before any sample is not nil")
	}
	first := s.Sample(t.Context())
	if first.CpuPercent != nil || first.NetworkRxBytesPerSecond != nil || first.Interval != nil {
		t.Errorf("first sample has rates without a reading before it: %v", first)
	}
	m := waitSample(t, s, 10*time.Second, func(m *turbulencev1.HostMetrics) bool { return m.CpuPercent != nil })
	check := func(name string, v *float64, lo, hi float64) {
		t.Helper()
		if v == nil {
			t.Errorf("%s absent on this host", name)
			return
		}
		if *v < lo || *v > hi {
			t.Errorf("%s = %v, want within [%v, %v]", name, *v, lo, hi)
		}
	}
	check("cpu_percent", m.CpuPercent, 0, 100)
	check("memory_used_percent", m.MemoryUsedPercent, 0.01, 100)
	check("load1", m.Load1, 0, 10000)
	check("load5", m.Load5, 0, 10000)
	check("load15", m.Load15, 0, 10000)
	check("disk_used_percent", m.DiskUsedPercent, 0.0001, 100)
	check("disk_read_bytes_per_second", m.DiskReadBytesPerSecond, 0, 1e12)
	check("disk_write_bytes_per_second", m.DiskWriteBytesPerSecond, 0, 1e12)
	check("network_rx_bytes_per_second", m.NetworkRxBytesPerSecond, 0, 1e12)
	check("network_tx_bytes_per_second", m.NetworkTxBytesPerSecond, 0, 1e12)
	if m.GetMemoryUsedBytes() == 0 || m.GetMemoryUsedBytes() > m.GetMemoryTotalBytes() {
		t.Errorf("memory used %d of %d bytes, want 0 < used <= total", m.GetMemoryUsedBytes(), m.GetMemoryTotalBytes())
	}
	if len(m.Filesystems) != 1 || m.Filesystems[0].Path != dir || m.Filesystems[0].TotalBytes == 0 {
		t.Errorf("filesystems = %v, want the one of %s", m.Filesystems, dir)
	}
	if d := m.GetInterval().AsDuration(); d <= 0 || d > 10*time.Second {
		t.Errorf("interval = %v, want the time since the sample before", d)
	}
}

// TestSampler_CPUMovesUnderLoad burns every CPU in-process and waits for
// a sample that sees the host busy.
func TestSampler_CPUMovesUnderLoad(t *testing.T) {
	s := New(Config{})
	s.Sample(t.Context())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := 0; i < 1e5; i++ {
					_ = i * i
				}
			}
		})
	}
	defer wg.Wait()
	defer close(stop)
	// Every CPU has a runnable burner, whatever else the host runs: a
	// sample over a few hundred milliseconds must see it nearly all busy.
	waitSample(t, s, 20*time.Second, func(m *turbulencev1.HostMetrics) bool {
		return m.CpuPercent != nil && m.GetInterval().AsDuration() >= 200*time.Millisecond && *m.CpuPercent >= 80
	})
}

// fixture is a fake /proc and /sys whose counters a test sets.
type fixture struct{ proc, sys string }

func newFixture(t *testing.T) fixture {
	t.Helper()
	root := t.TempDir()
	f := fixture{proc: filepath.Join(root, "proc"), sys: filepath.Join(root, "sys")}
	for _, d := range []string{f.proc + "/net", f.sys + "/block", f.sys + "/devices/pci0/vdx", f.sys + "/devices/virtual/block/loop0"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range map[string]string{"vdx": "../devices/pci0/vdx", "loop0": "../devices/virtual/block/loop0"} {
		if err := os.Symlink(target, filepath.Join(f.sys, "block", name)); err != nil {
			t.Fatal(err)
		}
	}
	write(t, f.proc+"/meminfo", "MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 600 kB\nBuffers: 100 kB\nCached: 200 kB\n")
	write(t, f.proc+"/loadavg", "1.50 0.75 0.25 1/100 4242\n")
	return f
}

// set writes the CPU ticks (user, idle), the disks' sectors and the
// interfaces' bytes.
func (f fixture) set(t *testing.T, user, idle, vdxRead, vdxWritten, loopRead, ethRx, ethTx, loRx uint64) {
	t.Helper()
	write(t, f.proc+"/stat", fmt.Sprintf("cpu  %d 0 0 %d 0 0 0 0 0 0\ncpu0 %d 0 0 %d 0 0 0 0 0 0\n", user, idle, user, idle))
	write(t, f.proc+"/diskstats", fmt.Sprintf(
		"   7       0 loop0 1 0 %d 1 0 0 0 0 0 1 1 0 0 0 0\n 254       0 vdx 1 0 %d 1 1 0 %d 1 0 1 1 0 0 0 0\n 254       1 vdx1 1 0 %d 1 1 0 %d 1 0 1 1 0 0 0 0\n",
		loopRead, vdxRead, vdxWritten, vdxRead, vdxWritten))
	write(t, f.proc+"/net/dev", fmt.Sprintf(
		"Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"+
			"    lo: %d 1 0 0 0 0 0 0 %d 1 0 0 0 0 0 0\n  ifb0: %d 1 0 0 0 0 0 0 %d 1 0 0 0 0 0 0\n  eth9: %d 1 0 0 0 0 0 0 %d 1 0 0 0 0 0 0\n",
		loRx, loRx, ethRx, ethRx, ethRx, ethTx))
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSampler_RatesFromFixture checks the arithmetic against counters
// set by hand: CPU busy share over the interval, bytes per second of
// whole physical disks only (not a partition again, not a loop device),
// of every interface but the loopback and ifb mirrors.
func TestSampler_RatesFromFixture(t *testing.T) {
	f := newFixture(t)
	s := New(Config{ProcRoot: f.proc, SysRoot: f.sys})
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }

	f.set(t, 100, 900, 1000, 2000, 0, 10_000, 20_000, 0)
	s.Sample(t.Context())
	// Two seconds later: 300 of 400 ticks busy; vdx read 4000 sectors
	// and wrote 2000; the loop device and the loopback moved a lot,
	// which must not count; eth9 received 8000 and sent 2000 bytes.
	now = now.Add(2 * time.Second)
	f.set(t, 400, 1000, 5000, 4000, 1_000_000, 18_000, 22_000, 1<<30)
	m := s.Sample(t.Context())

	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"cpu_percent", m.GetCpuPercent(), 75},
		{"disk_read_bytes_per_second", m.GetDiskReadBytesPerSecond(), 4000 * 512 / 2},
		{"disk_write_bytes_per_second", m.GetDiskWriteBytesPerSecond(), 2000 * 512 / 2},
		{"network_rx_bytes_per_second", m.GetNetworkRxBytesPerSecond(), 4000},
		{"network_tx_bytes_per_second", m.GetNetworkTxBytesPerSecond(), 1000},
		{"load1", m.GetLoad1(), 1.5},
		{"load15", m.GetLoad15(), 0.25},
		// used = total - free - buffers - cached = 600 of 1000 kB.
		{"memory_used_percent", m.GetMemoryUsedPercent(), 60},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if m.GetInterval().AsDuration() != 2*time.Second {
		t.Errorf("interval = %v, want 2s", m.GetInterval().AsDuration())
	}

	// A counter that went backwards (eth9 replaced) leaves the network
	// rates out rather than report a huge figure; the rest still counts.
	now = now.Add(time.Second)
	f.set(t, 500, 1100, 5000, 4000, 1_000_000, 5, 5, 1<<30)
	m = s.Sample(t.Context())
	if m.NetworkRxBytesPerSecond != nil || m.NetworkTxBytesPerSecond != nil {
		t.Errorf("network rates after a counter reset = %v, %v; want absent", m.NetworkRxBytesPerSecond, m.NetworkTxBytesPerSecond)
	}
	if m.GetCpuPercent() != 50 || m.DiskReadBytesPerSecond == nil || m.GetDiskReadBytesPerSecond() != 0 {
		t.Errorf("cpu %v, disk read %v after the reset; want 50 and 0", m.GetCpuPercent(), m.DiskReadBytesPerSecond)
	}
}

// TestSampler_UnreadableSourcesAreAbsent: a figure that cannot be read is
// absent, never a zero that would read as an idle host. (Load averages
// still come, from the sysinfo system call gopsutil falls back on.)
func TestSampler_UnreadableSourcesAreAbsent(t *testing.T) {
	empty := t.TempDir()
	s := New(Config{ProcRoot: empty, SysRoot: empty, Paths: []string{filepath.Join(empty, "no-such-dir")}})
	s.now = func() time.Time { return time.Unix(1000, 0) }
	s.Sample(t.Context())
	s.now = func() time.Time { return time.Unix(1001, 0) }
	m := s.Sample(t.Context())
	if m.CpuPercent != nil || m.MemoryUsedPercent != nil || m.DiskUsedPercent != nil || m.DiskReadBytesPerSecond != nil || m.NetworkRxBytesPerSecond != nil || len(m.Filesystems) != 0 {
		t.Errorf("sample from an empty /proc and /sys = %v, want every figure absent", m)
	}
}

func TestSampler_RunKeepsLatestAndFollowsInterval(t *testing.T) {
	s := New(Config{Interval: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(ctx)
	}()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for s.Latest() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	first := s.Latest()
	if first == nil {
		t.Fatal("Run took no sample at start")
	}
	// An hour's interval would take no second sample; the heartbeat
	// interval the controller asks for takes over at once.
	s.SetInterval(100 * time.Millisecond)
	for time.Now().Before(deadline) {
		if l := s.Latest(); l.GetSampledAt().AsTime().After(first.GetSampledAt().AsTime()) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no new sample after SetInterval(100ms)")
}

// BenchmarkSampler_Sample is the agent's cost of one sample on this host.
func BenchmarkSampler_Sample(b *testing.B) {
	s := New(Config{Paths: []string{b.TempDir()}})
	for b.Loop() {
		s.Sample(b.Context())
	}
}
