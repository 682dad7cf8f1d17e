// Package network is the network fault injector: netem impairments (delay,
// jitter, correlation, loss, duplicate, corrupt, reorder, rate) and tbf
// bandwidth limits on one named interface, egress, ingress or both,
// through netlink — never by shelling out to tc (docs/design.md, fault
// catalogue).
//
// # What the injector owns
//
// Every qdisc the agent adds has a handle major in [HandleMajorMin,
// HandleMajorMax] (0x7400–0x74ff, "t" = 0x74): that range is the agent's
// mark, which start-up recovery and the sweep look for (invariant 3). On an
// interface it builds:
//
//	qdisc htb 7400: root default 0        classful root (prio where the kernel has it; htb here)
//	class htb 7400:1 parent 7400:         the impaired class, unshaped by htb itself
//	qdisc netem 7401: parent 7400:1       the impairment (or tbf 7402:, or netem then tbf)
//	filter u32 parent 7400: prio 1,2      exclusions → 7400: (htb's direct queue: untouched)
//	filter u32 parent 7400: prio 10,11    targets → 7400:1 (impaired)
//
// Traffic no filter matches goes to htb's direct queue (default 0), so it
// passes untouched; only matching packets reach the impaired class. htb is
// used as the root even where prio exists: it gives the same steering with
// a direct queue that never reorders untouched traffic, and this CI kernel
// has no sch_prio.
//
// # Safety
//
//   - Exclusions (invariant 4): the controllers' addresses and the policy's
//     protected CIDRs always, SSH (port 22 either way) and DNS to the
//     resolvers of resolv.conf by default, are steered to the untouched
//     direct queue ahead of any target filter. Each is listed in the
//     fault's status (`turbctl fault show`).
//   - Leave the host as it was (invariant 3): the interface's original root
//     qdisc is recorded in the journal (Undo) before it is replaced and put
//     back on revert. A kernel default root (handle 0:) comes back by itself
//     when the agent's root is deleted; a root someone configured (non-zero
//     handle) is refused unless the policy's network.replace_root_qdisc
//     allows it, and then only for kinds the agent can recreate.
//   - One fault per interface: a second one is refused with an error naming
//     the fault that holds it, never silently overwritten.
//   - Bad input changes nothing (invariant 6): everything is checked before
//     the first netlink call, and a partial apply is rolled back by deleting
//     the agent's root.
//
// # Ingress
//
// Direction ingress (or both) goes through an ifb device the agent
// creates, named IFBPrefix and 8 hex digits of the fault id ("tifb…", its
// mark on links, recorded in the journal's Undo.NetIFB):
//
//	ifb tifb0123abcd                      same htb + impairment tree as
//	                                      above on its egress; targets
//	                                      matched by SOURCE address
//	qdisc ingress ffff: dev eth0          the kernel names it ffff: always,
//	                                      so the agent's mark is the
//	                                      priority of its filters
//	filter u32 parent ffff: prio 0x7401,2 exclusions by source (a DNS
//	                                      answer by source port 53): a
//	                                      classid, no action — passed on,
//	                                      never redirected (no act_gact
//	                                      needed)
//	filter u32 parent ffff: prio 0x7410,1 everything else IPv4/IPv6 →
//	                                      mirred egress redirect to the ifb
//
// An interface whose ingress hook already has a qdisc (ingress, clsact) is
// refused: the agent does not share it. Ingress alone leaves the
// interface's root alone. Revert (and start-up recovery, from the
// journal) deletes the ingress qdisc — or only the agent's filters if
// someone added others — before the ifb; the sweep finds both by their
// marks.
//
// netem values read back from the kernel are not trusted
// (docs/dependencies.md): the journal holds what was applied.
package network
