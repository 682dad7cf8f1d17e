package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// prepChunk is the write size used to lay down the scratch file.
const prepChunk = 1 << 20

// maxLag is how far behind its schedule a paced goroutine may fall before
// the schedule restarts from now: a stall (the storage was busy) must not
// be followed by a burst that would overshoot the target.
const maxLag = 100 * time.Millisecond

// RunDiskIO lays down the scratch file, signals it is ready, and runs the
// paced load until ctx is done or spec.Deadline is reached.
func RunDiskIO(ctx context.Context, spec DiskIOSpec) error {
	// Invariant 1, defence in depth: the worker ends itself at its deadline.
	ctx, cancel := context.WithDeadline(ctx, spec.Deadline)
	defer cancel()
	flags := unix.O_RDWR | unix.O_CLOEXEC
	if spec.Direct {
		flags |= unix.O_DIRECT
	}
	if err := prepare(ctx, spec, flags); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	ready, err := os.OpenFile(filepath.Join(filepath.Dir(spec.File), DiskIOReadyName), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("signal ready: %w", err)
	}
	_ = ready.Close() // its existence is the signal

	perWorker := spec.OpsPerSecond() / float64(spec.Workers)
	errs := make([]error, spec.Workers)
	var wg sync.WaitGroup
	for i := range int(spec.Workers) {
		wg.Go(func() { errs[i] = ioLoop(ctx, spec, flags, perWorker, uint64(i)) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// alignedBuffer returns n bytes of page-aligned memory (O_DIRECT needs
// aligned buffers) filled with a non-zero pattern.
func alignedBuffer(n int) ([]byte, error) {
	buf, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("map an I/O buffer of %d bytes: %w", n, err)
	}
	for i := range buf {
		buf[i] = byte(i*131 + 7)
	}
	return buf, nil
}

// prepare writes the whole scratch file once, so that reads hit allocated
// blocks with data (a hole or an unwritten extent is answered without any
// I/O), then syncs it.
func prepare(ctx context.Context, spec DiskIOSpec, flags int) error {
	fd, err := unix.Open(spec.File, flags|unix.O_CREAT, 0o600)
	if err != nil {
		return fmt.Errorf("open scratch file %s: %w", spec.File, err)
	}
	defer func() { _ = unix.Close(fd) }()
	chunk := prepChunk / int(spec.BlockSize) * int(spec.BlockSize)
	chunk = max(chunk, int(spec.BlockSize))
	buf, err := alignedBuffer(chunk)
	if err != nil {
		return err
	}
	defer func() { _ = unix.Munmap(buf) }()
	for off := uint64(0); off < spec.FileBytes; off += uint64(chunk) {
		if ctx.Err() != nil {
			return nil
		}
		n := min(uint64(chunk), spec.FileBytes-off)
		if _, err := unix.Pwrite(fd, buf[:n], int64(off)); err != nil {
			return fmt.Errorf("lay down scratch file at %d: %w", off, err)
		}
	}
	if err := unix.Fsync(fd); err != nil {
		return fmt.Errorf("sync scratch file: %w", err)
	}
	return nil
}

// ioLoop is one goroutine of the load: operations at random block-aligned
// offsets, paced to opsPerSec (0: unpaced). In mixed mode reads and
// writes alternate.
func ioLoop(ctx context.Context, spec DiskIOSpec, flags int, opsPerSec float64, seed uint64) error {
	fd, err := unix.Open(spec.File, flags, 0)
	if err != nil {
		return fmt.Errorf("open scratch file %s: %w", spec.File, err)
	}
	defer func() { _ = unix.Close(fd) }()
	bs := int(spec.BlockSize)
	buf, err := alignedBuffer(bs)
	if err != nil {
		return err
	}
	defer func() { _ = unix.Munmap(buf) }()
	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	blocks := spec.FileBytes / uint64(bs)
	var period time.Duration
	if opsPerSec > 0 {
		period = time.Duration(float64(time.Second) / opsPerSec)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	next := time.Now()
	for n := uint64(0); ; n++ {
		if ctx.Err() != nil {
			return nil
		}
		if period > 0 {
			now := time.Now()
			switch {
			case now.Before(next):
				timer.Reset(next.Sub(now))
				select {
				case <-ctx.Done():
					return nil
				case <-timer.C:
				}
			case now.Sub(next) > maxLag:
				next = now
			}
			next = next.Add(period)
		}
		off := int64(rng.Uint64N(blocks)) * int64(bs)
		write := spec.Mode == DiskIOWrite || spec.Mode == DiskIOMixed && n%2 == 1
		var err error
		if write {
			_, err = unix.Pwrite(fd, buf, off)
		} else {
			_, err = unix.Pread(fd, buf, off)
		}
		if err != nil {
			op := "read"
			if write {
				op = "write"
			}
			return fmt.Errorf("%s %d bytes at %d: %w", op, bs, off, err)
		}
	}
}
