package guardian

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// dirName is the directory of fault lock files inside the state directory.
const dirName = "guard"

// Outcome is how a guarded fault ended, written under its lock by whoever
// took it back.
type Outcome struct {
	// Reason is the end reason reported to the controller.
	Reason string `json:"reason"`
	// At is when the fault was taken back.
	At time.Time `json:"at"`
}

// LockPath is the lock file of fault id in stateDir.
func LockPath(stateDir, id string) string {
	return filepath.Join(stateDir, dirName, fileName(id))
}

// fileName is a file name for any fault ID: its safe characters, then a
// hash, so that two IDs never share a name.
func fileName(id string) string {
	safe := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, id)
	if len(safe) > 64 {
		safe = safe[:64]
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(id)) // a hash never fails to write
	return fmt.Sprintf("%s.%08x", safe, h.Sum32())
}

// Lock is a held fault lock.
type Lock struct {
	f *os.File
}

// LockFault takes fault id's lock in stateDir, creating its file, and waits
// while someone else (the agent or the guardian) holds it.
func LockFault(stateDir, id string) (*Lock, error) {
	f, err := openLockFile(stateDir, id)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		_ = f.Close() // the lock error is the one that matters
		return nil, fmt.Errorf("lock fault %s: %w", id, err)
	}
	return &Lock{f: f}, nil
}

// TryLockFault takes fault id's lock like LockFault, but waits at most
// patience for it. ok is false, and the lock is not held, when someone
// held it all that time.
func TryLockFault(stateDir, id string, patience time.Duration) (l *Lock, ok bool, err error) {
	f, err := openLockFile(stateDir, id)
	if err != nil {
		return nil, false, fmt.Errorf("open guardian lock of fault %s: %w", id, err)
	}
	giveUp := time.Now().Add(patience)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return &Lock{f: f}, true, nil
		case errors.Is(err, syscall.EINTR):
			continue
		case !errors.Is(err, syscall.EWOULDBLOCK):
			_ = f.Close() // the lock error is the one that matters
			return nil, false, fmt.Errorf("lock fault %s: %w", id, err)
		case !time.Now().Before(giveUp):
			_ = f.Close() // nothing held
			return nil, false, nil
		}
		// flock has no timeout; a poll this coarse costs nothing and
		// bounds the wait. The guardian is a process of its own.
		time.Sleep(lockPoll)
	}
}

// lockPoll is how often TryLockFault asks again for a held lock.
const lockPoll = 10 * time.Millisecond

// unlockedOutcome opens fault id's lock file without taking its lock, for
// the guardian of a fault whose lock holder is stuck: Outcome and
// SetOutcome work on it, Unlock closes it.
func unlockedOutcome(stateDir, id string) (*Lock, error) {
	f, err := openLockFile(stateDir, id)
	if err != nil {
		return nil, err
	}
	return &Lock{f: f}, nil
}

// openLockFile opens fault id's lock file, creating it and its directory.
func openLockFile(stateDir, id string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Join(stateDir, dirName), 0o700); err != nil {
		return nil, fmt.Errorf("guardian lock directory: %w", err)
	}
	f, err := os.OpenFile(LockPath(stateDir, id), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open guardian lock of fault %s: %w", id, err)
	}
	return f, nil
}

// Outcome returns the outcome written under this lock, if any.
func (l *Lock) Outcome() (Outcome, bool, error) {
	if _, err := l.f.Seek(0, io.SeekStart); err != nil {
		return Outcome{}, false, err
	}
	data, err := io.ReadAll(io.LimitReader(l.f, 64<<10))
	if err != nil || len(data) == 0 {
		return Outcome{}, false, err
	}
	var o Outcome
	if err := json.Unmarshal(data, &o); err != nil {
		// A torn write: the writer died before its fsync returned, so the
		// revert it recorded is not known to have finished.
		return Outcome{}, false, nil
	}
	return o, true, nil
}

// SetOutcome writes o durably.
func (l *Lock) SetOutcome(o Outcome) error {
	data, err := json.Marshal(o)
	if err != nil {
		return err
	}
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	if _, err := l.f.WriteAt(data, 0); err != nil {
		return err
	}
	return l.f.Sync()
}

// Unlock releases the lock.
func (l *Lock) Unlock() error { return l.f.Close() }

// Revert takes fault id back with revert under its lock, unless its
// outcome is already written, and returns the outcome: the one found
// (taken, false), or the new one with reason at now (taken, true). A
// revert that fails writes nothing, and the error is returned.
func Revert(stateDir, id string, reason string, revert func() error) (o Outcome, taken bool, err error) {
	l, err := LockFault(stateDir, id)
	if err != nil {
		return Outcome{}, false, err
	}
	defer func() { _ = l.Unlock() }() // closing the file releases the flock
	return revertHeld(l, id, reason, revert)
}

// revertHeld is Revert's work on an opened lock file.
func revertHeld(l *Lock, id, reason string, revert func() error) (o Outcome, taken bool, err error) {
	if prev, ok, err := l.Outcome(); err != nil {
		return Outcome{}, false, err
	} else if ok {
		return prev, false, nil
	}
	if err := revert(); err != nil {
		return Outcome{}, false, err
	}
	o = Outcome{Reason: reason, At: time.Now()}
	if err := l.SetOutcome(o); err != nil {
		return o, true, fmt.Errorf("record that fault %s was reverted: %w", id, err)
	}
	return o, true, nil
}

// Forget removes fault id's lock file once the journal has closed the
// fault and its guardian has exited.
func Forget(stateDir, id string) error {
	err := os.Remove(LockPath(stateDir, id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
