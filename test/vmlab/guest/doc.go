// Command guest is the VM lab's /init: a static Go program booted by a
// stock Debian kernel under qemu (test/vmlab). It loads the NIC and qdisc
// modules with finit_module (no insmod or busybox needed), brings eth0 up,
// applies netem and tbf faults toward the host-side peer with the
// product's own network injector (agent/inject/network) — the last one
// through inject.Manager, which must end it at its deadline — measures
// their effect with a UDP echo (paced probes carry a sequence number and
// a known payload, and their answers are timed by the kernel's receive
// timestamps), prints a vmlab.Result as one JSON line on the serial console
// and powers the VM off.
//
// It is not a product binary: it exists only to be built by the lab.
package main
