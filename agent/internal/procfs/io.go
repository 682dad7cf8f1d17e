package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// IO is the part of /proc/<pid>/io the disk I/O fault measures: the bytes
// and system calls of every thread of the process. The character counts
// are what the process asked of read(2)/write(2) and friends, whatever
// the page cache did with it, so that a load on tmpfs (where no block
// device sees a byte) is measured like one on a disk.
type IO struct {
	RChar, WChar uint64 // bytes read and written by system calls
	SyscR, SyscW uint64 // read and write system calls
}

// ReadIO reads <procRoot>/<pid>/io. Reading another process's file needs
// the right to ptrace it: root, or the same user.
func ReadIO(procRoot string, pid int) (IO, error) {
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "io"))
	if err != nil {
		return IO{}, err
	}
	return ParseIO(data)
}

// ParseIO parses the "name: value" lines of an io file.
func ParseIO(data []byte) (IO, error) {
	var io IO
	fields := map[string]*uint64{"rchar": &io.RChar, "wchar": &io.WChar, "syscr": &io.SyscR, "syscw": &io.SyscW}
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, val, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		p, want := fields[string(name)]
		if !want {
			continue
		}
		v, err := strconv.ParseUint(string(bytes.TrimSpace(val)), 10, 64)
		if err != nil {
			return IO{}, fmt.Errorf("parse io %s: %w", name, err)
		}
		*p = v
		seen++
	}
	if seen != len(fields) {
		return IO{}, fmt.Errorf("parse io: %d of the %d fields rchar, wchar, syscr, syscw found", seen, len(fields))
	}
	return io, sc.Err()
}
