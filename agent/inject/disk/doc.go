// Package disk is the disk fault injectors: disk_fill (take space away
// from a filesystem) and disk_io (put an I/O load on it).
//
// Both target the filesystem that holds the spec's path, as the agent's
// mount table resolves it, and keep every file they make in one marked
// directory at the root of that mount (agent/sweep: a prefix, the fault ID
// and a marker file naming the owning agent), so that the start-up sweep
// finds and removes them after a crash with no journal (docs/design.md
// invariants 3 and 7). The directory's path is journaled before it is made
// (inject.RecordUndo), and both kinds have a guardian that removes it if
// the agent dies.
//
// The minimum free space of the local policy (disk.min_free_bytes and
// disk.min_free_percent of the filesystem, whichever is larger; invariant
// 4) is a floor no disk fault crosses:
//
//   - a fill that would end below it is refused with an error naming the
//     spec field, the floor and the policy field that sets it — or, with
//     the spec's cap, filled up to the floor and reported as capped;
//   - while a fill holds, a watcher gives space back (shrinks the fill)
//     whenever the host's own writes bring the free space below the
//     floor: the fill yields to the host's real work, never the reverse;
//   - an I/O load's scratch file is refused when it would cross it.
//
// Space is counted as unprivileged users see it (statfs f_bavail, df's
// Avail), against the filesystem's size (f_blocks, df's Size): the space
// reserved for root is never counted as free, because the services the
// guard protects rarely run as root. So "fill to 90 %" means "leave 10 %
// of the size available", whatever the reserve.
//
// Refusals happen before anything is written (invariant 6): a path that
// does not exist, a read-only filesystem, a filesystem type the policy
// excludes (disk.excluded_filesystems), a filesystem already at or below
// its floor.
//
// A fill is one file, allocated with fallocate(2) (no data written, so a
// fill of gigabytes takes milliseconds on extent filesystems), falling
// back to writing a non-zero pattern where fallocate is unsupported.
// Targets given as a share of the filesystem or as space to leave free
// are corrected after the allocation against statfs, so that metadata
// the filesystem spent on the file does not make the result miss.
//
// An I/O load runs in a worker process (agent/worker, kind "disk-io") with
// its own deadline; the injector measures what it achieved from the
// worker's /proc/<pid>/io system call counters (rchar/wchar, syscr/syscw)
// and marks the fault degraded when, after a settle time, the rate misses
// its target by more than 10 %. Direct I/O is probed before the worker
// starts: where the filesystem refuses O_DIRECT (EINVAL, as tmpfs on older
// kernels does) the load runs buffered and the status says so.
//
// Linux only: off Linux every Apply refuses with ErrUnsupported.
package disk
