//go:build !linux

package hostmetrics

import "errors"

// physicalDisks needs Linux's /sys/block.
func physicalDisks(string) ([]string, error) {
	return nil, errors.New("telling physical disks apart needs Linux /sys/block")
}
