// Package vmlab is the VM lab: it proves the network faults on a stock
// Debian kernel, because the CI machine's own kernel has no sch_netem (and
// no sch_prio), so agent/inject/network cannot show a netem fault working
// on it (issue 5, "The VM lab").
//
// TestVMLab_Netem, run as root under `make test`:
//
//   - prepares build/vmlab in the repository root, once: the kernel image
//     package linux-image-amd64 depends on, fetched with `apt-get download`,
//     unpacked with `dpkg -x` and indexed with `depmod -b`; a second run
//     downloads nothing;
//   - builds the guest (test/vmlab/guest, a static Go /init that loads the
//     modules with finit_module and runs the product's own network
//     injector) and an initramfs holding it, the modules it needs and a
//     Config;
//   - makes a network namespace with a bridge and a tap device, and boots
//     the kernel under qemu (-accel tcg: KVM hangs on these machines)
//     inside that namespace; the guest is 198.18.0.10 (and fe80::10). The
//     bridge holds 198.18.0.1 (the peer: UDP echoes on :7007 and :7008,
//     and on :7009 a counter of what :7007 received), 198.18.0.2 (a
//     neighbour: a UDP echo on :7007, TCP echoes on :22 and :2222),
//     198.18.0.3 (the controller, as the guest agent knows it: a UDP echo
//     on :7443) and fe80::1 (a UDP echo on :7007; link-local, so that no
//     routable IPv6 address exists anywhere);
//   - reads the serial console until the guest prints its Result, and
//     checks, each phase a fault of its own in the one boot: delay, loss,
//     jitter (mean and interquartile range), duplicate and corrupt
//     (binomial bounds), rate as netem rate and as a tbf bandwidth limit
//     (throughput within 10 %), targeting (only the targeted /32 is
//     delayed, its neighbour on the same bridge is not), a fault applied
//     through inject.Manager that must be gone at its deadline with no
//     revert asked, and the original qdisc tree after every phase;
//   - then the safety phases (safety_linux_test.go), with the injectors
//     and policy built as agent.New builds them from a controller address:
//     100 % loss on the whole interface leaves the controller's echo and
//     TCP to port 22 untouched and cuts the neighbour; partitions (the
//     nftables injector) drop exactly their target — the peer's UDP port
//     out (the peer's counter sees none), in (the peer sees them all, the
//     answers are dropped), everything both ways but the controller and
//     SSH, and one IPv6 address — and leave no table behind; a partition
//     of the controller's /32 is refused by the policy; the guest
//     re-executed as an agent that applies a delay with a journal is
//     SIGKILLed under it, and agent.Cleanup (start-up recovery) takes the
//     fault back from the journal alone, leaving the original tree and an
//     empty journal; and a configured tbf root is refused without the
//     policy's replace_root_qdisc and put back exactly, parameters and
//     all, by the revert and by recovery after a killed agent.
//
// The test logs configured against measured as tables. A cut path must
// lose every echo (netem at 100 % and an nftables drop are deterministic),
// an untouched one at most 5 %; loss, duplicate and corrupt rates are
// judged by a 4-sigma binomial confidence interval from the samples taken,
// with enough samples that a rate 20 % off cannot pass (binomial_linux_test.go).
//
// TestVMLab_Systemd boots a Debian 12 root filesystem with systemd as
// init (built once with mmdebstrap from the machine's own apt sources,
// cached under build/vmlab), installs the agent's .deb with dpkg and proves
// its unit against a controller outside the VM, then steps the guest's
// wall clock forward and back past the lease while the agent holds faults
// (clockskew_linux_test.go): docs/vmlab.md.
//
// Without root the test skips, without its prerequisites (qemu, apt with a
// network) it skips too — unless TURBULENCE_REQUIRE_PRIVILEGED=1, where
// both are failures.
package vmlab
