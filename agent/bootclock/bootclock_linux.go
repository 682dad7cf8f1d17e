package bootclock

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// bootIDFile is where Linux says which boot this is; it never changes
// while the kernel runs, so it is read once.
const bootIDFile = "/proc/sys/kernel/random/boot_id"

var bootID = sync.OnceValues(func() (string, error) {
	raw, err := os.ReadFile(bootIDFile)
	if err != nil {
		return "", fmt.Errorf("bootclock: %w", err)
	}
	id := strings.TrimSpace(string(raw))
	if id == "" {
		return "", fmt.Errorf("bootclock: %s is empty", bootIDFile)
	}
	return id, nil
})

func boottime() (int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, fmt.Errorf("bootclock: clock_gettime(CLOCK_BOOTTIME): %w", err)
	}
	return ts.Nano(), nil
}
