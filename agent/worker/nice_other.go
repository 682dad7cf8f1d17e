//go:build !linux

package worker

import "fmt"

// applyNice is Linux-only, like the agent.
func applyNice(nice int) error {
	return fmt.Errorf("set nice level %d: %w", nice, errUnsupported)
}
