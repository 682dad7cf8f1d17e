//go:build linux

package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/turbulence-sre/turbulence/test/vmlab"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == vmlab.SysDriverArg {
		if err := drive(); err != nil {
			fmt.Fprintln(os.Stderr, "vmlab-driver:", err)
			os.Exit(1)
		}
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "sysguest: run as the initramfs's /init, or with argument", vmlab.SysDriverArg)
		os.Exit(2)
	}
	err := boot() // returns only when it failed: success execs systemd
	// One line the host quotes from the console tail, then power off: as
	// PID 1, exiting would panic the kernel and leave qemu running.
	fmt.Fprintln(os.Stdout, "\nvmlab-sysguest: boot failed:", err)
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
