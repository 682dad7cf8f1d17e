// Command guest is the VM lab's /init: a static Go program booted by a
// stock Debian kernel under qemu (test/vmlab). It loads the NIC, qdisc and
// nf_tables modules with finit_module (no insmod or busybox needed), brings
// eth0 up, applies netem and tbf faults toward the host-side peer with the
// product's own network injector (agent/inject/network) — one through
// inject.Manager, which must end it at its deadline — measures their
// effect with a UDP echo (paced probes carry a sequence number and a known
// payload, and their answers are timed by the kernel's receive
// timestamps), then runs the safety phases (safety_linux.go): 100 % loss
// with the controller excluded, partitions with the product's nftables
// injector (agent/inject/partition), an agent killed under its fault and
// recovered by agent.Cleanup, and a configured root qdisc put back. It
// prints a vmlab.Result as one JSON line on the serial console and powers
// the VM off.
//
// Run with vmlab.CrashChildArg as its first argument, it is instead the
// agent that the restart phase kills: it applies one fault through
// inject.Manager with a journal, says "applied" and waits for SIGKILL.
//
// It is not a product binary: it exists only to be built by the lab.
package main
