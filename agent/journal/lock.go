package journal

import (
	"errors"
	"os"
	"syscall"
)

// ErrLocked means another process holds the journal: another agent with
// the same state directory, or an agent still running when `cleanup` ran.
var ErrLocked = errors.New("in use by another process (is an agent with this state directory running?)")

// lockFile takes an exclusive advisory lock on f without waiting. The lock
// lives as long as the open file, so it dies with the process.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return ErrLocked
	}
	return err
}
