package disk

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/turbulence-sre/turbulence/agent/internal/procfs"
	"github.com/turbulence-sre/turbulence/agent/policy"
)

// target is the filesystem a disk fault aims at.
type target struct {
	path       string // as asked
	mountPoint string
	fsType     string
	space      Space
}

// resolveTarget finds the filesystem that holds path and refuses, before
// anything is written (invariant 6), a path that does not exist, a
// filesystem type the policy excludes and a read-only filesystem. field
// names the spec field in errors.
func resolveTarget(procRoot, field, path string, pol policy.Policy) (target, error) {
	real, err := filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		return target{}, fmt.Errorf("%s: %s does not exist on this host", field, path)
	}
	if err != nil {
		return target{}, fmt.Errorf("%s: %w", field, err)
	}
	mounts, err := procfs.ReadMountInfo(procRoot)
	if err != nil {
		return target{}, fmt.Errorf("%s: read the mount table: %w", field, err)
	}
	m, ok := procfs.MountOf(mounts, real)
	if !ok {
		return target{}, fmt.Errorf("%s: no mount holds %s", field, real)
	}
	// Invariant 4: the host's policy decides which filesystems are fair game.
	if err := pol.ExcludedFS(path, m.FSType); err != nil {
		return target{}, err
	}
	sp, ro, err := statSpace(real)
	if err != nil {
		return target{}, fmt.Errorf("%s: statfs %s: %w", field, real, err)
	}
	if ro || m.ReadOnly() {
		return target{}, fmt.Errorf("%s: %s is on a read-only filesystem (%s mounted at %s)", field, path, m.FSType, m.MountPoint)
	}
	return target{path: path, mountPoint: m.MountPoint, fsType: m.FSType, space: sp}, nil
}
