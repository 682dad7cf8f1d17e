//go:build !linux

package worker

import (
	"context"
	"fmt"
)

// RunDiskIO is Linux-only, like the agent.
func RunDiskIO(context.Context, DiskIOSpec) error {
	return fmt.Errorf("disk-io worker: %w", errUnsupported)
}
