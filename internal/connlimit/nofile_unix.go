//go:build unix

package connlimit

import "syscall"

// NoFile is the process's soft RLIMIT_NOFILE (Go raises it to the hard
// limit at start-up), or 0 if it cannot be read.
func NoFile() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return rl.Cur
}
