package disk

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/turbulence-sre/turbulence/internal/testutil"
)

// mountTmpfs mounts a tmpfs of size bytes on a fresh directory, unmounted
// in t.Cleanup. Privileged.
func mountTmpfs(tb testing.TB, size uint64, flags uintptr) string {
	tb.Helper()
	testutil.RequirePrivileged(tb)
	dir := tb.TempDir()
	if err := unix.Mount("turbulence-test", dir, "tmpfs", flags, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		tb.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	tb.Cleanup(func() { unmount(tb, dir) })
	return dir
}

func unmount(tb testing.TB, dir string) {
	tb.Helper()
	if err := unix.Unmount(dir, 0); err != nil {
		// A lazy detach still frees the mount point for TempDir's cleanup.
		tb.Errorf("unmount %s: %v", dir, err)
		_ = unix.Unmount(dir, unix.MNT_DETACH)
	}
}

// mountExt4 makes an ext4 image of size bytes, attaches it to a free loop
// device through /dev/loop-control and LOOP_SET_FD, and mounts it on a
// fresh directory. Everything is taken down in t.Cleanup. Privileged.
func mountExt4(tb testing.TB, size int64) string {
	tb.Helper()
	testutil.RequirePrivileged(tb)
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		tb.Fatalf("mkfs.ext4 is needed to make the test filesystem: %v", err)
	}
	work := tb.TempDir()
	img := filepath.Join(work, "fs.img")
	f, err := os.Create(img)
	if err != nil {
		tb.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		tb.Fatal(err)
	}
	_ = f.Close()
	// No reserved blocks and no lazy init: the free space is then stable
	// from the first statfs, and the test's figures are the filesystem's.
	if out, err := exec.Command(mkfs, "-q", "-F", "-m", "0", "-E", "lazy_itable_init=0,lazy_journal_init=0", img).CombinedOutput(); err != nil {
		tb.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	loop := attachLoop(tb, img)
	mnt := filepath.Join(work, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := unix.Mount(loop, mnt, "ext4", 0, ""); err != nil {
		tb.Fatalf("mount %s (ext4) on %s: %v", loop, mnt, err)
	}
	tb.Cleanup(func() { unmount(tb, mnt) }) // runs before the loop detach
	return mnt
}

// attachLoop attaches img to a free loop device and returns the device's
// path; the device is detached in t.Cleanup.
func attachLoop(tb testing.TB, img string) string {
	tb.Helper()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		tb.Fatalf("open /dev/loop-control: %v", err)
	}
	defer func() { _ = ctl.Close() }()
	backing, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = backing.Close() }() // the loop device keeps its own reference
	for range 8 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			tb.Fatalf("LOOP_CTL_GET_FREE: %v", err)
		}
		path := fmt.Sprintf("/dev/loop%d", n)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			// A /dev without udev: make the node ourselves.
			path = filepath.Join(tb.TempDir(), fmt.Sprintf("loop%d", n))
			if err := unix.Mknod(path, unix.S_IFBLK|0o600, int(unix.Mkdev(7, uint32(n)))); err != nil {
				tb.Fatalf("mknod %s: %v", path, err)
			}
		}
		dev, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			tb.Fatalf("open %s: %v", path, err)
		}
		err = unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_SET_FD, int(backing.Fd()))
		if errors.Is(err, unix.EBUSY) {
			_ = dev.Close() // taken by someone else between the two calls
			continue
		}
		if err != nil {
			_ = dev.Close()
			tb.Fatalf("LOOP_SET_FD %s: %v", path, err)
		}
		tb.Cleanup(func() {
			if err := unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_CLR_FD, 0); err != nil {
				tb.Errorf("LOOP_CLR_FD %s: %v", path, err)
			}
			_ = dev.Close()
		})
		return path
	}
	tb.Fatal("no free loop device after 8 tries")
	return ""
}
