package disk

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// statSpace returns the space of the filesystem that holds path and
// whether it is mounted read-only.
func statSpace(path string) (Space, bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return Space{}, false, err
	}
	frag := uint64(st.Frsize)
	if frag == 0 {
		frag = uint64(st.Bsize)
	}
	return Space{Size: st.Blocks * frag, Avail: st.Bavail * frag, Block: uint64(st.Bsize)}, st.Flags&unix.ST_RDONLY != 0, nil
}

// errNoFallocate means the filesystem does not implement fallocate(2).
var errNoFallocate = errors.New("fallocate is not supported")

// allocate makes f at least size bytes long with its blocks allocated,
// without writing data (mode 0: the file size grows with it).
func allocate(f *os.File, size uint64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, int64(size))
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return errNoFallocate
	}
	return err
}

// allocatedBytes is the space f's blocks take on the filesystem.
func allocatedBytes(f *os.File) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	return uint64(st.Blocks) * 512, nil
}

// probeDirect reports whether direct I/O works on the file at path with
// blocks of bs bytes: it creates the file with O_DIRECT and writes one
// aligned block. EINVAL from either (tmpfs on older kernels, a block size
// below the device's logical block) means no; other errors are errors.
func probeDirect(path string, bs int) (bool, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_DIRECT|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.EINVAL) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer func() { _ = unix.Close(fd) }()
	// mmap'd memory is page aligned, as O_DIRECT wants its buffers.
	buf, err := unix.Mmap(-1, 0, bs, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return false, err
	}
	defer func() { _ = unix.Munmap(buf) }()
	_, err = unix.Pwrite(fd, buf, 0)
	if errors.Is(err, unix.EINVAL) {
		return false, nil
	}
	return err == nil, err
}
