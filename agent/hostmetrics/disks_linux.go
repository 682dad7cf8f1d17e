package hostmetrics

import (
	"os"
	"path/filepath"
	"strings"
)

// physicalDisks lists the whole physical disks: the entries of
// <sysRoot>/block whose device is not under devices/virtual (loop, ram,
// zram, device-mapper and md devices are; their I/O lands on a physical
// disk that is counted already). Partitions are not in /sys/block.
func physicalDisks(sysRoot string) ([]string, error) {
	dir := filepath.Join(sysRoot, "block")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || strings.Contains(target, "/devices/virtual/") {
			continue
		}
		names = append(names, e.Name())
	}
	return names, nil
}
