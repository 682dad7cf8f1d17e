package worker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// RunMemory holds spec.Bytes resident until ctx is done or spec.Deadline
// is reached, whichever comes first, then releases the memory. A refused
// mlock is reported on stderr and is not an error.
func RunMemory(ctx context.Context, spec MemorySpec, stderr io.Writer) error {
	// Invariant 1, defence in depth: the worker ends itself at its deadline.
	ctx, cancel := context.WithDeadline(ctx, spec.Deadline)
	defer cancel()
	// First, before a single page is ours: from here on the OOM killer
	// prefers this process to the agent.
	if err := writeOOMScoreAdj(OOMScoreAdj); err != nil {
		return err
	}
	h, err := newHolder(spec, stderr)
	if err != nil {
		return err
	}
	defer h.close()
	base, err := h.resident()
	if err != nil {
		return err
	}
	start := time.Now()
	tick := time.NewTicker(memoryTick)
	defer tick.Stop()
	for {
		want := rampTarget(base, spec.Bytes, spec.Ramp, time.Since(start))
		if err := h.adjust(ctx, want); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil // the deferred close releases the memory
		case <-tick.C:
		}
	}
}

// holder owns the mapping and knows how much of it is touched.
type holder struct {
	mem    []byte
	page   uint64
	statm  *os.File
	buf    [128]byte // statm is one short line; reading it allocates nothing
	stderr io.Writer
	// mlock: lock pages as they are touched; cleared when the kernel
	// refuses. locked: some pages may be locked and must be unlocked
	// before they are released.
	mlock, locked bool

	// touched is the length of the prefix of mem in use.
	touched uint64
	// noPopulate: the kernel has no MADV_POPULATE_WRITE; touch faults
	// pages in by writing to them.
	noPopulate bool
	// expected is the resident size right after the last correction; a
	// reading well below it means the kernel took pages back.
	expected uint64
}

func newHolder(spec MemorySpec, stderr io.Writer) (*holder, error) {
	page := uint64(unix.Getpagesize())
	size := roundUp(spec.Bytes, page)
	statm, err := os.Open("/proc/self/statm")
	if err != nil {
		return nil, fmt.Errorf("open /proc/self/statm to measure the resident size: %w", err)
	}
	mem, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		_ = statm.Close()
		return nil, fmt.Errorf("map %d bytes of anonymous memory: %w", size, err)
	}
	// Huge pages would make the resident size move in 2 MiB steps and
	// make a release of part of one split it; precision needs base pages.
	// EINVAL only means a kernel without THP, where base pages are all
	// there is.
	if err := unix.Madvise(mem, unix.MADV_NOHUGEPAGE); err != nil && !errors.Is(err, unix.EINVAL) {
		_ = unix.Munmap(mem)
		_ = statm.Close()
		return nil, fmt.Errorf("madvise(MADV_NOHUGEPAGE): %w", err)
	}
	return &holder{mem: mem, page: page, statm: statm, stderr: stderr, mlock: spec.Mlock, locked: spec.Mlock}, nil
}

// close releases the memory. munmap frees the pages at once, without
// waiting for the process to be reaped.
func (h *holder) close() {
	if h.locked {
		_ = unix.Munlock(h.mem)
	}
	_ = unix.Munmap(h.mem)
	_ = h.statm.Close()
}

// resident returns the resident size of this process in bytes.
func (h *holder) resident() (uint64, error) {
	n, err := h.statm.ReadAt(h.buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("read /proc/self/statm: %w", err)
	}
	pages, err := parseStatmResident(h.buf[:n])
	if err != nil {
		return 0, err
	}
	return pages * h.page, nil
}

// adjust makes one correction towards want.
func (h *holder) adjust(ctx context.Context, want uint64) error {
	rss, err := h.resident()
	if err != nil {
		return err
	}
	if h.touched > 0 && rss+deadBand(want, h.page) < h.expected {
		// The kernel reclaimed (swapped out, compacted away) some of the
		// held pages: bring them back before touching new ones, or the
		// mapping would run out while the target is still unmet.
		if err := h.touch(ctx, 0, h.touched); err != nil {
			return err
		}
		if rss, err = h.resident(); err != nil {
			return err
		}
	}
	size := uint64(len(h.mem))
	switch d := correction(rss, want, h.touched, size, h.page); {
	case d > 0:
		from, to := h.touched, h.touched+uint64(d)
		if err := h.touch(ctx, from, to); err != nil {
			return err
		}
		h.touched = to
		if err := h.lock(from, to); err != nil {
			return err
		}
	case d < 0:
		from, to := h.touched-uint64(-d), h.touched
		if h.locked {
			// MADV_DONTNEED refuses locked pages.
			if err := unix.Munlock(h.mem[from:to]); err != nil {
				return fmt.Errorf("munlock %d bytes: %w", to-from, err)
			}
		}
		if err := unix.Madvise(h.mem[from:to], unix.MADV_DONTNEED); err != nil {
			return fmt.Errorf("release %d bytes (MADV_DONTNEED): %w", to-from, err)
		}
		h.touched = from
	default:
		h.expected = rss
		return nil
	}
	if h.expected, err = h.resident(); err != nil {
		return err
	}
	return nil
}

// touch writes one word to every page of mem[from:to]. The word differs
// from page to page so that no same-filled-page or zero-page optimisation
// (zswap, KSM) can fold the pages back together. It stops early, without
// error, when ctx is done.
//
// Each chunk is first populated with MADV_POPULATE_WRITE (Linux 5.14):
// one system call faults its pages in, measured at 2–4 times faster than
// a page fault per page, so a large fault reaches its size sooner. The
// words are written after, without faults. Where the kernel lacks it
// (EINVAL), the writes fault the pages in themselves.
func (h *holder) touch(ctx context.Context, from, to uint64) error {
	for chunk := from; chunk < to; chunk += touchChunk {
		if ctx.Err() != nil {
			return nil
		}
		end := min(chunk+touchChunk, to)
		// Other errors (ENOMEM and the like) are left to the writes below:
		// they fault the pages in, or the OOM killer answers, as without.
		if !h.noPopulate && errors.Is(unix.Madvise(h.mem[chunk:end], unix.MADV_POPULATE_WRITE), unix.EINVAL) {
			h.noPopulate = true
		}
		for off := chunk; off < end; off += h.page {
			binary.NativeEndian.PutUint64(h.mem[off:], off|1)
		}
	}
	return nil
}

// lock mlocks mem[from:to] when asked. The limits on locked memory
// (RLIMIT_MEMLOCK without CAP_IPC_LOCK: EPERM or ENOMEM; EAGAIN when the
// kernel cannot lock now) are reported once and the worker goes on with
// unlocked memory: the fault still holds its size, only without the
// guarantee against swap.
func (h *holder) lock(from, to uint64) error {
	if !h.mlock || from == to {
		return nil
	}
	err := unix.Mlock(h.mem[from:to])
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.ENOMEM), errors.Is(err, unix.EAGAIN):
		h.mlock = false
		fmt.Fprintf(h.stderr, "turbulence worker memory: mlock refused (%v): holding the memory unlocked\n", err)
		return nil
	default:
		return fmt.Errorf("mlock %d bytes: %w", to-from, err)
	}
}

// parseStatmResident returns the second field of a statm line: resident
// pages.
func parseStatmResident(line []byte) (uint64, error) {
	fields := bytes.Fields(line)
	if len(fields) < 2 {
		return 0, fmt.Errorf("parse statm %q: want at least 2 fields", line)
	}
	pages, err := strconv.ParseUint(string(fields[1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse statm resident pages: %w", err)
	}
	return pages, nil
}

// writeOOMScoreAdj sets this process's oom_score_adj. Raising it needs no
// privilege; failing to is fatal, since a memory worker the OOM killer
// does not prefer could cost the host the agent instead.
func writeOOMScoreAdj(v int) error {
	f, err := os.OpenFile("/proc/self/oom_score_adj", os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("set oom_score_adj %d: %w", v, err)
	}
	_, werr := f.WriteString(strconv.Itoa(v))
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("set oom_score_adj %d: %w", v, err)
	}
	return nil
}
