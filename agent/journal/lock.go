package journal

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// ErrLocked means another process holds the journal: another agent with
// the same state directory, or an agent still running when `cleanup` ran.
var ErrLocked = errors.New("in use by another process (is an agent with this state directory running?)")

// lockFile takes an exclusive advisory lock on f without waiting. The lock
// lives as long as the open file, so it dies with the process.
func lockFile(f *os.File) error {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return ErrLocked
	}
	return err
}
