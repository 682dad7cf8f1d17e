package hostmetrics

import (
	"context"
	"math"
	"time"

	"github.com/shirou/gopsutil/v3/common"
	"github.com/shirou/gopsutil/v3/cpu"
	"github.com/shirou/gopsutil/v3/disk"
	"github.com/shirou/gopsutil/v3/load"
	"github.com/shirou/gopsutil/v3/mem"
	"github.com/shirou/gopsutil/v3/net"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/internal/limits"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// counters is what one reading holds: the gauges as read, and the
// cumulative counters the next reading turns into rates.
type counters struct {
	at time.Time
	// cpuBusy and cpuTotal are all CPUs' busy and total time, seconds.
	cpuBusy, cpuTotal float64
	cpuOK             bool
	mem               *mem.VirtualMemoryStat
	load              *load.AvgStat
	fs                []*turbulencev1.FilesystemUsage
	// disks and nics are cumulative byte counters by device name.
	disks map[string][2]uint64 // read, written
	nics  map[string][2]uint64 // received, sent
}

// disksRefresh is how many samples reuse one listing of the physical
// disks: listing them is a fifth of a sample's cost.
const disksRefresh = 60

// read takes one reading; errs names each source that failed.
func (s *Sampler) read(ctx context.Context) (counters, map[string]error) {
	// gopsutil takes its /proc and /sys roots from the context.
	ctx = context.WithValue(ctx, common.EnvKey, common.EnvMap{
		common.HostProcEnvKey: s.cfg.ProcRoot,
		common.HostSysEnvKey:  s.cfg.SysRoot,
	})
	var c counters
	errs := map[string]error{}
	if t, err := cpu.TimesWithContext(ctx, false); err != nil || len(t) == 0 {
		errs["cpu"] = err
	} else {
		c.cpuBusy, c.cpuTotal, c.cpuOK = busyTotal(t[0])
	}
	if m, err := mem.VirtualMemoryWithContext(ctx); err != nil || m.Total == 0 {
		// An unreadable meminfo gives gopsutil's zero total, no error.
		errs["memory"] = err
	} else {
		c.mem = m
	}
	if l, err := load.AvgWithContext(ctx); err != nil {
		errs["load"] = err
	} else {
		c.load = l
	}
	for _, p := range s.cfg.Paths[:min(len(s.cfg.Paths), limits.MaxWatchedFilesystems)] {
		u, err := disk.UsageWithContext(ctx, p)
		if err != nil {
			errs["filesystem "+p] = err
			continue
		}
		c.fs = append(c.fs, &turbulencev1.FilesystemUsage{Path: p, UsedPercent: u.UsedPercent, UsedBytes: u.Used, TotalBytes: u.Total})
	}
	if s.disksAge%disksRefresh == 0 {
		s.disks, s.disksErr = physicalDisks(s.cfg.SysRoot)
	}
	s.disksAge++
	if names, err := s.disks, s.disksErr; err != nil {
		errs["disks"] = err
	} else if len(names) > 0 {
		io, err := disk.IOCountersWithContext(ctx, names...)
		if err != nil {
			errs["disk io"] = err
		} else {
			c.disks = make(map[string][2]uint64, len(io))
			for name, st := range io {
				c.disks[name] = [2]uint64{st.ReadBytes, st.WriteBytes}
			}
		}
	} else {
		c.disks = map[string][2]uint64{} // no disk: no I/O, truly zero
	}
	if nics, err := net.IOCountersWithContext(ctx, true); err != nil {
		errs["network"] = err
	} else {
		c.nics = make(map[string][2]uint64, len(nics))
		for _, n := range nics {
			if skipInterface(n.Name) {
				continue
			}
			c.nics[n.Name] = [2]uint64{n.BytesRecv, n.BytesSent}
		}
	}
	return c, errs
}

// busyTotal returns busy and total CPU time. Guest time is already
// counted in user time by the kernel, so it is not added again; iowait
// is idle time (the CPU could have run something else).
func busyTotal(t cpu.TimesStat) (busy, total float64, ok bool) {
	total = t.User + t.Nice + t.System + t.Idle + t.Iowait + t.Irq + t.Softirq + t.Steal
	busy = total - t.Idle - t.Iowait
	return busy, total, total > 0
}

// skipInterface leaves out the loopback, whose traffic never leaves the
// host, and the ifb devices that mirror an interface's ingress for the
// network injector: their bytes are already counted on the interface.
func skipInterface(name string) bool {
	return name == "lo" || len(name) >= 3 && name[:3] == "ifb"
}

// metrics turns the current reading, and the previous one for rates,
// into a sample taken at now.
func (c counters) metrics(prev counters, now time.Time) *turbulencev1.HostMetrics {
	m := &turbulencev1.HostMetrics{SampledAt: timestamppb.New(now)}
	if c.mem != nil {
		m.MemoryUsedPercent = proto64(c.mem.UsedPercent)
		m.MemoryUsedBytes = &c.mem.Used
		m.MemoryTotalBytes = &c.mem.Total
	}
	if c.load != nil {
		m.Load1, m.Load5, m.Load15 = proto64(c.load.Load1), proto64(c.load.Load5), proto64(c.load.Load15)
	}
	m.Filesystems = c.fs
	for _, f := range c.fs {
		if m.DiskUsedPercent == nil || f.GetUsedPercent() > m.GetDiskUsedPercent() {
			m.DiskUsedPercent = proto64(f.GetUsedPercent())
		}
	}
	if prev.at.IsZero() {
		return m // no rates without a reading before
	}
	dt := now.Sub(prev.at)
	m.Interval = durationpb.New(dt)
	if c.cpuOK && prev.cpuOK {
		if dTotal := c.cpuTotal - prev.cpuTotal; dTotal > 0 {
			busy := 100 * (c.cpuBusy - prev.cpuBusy) / dTotal
			m.CpuPercent = proto64(math.Min(100, math.Max(0, busy)))
		}
	}
	secs := dt.Seconds()
	if r, w, ok := rates(c.disks, prev.disks, secs); ok {
		m.DiskReadBytesPerSecond, m.DiskWriteBytesPerSecond = proto64(r), proto64(w)
	}
	if rx, tx, ok := rates(c.nics, prev.nics, secs); ok {
		m.NetworkRxBytesPerSecond, m.NetworkTxBytesPerSecond = proto64(rx), proto64(tx)
	}
	return m
}

// rates sums the per-second growth of the counters of the devices present
// in both readings. A counter that went backwards makes the sum unknown.
func rates(cur, prev map[string][2]uint64, secs float64) (a, b float64, ok bool) {
	if cur == nil || prev == nil || secs <= 0 {
		return 0, 0, false
	}
	var da, db uint64
	for name, c := range cur {
		p, found := prev[name]
		if !found {
			continue // new since the last reading: counted from the next
		}
		if c[0] < p[0] || c[1] < p[1] {
			return 0, 0, false
		}
		da += c[0] - p[0]
		db += c[1] - p[1]
	}
	return float64(da) / secs, float64(db) / secs, true
}

func proto64(v float64) *float64 { return &v }
