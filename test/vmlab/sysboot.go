package vmlab

// The systemd boot's contract (TestVMLab_Systemd, docs/vmlab.md): what the
// host tells test/vmlab/sysguest and how it drives it once Debian's systemd
// runs. Shared by the test and the guest so the two cannot drift apart.

// SysConfigPath is where the host puts the SysConfig in the initramfs;
// the guest copies it to SysDriverConfig in the root filesystem.
const (
	SysConfigPath   = "/vmlab-sys.json"
	SysDriverConfig = "/etc/vmlab/driver.json"
	// SysDriverBinary is where the guest installs itself in the root, run
	// by systemd as the driver service SysDriverUnit.
	SysDriverBinary = "/usr/local/sbin/vmlab-driver"
	SysDriverUnit   = "vmlab-driver.service"
	// SysDriverArg is argv[1] of the driver: the same binary is the
	// initramfs's /init (PID 1) and, in the booted system, the driver.
	SysDriverArg = "driver"
)

// SysConfig is what the initramfs's /init and the driver are told.
type SysConfig struct {
	// Modules are the .ko paths inside the initramfs, in load order: the
	// root disk (virtio_blk, ext4), the NIC and what the agent's
	// injectors need. The booted root has no modules of its own.
	Modules []string `json:"modules"`
	// RootDevice is the block device holding the ext4 root filesystem.
	RootDevice string `json:"root_device"`
	// Interface and GuestCIDR: the NIC and the address /init gives it
	// before systemd starts (nothing in the root manages the network).
	Interface string `json:"interface"`
	GuestCIDR string `json:"guest_cidr"`
	// Host is the host side's driver listener (ip:port on the lab's
	// bridge): the driver dials it and serves the host's requests.
	Host string `json:"host"`
}

// Request is one thing the host asks of the driver, one JSON line each.
type Request struct {
	// Op is "exec" (run Argv, no shell), "procs" (the process table),
	// "write" (Size raw bytes, sent right after the request's line, to
	// Path with Mode, parents made) or "monotonic" (the guest's
	// CLOCK_MONOTONIC, which journald and systemd stamp with), "lock"
	// (hold an exclusive flock on Path, created if missing, until
	// "unlock" of the same Path), "clock" (step the guest's
	// CLOCK_REALTIME by StepMS, forward or back: the guest's kernel clock
	// is its own, so this skews nothing outside the VM) or "tables" (the
	// names of the guest's nftables tables of family inet).
	Op        string   `json:"op"`
	StepMS    int64    `json:"step_ms,omitempty"`
	Argv      []string `json:"argv,omitempty"`
	TimeoutMS int      `json:"timeout_ms,omitempty"`
	Path      string   `json:"path,omitempty"`
	Size      int64    `json:"size,omitempty"`
	Mode      uint32   `json:"mode,omitempty"`
}

// Response answers one Request.
type Response struct {
	// Error is set when the request itself failed (an exec that could
	// not start, a write refused); a command's non-zero exit is not an
	// error: it is in Code.
	Error  string `json:"error,omitempty"`
	Code   int    `json:"code"`
	Stdout string `json:"stdout,omitempty"`
	Stderr string `json:"stderr,omitempty"`
	Procs  []Proc `json:"procs,omitempty"`
	// MonotonicUS is CLOCK_MONOTONIC in microseconds ("monotonic").
	MonotonicUS uint64 `json:"monotonic_us,omitempty"`
	// RealtimeNS is the guest's CLOCK_REALTIME after a "clock" step, in
	// nanoseconds since the epoch.
	RealtimeNS int64 `json:"realtime_ns,omitempty"`
	// Tables are the nftables tables of family inet ("tables").
	Tables []string `json:"tables,omitempty"`
}

// Proc is one process of the guest, from /proc.
type Proc struct {
	PID   int      `json:"pid"`
	PPID  int      `json:"ppid"`
	State string   `json:"state"`
	Argv  []string `json:"argv"`
}
