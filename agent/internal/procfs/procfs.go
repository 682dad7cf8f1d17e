// Package procfs reads the few /proc fields the agent needs about a
// process: its parent, state, start time and CPU time, its argv and its
// executable. Every function takes the proc root ("/proc" outside tests)
// so tests can point it at a fixture.
package procfs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Stat is the part of /proc/<pid>/stat the agent reads.
type Stat struct {
	// State is the one-letter state (R, S, D, Z…).
	State byte
	// PPID is the parent's process ID.
	PPID int
	// CPUTicks is utime+stime of every thread, in USER_HZ ticks.
	CPUTicks uint64
	// StartTicks is when the process started, in ticks after boot. With
	// the PID it names one process for the whole uptime: a reused PID has
	// a later start.
	StartTicks uint64
}

// UserHZ is the unit of the tick fields. It is 100 on every Linux ABI (the
// kernel converts to USER_HZ for user space).
const UserHZ = 100

// ReadStat reads <procRoot>/<pid>/stat.
func ReadStat(procRoot string, pid int) (Stat, error) {
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return Stat{}, err
	}
	st, err := ParseStat(data)
	if err != nil {
		return Stat{}, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	return st, nil
}

// ParseStat parses one stat line. The command name (field 2) may hold
// spaces and parentheses, so fields are counted from the last ')'.
func ParseStat(data []byte) (Stat, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("no command field")
	}
	// f[0] is field 3 (state); field n is f[n-3].
	f := bytes.Fields(data[i+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("only %d fields after the command", len(f))
	}
	num := func(field int) (uint64, error) {
		v, err := strconv.ParseUint(string(f[field-3]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("field %d: %w", field, err)
		}
		return v, nil
	}
	st := Stat{State: f[0][0]}
	ppid, err := num(4)
	if err != nil {
		return Stat{}, err
	}
	st.PPID = int(ppid)
	utime, err := num(14)
	if err != nil {
		return Stat{}, err
	}
	stime, err := num(15)
	if err != nil {
		return Stat{}, err
	}
	st.CPUTicks = utime + stime
	if st.StartTicks, err = num(22); err != nil {
		return Stat{}, err
	}
	return st, nil
}

// Cmdline returns the argv of pid; empty for kernel threads and zombies.
func Cmdline(procRoot string, pid int) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return nil, err
	}
	data = bytes.TrimSuffix(data, []byte{0})
	if len(data) == 0 {
		return nil, nil
	}
	return strings.Split(string(data), "\x00"), nil
}

// PIDs lists the process IDs under procRoot.
func PIDs(procRoot string) ([]int, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// CPUTimes is the host-wide CPU time from the first line of /proc/stat,
// in USER_HZ ticks summed over every CPU.
type CPUTimes struct {
	// Busy is all time not idle and not waiting for I/O.
	Busy uint64
	// Total is all time, busy or not.
	Total uint64
	// CPUs is how many per-CPU lines follow: the online CPUs.
	CPUs int
}

// ReadCPUTimes reads <procRoot>/stat.
func ReadCPUTimes(procRoot string) (CPUTimes, error) {
	data, err := os.ReadFile(filepath.Join(procRoot, "stat"))
	if err != nil {
		return CPUTimes{}, err
	}
	return ParseCPUTimes(data)
}

// ParseCPUTimes parses the contents of /proc/stat.
func ParseCPUTimes(data []byte) (CPUTimes, error) {
	var ct CPUTimes
	found := false
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		f := bytes.Fields(line)
		if len(f) == 0 || !bytes.HasPrefix(f[0], []byte("cpu")) {
			continue
		}
		if len(f[0]) > 3 {
			ct.CPUs++
			continue
		}
		// cpu user nice system idle iowait irq softirq steal [guest guest_nice]
		// guest time is already counted in user and nice.
		if len(f) < 9 {
			return CPUTimes{}, fmt.Errorf("/proc/stat cpu line has %d fields", len(f))
		}
		var v [8]uint64
		for i := range v {
			n, err := strconv.ParseUint(string(f[i+1]), 10, 64)
			if err != nil {
				return CPUTimes{}, fmt.Errorf("/proc/stat cpu field %d: %w", i+1, err)
			}
			v[i] = n
		}
		for _, n := range v {
			ct.Total += n
		}
		ct.Busy = ct.Total - v[3] - v[4]
		found = true
	}
	if !found {
		return CPUTimes{}, fmt.Errorf("/proc/stat has no cpu line")
	}
	return ct, nil
}
