// Package partition is the partition/blackhole injector: it drops matching
// traffic with an nftables table owned by the agent, one table per fault,
// built in one atomic batch (google/nftables, netlink; never `nft`).
//
// The table is named TablePrefix + the fault ID, in family inet (IPv4 and
// IPv6 alike): that name is the agent's mark, which start-up recovery and
// the sweep look for (invariant 3). Revert deletes the table, which takes
// every chain and rule with it in one step.
//
// Rules, per hook (input for direction ingress, output for egress, both
// for both), in order: accept the exclusions (the controllers and the
// policy's protected CIDRs always — invariant 4 —, SSH and DNS to the
// resolvers by default), then count and drop the target. In the output
// chain a CIDR is a destination and a port the remote end's destination
// port; in the input chain they are the source address and port.
//
// The table owner flag (NFT_TABLE_F_OWNER, Linux 5.12), with which the
// kernel itself drops the table when the agent's socket closes, is not
// used: google/nftables v0.3.0, the pinned version, always writes the
// table's flags as 0. The journal and the start-up sweep take a table back
// after the agent dies; the owner flag needs the later untagged
// google/nftables commit (docs/dependencies.md).
package partition
