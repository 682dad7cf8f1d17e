package bootclock

import (
	"errors"
	"sync/atomic"
	"time"
)

// Instant is a point on one boot's CLOCK_BOOTTIME. The zero Instant is
// no point at all.
type Instant struct {
	// Boot is the kernel's boot ID (/proc/sys/kernel/random/boot_id):
	// CLOCK_BOOTTIME starts again at zero with every boot.
	Boot string `json:"boot"`
	// Nanos is CLOCK_BOOTTIME, in nanoseconds since that boot.
	Nanos int64 `json:"ns"`
}

// ErrUnsupported is what Now returns where the kernel has no boot clock
// and boot ID (anything but Linux): callers fall back to the wall clock.
var ErrUnsupported = errors.New("bootclock: no CLOCK_BOOTTIME and boot ID on this system")

// IsZero reports whether i is the zero Instant.
func (i Instant) IsZero() bool { return i == Instant{} }

// wallForTests: see WallForTests.
var wallForTests atomic.Bool

// testBoot is the boot ID of the clock WallForTests installs.
const testBoot = "wall-clock-for-tests"

// WallForTests makes this process's boot clock read time.Now, for the
// rest of its life. It is for tests that run in a testing/synctest
// bubble, whose fake time the kernel's clock does not follow; a test of
// a wall-clock step then gives its records a wall deadline and a boot
// deadline that disagree, as a step makes them. Never call it elsewhere.
func WallForTests() { wallForTests.Store(true) }

// Now returns the current Instant.
func Now() (Instant, error) {
	if wallForTests.Load() {
		return Instant{Boot: testBoot, Nanos: time.Now().UnixNano()}, nil
	}
	boot, err := bootID()
	if err != nil {
		return Instant{}, err
	}
	n, err := boottime()
	if err != nil {
		return Instant{}, err
	}
	return Instant{Boot: boot, Nanos: n}, nil
}

// At returns the Instant of t: now on the boot clock plus how long until
// t. A t that carries a monotonic clock reading (one made from time.Now)
// is judged on that reading, so that t made before a step of the wall
// clock still lands where it was meant to; a t without one (a time
// decoded from the wire or a file) is judged on the wall clock as it
// reads now — that is the conversion on arrival.
func At(t time.Time) (Instant, error) {
	now, err := Now()
	if err != nil {
		return Instant{}, err
	}
	now.Nanos += int64(time.Until(t))
	return now, nil
}

// Until returns how long from now until i, negative once i has passed,
// and false when i is zero or of another boot (or the system has no boot
// clock): then i says nothing about the present.
func (i Instant) Until() (time.Duration, bool) {
	if i.IsZero() {
		return 0, false
	}
	now, err := Now()
	if err != nil || now.Boot != i.Boot {
		return 0, false
	}
	return time.Duration(i.Nanos - now.Nanos), true
}

// Add returns i moved by d.
func (i Instant) Add(d time.Duration) Instant {
	i.Nanos += int64(d)
	return i
}
