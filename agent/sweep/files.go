package sweep

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/turbulence-sre/turbulence/agent/internal/procfs"
)

// The marks of a disk fault's files (invariant 3: the sweep must find
// them with no journal). Each disk fault keeps all its files in one
// directory at the root of the target filesystem's mount, named by one of
// these prefixes and the fault ID, holding a marker file that names the
// kind, the fault and the owning agent. Nothing without all three marks is
// ever removed.
const (
	FillDirPrefix = ".turbulence-fill-"
	IODirPrefix   = ".turbulence-io-"
	// MarkerName is the marker file inside a marked directory.
	MarkerName = ".turbulence-mark"
	// markerMagic is the first line of every marker.
	markerMagic = "turbulence-agent marked directory v1"
	// maxMarker bounds what is read of a marker: ours are a few lines.
	maxMarker = 8 << 10
)

// Mark is what a marker file says.
type Mark struct {
	// Prefix is FillDirPrefix or IODirPrefix.
	Prefix  string
	FaultID string
	// Owner identifies the agent that made the directory: its state
	// directory, absolute. A sweep removes only its own agent's marks, so
	// two agents on one host (dev mode, tests) never take each other's
	// files.
	Owner string
	// Agent is the owning agent's ID, for people reading the marker.
	Agent string
}

// MarkedDirName is the directory name for a fault: prefix, then the fault
// ID with anything but [A-Za-z0-9._-] replaced by '_', so that no ID can
// name a path outside the mount root.
func MarkedDirName(prefix, faultID string) string {
	safe := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, faultID)
	if len(safe) > 128 {
		safe = safe[:128]
	}
	return prefix + safe
}

// CreateMarkedDir makes the marked directory for m under parent (the mount
// point of the target filesystem) and makes the mark durable — marker
// fsynced, directory and parent fsynced — before it returns, so that a
// crash right after leaves something the sweep recognises. An existing
// directory of the same name is refused: it belongs to a fault that was
// not taken back.
func CreateMarkedDir(parent string, m Mark) (string, error) {
	dir := filepath.Join(parent, MarkedDirName(m.Prefix, m.FaultID))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("create the fault's directory: %w", err)
	}
	fail := func(err error) (string, error) {
		_ = os.RemoveAll(dir) // just made by us, and holds at most the marker
		return "", err
	}
	body := fmt.Sprintf("%s\nkind %s\nfault %s\nowner %s\nagent %s\n", markerMagic, m.Prefix, m.FaultID, m.Owner, m.Agent)
	f, err := os.OpenFile(filepath.Join(dir, MarkerName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fail(fmt.Errorf("write the marker: %w", err))
	}
	_, werr := f.WriteString(body)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fail(fmt.Errorf("write the marker: %w", err))
	}
	if err := errors.Join(syncDir(dir), syncDir(parent)); err != nil {
		return fail(fmt.Errorf("make the marked directory durable: %w", err))
	}
	return dir, nil
}

// readMark reads the marker in dir.
// Anyone who can write to a mount's root can plant a directory with a
// turbulence prefix, so the marker is read as untrusted: never through a
// symbolic link, never from anything but a regular file (a FIFO would block
// start-up for good), and at most maxMarker bytes of it.
func readMark(dir string) (Mark, error) {
	path := filepath.Join(dir, MarkerName)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return Mark{}, err
	}
	defer func() { _ = f.Close() }()
	if fi, err := f.Stat(); err != nil {
		return Mark{}, err
	} else if !fi.Mode().IsRegular() {
		return Mark{}, fmt.Errorf("%s is not a regular file", path)
	}
	var m Mark
	sc := bufio.NewScanner(io.LimitReader(f, maxMarker))
	for n := 0; sc.Scan(); n++ {
		line := sc.Text()
		if n == 0 {
			if line != markerMagic {
				return Mark{}, fmt.Errorf("%s is not a turbulence marker", filepath.Join(dir, MarkerName))
			}
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "kind":
			m.Prefix = v
		case "fault":
			m.FaultID = v
		case "owner":
			m.Owner = v
		case "agent":
			m.Agent = v
		}
	}
	if err := sc.Err(); err != nil {
		return Mark{}, err
	}
	if m.Prefix == "" || m.Owner == "" {
		return Mark{}, fmt.Errorf("%s is incomplete", filepath.Join(dir, MarkerName))
	}
	return m, nil
}

// ErrNotOurs means a directory does not carry the calling agent's marks;
// nothing in it was touched.
var ErrNotOurs = errors.New("not marked as this agent's")

// RemoveMarkedDir removes a marked directory of owner's: every regular
// file in it, then the marker, then the directory, then fsyncs the parent
// so that the space is given back durably. A directory that is already
// gone is success (idempotent). A directory with another owner, or no
// valid marker while it still holds files, is refused with ErrNotOurs.
// Anything but regular files inside (a subdirectory, a symlink) is left
// and reported: the agent never made them.
func RemoveMarkedDir(dir, owner string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() || !isMarkedName(filepath.Base(dir)) {
		return fmt.Errorf("%s: %w (not a directory with a turbulence prefix)", dir, ErrNotOurs)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	m, merr := readMark(dir)
	switch {
	case merr == nil && m.Owner != owner:
		return fmt.Errorf("%s: %w (owner %s)", dir, ErrNotOurs, m.Owner)
	case merr != nil && slices.ContainsFunc(entries, func(e fs.DirEntry) bool { return e.Name() != MarkerName }):
		// A crash between mkdir and the marker leaves it empty (or with a
		// torn marker): that is safe to remove; files without a mark are not.
		return fmt.Errorf("%s: %w (%w)", dir, ErrNotOurs, merr)
	}
	var errs []error
	for _, e := range entries {
		if e.Name() == MarkerName {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if !e.Type().IsRegular() {
			errs = append(errs, fmt.Errorf("%s is not a regular file; left in place", p))
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := os.Remove(filepath.Join(dir, MarkerName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

func isMarkedName(name string) bool {
	return strings.HasPrefix(name, FillDirPrefix) || strings.HasPrefix(name, IODirPrefix)
}

// syncDir fsyncs a directory, so that entries made or removed in it
// survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	return errors.Join(serr, cerr)
}

// pseudoFS are filesystem types that never hold a disk fault's files; the
// sweep does not look into them.
var pseudoFS = []string{"proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "debugfs", "tracefs",
	"securityfs", "pstore", "bpf", "configfs", "fusectl", "hugetlbfs", "autofs", "binfmt_misc", "nsfs", "efivarfs", "rpc_pipefs"}

// Files removes owner's directories marked with prefix from the root of
// every mount the process sees (<procRoot>/self/mountinfo), except those of
// the faults in keep, and returns those it removed. Fill files and I/O
// scratch files left by a crash are found this way without the journal
// (invariant 3). Directories with the prefix that carry another owner's
// mark, or whose mark cannot be read (another user's, say), are returned
// as foreign and never touched or counted as errors (invariant 7). It is
// idempotent.
func Files(procRoot, owner, prefix string, keep []string) (removed, foreign []string, err error) {
	mounts, err := procfs.ReadMountInfo(procRoot)
	if err != nil {
		return nil, nil, fmt.Errorf("list mounts: %w", err)
	}
	var errs []error
	seen := map[string]bool{}
	for _, m := range mounts {
		if seen[m.MountPoint] || slices.Contains(pseudoFS, m.FSType) {
			continue
		}
		seen[m.MountPoint] = true
		entries, err := os.ReadDir(m.MountPoint)
		if err != nil {
			continue // hidden, unreachable or not ours to read: nothing of ours can be there
		}
		for _, e := range entries {
			if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
				continue
			}
			dir := filepath.Join(m.MountPoint, e.Name())
			mk, err := readMark(dir)
			switch {
			case err == nil && mk.Owner != owner:
				foreign = append(foreign, fmt.Sprintf("%s (owner %s)", dir, mk.Owner))
				continue
			case err == nil && slices.Contains(keep, mk.FaultID):
				continue
			case err != nil:
				// Unreadable (another user's), or no marker yet: a crash
				// between mkdir and the marker leaves an empty directory,
				// which its own agent's journal names (Recover removes it),
				// or another agent is making it right now.
				foreign = append(foreign, fmt.Sprintf("%s (mark unreadable: %v)", dir, err))
				continue
			}
			if err := RemoveMarkedDir(dir, owner); err != nil {
				if errors.Is(err, ErrNotOurs) || errors.Is(err, fs.ErrPermission) {
					foreign = append(foreign, fmt.Sprintf("%s (%v)", dir, err))
				} else {
					errs = append(errs, err)
				}
				continue
			}
			removed = append(removed, dir)
		}
	}
	return removed, foreign, errors.Join(errs...)
}
