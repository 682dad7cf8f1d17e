//go:build !linux

package worker

import (
	"context"
	"fmt"
	"io"
)

// RunMemory is Linux-only, like the agent.
func RunMemory(context.Context, MemorySpec, io.Writer) error {
	return fmt.Errorf("memory worker: %w", errUnsupported)
}
