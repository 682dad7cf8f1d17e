//go:build !linux

package cpu

import (
	"errors"
	"time"
)

// processCPUTime is not measured off Linux; the meter then reports 0.
func processCPUTime(string, int) (time.Duration, error) {
	return 0, errors.ErrUnsupported
}
