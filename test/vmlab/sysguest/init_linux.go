//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/turbulence-sre/turbulence/test/vmlab"
)

// newRoot is where the root disk is mounted before PID 1 moves into it.
const newRoot = "/newroot"

// deviceWait bounds the wait for the root disk and the NIC to register
// after their drivers are loaded (asynchronous probing).
const deviceWait = 60 * time.Second

// driverUnit runs the driver in the booted system. It is ordered after
// basic.target only: the host decides when the system counts as up
// (systemctl is-system-running --wait), not the unit.
const driverUnit = `[Unit]
Description=VM lab driver (test/vmlab/sysguest)
After=basic.target

[Service]
ExecStart=` + vmlab.SysDriverBinary + ` ` + vmlab.SysDriverArg + `
Restart=on-failure
RestartSec=1s
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
`

// boot prepares the root filesystem and execs its systemd; it returns
// only on failure.
func boot() error {
	for _, m := range []struct{ src, dst, fs string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		if err := unix.Mount(m.src, m.dst, m.fs, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	raw, err := os.ReadFile(vmlab.SysConfigPath)
	if err != nil {
		return err
	}
	var cfg vmlab.SysConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("%s: %w", vmlab.SysConfigPath, err)
	}
	for _, m := range cfg.Modules {
		if err := loadModule(m); err != nil {
			return err
		}
	}
	if err := bringUp(cfg); err != nil {
		return err
	}
	if err := waitFor(func() bool { _, err := os.Stat(cfg.RootDevice); return err == nil }); err != nil {
		return fmt.Errorf("root device %s: %w", cfg.RootDevice, err)
	}
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(cfg.RootDevice, newRoot, "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount %s on %s: %w", cfg.RootDevice, newRoot, err)
	}
	if err := installDriver(raw); err != nil {
		return err
	}
	// Hand over as switch_root does: systemd mounts its own /proc and
	// /sys; /dev (devtmpfs) moves along with the root.
	_ = unix.Unmount("/proc", unix.MNT_DETACH)
	_ = unix.Unmount("/sys", unix.MNT_DETACH)
	if err := unix.Mount("/dev", newRoot+"/dev", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move /dev: %w", err)
	}
	if err := unix.Chdir(newRoot); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move the root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return err
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	return unix.Exec("/sbin/init", []string{"/sbin/init"}, os.Environ())
}

// installDriver copies this binary, its configuration and its unit into
// the new root and enables the unit.
func installDriver(cfg []byte) error {
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		return err
	}
	unitPath := "/etc/systemd/system/" + vmlab.SysDriverUnit
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{vmlab.SysDriverBinary, self, 0o755},
		{vmlab.SysDriverConfig, cfg, 0o644},
		{unitPath, []byte(driverUnit), 0o644},
	} {
		p := newRoot + f.path
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return err
		}
	}
	wants := newRoot + "/etc/systemd/system/multi-user.target.wants"
	if err := os.MkdirAll(wants, 0o755); err != nil {
		return err
	}
	if err := os.Symlink(unitPath, filepath.Join(wants, vmlab.SysDriverUnit)); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return nil
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("finit_module %s: %w", path, err)
	}
	return nil
}

// bringUp gives the NIC its address and sets it and lo up.
func bringUp(cfg vmlab.SysConfig) error {
	var link netlink.Link
	if err := waitFor(func() bool {
		l, err := netlink.LinkByName(cfg.Interface)
		link = l
		return err == nil
	}); err != nil {
		return fmt.Errorf("interface %s: %w", cfg.Interface, err)
	}
	addr, err := netlink.ParseAddr(cfg.GuestCIDR)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("address %s on %s: %w", cfg.GuestCIDR, cfg.Interface, err)
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		_ = netlink.LinkSetUp(lo)
	}
	return netlink.LinkSetUp(link)
}

// waitFor polls cond until it holds or deviceWait has passed: the kernel
// registers devices asynchronously after their driver loads, and this
// /init has no udev to tell it when.
func waitFor(cond func() bool) error {
	deadline := time.Now().Add(deviceWait)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not there after %s", deviceWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}
