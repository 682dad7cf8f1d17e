//go:build !linux

package worker

import "syscall"

// sysProcAttr off Linux has no parent-death signal; the agent does not run
// there, this only keeps the package compiling.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
