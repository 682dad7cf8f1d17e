package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Mount is one line of /proc/<pid>/mountinfo, the fields the disk faults
// and the sweep read.
type Mount struct {
	// ID is the mount ID (field 1); later mounts have higher IDs only by
	// accident, so order is taken from the file instead.
	ID int
	// Root is the path inside the filesystem that is mounted (field 4):
	// "/" for a whole filesystem, a subdirectory for a bind mount.
	Root string
	// MountPoint is where it is mounted, in the reader's namespace.
	MountPoint string
	// Options are the per-mount options (field 6), e.g. "rw,relatime".
	Options string
	// FSType and Source are the filesystem type and its source device.
	FSType string
	Source string
}

// ReadOnly reports whether the mount itself is read-only ("ro" in its
// per-mount options).
func (m Mount) ReadOnly() bool {
	for o := range strings.SplitSeq(m.Options, ",") {
		if o == "ro" {
			return true
		}
	}
	return false
}

// ReadMountInfo reads <procRoot>/self/mountinfo: the mounts this process
// sees, in the order the kernel lists them (a mount listed later on the
// same mount point hides the earlier one).
func ReadMountInfo(procRoot string) ([]Mount, error) {
	data, err := os.ReadFile(filepath.Join(procRoot, "self", "mountinfo"))
	if err != nil {
		return nil, err
	}
	return ParseMountInfo(data)
}

// ParseMountInfo parses a mountinfo file (proc(5)):
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// The optional fields end at the "-" separator. Paths are octal-escaped
// (\040 for a space), and unescaped here.
func ParseMountInfo(data []byte) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 6 || sep < 0 || sep+2 >= len(f) {
			return nil, fmt.Errorf("mountinfo line %d: %d fields, no '-' separator followed by type and source", n, len(f))
		}
		id, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: mount ID %q: %w", n, f[0], err)
		}
		out = append(out, Mount{
			ID:         id,
			Root:       unescapeOctal(f[3]),
			MountPoint: unescapeOctal(f[4]),
			Options:    f[5],
			FSType:     f[sep+1],
			Source:     unescapeOctal(f[sep+2]),
		})
	}
	return out, sc.Err()
}

// unescapeOctal undoes the kernel's escaping of space, tab, newline and
// backslash as \ooo in mountinfo paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// MountOf returns the mount that holds path, which must be absolute and
// free of symbolic links (filepath.EvalSymlinks): the mount with the
// longest mount point that is path or one of its parents, the last one
// listed when several share that mount point (it hides the others).
func MountOf(mounts []Mount, path string) (Mount, bool) {
	var best Mount
	found := false
	for _, m := range mounts {
		if !within(path, m.MountPoint) {
			continue
		}
		if !found || len(m.MountPoint) >= len(best.MountPoint) {
			best, found = m, true
		}
	}
	return best, found
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}
