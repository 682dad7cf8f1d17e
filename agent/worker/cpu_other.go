//go:build !linux

package worker

import (
	"errors"
	"fmt"
	"time"
)

// errUnsupported is returned off Linux, where the agent does not run.
var errUnsupported = errors.ErrUnsupported

// threadCPUTime is Linux-only; the agent refuses to run elsewhere, but the
// package must compile so that `GOOS=darwin go vet` keeps the seams honest.
func threadCPUTime() (time.Duration, error) {
	return 0, fmt.Errorf("thread CPU clock: %w", errUnsupported)
}

func processCPUTime() (time.Duration, error) {
	return 0, fmt.Errorf("process CPU clock: %w", errUnsupported)
}

func pin(cpu int) error {
	return fmt.Errorf("pin thread to CPU %d: %w", cpu, errUnsupported)
}
