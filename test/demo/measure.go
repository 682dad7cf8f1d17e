package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// measurement is what the demo saw while the fault ran.
type measurement struct {
	pid        int
	samples    int
	cpus       int
	workerMean float64 // % of one core
	hostMean   float64 // % of all CPUs
	// reportedMean is the mean of what the agent said it achieved, over
	// the same samples (its last report alone said little: issue 17).
	reportedMean float64
	// othersCores is the CPU time every other process used during the
	// hold, in CPUs: the host's busy time (/proc/stat) minus the
	// worker's own (/proc/<pid>/stat), over the wall time.
	othersCores float64
	final       *turbulencev1.Fault
}

// contended reports whether other processes used enough CPU during the
// hold to distort the figure: a quarter of the CPUs left once the fault's
// own core is taken, and never less than a quarter of one CPU. On a
// 2-CPU host a quarter of a CPU of other work is enough for the
// scheduler to take time from the worker now and then.
func (m measurement) contended() bool {
	return m.othersCores >= max(0.25, 0.25*float64(m.cpus-1))
}

// measure samples the worker's CPU time and the host's /proc/stat once a
// second until the controller records the fault as ended.
func (d *demo) measure(ctx context.Context, faultID string) (measurement, error) {
	var m measurement
	get := func() (*turbulencev1.Fault, error) {
		out, err := d.ctl(ctx, "fault", "show", faultID, "-o", "json")
		if err != nil {
			return nil, err
		}
		var f turbulencev1.Fault
		return &f, protojson.Unmarshal(out, &f)
	}
	// The worker's PID reaches the controller with the agent's answer.
	if err := waitFor(ctx, 10*time.Second, "fault to become active", func() error {
		f, err := get()
		if err != nil {
			return err
		}
		if f.GetState() != turbulencev1.FaultState_FAULT_STATE_ACTIVE || f.GetStatus().GetWorkerPid() == 0 {
			return fmt.Errorf("fault is %s", f.GetState())
		}
		m.pid = int(f.GetStatus().GetWorkerPid())
		return nil
	}); err != nil {
		return m, err
	}
	fmt.Printf("  worker process %d is running: %s\n", m.pid, cmdline(m.pid))

	prevWorker, _ := procCPUTicks(m.pid)
	prevHost, _ := hostTicks()
	prevAt := time.Now()
	var workerSum, hostSum, reportedSum float64
	// Totals over the hold, in clock ticks, for the contention line.
	var workerTicks, hostBusy, hostTotal uint64
	shown := false
	for {
		select {
		case <-ctx.Done():
			return m, ctx.Err()
		case <-time.After(time.Second):
		}
		f, err := get()
		if err != nil {
			return m, err
		}
		if f.GetState() == turbulencev1.FaultState_FAULT_STATE_REVERTED || f.GetState() == turbulencev1.FaultState_FAULT_STATE_FAILED {
			m.final = f
			break
		}
		reported := f.GetStatus().GetMeasuredCpuPercent()
		w, werr := procCPUTicks(m.pid)
		h, herr := hostTicks()
		elapsed := time.Since(prevAt).Seconds()
		prevAt = time.Now()
		if werr != nil || herr != nil {
			continue // the worker ended between two samples
		}
		workerPct := float64(w-prevWorker) / clockTicks / elapsed * 100
		hostPct := h.busyPercent(prevHost)
		busy, total := h.delta(prevHost)
		workerTicks += w - prevWorker
		hostBusy += busy
		hostTotal += total
		m.cpus = len(h.perCPU)
		prevWorker, prevHost = w, h
		m.samples++
		workerSum += workerPct
		hostSum += hostPct
		reportedSum += reported
		left := time.Until(f.GetDeadline().AsTime()).Round(time.Second)
		fmt.Printf("  t-%-4s worker %5.1f %% of one core | host %5.1f %% busy | agent reports %5.1f %%\n",
			left, workerPct, hostPct, reported)
		if !shown && m.samples == 3 {
			shown = true
			if err := d.show(ctx, "fault", "show", faultID); err != nil {
				return m, err
			}
		}
	}
	if m.samples > 0 {
		m.workerMean = workerSum / float64(m.samples)
		m.hostMean = hostSum / float64(m.samples)
		m.reportedMean = reportedSum / float64(m.samples)
	}
	if hostTotal > 0 && m.cpus > 0 && hostBusy > workerTicks {
		// hostTotal counts every CPU's ticks: divided by the CPUs it
		// is the wall time in ticks.
		m.othersCores = float64(hostBusy-workerTicks) / (float64(hostTotal) / float64(m.cpus))
	}
	return m, nil
}

// clockTicks is USER_HZ, the unit of /proc CPU times: 100 on Linux.
const clockTicks = 100

// procCPUTicks returns utime+stime of a process from /proc/<pid>/stat.
func procCPUTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseUint(fields[11], 10, 64)
	stime, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return utime + stime, nil
}

type cpuTicks struct{ busy, total uint64 }

type hostSample struct{ perCPU []cpuTicks }

// hostTicks reads the per-CPU lines of /proc/stat.
func hostTicks() (hostSample, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return hostSample{}, err
	}
	var h hostSample
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		var t cpuTicks
		for i, v := range f[1:] {
			n, _ := strconv.ParseUint(v, 10, 64)
			t.total += n
			if i != 3 && i != 4 { // idle and iowait
				t.busy += n
			}
		}
		h.perCPU = append(h.perCPU, t)
	}
	return h, nil
}

// delta returns the busy and total ticks of all CPUs since prev.
func (h hostSample) delta(prev hostSample) (busy, total uint64) {
	for i, c := range h.perCPU {
		if i < len(prev.perCPU) {
			busy += c.busy - prev.perCPU[i].busy
			total += c.total - prev.perCPU[i].total
		}
	}
	return busy, total
}

// busyPercent is the share of all CPUs that was busy since prev.
func (h hostSample) busyPercent(prev hostSample) float64 {
	busy, total := h.delta(prev)
	if total == 0 {
		return 0
	}
	return float64(busy) / float64(total) * 100
}

func cmdline(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie is dead for our purposes only once reaped; report it alive.
	return len(b) > 0
}
