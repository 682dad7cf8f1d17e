package vmlab

// The guest's side of the lab's contract: what the host tells it (Config,
// a JSON file in the initramfs) and what it answers (Result, one line of
// JSON on the serial console after ResultPrefix). Shared by the test and
// test/vmlab/guest so the two cannot drift apart.

// ConfigPath is where the host puts the guest's Config in the initramfs.
const ConfigPath = "/vmlab.json"

// ResultPrefix starts the console line that carries the guest's Result;
// everything else on the console is kernel or guest chatter.
const ResultPrefix = "VMLAB-RESULT "

// Config is what the guest is told to do.
type Config struct {
	// Modules are the .ko paths inside the initramfs, in load order
	// (dependencies first).
	Modules []string `json:"modules"`
	// Interface is the guest's NIC (eth0), GuestCIDR its address, Peer the
	// host side's UDP echo (ip:port).
	Interface string `json:"interface"`
	GuestCIDR string `json:"guest_cidr"`
	Peer      string `json:"peer"`
	// DelayMS is the netem delay to apply toward the peer.
	DelayMS int `json:"delay_ms"`
	// RTTSamples is how many echoes make one RTT measurement (median).
	RTTSamples int `json:"rtt_samples"`
	// LossPercent and LossPackets: the netem loss to apply, measured over
	// that many echoes. LossPackets 0 skips the loss step.
	LossPercent float64 `json:"loss_percent"`
	LossPackets int     `json:"loss_packets"`
}

// Result is what the guest measured. Durations are in milliseconds (float)
// so the line stays readable on the console.
type Result struct {
	Kernel string `json:"kernel"`
	// Error is set when the guest could not finish; the other fields hold
	// what it got to.
	Error string `json:"error,omitempty"`

	// QdiscsBefore is the interface's qdisc tree ("kind handle parent"
	// lines) before any fault; QdiscsDelay while the delay fault ran;
	// QdiscsAfter after its revert, QdiscsAfterLoss after the loss fault's.
	QdiscsBefore    []string `json:"qdiscs_before"`
	QdiscsDelay     []string `json:"qdiscs_delay"`
	QdiscsAfter     []string `json:"qdiscs_after"`
	QdiscsAfterLoss []string `json:"qdiscs_after_loss,omitempty"`

	// RTT medians (ms): before the fault, under it, after its revert.
	BaselineMS float64 `json:"baseline_ms"`
	DelayedMS  float64 `json:"delayed_ms"`
	RevertedMS float64 `json:"reverted_ms"`
	// ApplyMS and RevertMS: how long the injector's Apply and Revert of
	// the delay fault took; LossApplyMS and LossRevertMS the same for the
	// loss fault, the second on the interface (tcg translates kernel code
	// the first time it runs, so the first is slower).
	ApplyMS      float64 `json:"apply_ms"`
	RevertMS     float64 `json:"revert_ms"`
	LossApplyMS  float64 `json:"loss_apply_ms,omitempty"`
	LossRevertMS float64 `json:"loss_revert_ms,omitempty"`

	// Uptime is the guest's CLOCK_BOOTTIME (ms) at the end of each phase:
	// init (the kernel ran /init), modules, link (eth0 up), delay (the
	// delay fault measured and reverted), loss: where the VM's time goes.
	Uptime map[string]float64 `json:"uptime_ms"`

	// LossSent and LossReceived: echoes sent and answered under the loss
	// fault.
	LossSent     int `json:"loss_sent,omitempty"`
	LossReceived int `json:"loss_received,omitempty"`
}
