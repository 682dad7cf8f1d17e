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

	// Peer2 is a second UDP echo on the host's bridge that no fault
	// targets: the targeting phase checks it stays untouched. Empty skips
	// the targeting phase.
	Peer2 string `json:"peer2,omitempty"`
	// JitterDelayMS ± JitterMS is the jitter phase's netem delay, measured
	// over JitterPackets echoes. JitterPackets 0 skips it.
	JitterDelayMS int `json:"jitter_delay_ms,omitempty"`
	JitterMS      int `json:"jitter_ms,omitempty"`
	JitterPackets int `json:"jitter_packets,omitempty"`
	// DuplicatePercent and CorruptPercent are applied one after the other,
	// each over StatPackets echoes of PayloadBytes. StatPackets 0 skips
	// both.
	DuplicatePercent float64 `json:"duplicate_percent,omitempty"`
	CorruptPercent   float64 `json:"corrupt_percent,omitempty"`
	StatPackets      int     `json:"stat_packets,omitempty"`
	PayloadBytes     int     `json:"payload_bytes,omitempty"`
	// RateBitsPerSecond is applied twice, as netem rate and as a tbf
	// bandwidth limit, each measured over RatePackets datagrams of
	// PayloadBytes offered at 1.25 times the rate. RatePackets 0 skips it.
	RateBitsPerSecond uint64 `json:"rate_bits_per_second,omitempty"`
	RatePackets       int    `json:"rate_packets,omitempty"`
	// DeadlineMS is the duration of a delay fault applied through
	// inject.Manager, which must take it back by itself. 0 skips it.
	DeadlineMS int `json:"deadline_ms,omitempty"`
}

// Probe is what a paced stream of echoes saw: each datagram carries its
// sequence number and a known pattern, so an answer is matched to its
// echo and a changed payload is noticed.
type Probe struct {
	Sent int `json:"sent"`
	// Answered counts distinct echoes answered with the right payload;
	// Duplicates the extra right answers to an echo already answered;
	// Bad the answers whose size, number or payload was wrong.
	Answered   int `json:"answered"`
	Duplicates int `json:"duplicates"`
	Bad        int `json:"bad"`
	// RTTs (ms) of the first answer to each echo, in sending order; only
	// where the lab asserts on their distribution.
	RTTs []float64 `json:"rtts_ms,omitempty"`
	// SendMS is how long the sender took to offer every echo, MaxLateMS
	// the most it fell behind its schedule (a stalled vCPU).
	SendMS    float64 `json:"send_ms"`
	MaxLateMS float64 `json:"max_late_ms"`
	// KernelTimestamps says the answers' times are the kernel's receive
	// timestamps, not the guest program's.
	KernelTimestamps bool `json:"kernel_timestamps"`
	// SpanMS is the time from the first right answer at least 500 ms
	// after the first one to the last one, and SpanAnswers how many
	// answers arrived after it: the throughput window, past a token
	// bucket's initial burst (rate probes only).
	SpanMS      float64 `json:"span_ms,omitempty"`
	SpanAnswers int     `json:"span_answers,omitempty"`
}

// RateResult is one rate-limit phase.
type RateResult struct {
	// Kind is "netem" (netem rate) or "tbf" (bandwidth).
	Kind    string   `json:"kind"`
	Qdiscs  []string `json:"qdiscs"`
	Probe   Probe    `json:"probe"`
	WireLen int      `json:"wire_len"` // bytes per datagram as the qdisc counts them
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

	// QdiscsAfterPhase is the tree after each later phase's fault was
	// taken back, by phase name.
	QdiscsAfterPhase map[string][]string `json:"qdiscs_after_phase,omitempty"`

	// Jitter: the echoes under delay ± jitter; JitterBaseline the same
	// probe with no fault on, just before.
	JitterBaseline *Probe `json:"jitter_baseline,omitempty"`
	Jitter         *Probe `json:"jitter,omitempty"`
	// Duplicate and Corrupt: the echoes under each.
	Duplicate *Probe `json:"duplicate,omitempty"`
	Corrupt   *Probe `json:"corrupt,omitempty"`
	// Rate: netem rate, then tbf bandwidth.
	Rate []RateResult `json:"rate,omitempty"`

	// Targeting: RTT medians (ms) to the targeted peer and to Peer2, before
	// (baseline) and under a DelayMS fault targeting only the peer's /32.
	Peer2BaselineMS float64 `json:"peer2_baseline_ms,omitempty"`
	TargetedMS      float64 `json:"targeted_ms,omitempty"`
	UntargetedMS    float64 `json:"untargeted_ms,omitempty"`

	// Deadline: a fault applied through inject.Manager with DeadlineMS of
	// duration. DeadlineQdiscs is the tree while it ran, DeadlineDelayedMS
	// an RTT median under it; DeadlineGoneMS the time from Manager.Apply's
	// start until the tree was the original again (polled every 5 ms,
	// no revert asked); DeadlineReason the reason the Manager recorded;
	// DeadlineHeld the faults it still held afterwards.
	DeadlineQdiscs    []string `json:"deadline_qdiscs,omitempty"`
	DeadlineDelayedMS float64  `json:"deadline_delayed_ms,omitempty"`
	DeadlineGoneMS    float64  `json:"deadline_gone_ms,omitempty"`
	DeadlineReason    string   `json:"deadline_reason,omitempty"`
	DeadlineHeld      int      `json:"deadline_held"`
}
