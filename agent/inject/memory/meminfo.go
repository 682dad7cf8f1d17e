package memory

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// meminfo is the part of /proc/meminfo the injector reads, in bytes.
type meminfo struct {
	Total, Available uint64
}

// readMeminfo reads MemTotal and MemAvailable from <procRoot>/meminfo.
// MemAvailable is the kernel's own estimate of what can be allocated
// without swapping (free memory plus reclaimable caches); MemFree would
// refuse faults that the page cache could easily make room for.
func readMeminfo(procRoot string) (meminfo, error) {
	path := filepath.Join(procRoot, "meminfo")
	data, err := os.ReadFile(path)
	if err != nil {
		return meminfo{}, fmt.Errorf("read %s: %w", path, err)
	}
	var (
		mi         meminfo
		total, ava bool
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "MemTotal" && key != "MemAvailable") {
			continue
		}
		n, err := parseKB(rest)
		if err != nil {
			return meminfo{}, fmt.Errorf("%s: %s: %w", path, key, err)
		}
		if key == "MemTotal" {
			mi.Total, total = n, true
		} else {
			mi.Available, ava = n, true
		}
	}
	switch {
	case !total:
		return meminfo{}, fmt.Errorf("%s has no MemTotal", path)
	case !ava:
		return meminfo{}, fmt.Errorf("%s has no MemAvailable (Linux 3.14 or later is required)", path)
	}
	return mi, nil
}

// parseKB parses "  16318496 kB" into bytes.
func parseKB(s string) (uint64, error) {
	num, unit, _ := strings.Cut(strings.TrimSpace(s), " ")
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", num)
	}
	if strings.TrimSpace(unit) != "kB" {
		return 0, fmt.Errorf("unit %q, want kB", unit)
	}
	return n << 10, nil
}

// residentBytes reads the resident size of pid from
// <procRoot>/<pid>/statm: its second field, in pages.
func residentBytes(procRoot string, pid int) (uint64, error) {
	path := filepath.Join(procRoot, strconv.Itoa(pid), "statm")
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	f := bytes.Fields(data)
	if len(f) < 2 {
		return 0, fmt.Errorf("%s: want at least 2 fields, got %q", path, data)
	}
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: resident pages: %w", path, err)
	}
	return pages * uint64(os.Getpagesize()), nil
}

// iec renders n bytes with binary units, for error messages: "1.5 GiB".
func iec(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTPE"[exp]) + "iB"
}
