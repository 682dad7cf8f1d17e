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

	// Safety configures the phases that prove the safety invariants
	// (controller link, partition, agent restart, configured root); nil
	// skips them.
	Safety *SafetyConfig `json:"safety,omitempty"`
}

// GuardedChildArg is argv[2] of the crash child when it is the agent that
// is killed and never restarted: its fault is short and has a guardian.
const GuardedChildArg = "guarded"

// CrashChildArg is argv[1] of the guest re-executed as the agent that
// applies a fault and is then killed (the restart phase). The argv is
// fixed: everything else comes from the Config.
const CrashChildArg = "vmlab-crash-child"

// SafetyConfig is what the safety phases need from the host's side of the
// bridge: every address is a UDP echo unless said otherwise.
type SafetyConfig struct {
	// Controller stands in for the controller (host:port): the guest's
	// injectors get it as the agent's controller address, as agent.New
	// does, and the policy protects its /32, as the agent does.
	Controller string `json:"controller"`
	// SSH and NotSSH are TCP echoes on the neighbour address (Peer2's),
	// on port 22 and on another port: the default SSH exclusion.
	SSH    string `json:"ssh"`
	NotSSH string `json:"not_ssh"`
	// PeerPortB is a second UDP echo on the peer's address, another port.
	PeerPortB string `json:"peer_port_b"`
	// Counter answers any datagram with the number of datagrams the peer's
	// echo (Peer) has received, 8 bytes big-endian: it tells a datagram
	// dropped on its way out from an answer dropped on its way in.
	Counter string `json:"counter"`
	// Peer6 is a UDP echo on the bridge's IPv6 link-local address (with
	// the guest's zone, "[fe80::1%eth0]:7007") and Guest6CIDR the guest's
	// own; "" skips the IPv6 partition.
	Peer6      string `json:"peer6,omitempty"`
	Guest6CIDR string `json:"guest6_cidr,omitempty"`
	// Packets is how many echoes one loss measurement sends.
	Packets int `json:"packets"`
	// StateDir is the agent's state directory in the guest (the journal).
	StateDir string `json:"state_dir"`
	// RootRateBytes is the rate of the tbf root configured before the
	// configured-root phase; 0 skips it.
	RootRateBytes uint64 `json:"root_rate_bytes,omitempty"`
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

	// The safety phases (Config.Safety), each nil until it ran.
	ControllerLink *ControllerLinkResult `json:"controller_link,omitempty"`
	Partitions     []PartitionResult     `json:"partitions,omitempty"`
	// PolicyRefusal is the error the agent's policy gave a partition whose
	// target includes the controller; TablesAfterRefusal the inet tables
	// left after it (none).
	PolicyRefusal      string          `json:"policy_refusal,omitempty"`
	TablesAfterRefusal []string        `json:"tables_after_refusal,omitempty"`
	Restart            *RestartResult  `json:"restart,omitempty"`
	Guarded            *GuardedResult  `json:"guarded,omitempty"`
	ConfiguredRoot     *ConfiguredRoot `json:"configured_root,omitempty"`
}

// TCPResult counts TCP connections that opened and echoed a message back.
type TCPResult struct {
	Tried int `json:"tried"`
	OK    int `json:"ok"`
}

// ControllerLinkResult is a 100 % loss fault on the guest's whole
// interface, applied through inject.Manager as the agent does.
type ControllerLinkResult struct {
	Qdiscs     []string `json:"qdiscs"`
	Exclusions []string `json:"exclusions"`
	// Controller: echoes to the controller address; Target: to the
	// neighbour, which nothing excludes; SSH and NotSSH: TCP echoes to the
	// neighbour's port 22 and another port, before (Base) and under the
	// fault.
	Controller Probe     `json:"controller"`
	Target     Probe     `json:"target"`
	SSHBase    TCPResult `json:"ssh_base"`
	NotSSHBase TCPResult `json:"not_ssh_base"`
	SSH        TCPResult `json:"ssh"`
	NotSSH     TCPResult `json:"not_ssh"`
	// Drops is what netem counted as dropped (the fault's own status).
	Drops uint64 `json:"drops"`
	// State and QdiscsAfter: the fault's final state after Manager.Revert
	// and the tree then.
	State       string   `json:"state"`
	QdiscsAfter []string `json:"qdiscs_after"`
}

// PartitionResult is one partition fault (agent/inject/partition, through
// inject.Manager).
type PartitionResult struct {
	Name      string `json:"name"`
	Direction string `json:"direction"`
	// Target is the fault's target, rendered.
	Target     string   `json:"target"`
	Exclusions []string `json:"exclusions"`
	// Tables are the inet nftables tables while the fault ran, and after
	// its revert.
	Tables      []string `json:"tables"`
	TablesAfter []string `json:"tables_after"`
	// Probes are the loss measurements, by destination name ("peer",
	// "peer port B", "neighbour", "controller", "ipv6 peer").
	Probes map[string]Probe `json:"probes"`
	// PeerReceived is how many of the echoes sent to the peer its echo
	// received (from Counter); -1 when not measured.
	PeerReceived int `json:"peer_received"`
	// SSH and NotSSH: TCP echoes to the neighbour's port 22 and another,
	// under the fault (the blackhole only).
	SSH    *TCPResult `json:"ssh,omitempty"`
	NotSSH *TCPResult `json:"not_ssh,omitempty"`
	// Drops is what the table's drop rules counted (the fault's status).
	Drops uint64 `json:"drops"`
	State string `json:"state"`
}

// RestartResult is the agent killed with a fault applied and its start-up
// recovery run afterwards.
type RestartResult struct {
	FaultID string `json:"fault_id"`
	// Qdiscs is the tree while the child held the fault; DelayedMS an RTT
	// median under it.
	Qdiscs    []string `json:"qdiscs"`
	DelayedMS float64  `json:"delayed_ms"`
	// QdiscsAfterKill is the tree once the child was SIGKILLed (the fault
	// outlives its agent until recovery); OpenAfterKill the fault IDs the
	// journal then lists as open.
	QdiscsAfterKill []string `json:"qdiscs_after_kill"`
	OpenAfterKill   []string `json:"open_after_kill"`
	// Reverted are "id: reason" of what agent.Cleanup took back, Swept what
	// its sweep found without the journal, CleanupMS how long it took and
	// CleanupError its error; Log is what it logged.
	Reverted     []string `json:"reverted"`
	Swept        []string `json:"swept"`
	CleanupMS    float64  `json:"cleanup_ms"`
	CleanupError string   `json:"cleanup_error,omitempty"`
	Log          []string `json:"log,omitempty"`
	// QdiscsAfter, RevertedMS (an RTT median) and OpenAfter: the host and
	// the journal after recovery; SecondReverted what a second Cleanup
	// took back (idempotence).
	QdiscsAfter    []string `json:"qdiscs_after"`
	RevertedMS     float64  `json:"reverted_ms"`
	OpenAfter      []string `json:"open_after"`
	SecondReverted int      `json:"second_reverted"`
}

// GuardedResult is the agent killed and never restarted: a delay whose
// deadline comes a few seconds after the kill, taken back by its guardian
// alone.
type GuardedResult struct {
	FaultID string `json:"fault_id"`
	// Qdiscs is the tree under the fault; DelayedMS an RTT median under it.
	Qdiscs    []string `json:"qdiscs"`
	DelayedMS float64  `json:"delayed_ms"`
	// KillBeforeDeadlineMS is how long before the deadline the agent was
	// killed; GoneAfterDeadlineMS when, relative to the deadline, the
	// agent's qdiscs were first seen gone (sampled every 5 ms).
	KillBeforeDeadlineMS float64 `json:"kill_before_deadline_ms"`
	GoneAfterDeadlineMS  float64 `json:"gone_after_deadline_ms"`
	// QdiscsAfter and RevertedMS: the tree and an RTT median after.
	QdiscsAfter []string `json:"qdiscs_after"`
	RevertedMS  float64  `json:"reverted_ms"`
	// Reverted is "id: reason" of what a later agent.Cleanup closed in the
	// journal: the guardian's own outcome.
	Reverted     []string `json:"reverted"`
	CleanupError string   `json:"cleanup_error,omitempty"`
}

// ConfiguredRoot is a fault on an interface whose root qdisc someone
// configured (a tbf): refused without the policy's replace_root_qdisc,
// applied and put back exactly with it.
type ConfiguredRoot struct {
	// Root is the configured root as the kernel reports it ("tbf 1:0 root
	// rate … buffer … limit …"), RootAfter the same after the revert.
	Root      string `json:"root"`
	RootAfter string `json:"root_after"`
	// Refusal is the error without replace_root_qdisc; QdiscsAfterRefusal
	// the tree then.
	Refusal            string   `json:"refusal"`
	QdiscsAfterRefusal []string `json:"qdiscs_after_refusal"`
	// Qdiscs and DelayedMS: under the fault; QdiscsAfter after its revert;
	// QdiscsDefault after the lab removed its tbf (the kernel default
	// again).
	Qdiscs        []string `json:"qdiscs"`
	DelayedMS     float64  `json:"delayed_ms"`
	QdiscsAfter   []string `json:"qdiscs_after"`
	QdiscsDefault []string `json:"qdiscs_default"`
	// Restart is the same fault applied by an agent (allowed to replace
	// the root) that is killed under it, then start-up recovery;
	// RootAfterRestart the root after that recovery.
	Restart          *RestartResult `json:"restart,omitempty"`
	RootAfterRestart string         `json:"root_after_restart,omitempty"`
}
