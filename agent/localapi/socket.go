package localapi

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// staleProbeTimeout bounds the dial that tells a live socket from a stale
// one.
const staleProbeTimeout = time.Second

// listen binds the socket at path (layers 1 and 2 of the package doc).
func listen(path string) (*net.UnixListener, error) {
	if err := prepareDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	lis, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	// Run removes the file itself, after its handlers are done.
	lis.SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		_ = lis.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("chmod 0600 %s: %w", path, err)
	}
	return lis, nil
}

// prepareDir creates dir with mode 0700, or checks that an existing dir is
// owned by this process's user and closed to everyone else. It never
// loosens nor tightens a directory it did not create.
func prepareDir(dir string) error {
	err := os.Mkdir(dir, 0o700)
	switch {
	case err == nil:
		// Mkdir's mode went through the umask; say exactly what we mean.
		return os.Chmod(dir, 0o700)
	case errors.Is(err, fs.ErrNotExist):
		// The parent is missing too: create it as systemd would /run's.
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return err
		}
		return prepareDir(dir)
	case !errors.Is(err, fs.ErrExist):
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if uid, ok := ownerUID(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("directory %s is owned by uid %d, not by the agent's uid %d", dir, uid, os.Geteuid())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("directory %s has mode %#o; the local socket needs a directory only its owner can enter (0700)", dir, perm)
	}
	return nil
}

// removeStale removes a socket file that nobody serves any more (an agent
// that was killed). A live socket means another agent runs: that is an
// error, not something to take over. A file that is not a socket is never
// removed.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket; not removing it", path)
	}
	conn, err := net.DialTimeout("unix", path, staleProbeTimeout)
	if err == nil {
		_ = conn.Close()
		return fmt.Errorf("another agent is serving %s", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("probe %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}
