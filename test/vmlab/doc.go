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
//   - makes a network namespace with a bridge (198.18.0.1/24, the peer, and
//     198.18.0.2/24, a neighbour no fault targets) and a tap device, serves
//     a UDP echo on both bridge addresses, and boots the kernel under qemu
//     (-accel tcg: KVM hangs on these machines) inside that namespace; the
//     guest is 198.18.0.10;
//   - reads the serial console until the guest prints its Result, and
//     checks, each phase a fault of its own in the one boot: delay, loss,
//     jitter (mean and interquartile range), duplicate and corrupt
//     (binomial bounds), rate as netem rate and as a tbf bandwidth limit
//     (throughput within 10 %), targeting (only the targeted /32 is
//     delayed, its neighbour on the same bridge is not), a fault applied
//     through inject.Manager that must be gone at its deadline with no
//     revert asked, and the original qdisc tree after every phase. The
//     test logs configured against measured as a table.
//
// Without root the test skips, without its prerequisites (qemu, apt with a
// network) it skips too — unless TURBULENCE_REQUIRE_PRIVILEGED=1, where
// both are failures.
package vmlab
